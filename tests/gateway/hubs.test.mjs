// Many gateways on one broker; in each, one broker subscription (a hub) per
// (project, subject set), fanned out to every browser stream asking for it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startBroker, startGateway, publish, stopAll, sleep } from './servers.mjs';

after(stopAll);

function open(url) {
  const events = [];
  const ws = new WebSocket(url);
  const welcomed = new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'welcome') resolve();
      else if (msg.event) {
        events.push(msg);
        ws.send(JSON.stringify({ ack: msg.msgId }));
      }
    });
  });
  return { ws, events, welcomed };
}

async function stats(gw) {
  return (await fetch(`${gw.base}/stats`)).json();
}

test('two gateways, three browsers each: every browser gets each event once; one hub per subject set', async () => {
  const broker = await startBroker();
  const gateways = [await startGateway({ brokerUrl: broker.url }), await startGateway({ brokerUrl: broker.url })];
  const pages = [];
  for (const gw of gateways) {
    // Two pages with the same subject set (the order of the list does not matter), one with another.
    pages.push(open(`ws://127.0.0.1:${gw.port}/realtime?project=h1&subjects=task.*,order.*`));
    pages.push(open(`ws://127.0.0.1:${gw.port}/realtime?project=h1&subjects=order.*,task.*`));
    pages.push(open(`ws://127.0.0.1:${gw.port}/realtime?project=h1&subjects=task.*`));
  }
  await Promise.all(pages.map((p) => p.welcomed));
  for (const gw of gateways) assert.equal((await stats(gw)).hubs, 2, 'one hub per distinct subject set');

  await publish(broker.url, 'h1', 'task.updated', '{"n":1}', { msgId: 'hub-task-1' });
  await publish(broker.url, 'h1', 'order.created', '{"n":2}', { msgId: 'hub-order-1' });
  await publish(broker.url, 'h2', 'task.updated', '{"n":3}', { msgId: 'other-project' });

  const deadline = Date.now() + 10000;
  const want = (i) => (i % 3 === 2 ? 1 : 2);
  while (Date.now() < deadline && pages.some((p, i) => p.events.length < want(i))) await sleep(20);
  await sleep(300);  // anything extra would show up now
  pages.forEach((p, i) => {
    const ids = p.events.map((e) => e.msgId);
    assert.deepEqual(ids, want(i) === 2 ? ['hub-task-1', 'hub-order-1'] : ['hub-task-1'], `page ${i}`);
  });
  for (const gw of gateways) {
    const s = await stats(gw);
    assert.equal(s.connections.websocket, 3);
    assert.equal(s.events_delivered.total, 5, JSON.stringify(s));
  }
  for (const p of pages) p.ws.close();
});
