// Clients for the gateway tests (docs/gateway.md): plain HTTP with no
// connection pool, raw bytes over net.Socket, a WebSocket speaking raw
// frames (so a test can send what a well-behaved library never would),
// the `ws` library with a message queue, and an SSE reader. Every wait is
// bounded by a timeout; every socket a test opens is closed by closeAll().
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import WebSocket from 'ws';

const open = new Set();
const remember = (closable) => { open.add(closable); return closable; };

// Destroys every socket / ws / SSE stream opened through this module.
export function closeAll() {
  for (const c of open) {
    try { c.destroy ? c.destroy() : c.terminate(); } catch { /* already gone */ }
  }
  open.clear();
}

// A FIFO whose next() waits (bounded) for the next item; end() wakes waiters with null.
export class Queue {
  constructor() { this.items = []; this.waiters = []; this.ended = false; }
  push(item) {
    const w = this.waiters.shift();
    if (w) w.resolve(item); else this.items.push(item);
  }
  end() {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w.resolve(null);
  }
  // The next item, or null when the source ended; throws after timeoutMs.
  next(timeoutMs = 5000, what = 'item') {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const w = { resolve: (v) => { clearTimeout(timer); resolve(v); } };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
  // Items arriving within windowMs (for "nothing more comes" checks).
  async drain(windowMs) {
    const out = [];
    const deadline = Date.now() + windowMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return out;
      try {
        const item = await this.next(left);
        if (item === null) return out;
        out.push(item);
      } catch { return out; }
    }
  }
}

export const withTimeout = (promise, ms, what) => Promise.race([
  promise,
  new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms).unref()),
]);

// --- plain HTTP ---

// GET (or `method`) without keep-alive. Resolves {status, headers, body, json}.
export function httpGet(url, { headers = {}, method = 'GET', timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { connection: 'close', ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(body); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body, json });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

// Parses the head of a raw HTTP response. Returns null while it is incomplete.
export function parseHead(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = lines[0].match(/^HTTP\/1\.[01] (\d{3})/);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: m ? Number(m[1]) : null, statusLine: lines[0], headers, headEnd: end + 4 };
}

// Connects a raw TCP socket to 127.0.0.1:port (optionally from `localAddress`).
export function rawConnect(port, { localAddress, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const s = remember(net.connect({ port, host: '127.0.0.1', localAddress }));
    const timer = setTimeout(() => { s.destroy(); reject(new Error('connect timeout')); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); resolve(s); });
    s.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// Sends `request` (string or Buffer, or an async writer(socket)) and collects the answer until
// a complete response (head + Content-Length body) or the close. Resolves
// {status, headers, body, closed, bytes, elapsedMs}; status null when the gateway closed without answering.
export async function rawRequest(port, request, { timeoutMs = 10000 } = {}) {
  const s = await rawConnect(port);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const head = parseHead(buf);
      s.destroy();
      resolve({
        status: head ? head.status : null, headers: head ? head.headers : {},
        body: head ? buf.subarray(head.headEnd).toString() : '', closed, bytes: buf, elapsedMs: Date.now() - started,
      });
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      s.destroy();
      reject(new Error(`no answer and no close within ${timeoutMs} ms (got ${buf.length} bytes)`));
    }, timeoutMs);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const head = parseHead(buf);
      if (!head) return;
      const length = Number(head.headers['content-length'] ?? NaN);
      if (head.status === 101 || (Number.isFinite(length) && buf.length >= head.headEnd + length)) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    if (typeof request === 'function') request(s).catch(() => {});
    else s.write(request);
  });
}

// --- WebSocket over raw frames ---

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

export function wsAccept(key) {
  return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

// One frame; masked with a random key unless mask is false.
export function encodeFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0 } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = data.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff);
  else {
    head.push(m | 127, 0, 0, 0, 0);
    head.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = data[i] ^ key[i & 3];
  return Buffer.concat([Buffer.from(head), key, masked]);
}

