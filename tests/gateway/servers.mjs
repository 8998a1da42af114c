// Test support for the Node.js gateway tests: the real nagared and
// nagare-gateway as child processes on free loopback ports, `nagare pub`,
// HS256 tokens. Binaries come from the environment that CTest sets
// (NAGARED, NAGARE_GATEWAY, NAGARE_CLI); every process started here is
// stopped by stopAll() (call it in a finally / after hook).
import { spawn, execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const started = new Set();
const tempDirs = [];

export function binary(name) {
  const path = process.env[name];
  if (!path) throw new Error(`${name} is not set (run the test through ctest)`);
  return path;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// `count` consecutive free ports (nagared takes port, port+1.. for shards, and the admin port).
export async function freePortRange(count) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await portFree(base + i);
    if (ok) return base;
  }
  throw new Error('no free port range');
}

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export function tempDir(prefix = 'nagare-test-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

function track(child, name) {
  started.add(child);
  child.on('exit', () => started.delete(child));
  child.stderr.on('data', (d) => {
    if (process.env.NAGARE_TEST_VERBOSE) process.stderr.write(`[${name}] ${d}`);
  });
  return child;
}

async function waitPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts nagared with a fresh data directory (or `dataDir`). Returns {url, port, adminPort, dataDir, child, stop()}.
export async function startBroker({ shards = 2, dataDir = tempDir(), extraArgs = [] } = {}) {
  const port = await freePortRange(shards + 2);
  const adminPort = port + shards + 1;
  const args = ['--data', dataDir, '--host', '127.0.0.1', '--port', String(port), '--shards', String(shards),
    '--admin-port', String(adminPort), '--log-level', 'warn', ...extraArgs];
  const child = track(spawn(binary('NAGARED'), args, { stdio: ['ignore', 'ignore', 'pipe'] }), 'nagared');
  await waitPort(port, 15000);
  return {
    url: `nagare://127.0.0.1:${port}`, port, adminPort, dataDir, child,
    stop: (signal = 'SIGTERM') => stopChild(child, signal),
  };
}

// Starts nagare-gateway on a kernel-chosen port; resolves once it printed its
// "listening on" line. Returns {base (http://127.0.0.1:P), port, child, stop()}.
// Unless waitBroker is false, also waits until GET /status says the broker is connected.
export async function startGateway({ brokerUrl, args = [], secret = null, listen = '127.0.0.1:0', waitBroker = true } = {}) {
  const full = ['--broker', brokerUrl, '--listen', listen, ...args];
  if (secret !== null) {
    const dir = tempDir('nagare-gw-');
    const file = join(dir, 'secret');
    (await import('node:fs')).writeFileSync(file, secret);
    full.push('--jwt-hs256-secret-file', file);
  } else if (!args.includes('--no-auth') && !args.some((a) => a.startsWith('--jwt'))) {
    full.push('--no-auth');
  }
  const child = track(spawn(binary('NAGARE_GATEWAY'), full, { stdio: ['ignore', 'pipe', 'pipe'] }), 'gateway');
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${out}`)), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^:\s]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`gateway exited (${code}): ${out}`)); });
  });
  const base = `http://127.0.0.1:${port}`;
  // Until it is connected to the broker the gateway answers streams with 503 (docs/gateway.md).
  if (waitBroker) await waitBrokerConnected(base, 15000);
  return { base, port, child, stop: (signal = 'SIGTERM') => stopChild(child, signal) };
}

async function waitBrokerConnected(base, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await new Promise((resolve) => {
      const req = http.get(`${base}/status`, { agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve(body));
      });
      req.setTimeout(1000, () => req.destroy());
      req.on('error', () => resolve(''));
    });
    if (/"broker"\s*:\s*"connected"/.test(last)) return;
    await sleep(50);
  }
  throw new Error(`gateway not connected to the broker within ${timeoutMs} ms: ${last}`);
}

export function stopChild(child, signal = 'SIGTERM', timeoutMs = 6000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    child.kill(signal);
  });
}

export async function stopAll() {
  await Promise.all([...started].map((c) => stopChild(c, 'SIGTERM')));
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

// `nagare pub` through the real CLI. `data` may be text, or `lines` (array) published one per line.
export async function publish(brokerUrl, project, subject, data, { msgId, count } = {}) {
  const args = ['pub', '--url', brokerUrl, project, subject];
  if (msgId) args.push('--msg-id', msgId);
  if (count) args.push('--count', String(count));
  args.push(data);
  const { stdout } = await execFileP(binary('NAGARE_CLI'), args, { timeout: 30000 });
  return stdout;
}

// One message per line of `lines` in one `nagare pub ... -` run. A line may be a
// Buffer (raw bytes, e.g. invalid UTF-8; it must not contain a newline).
export async function publishLines(brokerUrl, project, subject, lines) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary('NAGARE_CLI'), ['pub', '--url', brokerUrl, project, subject, '-'],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      code === 0 ? resolve(out) : reject(new Error(`nagare pub exited ${code}: ${err}`));
    });
    child.stdin.on('error', () => {});
    const nl = Buffer.from('\n');
    child.stdin.end(Buffer.concat(lines.flatMap((l) => [Buffer.isBuffer(l) ? l : Buffer.from(String(l)), nl])));
  });
}

const b64url = (b) => Buffer.from(b).toString('base64url');

// An HS256 JWT with `claims` (exp one hour ahead unless given).
export function hs256Token(secret, claims) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims }));
  const sig = createHmac('sha256', secret).update(`${header}.${body}`).digest('base64url');
  return `${header}.${body}.${sig}`;
}

// `nagare stream add NAME --subjects ...` (extra: e.g. ['--max-bytes', '64KiB']).
export async function streamAdd(brokerUrl, name, subjects, extra = []) {
  const args = ['stream', 'add', '--url', brokerUrl, name, '--subjects', ...subjects, ...extra];
  const { stdout } = await execFileP(binary('NAGARE_CLI'), args, { timeout: 30000 });
  return stdout;
}

// `nagare stream info NAME` parsed: {epoch, partitions: [{partition, first_offset, next_offset}]}.
export async function streamInfo(brokerUrl, name) {
  const { stdout } = await execFileP(binary('NAGARE_CLI'), ['stream', 'info', '--url', brokerUrl, name],
    { timeout: 30000 });
  const epoch = (stdout.match(/epoch=(\d+)/) || [])[1];
  const partitions = [...stdout.matchAll(/partition (\d+): .*first_offset=(\d+) next_offset=(\d+)/g)]
    .map((m) => ({ partition: Number(m[1]), first_offset: Number(m[2]), next_offset: Number(m[3]) }));
  return { epoch, partitions, text: stdout };
}

// Resident set size of a process in KiB (from /proc/PID/status VmRSS).
export function rssKiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

// A broker and a gateway on it (gateway flags `args`, HS256 `secret` or --no-auth). Returns {broker, gw}.
export async function startStack({ args = [], secret = null, brokerOptions = {} } = {}) {
  const broker = await startBroker(brokerOptions);
  const gw = await startGateway({ brokerUrl: broker.url, args, secret });
  return { broker, gw };
}
