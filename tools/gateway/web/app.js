// nagare-gateway live dashboard: one nagare.js connection, the event feed,
// counters and a rate chart fed by /stats. No build step, no dependencies.
//
// URL query: project, subjects (comma-separated), transport (sse|websocket),
// token, rows (feed cap, default 500). With a project the page connects at
// once. Test hooks: #status[data-status], #events li[data-id][data-subject]
// [data-msg-id][data-received-at], #toasts .toast[data-subject],
// #count-events[data-value].
import { connect } from '/nagare.js';

const ROWS_DEFAULT = 500;
const ROWS_MAX = 100000;
const CHART_POINTS = 60;
const STATS_INTERVAL_MS = 1000;
const TOAST_MS = 4000;
const TOASTS_MAX = 5;
const PAYLOAD_CHARS_MAX = 400;

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const rowsMax = Math.min(ROWS_MAX, Math.max(1, Number(query.get('rows')) || ROWS_DEFAULT));

const state = {
  conn: null,
  events: 0,
  bySubject: new Map(),      // subject -> count
  pageRate: [],              // events/s of this page, last CHART_POINTS
  gatewayRate: [],           // events delivered/s by the gateway
  lastStats: null,           // {total, at}
  eventsAtLastTick: 0,
};
window.dashboard = state;    // for the console and tests

const STATUS_TEXT = {
  idle: 'not connected',
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  offline: 'offline',
};

function setStatus(status, detail = '') {
  const el = $('status');
  el.dataset.status = status;
  $('status-text').textContent = (STATUS_TEXT[status] ?? status) + (detail ? ` · ${detail}` : '');
}

function setCounter(id, value, text = String(value)) {
  const el = $(id);
  el.dataset.value = String(value);
  el.textContent = text;
}