export function closePayload(code, reason = '') {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

// A WebSocket client over net.Socket that sends exactly the frames it is told to.
// Received frames (server frames are never masked) queue in `frames`.
export class RawWs {
  constructor(socket, rest) {
    this.socket = socket;
    this.frames = new Queue();
    this.buf = rest;
    this.closed = new Promise((resolve) => socket.once('close', resolve));
    socket.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.parse(); });
    socket.on('close', () => this.frames.end());
    socket.on('error', () => {});
    this.parse();
  }

  // Upgrades `path`; resolves {status, headers, ws (null unless 101), key}. `headers` override the defaults
  // (a header set to null is left out).
  static async connect(port, path, { headers = {}, timeoutMs = 5000 } = {}) {
    const key = randomBytes(16).toString('base64');
    const all = {
      Host: `127.0.0.1:${port}`, Upgrade: 'websocket', Connection: 'Upgrade',
      'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', ...headers,
    };
    let req = `GET ${path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(all)) if (v !== null) req += `${k}: ${v}\r\n`;
    req += '\r\n';
    const s = await rawConnect(port);
    return new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`no handshake answer within ${timeoutMs} ms`)); }, timeoutMs);
      const onData = (d) => {
        buf = Buffer.concat([buf, d]);
        const head = parseHead(buf);
        if (!head) return;
        const length = Number(head.headers['content-length'] ?? 0);
        if (head.status !== 101 && buf.length < head.headEnd + length) return;
        clearTimeout(timer);
        s.off('data', onData);
        s.off('close', onClose);
        if (head.status !== 101) {
          s.destroy();
          resolve({ status: head.status, headers: head.headers, body: buf.subarray(head.headEnd).toString(), ws: null, key });
          return;
        }
        resolve({ status: 101, headers: head.headers, ws: new RawWs(s, buf.subarray(head.headEnd)), key });
      };
      const onClose = () => {
        clearTimeout(timer);
        const head = parseHead(buf);
        resolve({ status: head ? head.status : null, headers: head ? head.headers : {}, ws: null, key, closed: true });
      };
      s.on('data', onData);
      s.once('close', onClose);
      s.write(req);
    });
  }

  parse() {
    for (;;) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0], b1 = this.buf[1];
      let len = b1 & 0x7f, off = 2;
      if (len === 126) { if (this.buf.length < 4) return; len = this.buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (this.buf.length < 10) return; len = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      const masked = (b1 & 0x80) !== 0;
      if (masked) off += 4;
      if (this.buf.length < off + len) return;
      let payload = Buffer.from(this.buf.subarray(off, off + len));
      if (masked) {
        const key = this.buf.subarray(off - 4, off);
        for (let i = 0; i < len; i++) payload[i] ^= key[i & 3];
      }
      this.buf = this.buf.subarray(off + len);
      this.frames.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload });
    }
  }

  send(opcode, payload, opts) { this.socket.write(encodeFrame(opcode, payload, opts)); }
  sendText(text, opts) { this.send(OP.TEXT, Buffer.from(text), opts); }
  sendClose(code, reason = '') { this.send(OP.CLOSE, closePayload(code, reason)); }

  // The next frame; pings are answered with a pong and skipped unless keepPings. Null once the socket closed.
  async nextFrame(timeoutMs = 5000, { keepPings = false, autoPong = true } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = await this.frames.next(Math.max(1, deadline - Date.now()), 'frame');
      if (f && f.opcode === OP.PING && !keepPings) {
        if (autoPong) this.send(OP.PONG, f.payload);
        continue;
      }
      return f;
    }
  }

  // The next data message (text parsed as JSON when it is JSON), reassembling continuations;
  // a close frame is returned as {close: {code, reason}}; null once the socket closed.
  async nextMessage(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    const parts = [];
    for (;;) {
      const f = await this.nextFrame(Math.max(1, deadline - Date.now()));
      if (f === null) return null;
      if (f.opcode === OP.CLOSE) return { close: decodeClose(f.payload) };
      if (f.opcode === OP.PONG) continue;
      parts.push(f.payload);
      if (!f.fin) continue;
      const text = Buffer.concat(parts).toString('utf8');
      try { return { json: JSON.parse(text), text }; } catch { return { text }; }
    }
  }

  // Reads until a close frame (skipping data); resolves {code, reason, socketClosed}.
  async waitClose(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = await this.nextFrame(Math.max(1, deadline - Date.now()));
      if (f === null) return { code: null, reason: '', socketClosed: true };
      if (f.opcode === OP.CLOSE) return { ...decodeClose(f.payload), frame: f };
    }
  }

  destroy() { this.socket.destroy(); }
}

export function decodeClose(payload) {
  if (payload.length < 2) return { code: 1005, reason: '' };
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') };
}

// --- WebSocket through the `ws` library ---

// Opens `${base}/realtime?query` with `ws`. Resolves {ws, messages (Queue of parsed JSON), closed (Promise of
// {code, reason})} once open; rejects with {status} when the upgrade is refused.
export function openWs(base, query, { headers = {}, timeoutMs = 5000, maxPayload } = {}) {
  const url = `${base.replace(/^http/, 'ws')}/realtime?${query}`;
  return new Promise((resolve, reject) => {
    const ws = remember(new WebSocket(url, { headers, handshakeTimeout: timeoutMs, maxPayload }));
    const messages = new Queue();
    const closed = new Promise((res) => ws.once('close', (code, reason) => {
      messages.end();
      res({ code, reason: reason.toString() });
    }));
    ws.on('message', (data, isBinary) => {
      const text = data.toString();
      let json;
      try { json = JSON.parse(text); } catch { json = undefined; }
      messages.push({ json, text, isBinary, at: Date.now() });
    });
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      const refuse = () => {
        const err = new Error(`upgrade refused: ${res.statusCode} ${body}`);
        Object.assign(err, { status: res.statusCode, headers: res.headers, body });
        req.destroy();
        reject(err);
      };
      res.on('data', (d) => { body += d; });
      res.once('end', refuse);
      res.once('error', refuse);
    });
    ws.once('error', reject);
    ws.once('open', () => resolve({ ws, messages, closed }));
  });
}

// Opens a WebSocket and returns it after checking that the first message is the welcome.
export async function openWsWelcomed(base, query, opts) {
  const c = await openWs(base, query, opts);
  const first = await c.messages.next(5000, 'welcome');
  if (!first || !first.json || first.json.type !== 'welcome') {
    throw new Error(`first message is not a welcome: ${first && first.text}`);
  }
  c.welcome = first.json;
  return c;
}

// --- SSE ---

// Incremental text/event-stream parser: push(chunk) → calls onItem({comment} | {id, event, data, retry}).
export function sseParser(onItem) {
  let rest = '';
  let block = {};
  let has = false;
  return (chunk) => {
    rest += chunk;
    let i;
    while ((i = rest.search(/\r\n|\n|\r/)) >= 0) {
      const line = rest.slice(0, i);
      rest = rest.slice(rest[i] === '\r' && rest[i + 1] === '\n' ? i + 2 : i + 1);
      if (line === '') {
        if (has) onItem(block);
        block = {};
        has = false;
        continue;
      }
      if (line.startsWith(':')) { onItem({ comment: line.slice(1).trim() }); continue; }
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') block.data = block.data === undefined ? value : `${block.data}\n${value}`;
      else block[field] = value;
      has = true;
    }
  };
}

// Opens `${base}/events?query`. Resolves {status, headers, items (Queue of parsed blocks and comments,
// each with json when data is JSON), raw (everything received, text), ended (Promise), res, req}.
// A non-200 answer resolves with its body and no stream.
export function openSse(base, query, { headers = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/events?${query}`, {
      agent: false, headers: { accept: 'text/event-stream', ...headers },
    }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => {
          let json;
          try { json = JSON.parse(body); } catch { json = undefined; }
          resolve({ status: res.statusCode, headers: res.headers, body, json });
        });
        return;
      }
      clearTimeout(timer);
      const items = new Queue();
      const c = { status: 200, headers: res.headers, items, raw: '', res, req };
      c.destroy = () => req.destroy();
      remember(c);
      const push = sseParser((item) => {
        if (item.data !== undefined) {
          try { item.json = JSON.parse(item.data); } catch { item.json = undefined; }
        }
        item.at = Date.now();
        items.push(item);
      });
      res.setEncoding('utf8');
      res.on('data', (d) => { c.raw += d; push(d); });
      c.ended = new Promise((r) => {
        res.on('close', () => { items.end(); r(); });
      });
      resolve(c);
    });
    const timer = setTimeout(() => req.destroy(new Error(`SSE: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.end();
  });
}

// The next SSE event block (comments skipped unless keepComments). Null when the stream ended.
export async function nextSseEvent(c, timeoutMs = 5000, { keepComments = false } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const item = await c.items.next(Math.max(1, deadline - Date.now()), 'SSE event');
    if (item === null) return null;
    if (item.comment !== undefined && !keepComments) continue;
    return item;
  }
}

// Opens an SSE stream and returns it after its welcome event ({retry} seen before it is kept in c.retry).
export async function openSseWelcomed(base, query, opts) {
  const c = await openSse(base, query, opts);
  if (c.status !== 200) throw new Error(`SSE refused: ${c.status} ${c.body}`);
  for (let i = 0; i < 4; i++) {
    const item = await nextSseEvent(c, 5000);
    if (item === null) throw new Error('SSE ended before its welcome');
    if (item.retry !== undefined) c.retry = item.retry;
    if (item.event === 'welcome' || (item.json && item.json.type === 'welcome')) {
      c.welcome = item.json;
      return c;
    }
    if (item.data !== undefined) throw new Error(`first SSE event is not a welcome: ${JSON.stringify(item)}`);
  }
  throw new Error('no SSE welcome');
}

// The `E:O` parts of an event id.
export function parseId(id) {
  const m = /^(\d+):(\d+)$/.exec(id ?? '');
  if (!m) throw new Error(`not an E:O id: ${id}`);
  return { epoch: m[1], offset: BigInt(m[2]) };
}

export const uniqueProject = (prefix = 'p') => `${prefix}${randomBytes(5).toString('hex')}`;

// Asserts the gateway still works end to end: the process is alive, GET /status is 200 with the broker
// connected, and a freshly published event reaches a new WebSocket client.
export async function assertServes(gw, broker, what = 'gateway') {
  const { publish } = await import('./servers.mjs');
  if (gw.child.exitCode !== null || gw.child.signalCode !== null) {
    throw new Error(`${what}: gateway process exited (${gw.child.exitCode ?? gw.child.signalCode})`);
  }
  const status = await httpGet(`${gw.base}/status`);
  if (status.status !== 200) throw new Error(`${what}: /status ${status.status} ${status.body}`);
  if (status.json?.broker !== 'connected') throw new Error(`${what}: /status ${status.body}`);
  const project = uniqueProject('health');
  const c = await openWsWelcomed(gw.base, `project=${project}`);
  try {
    await publish(broker.url, project, 'health.check', '{"ok":true}', { msgId: `health-${project}` });
    const m = await c.messages.next(5000, `${what}: health event`);
    if (m?.json?.msgId !== `health-${project}`) throw new Error(`${what}: health event not delivered: ${m?.text}`);
  } finally {
    c.ws.terminate();
  }
}
