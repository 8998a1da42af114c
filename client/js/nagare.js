// nagare.js — browser helper for nagare-gateway (docs/gateway.md).
//
// An ES module with no dependencies and no build step. One call,
// connect(options), opens a WebSocket (/realtime) or an EventSource
// (/events?named=0) and keeps it open: it hands each event to onEvent once
// (duplicates by msgId are dropped for dedupWindowMs), acks it over
// WebSocket after onEvent returns, and reconnects with backoff
// (1 s, 2 s, 5 s, 10 s, 10 s..., ±20% jitter), resuming after the id of the
// last handled event.
//
// Statuses: 'connecting' (first attempt), 'live' (welcome received),
// 'reconnecting' (lost, trying again), 'offline' (gave up after
// maxFailures attempts in a row that ended before a welcome, or close()).
// After giving up it still retries every 10 s (and at once when the browser
// comes back online) unless options.retryAfterGiveUp is false.

const DEFAULT_BACKOFF_MS = [1000, 2000, 5000, 10000];
const DEFAULT_DEDUP_WINDOW_MS = 30000;
const DEFAULT_DEDUP_MAX = 20000;
const DEFAULT_MAX_FAILURES = 5;
const JITTER = 0.2;
const WS_CLOSE_SLOW = 4008;

// Event ids are "<epoch>:<offset>"; true when a is after b in the same epoch
// (or in another epoch: a re-created stream starts over).
function idAfter(a, b) {
  if (b == null) return true;
  const [ea, oa] = String(a).split(':');
  const [eb, ob] = String(b).split(':');
  if (ea !== eb || oa === undefined || ob === undefined) return true;
  try {
    return BigInt(oa) > BigInt(ob);
  } catch {
    return true;
  }
}

// msgId -> first-seen time, oldest first (Map keeps insertion order).
class DedupWindow {
  constructor(windowMs, maxEntries) {
    this.windowMs = windowMs;
    this.maxEntries = maxEntries;
    this.seen = new Map();
  }

  has(key, now) {
    this.prune(now);
    return this.seen.has(key);
  }

  add(key, now) {
    this.seen.set(key, now);
    this.prune(now);
  }

  prune(now) {
    for (const [key, at] of this.seen) {
      if (this.seen.size > this.maxEntries || now - at > this.windowMs) this.seen.delete(key);
      else break;
    }
  }
}

function isEvent(obj) {
  return obj !== null && typeof obj === 'object' && !Array.isArray(obj) &&
    typeof obj.event === 'string' && (obj.msgId !== undefined || obj.id !== undefined);
}

class Connection {
  constructor(options) {
    if (!options || !options.project) throw new Error('nagare.connect: project is required');
    this.options = {
      url: options.url ?? (typeof location !== 'undefined' ? location.origin : ''),
      project: options.project,
      subjects: Array.isArray(options.subjects) ? options.subjects
        : (options.subjects ? String(options.subjects).split(',') : ['>']),
      transport: options.transport === 'sse' ? 'sse' : 'websocket',
      token: options.token ?? null,
      batchMs: options.batchMs ?? null,
      onEvent: options.onEvent ?? (() => {}),
      onStatus: options.onStatus ?? (() => {}),
      onReset: options.onReset ?? (() => {}),
      onGiveUp: options.onGiveUp ?? (() => {}),
      onWelcome: options.onWelcome ?? (() => {}),
      dedupWindowMs: options.dedupWindowMs ?? DEFAULT_DEDUP_WINDOW_MS,
      backoffMs: options.backoffMs ?? DEFAULT_BACKOFF_MS,
      maxFailures: options.maxFailures ?? DEFAULT_MAX_FAILURES,
      retryAfterGiveUp: options.retryAfterGiveUp ?? true,
    };
    this.status = null;
    this.lastId = options.lastId ?? null;
    this.connectionId = null;
    this.recovered = null;
    this.failures = 0;          // attempts in a row that ended before a welcome
    this.retries = 0;           // reopens since the last welcome (backoff step)
    this.handledThisAttempt = 0;
    this.everLive = false;
    this.gaveUp = false;
    this.closed = false;
    this.pending = new Set();   // msgIds whose async onEvent has not settled
    this.dedup = new DedupWindow(this.options.dedupWindowMs, options.dedupMax ?? DEFAULT_DEDUP_MAX);
    this.socket = null;         // WebSocket or EventSource of the current attempt
    this.welcomed = false;      // the current attempt got its welcome
    this.timer = null;
    this.attempt = 0;           // increments per open; stale callbacks compare it
    this.stats = { events: 0, duplicates: 0, reconnects: 0, resets: 0 };
    this.onOnline = () => { if (this.status !== 'live' && !this.closed) this.reopen(0); };
    if (typeof addEventListener === 'function') addEventListener('online', this.onOnline);
    this.setStatus('connecting');
    this.open();
  }