function formatTime(ts) {
  const d = ts ? new Date(ts) : new Date();
  if (Number.isNaN(d.getTime())) return String(ts);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function formatPayload(ev) {
  let text;
  if (ev.encoding === 'base64') text = `base64 ${ev.payload}`;
  else if (typeof ev.payload === 'string') text = ev.payload;
  else text = JSON.stringify(ev.payload);
  if (text === undefined) text = '';
  return text.length > PAYLOAD_CHARS_MAX ? `${text.slice(0, PAYLOAD_CHARS_MAX)}…` : text;
}

function toast(subject, text) {
  const box = $('toasts');
  const t = document.createElement('div');
  t.className = 'toast';
  t.dataset.subject = subject;
  t.innerHTML = '<strong></strong><span></span>';
  t.firstChild.textContent = text;
  t.lastChild.textContent = subject;
  box.appendChild(t);
  while (box.children.length > TOASTS_MAX) box.firstElementChild.remove();
  setTimeout(() => t.classList.add('leaving'), TOAST_MS - 300);
  setTimeout(() => t.remove(), TOAST_MS);
}

function noteSubject(subject) {
  const n = (state.bySubject.get(subject) ?? 0) + 1;
  state.bySubject.set(subject, n);
  const list = $('subjects-seen');
  let li = list.querySelector(`li[data-subject="${CSS.escape(subject)}"]`);
  if (!li) {
    li = document.createElement('li');
    li.dataset.subject = subject;
    li.innerHTML = '<span class="name"></span><span class="count"></span>';
    li.firstChild.textContent = subject;
    list.appendChild(li);
    setCounter('count-subjects', state.bySubject.size);
    toast(subject, 'New event type');
  }
  li.lastChild.textContent = String(n);
}

function onEvent(ev) {
  const receivedAt = Date.now();
  state.events++;
  const li = document.createElement('li');
  li.dataset.id = ev.id ?? '';
  li.dataset.subject = ev.event;
  li.dataset.msgId = ev.msgId ?? '';
  li.dataset.receivedAt = String(receivedAt);
  if (ev.redelivered) li.dataset.redelivered = String(ev.redelivered);
  li.innerHTML = '<span class="subject"></span><time></time><code class="payload"></code>';
  li.children[0].textContent = ev.event;
  li.children[1].textContent = formatTime(ev.timestamp);
  li.children[1].dateTime = ev.timestamp ?? '';
  li.children[1].title = `${ev.timestamp ?? ''}  id ${ev.id ?? ''}  msgId ${ev.msgId ?? ''}`;
  li.children[2].textContent = formatPayload(ev);
  const list = $('events');
  list.prepend(li);
  while (list.childElementCount > rowsMax) list.lastElementChild.remove();
  $('empty').hidden = true;
  noteSubject(ev.event);
  setCounter('count-events', state.events);
}

function updateConnCounters() {
  const c = state.conn;
  if (!c) return;
  setCounter('count-duplicates', c.stats.duplicates);
  setCounter('count-reconnects', c.stats.reconnects);
  setCounter('count-resets', c.stats.resets);
  $('last-id').textContent = c.lastId ?? '–';
}

function formValues() {
  const subjects = $('subjects').value.split(',').map((s) => s.trim()).filter(Boolean);
  return {
    project: $('project').value.trim(),
    subjects: subjects.length ? subjects : ['>'],
    transport: document.querySelector('input[name=transport]:checked').value,
    token: $('token').value.trim(),
  };
}

function disconnect() {
  if (state.conn) state.conn.close();
  state.conn = null;
  setStatus('idle');
  $('disconnect').disabled = true;
  $('connect').textContent = 'Connect';
}

function start() {
  const v = formValues();
  if (!v.project) { $('project').focus(); return; }
  if (state.conn) state.conn.close();
  const url = new URL(location.href);
  url.searchParams.set('project', v.project);
  url.searchParams.set('subjects', v.subjects.join(','));
  url.searchParams.set('transport', v.transport);
  history.replaceState(null, '', url);
  const label = v.transport === 'sse' ? 'SSE' : 'WebSocket';
  let conn = null;
  conn = connect({
    url: location.origin,
    project: v.project,
    subjects: v.subjects,
    transport: v.transport,
    token: v.token ? () => $('token').value.trim() : null,
    onEvent,
    onStatus: (s) => {
      if (conn === null || state.conn === conn) setStatus(s, label);
      updateConnCounters();
    },
    onReset: (reason) => toast(`stream reset (${reason})`, 'Resume not possible'),
    onGiveUp: () => toast('gave up after 5 attempts; retrying every 10 s', 'Gateway unreachable'),
  });
  state.conn = conn;
  setStatus(conn.status, label);
  $('disconnect').disabled = false;
  $('connect').textContent = 'Reconnect';
}

// --- /stats polling and the rate chart ---------------------------------

async function pollStats() {
  const pageNow = state.events;
  pushPoint(state.pageRate, pageNow - state.eventsAtLastTick);
  state.eventsAtLastTick = pageNow;
  updateConnCounters();
  try {
    const r = await fetch('/stats', { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const s = await r.json();
    const total = s.events_delivered?.total ?? 0;
    const at = performance.now();
    let rate = 0;
    if (state.lastStats) {
      const dt = (at - state.lastStats.at) / 1000;
      rate = dt > 0 ? Math.max(0, (total - state.lastStats.total) / dt) : 0;
    }
    state.lastStats = { total, at };
    pushPoint(state.gatewayRate, rate);
    setCounter('stat-rate', Math.round(rate), `${Math.round(rate)}/s`);
    setCounter('stat-delivered', total, total.toLocaleString());
    $('stat-connections').textContent = `${s.connections?.websocket ?? 0} / ${s.connections?.sse ?? 0}`;
    const lat = s.latency_ms;
    $('stat-latency').textContent = lat ? `${fmtMs(lat.avg)} / ${fmtMs(lat.p99)}` : '–';
    $('stat-broker').textContent = s.broker ?? '–';
    $('stat-broker').dataset.value = s.broker ?? '';
    $('stat-uptime').textContent = s.uptime_s != null ? fmtDuration(s.uptime_s) : '–';
    $('stats-state').textContent = '';
  } catch (e) {
    pushPoint(state.gatewayRate, 0);
    state.lastStats = null;
    $('stats-state').textContent = `· /stats unavailable (${e.message})`;
  }
  drawChart();
}

const fmtMs = (v) => (typeof v === 'number' ? `${v.toFixed(1)} ms` : '–');

function fmtDuration(s) {
  s = Math.floor(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function pushPoint(series, v) {
  series.push(v);
  if (series.length > CHART_POINTS) series.shift();
}

function drawChart() {
  const canvas = $('rate-chart');
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 320, h = canvas.clientHeight || 120;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const max = niceMax(Math.max(1, ...state.gatewayRate, ...state.pageRate));
  const pad = { l: 34, r: 6, t: 8, b: 14 };
  const cw = w - pad.l - pad.r, ch = h - pad.t - pad.b;
  g.font = '10px system-ui, sans-serif';
  g.fillStyle = css.getPropertyValue('--muted').trim() || '#888';
  g.strokeStyle = css.getPropertyValue('--grid').trim() || '#eee';
  g.lineWidth = 1;
  for (let i = 0; i <= 2; i++) {
    const y = pad.t + (ch * i) / 2;
    g.beginPath(); g.moveTo(pad.l, y + 0.5); g.lineTo(w - pad.r, y + 0.5); g.stroke();
    g.textAlign = 'right'; g.textBaseline = 'middle';
    g.fillText(String(Math.round(max * (1 - i / 2))), pad.l - 4, y);
  }
  g.textAlign = 'left'; g.textBaseline = 'top';
  g.fillText(`${CHART_POINTS} s`, pad.l, h - 12);
  const line = (series, color, fill) => {
    if (series.length < 2) return;
    const x = (i) => pad.l + cw - ((series.length - 1 - i) * cw) / (CHART_POINTS - 1);
    const y = (v) => pad.t + ch - (v / max) * ch;
    g.beginPath();
    series.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
    g.strokeStyle = color; g.lineWidth = 1.75; g.lineJoin = 'round'; g.stroke();
    if (fill) {
      g.lineTo(x(series.length - 1), pad.t + ch); g.lineTo(x(0), pad.t + ch); g.closePath();
      g.fillStyle = fill; g.fill();
    }
  };
  line(state.gatewayRate, css.getPropertyValue('--accent').trim() || '#3b82f6',
    css.getPropertyValue('--accent-fill').trim() || 'rgba(59,130,246,.12)');
  line(state.pageRate, css.getPropertyValue('--live').trim() || '#16a34a', null);
}

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// --- wiring ---------------------------------------------------------------

function init() {
  if (query.get('project')) $('project').value = query.get('project');
  if (query.get('subjects')) $('subjects').value = query.get('subjects');
  if (query.get('token')) $('token').value = query.get('token');
  const transport = query.get('transport') === 'websocket' ? 'websocket' : 'sse';
  $(`transport-${transport}`).checked = true;

  $('connect-form').addEventListener('submit', (e) => { e.preventDefault(); start(); });
  $('disconnect').addEventListener('click', disconnect);
  for (const r of document.querySelectorAll('input[name=transport]')) {
    r.addEventListener('change', () => { if (state.conn) start(); });
  }
  $('clear').addEventListener('click', () => {
    $('events').replaceChildren();
    $('empty').hidden = false;
  });

  drawChart();
  setInterval(pollStats, STATS_INTERVAL_MS);
  pollStats();
  if (query.get('project')) start();
}

init();
