// Slow consumers (docs/gateway.md "Close codes", "SSE stream"): with a small
// --send-queue-bytes, a WebSocket client that stops reading while events
// pour in is closed with 4008 "slow; resume=E:O" and can resume from that id
// without a gap; an SSE client that stops reading gets `event: slow` (or its
// stream ends) and resumes from its last id without a gap; a client that
// keeps reading through the same flood is not closed; the gateway's memory
// stays bounded meanwhile.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  closeAll, httpGet, nextSseEvent, openSseWelcomed, openWsWelcomed, parseId, uniqueProject,
} from './clients.mjs';
import { publishLines, rssKiB, sleep, startStack, stopAll } from './servers.mjs';

const SEND_QUEUE_BYTES = 512 * 1024;
// Far more than a socket's kernel buffers (tcp_wmem max 4 MiB on the sender, the receiver's window) hold.
const FLOOD_EVENTS = 8000;
const PAD = 'x'.repeat(4000);
const FLOOD_BYTES = FLOOD_EVENTS * (PAD.length + 20);
const SLOW_CLIENTS = 10;
// No per-client copy of the flood: the growth stays well under one copy per paused client.
const RSS_GROWTH_MAX_KIB = 80 * 1024;
let broker, gw;

before(async () => {
  ({ broker, gw } = await startStack({ args: ['--send-queue-bytes', String(SEND_QUEUE_BYTES), '--ack-wait-ms', '60000'] }));
});
after(async () => {
  closeAll();
  await stopAll();
});

const stats = async () => (await httpGet(`${gw.base}/stats`)).json;
// The flood comes in batches of FLOOD_BATCH events (~200 KiB, well under the send queue: a burst larger than
// the queue closes even a client that reads) FLOOD_GAP_MS apart: a client that reads keeps up, one that does
// not falls behind by far more than the kernel's socket buffers and the send queue.
const FLOOD_BATCH = 50;
const FLOOD_GAP_MS = 25;
async function flood(project, subject) {
  for (let first = 0; first < FLOOD_EVENTS; first += FLOOD_BATCH) {
    const lines = [];
    for (let i = first; i < Math.min(FLOOD_EVENTS, first + FLOOD_BATCH); i++) lines.push(`{"i":${i},"pad":"${PAD}"}`);
    await publishLines(broker.url, project, subject, lines);
    await sleep(FLOOD_GAP_MS);
  }
}

// Waits (bounded) until /stats counts `n` more slow closes than `base`, sampling the gateway RSS meanwhile.
async function waitSlowCloses(base, n, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let peakKiB = rssKiB(gw.child.pid);
  let s;
  while (Date.now() < deadline) {
    s = await stats();
    peakKiB = Math.max(peakKiB, rssKiB(gw.child.pid));
    if (s.slow_closes - base >= n) return { peakKiB, stats: s };
    await sleep(100);
  }
  return { peakKiB, stats: s, timedOut: true };
}