  get transport() { return this.options.transport; }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.dropSocket(1000);
    if (typeof removeEventListener === 'function') removeEventListener('online', this.onOnline);
    this.setStatus('offline');
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    try { this.options.onStatus(status); } catch (e) { console.error('nagare onStatus:', e); }
  }

  async resolveToken() {
    const t = this.options.token;
    if (typeof t === 'function') return await t();
    return t;
  }

  async buildUrl(path, resumeId) {
    const o = this.options;
    const params = new URLSearchParams();
    params.set('project', o.project);
    params.set('subjects', o.subjects.join(','));
    if (resumeId) params.set('last_id', resumeId);
    if (o.batchMs != null) params.set('batch_ms', String(o.batchMs));
    if (o.transport === 'sse') params.set('named', '0');
    const token = await this.resolveToken();
    if (token) params.set('token', token);
    let base = String(o.url).replace(/\/+$/, '');
    if (o.transport === 'websocket') base = base.replace(/^http/i, 'ws');
    return `${base}${path}?${params}`;
  }

  async open(resumeId = this.lastId) {
    const attempt = ++this.attempt;
    this.welcomed = false;
    this.handledThisAttempt = 0;
    let url;
    try {
      url = await this.buildUrl(this.options.transport === 'sse' ? '/events' : '/realtime', resumeId);
    } catch (e) {
      console.error('nagare: token function failed:', e);
      if (attempt === this.attempt) this.attemptEnded(attempt, {});
      return;
    }
    if (this.closed || attempt !== this.attempt) return;
    if (this.options.transport === 'sse') this.openSse(url, attempt);
    else this.openWebSocket(url, attempt);
  }

  dropSocket(code) {
    const s = this.socket;
    this.socket = null;
    if (!s) return;
    s.onopen = s.onmessage = s.onerror = s.onclose = null;
    try { s.close(code); } catch { try { s.close(); } catch { /* already closed */ } }
  }

  // Delay before the next retry: 1 s, 2 s, 5 s, 10 s, 10 s... since the last welcome.
  backoffDelay() {
    const steps = this.options.backoffMs;
    const base = steps[Math.min(this.retries, steps.length - 1)];
    this.retries++;
    return Math.round(base * (1 - JITTER + 2 * JITTER * Math.random()));
  }

  // Drops the current socket and opens a new one after `delayMs` (null: by
  // backoff), resuming from `resumeId` (undefined: lastId).
  reopen(delayMs = null, resumeId = undefined) {
    clearTimeout(this.timer);
    this.dropSocket(1000);
    this.attempt++;  // callbacks of the dropped socket are stale now
    if (this.closed) return;
    const delay = delayMs ?? this.backoffDelay();
    this.stats.reconnects++;
    this.timer = setTimeout(() => this.open(resumeId === undefined ? this.lastId : resumeId), delay);
  }

  // The current attempt is over (socket closed, browser gave up). A failed
  // attempt is one that ended before its welcome.
  attemptEnded(attempt) {
    if (this.closed || attempt !== this.attempt) return;
    if (this.welcomed) this.failures = 0;
    else this.failures++;
    this.welcomed = false;
    if (this.failures >= this.options.maxFailures) {
      if (!this.gaveUp) {
        this.gaveUp = true;
        this.setStatus('offline');
        try { this.options.onGiveUp(); } catch (e) { console.error('nagare onGiveUp:', e); }
      }
      if (!this.options.retryAfterGiveUp) {
        this.dropSocket(1000);
        this.attempt++;
        return;
      }
    } else if (!this.gaveUp) {
      this.setStatus(this.everLive ? 'reconnecting' : 'connecting');
    }
    this.reopen();
  }

  // Slow consumer (WebSocket 4008, SSE `slow`): come back at once from
  // `resumeId` if this attempt handled events; if not, back off, so a gateway
  // that closes every resume at once is not hammered.
  slowClosed(resumeId) {
    this.welcomed = true;  // not a failed attempt
    this.failures = 0;
    this.setStatus('reconnecting');
    if (this.handledThisAttempt > 0) {
      this.retries = 0;
      this.reopen(0, resumeId);
    } else {
      this.reopen(null, resumeId);
    }
  }

  onWelcome(attempt, msg) {
    if (attempt !== this.attempt) return;
    this.welcomed = true;
    this.everLive = true;
    this.failures = 0;
    this.retries = 0;
    this.gaveUp = false;
    this.connectionId = msg.connection ?? null;
    this.recovered = msg.recovered ?? null;
    this.setStatus('live');
    try { this.options.onWelcome(msg); } catch (e) { console.error('nagare onWelcome:', e); }
  }

  onResetMsg(msg) {
    this.stats.resets++;
    this.lastId = null;  // stale: the gateway goes on with live events
    try { this.options.onReset(msg.reason ?? 'unknown'); } catch (e) { console.error('nagare onReset:', e); }
  }

  // Handles one event; returns the msgId to ack (null: none).
  handleEvent(attempt, ev) {
    if (!this.welcomed) this.onWelcome(attempt, { recovered: null });  // tolerate a missing welcome
    const key = ev.msgId ?? ev.id;
    const now = Date.now();
    if (key != null && this.dedup.has(key, now)) {
      this.stats.duplicates++;
      // Ack again so the gateway stops resending, unless the handler still runs.
      return this.pending.has(key) ? null : ev.msgId ?? null;
    }
    try {
      const r = this.options.onEvent(ev);
      if (r && typeof r.then === 'function') {
        // Async handler: ack once it settles successfully.
        if (key != null) this.dedup.add(key, now);
        this.pending.add(key);
        r.then(() => {
          this.pending.delete(key);
          this.markHandled(ev);
          this.sendAck(this.attempt, [ev.msgId]);
        }, (e) => {
          this.pending.delete(key);
          this.dedup.seen.delete(key);
          console.error('nagare onEvent:', e);
        });
        return null;
      }
    } catch (e) {
      console.error('nagare onEvent:', e);
      return null;  // not handled: no ack, the gateway resends it
    }
    if (key != null) this.dedup.add(key, now);
    this.markHandled(ev);
    return ev.msgId ?? null;
  }

  markHandled(ev) {
    this.stats.events++;
    this.handledThisAttempt++;
    if (ev.id != null && idAfter(ev.id, this.lastId)) this.lastId = ev.id;
  }

  // One parsed frame (object or batch array) from either transport.
  handleFrame(attempt, msg) {
    if (attempt !== this.attempt || this.closed) return;
    if (Array.isArray(msg)) {
      const acks = [];
      for (const ev of msg) {
        if (attempt !== this.attempt || this.closed) return;
        if (isEvent(ev)) {
          const a = this.handleEvent(attempt, ev);
          if (a != null) acks.push(a);
        } else if (ev && typeof ev === 'object') {
          this.handleControl(attempt, ev);
        }
      }
      this.sendAck(attempt, acks);
      return;
    }
    if (isEvent(msg)) {
      const a = this.handleEvent(attempt, msg);
      if (a != null) this.sendAck(attempt, [a]);
      return;
    }
    if (msg && typeof msg === 'object') this.handleControl(attempt, msg);
  }

  // welcome / reset / slow; SSE with named=0 may carry them without `type`.
  handleControl(attempt, msg, name = msg.type) {
    if (name === 'welcome' || (name === undefined && msg.connection !== undefined)) {
      this.onWelcome(attempt, msg);
    } else if (name === 'reset' || (name === undefined && msg.reason !== undefined)) {
      this.onResetMsg(msg);
    } else if (name === 'slow' || (name === undefined && msg.resume !== undefined)) {
      // SSE: the gateway ends the stream next; come back at once. SSE has no
      // acks, so the last id handled here is the resume point (the gateway's
      // may lie past events it dropped from its queue); its id only without one.
      if (attempt === this.attempt) this.slowClosed(this.lastId ?? msg.resume ?? null);
    }
  }

  sendAck(attempt, msgIds) {
    if (this.options.transport !== 'websocket' || msgIds.length === 0) return;
    const ws = this.socket;
    if (attempt !== this.attempt || !ws || ws.readyState !== 1) return;
    ws.send(JSON.stringify({ ack: msgIds.length === 1 ? msgIds[0] : msgIds }));
  }

  openWebSocket(url, attempt) {
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      console.error('nagare: WebSocket:', e);
      this.attemptEnded(attempt);
      return;
    }
    this.socket = ws;
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { console.error('nagare: bad frame'); return; }
      this.handleFrame(attempt, msg);
    };
    ws.onclose = (c) => {
      if (attempt !== this.attempt) return;
      this.socket = null;
      if (c.code === WS_CLOSE_SLOW) {
        const m = /resume=([^\s;]+)/.exec(c.reason || '');
        this.slowClosed(m ? m[1] : this.lastId);
        return;
      }
      this.attemptEnded(attempt);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  openSse(url, attempt) {
    let es;
    try {
      es = new EventSource(url);
    } catch (e) {
      console.error('nagare: EventSource:', e);
      this.attemptEnded(attempt);
      return;
    }
    this.socket = es;
    const parse = (m, name) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { console.error('nagare: bad SSE data'); return; }
      if (name && !Array.isArray(msg) && !isEvent(msg)) this.handleControl(attempt, msg, name);
      else this.handleFrame(attempt, msg);
    };
    es.onmessage = (m) => parse(m, null);
    // If the gateway names control events anyway, they bypass onmessage.
    for (const name of ['welcome', 'reset', 'slow', 'batch']) {
      es.addEventListener(name, (m) => parse(m, name === 'batch' ? null : name));
    }
    es.onerror = () => {
      if (attempt !== this.attempt || this.closed) return;
      if (es.readyState === 2 /* CLOSED: the browser gave up (401, 503...) */ || !this.welcomed) {
        // Reopen ourselves (token refreshed, last_id=, our backoff).
        this.attemptEnded(attempt);
        return;
      }
      // A live stream dropped: the browser retries by itself with Last-Event-ID.
      // That retry is a new attempt; if it fails before a welcome, we take over.
      this.welcomed = false;
      this.failures = 0;
      this.retries = 1;  // the browser's own retry (retry: 1000) was the 1 s step
      this.stats.reconnects++;
      this.setStatus('reconnecting');
    };
  }
}

export function connect(options) {
  return new Connection(options);
}

export default { connect };
