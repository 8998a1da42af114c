// The batching window and snapshot coalescing (docs/gateway.md, --batch-ms,
// --coalesce): events within the window go out as one JSON array, nothing
// dropped but older copies of a coalesced subject; private subjects are
// never coalesced.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startBroker, startGateway, publishLines, stopAll, sleep } from './servers.mjs';

after(stopAll);

function collect(url) {
  const frames = [];
  const ws = new WebSocket(url);
  const opened = new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'welcome') resolve();
      frames.push(msg);
    });
  });
  return { ws, frames, opened };
}

async function until(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a batch window sends one array, coalesces snapshot subjects, never private ones', async () => {
  const broker = await startBroker();
  const gw = await startGateway({
    brokerUrl: broker.url,
    args: ['--no-auth', '--batch-ms', '1500', '--coalesce', 'order.tasks.reordered,audit.snapshot'],
  });
  const { ws, frames, opened } = collect(`ws://127.0.0.1:${gw.port}/realtime?project=b1&subjects=%3E`);
  await opened;

  await publishLines(broker.url, 'b1', 'task.updated', [0, 1, 2, 3, 4].map((i) => JSON.stringify({ i })));
  await publishLines(broker.url, 'b1', 'order.tasks.reordered', [0, 1, 2].map((v) => JSON.stringify({ v })));
  await publishLines(broker.url, 'b1', 'audit.snapshot', [0, 1].map((a) => JSON.stringify({ a })));

  const events = () => frames.filter(Array.isArray).flat();
  await until(() => events().filter((e) => e.event === 'audit.snapshot').length === 2, 10000, 'the audit events');
  ws.close();

  const batches = frames.filter(Array.isArray);
  assert.ok(batches.length >= 1, 'events arrive as arrays');
  assert.ok(frames.filter((f) => !Array.isArray(f) && f.event).length === 0, 'no single-event frame in batch mode');
  const all = events();
  // Nothing dropped: every task.updated, in order.
  assert.deepEqual(all.filter((e) => e.event === 'task.updated').map((e) => e.payload.i), [0, 1, 2, 3, 4]);
  // Coalesced: at most one reordered per batch, and the newest one arrives.
  for (const b of batches) {
    assert.ok(b.filter((e) => e.event === 'order.tasks.reordered').length <= 1, JSON.stringify(b));
  }
  const reordered = all.filter((e) => e.event === 'order.tasks.reordered').map((e) => e.payload.v);
  assert.equal(reordered.at(-1), 2);
  assert.ok(reordered.length < 3, `the 3 quick reorders were coalesced (got ${reordered})`);
  // Private (audit.>) is never coalesced, even when named.
  assert.deepEqual(all.filter((e) => e.event === 'audit.snapshot').map((e) => e.payload.a), [0, 1]);
  // Ids grow within and across batches.
  const offsets = all.map((e) => Number(e.id.split(':')[1]));
  assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b));
});

test('SSE batches: event "batch", id of the last event, a JSON array', async () => {
  const broker = await startBroker();
  const gw = await startGateway({ brokerUrl: broker.url, args: ['--no-auth'] });
  const res = await fetch(`${gw.base}/events?project=b2&subjects=task.*&batch_ms=800`);
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  let text = '';
  const read = (async () => {
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline && !text.includes('event: batch')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
  })();
  await sleep(200);
  await publishLines(broker.url, 'b2', 'task.updated', ['{"n":1}', '{"n":2}', '{"n":3}']);
  await read;
  await sleep(100);
  reader.cancel();
  const block = text.split('\n\n').find((b) => b.includes('event: batch'));
  assert.ok(block, text);
  const lines = Object.fromEntries(block.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
  const batch = JSON.parse(lines.data);
  assert.deepEqual(batch.map((e) => e.payload.n), [1, 2, 3]);
  assert.equal(lines.id, batch.at(-1).id);
});
