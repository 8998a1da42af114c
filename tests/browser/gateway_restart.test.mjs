// Stopping and restarting the gateway in the middle of 1,000 events: the
// dashboard ends with all 1,000 exactly once and in order.
//
// 1,000 messages with a running counter {"n":i} are published in chunks of
// 50 (`nagare pub ... -`) while the page receives them; as soon as #400 is
// published the gateway is stopped (SIGTERM or SIGKILL) while the publisher
// goes on, and started again on the same port RESTART_GAP_MS later. The page resumes on its own (SSE: the
// browser's Last-Event-ID, or nagare.js's last_id=; WebSocket: last_id=).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { dashboardRows, launchBrowser, openDashboard, waitForCount } from './browser.mjs';
import { publishLines, sleep, startBroker, startGateway, stopAll } from '../gateway/servers.mjs';

const TOTAL = 1000;
const CHUNK = 50;
const KILL_AT = 400;
const RESTART_GAP_MS = 400;

let broker, browser;

before(async () => {
  broker = await startBroker();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopAll();
});

const cases = [
  { transport: 'sse', signal: 'SIGKILL' },
  { transport: 'sse', signal: 'SIGTERM' },
  { transport: 'websocket', signal: 'SIGKILL' },
  { transport: 'websocket', signal: 'SIGTERM' },
];

for (const { transport, signal } of cases) {
  test(`${transport}: gateway ${signal} at ~${KILL_AT} of ${TOTAL} events, restarted on the same port`, async () => {
    const project = `restart-${transport}-${signal}`.toLowerCase();
    let gateway = await startGateway({ brokerUrl: broker.url });
    const port = gateway.port;
    const page = await browser.newPage();
    await openDashboard(page, gateway.base, { project, subjects: 'count.*', transport, rows: 2 * TOTAL });

    let published = 0;
    let reachedKillPoint;
    const killPoint = new Promise((resolve) => { reachedKillPoint = resolve; });
    const publisher = (async () => {
      for (let start = 0; start < TOTAL; start += CHUNK) {
        const lines = [];
        for (let n = start; n < start + CHUNK; n++) lines.push(JSON.stringify({ n }));
        await publishLines(broker.url, project, 'count.tick', lines);
        published = start + CHUNK;
        if (published >= KILL_AT) reachedKillPoint();
        await sleep(20);
      }
    })();

    await killPoint;
    const seenAtKill = Number(await page.getAttribute('#count-events', 'data-value'));
    const publishedAtKill = published;
    await gateway.stop(signal);
    await sleep(RESTART_GAP_MS);
    gateway = await startGateway({ brokerUrl: broker.url, listen: `127.0.0.1:${port}` });
    assert.equal(gateway.port, port);
    await publisher;

    await waitForCount(page, TOTAL, 30000);
    await sleep(500);  // anything extra (a duplicate) would show up now
    await page.waitForSelector('#status[data-status="live"]', { timeout: 5000 });

    const rows = await dashboardRows(page);
    const ns = rows.map((r) => JSON.parse(r.payload).n);
    const expected = Array.from({ length: TOTAL }, (_, i) => i);
    const stats = await page.evaluate(() => ({ ...window.dashboard.conn.stats }));
    console.log(`RESTART ${JSON.stringify({ transport, signal, seenAtKill, publishedAtKill, rows: rows.length, ...stats })}`);
    assert.ok(seenAtKill > 0 && seenAtKill < TOTAL, 'the gateway was stopped in the middle of the stream');
    assert.equal(rows.length, TOTAL, 'rows on the page');
    assert.deepEqual(ns, expected, 'counters 0..999 in order, each once');
    assert.equal(new Set(rows.map((r) => r.msgId)).size, TOTAL, 'distinct msgIds');
    for (let i = 1; i < rows.length; i++) {
      const [ea, oa] = rows[i - 1].id.split(':');
      const [eb, ob] = rows[i].id.split(':');
      assert.equal(ea, eb, 'one epoch');
      assert.ok(BigInt(ob) > BigInt(oa), `ids grow: ${rows[i - 1].id} then ${rows[i].id}`);
    }
    assert.equal(Number(await page.getAttribute('#count-events', 'data-value')), TOTAL);
    assert.ok(stats.reconnects >= 1, 'the page reconnected');
    assert.equal(stats.resets, 0, 'no reset: the resume id was served');
    assert.deepEqual(page.problems, []);
    await page.close();
    await gateway.stop();
  });
}
