// A slow-consumer close (WebSocket 4008 / SSE `slow`) followed by the resume
// ends with every event exactly once and in order.
//
// The gateway runs with a 64 KiB send queue; 3,000 events of ~1 KiB are
// published in one burst, so the connection is closed as slow. nagare.js
// resumes (WebSocket: the close reason's resume id; SSE: its last id).
//
// The gateway paces a resume (replays wait for room in the send queue), so
// the resumed stream is not closed again. Over WebSocket the resume point is
// the last acked event, so events the page handled but had not acked yet
// come again and nagare.js drops them by msgId.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser } from './browser.mjs';
import { publishLines, startBroker, startGateway, stopAll } from '../gateway/servers.mjs';

const TOTAL = 3000;
const SEND_QUEUE_BYTES = 64 * 1024;

let broker, gateway, browser, page;

before(async () => {
  broker = await startBroker();
  gateway = await startGateway({ brokerUrl: broker.url, args: ['--send-queue-bytes', String(SEND_QUEUE_BYTES)] });
  browser = await launchBrowser();
  page = await browser.newPage();
  await page.goto(`${gateway.base}/status`);
});

after(async () => {
  await browser?.close();
  await stopAll();
});

for (const transport of ['websocket', 'sse']) {
  test(`${transport}: slow close, resume, all ${TOTAL} events once and in order`, async () => {
    const project = `slow-${transport}`;
    const handle = await page.evaluateHandle(({ transport, project }) => import('/nagare.js').then(({ connect }) => {
      const st = { got: [] };
      st.conn = connect({ project, subjects: ['big.*'], transport, onEvent: (ev) => { st.got.push(ev.payload.n); } });
      return st;
    }), { transport, project });
    await page.waitForFunction((st) => st.conn.status === 'live', handle, { timeout: 10000 });
    const before = await (await fetch(`${gateway.base}/stats`)).json();
    const pad = 'x'.repeat(1000);
    await publishLines(broker.url, project, 'big.one', Array.from({ length: TOTAL }, (_, n) => JSON.stringify({ n, pad })));
    try {
      await page.waitForFunction(({ st, total }) => st.got.length >= total && st.conn.status === 'live',
        { st: handle, total: TOTAL }, { timeout: 12000, polling: 100 });
    } finally {
      const stats = await (await fetch(`${gateway.base}/stats`)).json();
      const r = await handle.evaluate((st) => ({ n: st.got.length, status: st.conn.status, stats: st.conn.stats }));
      console.log(`SLOW ${JSON.stringify({ transport, ...r, slow_closes: stats.slow_closes - before.slow_closes })}`);
    }
    const got = await handle.evaluate((st) => { st.conn.close(); return st.got; });
    const stats = await (await fetch(`${gateway.base}/stats`)).json();
    assert.ok(stats.slow_closes - before.slow_closes >= 1, 'the connection was closed as slow');
    assert.deepEqual(got, Array.from({ length: TOTAL }, (_, i) => i));
  });
}
