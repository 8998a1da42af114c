// WebSocket ack timeout (docs/gateway.md "WebSocket messages"): an event
// not acked within ack_wait is sent again with "redelivered": n, at most
// max_resends times, then given up; an acked event is never resent; SSE keeps
// no in-flight table. Gateway: --ack-wait-ms 300 --max-resends 5.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { closeAll, httpGet, nextSseEvent, openSseWelcomed, openWsWelcomed, uniqueProject } from './clients.mjs';
import { publish, publishLines, startStack, stopAll } from './servers.mjs';

const ACK_WAIT_MS = 300;
const MAX_RESENDS = 5;
// After the last resend, this long without another one proves there is none.
const QUIET_MS = 6 * ACK_WAIT_MS;
let broker, gw;

before(async () => {
  ({ broker, gw } = await startStack({
    args: ['--ack-wait-ms', String(ACK_WAIT_MS), '--max-resends', String(MAX_RESENDS)],
  }));
});
after(async () => {
  closeAll();
  await stopAll();
});

const stats = async () => (await httpGet(`${gw.base}/stats`)).json;

// Collects event messages until none arrives for QUIET_MS (bounded by `maxMs` in all).
async function collect(c, maxMs) {
  const out = [];
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    let m;
    try { m = await c.messages.next(Math.min(QUIET_MS, deadline - Date.now()), 'message'); } catch { break; }
    if (m === null) break;
    out.push({ ...m.json, at: m.at });
  }
  return out;
}

test(`a client that never acks gets the event ${MAX_RESENDS} more times, ~ack_wait apart, then never again`, async () => {
  const project = uniqueProject();
  const c = await openWsWelcomed(gw.base, `project=${project}`);
  const before = await stats();
  await publish(broker.url, project, 'task.unacked', '{"n":1}', { msgId: 'never-acked-1' });
  const got = await collect(c, 5000 + (MAX_RESENDS + 1) * ACK_WAIT_MS + QUIET_MS);
  assert.equal(c.ws.readyState, 1, 'the connection was closed');
  assert.equal(got.length, 1 + MAX_RESENDS,
    `deliveries: ${JSON.stringify(got.map((m) => [m.msgId, m.redelivered]))}`);
  for (const m of got) {
    assert.equal(m.msgId, 'never-acked-1');
    assert.equal(m.id, got[0].id, 'a resend changed the id');
    assert.deepEqual(m.payload, { n: 1 });
  }
  assert.equal(got[0].redelivered, undefined, 'the first delivery says redelivered');
  assert.deepEqual(got.slice(1).map((m) => m.redelivered), [1, 2, 3, 4, 5]);
  const gaps = got.slice(1).map((m, i) => m.at - got[i].at);
  for (const gap of gaps) {
    assert.ok(gap >= ACK_WAIT_MS * 0.8, `resend after ${gap} ms, before ack_wait (${ACK_WAIT_MS} ms): ${gaps}`);
    assert.ok(gap <= ACK_WAIT_MS + 1000, `resend after ${gap} ms, far beyond ack_wait: ${gaps}`);
  }
  const after = await stats();
  assert.equal(after.resends - before.resends, MAX_RESENDS, '/stats resends');
  assert.equal(after.resends_given_up - before.resends_given_up, 1, '/stats resends_given_up');
  c.ws.terminate();
});

test('three unacked events: each resent exactly max_resends times, in its own order', async () => {
  const project = uniqueProject();
  const c = await openWsWelcomed(gw.base, `project=${project}`);
  await publishLines(broker.url, project, 'task.batch', ['{"i":0}', '{"i":1}', '{"i":2}']);
  const got = await collect(c, 5000 + (MAX_RESENDS + 2) * ACK_WAIT_MS + QUIET_MS);
  const byId = new Map();
  for (const m of got) {
    if (!byId.has(m.msgId)) byId.set(m.msgId, []);
    byId.get(m.msgId).push(m);
  }
  assert.equal(byId.size, 3, `msgIds: ${[...byId.keys()]}`);
  for (const [msgId, list] of byId) {
    assert.deepEqual(list.map((m) => m.redelivered), [undefined, 1, 2, 3, 4, 5], `msgId ${msgId}`);
  }
  c.ws.terminate();
});

test('a client that acks every event (string and array forms) gets no resend', async () => {
  const project = uniqueProject();
  const c = await openWsWelcomed(gw.base, `project=${project}`);
  const before = await stats();
  await publishLines(broker.url, project, 'task.acked', ['{"i":0}', '{"i":1}', '{"i":2}', '{"i":3}']);
  const got = [];
  const pending = [];
  const deadline = Date.now() + 5000 + QUIET_MS;
  while (Date.now() < deadline) {
    let m;
    try { m = await c.messages.next(QUIET_MS, 'message'); } catch { break; }
    if (m === null) break;
    got.push(m.json);
    // The first two acked one by one, the other two in one array ack.
    if (got.length <= 2) c.ws.send(JSON.stringify({ ack: m.json.msgId }));
    else {
      pending.push(m.json.msgId);
      if (pending.length === 2) c.ws.send(JSON.stringify({ ack: pending }));
    }
  }
  assert.equal(got.length, 4, `deliveries: ${JSON.stringify(got.map((m) => [m.msgId, m.redelivered]))}`);
  assert.ok(got.every((m) => m.redelivered === undefined));
  assert.equal(new Set(got.map((m) => m.msgId)).size, 4);
  const after = await stats();
  assert.equal(after.resends - before.resends, 0, '/stats resends');
  assert.ok(after.acks - before.acks >= 4, `/stats acks ${before.acks} → ${after.acks}`);
  assert.equal(c.ws.readyState, 1);
  c.ws.close(1000);
});

test('an ack of a resend stops further resends', async () => {
  const project = uniqueProject();
  const c = await openWsWelcomed(gw.base, `project=${project}`);
  await publish(broker.url, project, 'task.late', '{"late":true}', { msgId: 'acked-late-1' });
  const first = (await c.messages.next(5000, 'first delivery')).json;
  assert.equal(first.msgId, 'acked-late-1');
  const again = (await c.messages.next(ACK_WAIT_MS * 4, 'first resend')).json;
  assert.equal(again.redelivered, 1);
  c.ws.send(JSON.stringify({ ack: again.msgId }));
  const more = await c.messages.drain(QUIET_MS);
  assert.deepEqual(more.map((m) => m.json?.redelivered), [], 'resent after its ack');
  c.ws.terminate();
});

test('SSE keeps no in-flight table: each event exactly once', async () => {
  const project = uniqueProject();
  const sse = await openSseWelcomed(gw.base, `project=${project}`);
  await publish(broker.url, project, 'task.sse', '{"sse":1}', { msgId: 'sse-once-1' });
  const e = await nextSseEvent(sse, 5000);
  assert.equal(e.json?.msgId, 'sse-once-1');
  const more = (await sse.items.drain(QUIET_MS)).filter((i) => i.comment === undefined);
  assert.deepEqual(more, [], 'SSE event sent again');
  sse.destroy();
});
