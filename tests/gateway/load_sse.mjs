// SSE fan-out load on nagare-gateway: N concurrent SSE connections to one
// project (one hub), one event per second published with `nagare pub`, for a
// bounded duration. Measures delivery latency (the publish time embedded in
// the payload → receive time; also the broker timestamp → receive time),
// errors and disconnects, events received vs expected, and the gateway's RSS
// before the connections, with all of them idle, and per idle connection.
//
//   node tests/gateway/load_sse.mjs [--connections 10000] [--duration-s 30] [--workers 4] [--json FILE]
//
// Needs NAGARED, NAGARE_GATEWAY, NAGARE_CLI (scripts/gateway_load.sh sets them and raises ulimit -n).
// Clients are spread over worker processes, each connecting from its own
// 127.0.0.x source address so one address's ephemeral ports are never the limit.
// runLoad() is also what the CTest slice (load_ci.test.mjs) calls.
import { execFile, fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- worker: holds a share of the SSE connections ---

function runWorker() {
  const conns = [];
  const latE2E = [];
  const latBroker = [];
  const counters = { errors: 0, disconnects: 0, refused: 0, parseErrors: 0, connectFailed: 0 };
  const errorSamples = [];
  let stopping = false;
  const note = (what) => { if (errorSamples.length < 5) errorSamples.push(what); };

  function onLine(c, line) {
    if (!line.startsWith('data:')) return;
    let msg;
    try { msg = JSON.parse(line.slice(5).trim()); } catch { counters.parseErrors++; note(`bad data line: ${line.slice(0, 80)}`); return; }
    if (msg.type === 'welcome') { c.welcomed = true; c.onWelcome?.(); return; }
    const p = msg.payload;
    if (!p || typeof p.seq !== 'number') return;
    const t = now();
    c.seqs.add(p.seq);
    latE2E.push(t - p.t);
    latBroker.push(t - Date.parse(msg.timestamp));
  }

  // SSE body bytes (de-chunked) → lines.
  function onBody(c, text) {
    c.text += text;
    let i;
    while ((i = c.text.indexOf('\n')) >= 0) {
      onLine(c, c.text.slice(0, i).replace(/\r$/, ''));
      c.text = c.text.slice(i + 1);
    }
  }

  // Minimal HTTP/1.1 response reader: head, then a chunked or close-delimited body.
  function onData(c, d) {
    c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
    if (!c.head) {
      const end = c.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = c.buf.subarray(0, end).toString('latin1');
      c.buf = c.buf.subarray(end + 4);
      c.head = head;
      const status = Number(head.slice(9, 12));
      if (status !== 200) {
        counters.refused++;
        note(`status ${status}`);
        c.failed = true;
        c.sock.destroy();
        c.onWelcome?.();
        return;
      }
      c.chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
    }
    if (!c.chunked) { onBody(c, c.buf.toString('utf8')); c.buf = Buffer.alloc(0); return; }
    for (;;) {
      if (c.chunkLeft === 0) {
        const eol = c.buf.indexOf('\r\n');
        if (eol < 0) return;
        const size = parseInt(c.buf.subarray(0, eol).toString('latin1'), 16);
        if (!Number.isFinite(size)) { counters.parseErrors++; note('bad chunk size'); c.sock.destroy(); return; }
        c.buf = c.buf.subarray(eol + 2);
        if (size === 0) return;
        c.chunkLeft = size + 2; // data and its CRLF
      }
      if (c.buf.length === 0) return;
      const take = Math.min(c.chunkLeft, c.buf.length);
      const dataBytes = Math.min(take, Math.max(0, c.chunkLeft - 2));
      if (dataBytes > 0) onBody(c, c.buf.subarray(0, dataBytes).toString('utf8'));
      c.chunkLeft -= take;
      c.buf = c.buf.subarray(take);
    }
  }

  function open(port, path, localAddress) {
    return new Promise((resolve) => {
      const c = { buf: Buffer.alloc(0), text: '', head: null, chunked: false, chunkLeft: 0, seqs: new Set(), welcomed: false };
      const timer = setTimeout(() => { c.onWelcome = null; counters.connectFailed++; note('no welcome within 30 s'); resolve(c); }, 30000);
      c.onWelcome = () => { clearTimeout(timer); c.onWelcome = null; resolve(c); };
      c.sock = net.connect({ port, host: '127.0.0.1', localAddress });
      c.sock.setNoDelay(true);
      c.sock.on('connect', () => c.sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`));
      c.sock.on('data', (d) => onData(c, d));
      c.sock.on('error', (e) => { counters.errors++; note(`socket: ${e.code || e.message}`); });
      c.sock.on('close', () => {
        if (!stopping && !c.failed) { counters.disconnects++; note('closed by the gateway'); }
        if (c.onWelcome) { counters.connectFailed++; c.onWelcome(); }
      });
      conns.push(c);
    });
  }

  process.on('message', async (m) => {
    if (m.cmd === 'connect') {
      const t0 = now();
      const pending = [];
      const gapMs = 1000 / m.ratePerSec;
      for (let i = 0; i < m.count; i++) {
        pending.push(open(m.port, m.path, m.localAddress));
        const due = t0 + (i + 1) * gapMs;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
      }
      await Promise.all(pending);
      process.send({ type: 'connected', welcomed: conns.filter((c) => c.welcomed).length, ms: now() - t0 });
    } else if (m.cmd === 'report') {
      const counts = conns.map((c) => [...c.seqs].filter((s) => m.seqs.includes(s)).length);
      process.send({ type: 'report', counts, latE2E, latBroker, counters, errorSamples, open: conns.filter((c) => !c.sock.destroyed).length });
    } else if (m.cmd === 'stop') {
      stopping = true;
      for (const c of conns) c.sock.destroy();
      process.send({ type: 'stopped' });
      setTimeout(() => process.exit(0), 100);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// --- main: gateway, workers, publisher, report ---

function rssKiB(pid) {
  return Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/)[1]);
}
function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100 Hz)
}

function percentiles(values) {
  if (values.length === 0) return { p50: NaN, p99: NaN, max: NaN };
  const a = Float64Array.from(values).sort();
  const at = (q) => a[Math.min(a.length - 1, Math.floor(q * a.length))];
  return { p50: at(0.5), p99: at(0.99), max: a[a.length - 1] };
}

function ask(worker, msg, type, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { worker.off('message', on); reject(new Error(`worker: no ${type} within ${timeoutMs} ms`)); }, timeoutMs);
    const on = (m) => { if (m.type === type) { clearTimeout(timer); worker.off('message', on); resolve(m); } };
    worker.on('message', on);
    worker.send(msg);
  });
}

// Runs one load round. Options: connections, durationS, workers, connectRatePerSec, log (function).
// Returns the figures (see table()); starts and stops its own broker and gateway.
export async function runLoad({
  connections = 10000, durationS = 30, workers = 0, connectRatePerSec = 2500, log = () => {},
} = {}) {
  const servers = await import('./servers.mjs');
  const nWorkers = workers || Math.max(1, Math.min(4, Math.ceil(connections / 2500)));
  const project = `load${Date.now().toString(36)}`;
  const figures = { connections, durationS, workers: nWorkers };
  const children = [];
  try {
    const broker = await servers.startBroker();
    const gw = await servers.startGateway({
      brokerUrl: broker.url,
      args: ['--connect-rate', String(Math.max(2000, connectRatePerSec * 2)), '--max-connections', String(connections + 1000)],
    });
    const pid = gw.child.pid;
    await sleep(500);
    figures.rssBeforeKiB = rssKiB(pid);

    const self = fileURLToPath(import.meta.url);
    for (let w = 0; w < nWorkers; w++) {
      const child = fork(self, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
    }
    const path = `/events?project=${project}&named=0`;
    const per = (w) => Math.floor(connections / nWorkers) + (w < connections % nWorkers ? 1 : 0);
    log(`connecting ${connections} SSE clients from ${nWorkers} workers`);
    const t0 = now();
    const connected = await Promise.all(children.map((child, w) => ask(child, {
      cmd: 'connect', port: gw.port, path, count: per(w), localAddress: `127.0.0.${10 + w}`,
      ratePerSec: connectRatePerSec / nWorkers,
    }, 'connected', 60000 + (connections / connectRatePerSec) * 2000)));
    figures.connectS = (now() - t0) / 1000;
    figures.welcomed = connected.reduce((s, c) => s + c.welcomed, 0);
    log(`${figures.welcomed} connected in ${figures.connectS.toFixed(1)} s`);

    await sleep(3000); // idle: let allocations settle
    figures.rssIdleKiB = rssKiB(pid);
    figures.rssPerConnKiB = (figures.rssIdleKiB - figures.rssBeforeKiB) / Math.max(1, figures.welcomed);
    const stats0 = await fetchStats(gw.base);
    figures.gatewaySseConnections = stats0?.connections?.sse;

    log(`publishing 1 event/s for ${durationS} s`);
    const cpu0 = cpuTicks(pid);
    const pubStart = now();
    const seqs = [];
    const pubMs = [];
    let pubErrors = 0;
    for (let seq = 0; seq < durationS; seq++) {
      const due = pubStart + seq * 1000;
      if (due > now()) await sleep(due - now());
      const t = now();
      try {
        await new Promise((resolve, reject) => execFile(servers.binary('NAGARE_CLI'),
          ['pub', '--url', broker.url, project, 'load.tick', JSON.stringify({ seq, t })],
          { timeout: 10000 }, (err) => (err ? reject(err) : resolve())));
        seqs.push(seq);
        pubMs.push(now() - t);
      } catch (e) {
        pubErrors++;
        log(`publish ${seq} failed: ${e.message}`);
      }
    }
    await sleep(2000); // the last event's fan-out
    const cpuS = (cpuTicks(pid) - cpu0) / 100;
    figures.gatewayCpuPct = (100 * cpuS) / ((now() - pubStart) / 1000);
    figures.rssEndKiB = rssKiB(pid);
    const stats1 = await fetchStats(gw.base);
    figures.gatewayLatencyMs = stats1?.latency_ms;

    const reports = await Promise.all(children.map((c) => ask(c, { cmd: 'report', seqs }, 'report', 60000)));
    const counts = reports.flatMap((r) => r.counts);
    figures.published = seqs.length;
    figures.publishErrors = pubErrors;
    figures.publishMsAvg = pubMs.reduce((s, x) => s + x, 0) / Math.max(1, pubMs.length);
    figures.expected = connections * seqs.length;
    figures.received = counts.reduce((s, x) => s + x, 0);
    figures.connectionsMissingEvents = counts.filter((x) => x < seqs.length).length + (connections - counts.length);
    const sum = (k) => reports.reduce((s, r) => s + r.counters[k], 0);
    figures.errors = sum('errors') + sum('refused') + sum('parseErrors') + sum('connectFailed') + pubErrors;
    figures.refused = sum('refused');
    figures.connectFailed = sum('connectFailed');
    figures.disconnects = sum('disconnects');
    figures.errorSamples = reports.flatMap((r) => r.errorSamples).slice(0, 10);
    figures.latencyE2EMs = percentiles(reports.flatMap((r) => r.latE2E));
    figures.latencyBrokerMs = percentiles(reports.flatMap((r) => r.latBroker));
    await Promise.all(children.map((c) => ask(c, { cmd: 'stop' }, 'stopped', 10000).catch(() => {})));
    return figures;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await servers.stopAll();
  }
}

async function fetchStats(base) {
  const { httpGet } = await import('./clients.mjs');
  try { return (await httpGet(`${base}/stats`)).json; } catch { return null; }
}

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : String(x));

// The figures as a markdown table.
export function table(f) {
  const rows = [
    ['SSE connections (welcomed / asked)', `${f.welcomed} / ${f.connections} (${f.workers} client processes, connected in ${f1(f.connectS)} s)`],
    ['duration, events published', `${f.durationS} s, ${f.published} (1/s; publish errors ${f.publishErrors}; \`nagare pub\` ${f1(f.publishMsAvg)} ms avg)`],
    ['events received / expected', `${f.received} / ${f.expected} (connections missing events: ${f.connectionsMissingEvents})`],
    ['errors / disconnects', `${f.errors} / ${f.disconnects}${f.errorSamples.length ? ` (${f.errorSamples.join('; ')})` : ''}`],
    ['latency publish→receive p50 / p99 / max', `${f1(f.latencyE2EMs.p50)} / ${f1(f.latencyE2EMs.p99)} / ${f1(f.latencyE2EMs.max)} ms`],
    ['latency broker timestamp→receive p50 / p99 / max', `${f1(f.latencyBrokerMs.p50)} / ${f1(f.latencyBrokerMs.p99)} / ${f1(f.latencyBrokerMs.max)} ms`],
    ['gateway /stats latency avg / p99', f.gatewayLatencyMs ? `${f.gatewayLatencyMs.avg} / ${f.gatewayLatencyMs.p99} ms` : 'n/a'],
    ['gateway RSS before connections', `${(f.rssBeforeKiB / 1024).toFixed(1)} MiB`],
    ['gateway RSS, all connections idle', `${(f.rssIdleKiB / 1024).toFixed(1)} MiB`],
    ['gateway RSS per idle connection', `${f.rssPerConnKiB.toFixed(2)} KiB (goal < 16 KiB)`],
    ['gateway RSS at the end', `${(f.rssEndKiB / 1024).toFixed(1)} MiB`],
    ['gateway CPU while publishing', `${f1(f.gatewayCpuPct)} % of one core`],
  ];
  return ['| metric | value |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    o[k] = argv[i + 1];
  }
  return o;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--worker')) {
    runWorker();
  } else {
    const a = parseArgs(process.argv.slice(2));
    const f = await runLoad({
      connections: Number(a.connections ?? 10000),
      durationS: Number(a['duration-s'] ?? 30),
      workers: Number(a.workers ?? 0),
      connectRatePerSec: Number(a['connect-rate'] ?? 2500),
      log: (s) => console.error(`load: ${s}`),
    });
    console.log(table(f));
    if (a.json) writeFileSync(a.json, JSON.stringify(f, null, 2));
    const ok = f.errors === 0 && f.disconnects === 0 && f.received === f.expected;
    process.exit(ok ? 0 : 1);
  }
}