test(`WebSocket clients that stop reading are closed with 4008 "slow; resume=E:O" and resume without a gap`, async (t) => {
  const project = uniqueProject();
  const query = `project=${project}&subjects=task.*`;
  // One client acks three events, then stops reading.
  const c = await openWsWelcomed(gw.base, query);
  await publishLines(broker.url, project, 'task.before', ['{"b":0}', '{"b":1}', '{"b":2}']);
  let last;
  for (let i = 0; i < 3; i++) {
    last = (await c.messages.next(5000, `event ${i}`)).json;
    c.ws.send(JSON.stringify({ ack: last.msgId }));
  }
  await sleep(200);
  const others = [];
  for (let i = 1; i < SLOW_CLIENTS; i++) others.push(await openWsWelcomed(gw.base, query));
  // The control keeps reading and acking through the flood: it is not slow.
  const ctl = await openWsWelcomed(gw.base, query);
  const ctlSeen = new Set();
  ctl.ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m.event === 'task.flood') ctlSeen.add(m.payload.i);
    if (m.msgId) ctl.ws.send(JSON.stringify({ ack: m.msgId }));
  });
  const rssBeforeKiB = rssKiB(gw.child.pid);
  const slowBefore = (await stats()).slow_closes;
  for (const x of [c, ...others]) x.ws._socket.pause();

  // The RSS is sampled through the whole flood.
  let peakKiB = rssBeforeKiB;
  const sampler = setInterval(() => { peakKiB = Math.max(peakKiB, rssKiB(gw.child.pid)); }, 100);
  const flooding = flood(project, 'task.flood');
  const w = await waitSlowCloses(slowBefore, SLOW_CLIENTS, 30000);
  assert.ok(!w.timedOut, `/stats slow_closes ${slowBefore} → ${w.stats?.slow_closes} within 30 s, wanted +${SLOW_CLIENTS}`);

  // Reading again, each client finds, after what the kernel had buffered, the close 4008.
  for (const x of [c, ...others]) x.ws._socket.resume();
  const closes = await Promise.all([c, ...others].map((x) =>
    Promise.race([x.closed, sleep(20000).then(() => ({ code: 'none within 20 s after resuming' }))])));
  for (const cl of closes) {
    assert.equal(cl.code, 4008, `close ${cl.code} "${cl.reason}"`);
    assert.match(cl.reason, /^slow; resume=\d+:\d+$/, `reason "${cl.reason}"`);
  }
  // Nothing of the flood was acked: the resume point is the last acked event.
  const resume = closes[0].reason.match(/resume=(\d+:\d+)/)[1];
  assert.equal(resume, last.id, `resume=${resume}, the last acked id is ${last.id}`);

  await flooding;
  const ctlDeadline = Date.now() + 30000;
  while (ctlSeen.size < FLOOD_EVENTS && ctl.ws.readyState === 1 && Date.now() < ctlDeadline) await sleep(100);
  const ctlClosed = ctl.ws.readyState !== 1 ? await ctl.closed : null;
  assert.equal(ctlClosed, null, `the reading client was closed: ${JSON.stringify(ctlClosed)} after ${ctlSeen.size} events`);
  assert.equal(ctlSeen.size, FLOOD_EVENTS, 'the reading client missed flood events');
  ctl.ws.close(1000);
  clearInterval(sampler);
  const growthKiB = peakKiB - rssBeforeKiB;
  t.diagnostic(`gateway RSS ${rssBeforeKiB} KiB before the flood, peak ${peakKiB} KiB (+${growthKiB} KiB) ` +
    `with ${SLOW_CLIENTS} paused clients, ${FLOOD_BYTES >> 20} MiB published`);
  console.log(`# observed: RSS +${growthKiB} KiB for ${SLOW_CLIENTS} paused WebSocket clients, flood ${FLOOD_BYTES >> 20} MiB`);

  // Resuming from it: recovered, and the flood from its first event on.
  const r = await openWsWelcomed(gw.base, `${query}&last_id=${resume}`);
  assert.equal(r.welcome.recovered, true);
  const first = (await r.messages.next(10000, 'first resumed event')).json;
  assert.equal(first.event, 'task.flood');
  assert.equal(first.payload.i, 0, `resumed at flood event ${first.payload.i}`);
  assert.ok(parseId(first.id).offset > parseId(resume).offset);
  r.ws.terminate();
  for (const x of [c, ...others]) x.ws.terminate();
  // Last, so the checks above run even when these fail.
  const slowAfter = (await stats()).slow_closes;
  assert.equal(slowAfter - slowBefore, SLOW_CLIENTS, `/stats slow_closes counted ${slowAfter - slowBefore} for ${SLOW_CLIENTS} slow clients`);
  assert.ok(growthKiB < RSS_GROWTH_MAX_KIB, `gateway RSS grew by ${growthKiB} KiB with ${SLOW_CLIENTS} paused clients`);
});

test('an SSE client that stops reading gets `event: slow` (or its stream ends) and resumes without a gap', async (t) => {
  const project = uniqueProject();
  const sse = await openSseWelcomed(gw.base, `project=${project}`);
  // The control reads through the flood and gets it all, no `event: slow`.
  const ctl = await openSseWelcomed(gw.base, `project=${project}`);
  const ctlSeen = new Set();
  let ctlSlow = null;
  const ctlDone = (async () => {
    for (;;) {
      const e = await nextSseEvent(ctl, 30000).catch(() => null);
      if (e === null) return;
      if (e.event === 'slow') { ctlSlow = e.data; return; }
      if (e.json?.event === 'task.flood') ctlSeen.add(e.json.payload.i);
      if (ctlSeen.size === FLOOD_EVENTS) return;
    }
  })();
  const rssBeforeKiB = rssKiB(gw.child.pid);
  const slowBefore = (await stats()).slow_closes;
  sse.res.pause();
  // Resumed as soon as the gateway counts it slow (a finishing stream is not kept forever), while the flood goes on.
  const flooding = flood(project, 'task.flood');
  const w = await waitSlowCloses(slowBefore, 1, 30000);
  t.diagnostic(`gateway RSS ${rssBeforeKiB} → peak ${w.peakKiB} KiB`);
  assert.ok(!w.timedOut, `/stats slow_closes ${slowBefore} → ${w.stats?.slow_closes} within 30 s`);

  sse.res.resume();
  let lastEvent = null;
  let slow = null;
  const deadline = Date.now() + 20000;
  for (;;) {
    const e = await nextSseEvent(sse, Math.max(1, deadline - Date.now())).catch(() => 'timeout');
    assert.notEqual(e, 'timeout', 'SSE stream neither said slow nor ended within 20 s after resuming');
    if (e === null) break;
    if (e.event === 'slow') slow = e;
    else if (e.json?.event === 'task.flood') {
      assert.equal(slow, null, 'an event after `event: slow`');
      lastEvent = e;
    }
  }
  await flooding;
  await ctlDone;
  assert.equal(ctlSlow, null, `the reading SSE client got event: slow ${ctlSlow} after ${ctlSeen.size} events`);
  assert.equal(ctlSeen.size, FLOOD_EVENTS, 'the reading SSE client missed flood events');
  ctl.destroy();
  t.diagnostic(slow ? `event: slow ${slow.data}` : 'stream ended without `event: slow`');
  console.log(`# observed: SSE slow consumer ${slow ? `got event: slow ${slow.data}` : 'closed without event: slow'}`);
  assert.ok(lastEvent, 'no flood event at all before the end');
  assert.equal(lastEvent.id, lastEvent.json.id, 'SSE id: line differs from the JSON id');
  const r = await openSseWelcomed(gw.base, `project=${project}`, { headers: { 'Last-Event-ID': lastEvent.id } });
  assert.equal(r.welcome?.recovered, true);
  const next = await nextSseEvent(r, 10000);
  assert.equal(next.json?.payload?.i, lastEvent.json.payload.i + 1, 'gap or repeat after resuming from the last event seen');
  r.destroy();
  if (slow) {
    // SSE resumes from the last id the browser saw. An id past the last event written loses events on resume;
    // one before it only repeats some (at least once), which is allowed; the repeat is counted and reported.
    const resume = JSON.parse(slow.data).resume;
    assert.ok(parseId(resume).offset <= parseId(lastEvent.id).offset,
      `event: slow names ${resume}, past the last event sent ${lastEvent.id}`);
    const behind = parseId(lastEvent.id).offset - parseId(resume).offset;
    t.diagnostic(`event: slow resume is ${behind} event offsets behind the last event written`);
    console.log(`# observed: SSE event: slow resume ${resume}, last event written ${lastEvent.id}`);
    const again = await openSseWelcomed(gw.base, `project=${project}`, { headers: { 'Last-Event-ID': resume } });
    const first = await nextSseEvent(again, 10000);
    assert.ok(parseId(first.id).offset > parseId(resume).offset);
    assert.ok(first.json.payload.i <= lastEvent.json.payload.i + 1, 'gap after resuming from event: slow');
    again.destroy();
  }
  const slowAfter = (await stats()).slow_closes;
  assert.equal(slowAfter - slowBefore, 1, `/stats slow_closes counted ${slowAfter - slowBefore} for one slow client`);
  assert.ok(w.peakKiB - rssBeforeKiB < RSS_GROWTH_MAX_KIB, `gateway RSS grew by ${w.peakKiB - rssBeforeKiB} KiB`);
});

test(`WebSocket clients paused through a whole flood: each counted slow once, the gateway's memory bounded`, async (t) => {
  const project = uniqueProject();
  const query = `project=${project}&subjects=task.*`;
  const paused = [];
  for (let i = 0; i < SLOW_CLIENTS; i++) paused.push(await openWsWelcomed(gw.base, query));
  const rssBeforeKiB = rssKiB(gw.child.pid);
  const slowBefore = (await stats()).slow_closes;
  for (const x of paused) x.ws._socket.pause();
  let peakKiB = rssBeforeKiB;
  const sampler = setInterval(() => { peakKiB = Math.max(peakKiB, rssKiB(gw.child.pid)); }, 100);
  try {
    await flood(project, 'task.flood');
    await sleep(500);
  } finally {
    clearInterval(sampler);
  }
  const slowAfter = (await stats()).slow_closes;
  for (const x of paused) x.ws.terminate();
  const growthKiB = peakKiB - rssBeforeKiB;
  t.diagnostic(`gateway RSS ${rssBeforeKiB} KiB → peak ${peakKiB} KiB (+${growthKiB} KiB); slow_closes +${slowAfter - slowBefore}`);
  console.log(`# observed: clients paused through the flood: RSS +${growthKiB} KiB, slow_closes +${slowAfter - slowBefore} for ${SLOW_CLIENTS} clients`);
  assert.equal(slowAfter - slowBefore, SLOW_CLIENTS, `/stats slow_closes counted ${slowAfter - slowBefore} for ${SLOW_CLIENTS} slow clients`);
  assert.ok(growthKiB < RSS_GROWTH_MAX_KIB, `gateway RSS grew by ${growthKiB} KiB with ${SLOW_CLIENTS} paused clients`);
});
