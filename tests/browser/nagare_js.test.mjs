// client/js/nagare.js in Chromium against the real gateway: backoff timing
// and onGiveUp, the token function on a 401, resends dropped by msgId with
// the ack sent only once an async onEvent settles.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { launchBrowser } from './browser.mjs';
import { freePort, hs256Token, publish, startBroker, startGateway, stopAll } from '../gateway/servers.mjs';

const SECRET = randomBytes(32).toString('hex');
const ACK_WAIT_MS = 300;

let broker, gateway, browser, page;

before(async () => {
  broker = await startBroker();
  gateway = await startGateway({ brokerUrl: broker.url, secret: SECRET, args: ['--ack-wait-ms', String(ACK_WAIT_MS)] });
  browser = await launchBrowser();
  page = await browser.newPage();
  await page.goto(`${gateway.base}/status`);  // same origin as /nagare.js
});

after(async () => {
  await browser?.close();
  await stopAll();
});

for (const transport of ['websocket', 'sse']) {
  describe(`nagare.js over ${transport}`, () => {
    test('retries after 1 s, 2 s, 5 s (±20%) and gives up after 5 failed attempts', async () => {
      const deadUrl = `http://127.0.0.1:${await freePort()}`;
      const r = await page.evaluate(async ({ url, transport }) => {
        const { connect } = await import('/nagare.js');
        // Default backoff: wait for the 4th open (1 + 2 + 5 s, ±20%).
        const opens = [];
        const c = connect({ url, project: 'p', transport, token: () => { opens.push(performance.now()); return 't'; } });
        const deadline = performance.now() + 11000;
        while (opens.length < 4 && performance.now() < deadline) await new Promise((res) => setTimeout(res, 20));
        c.close();
        const gaps = opens.slice(1).map((t, i) => Math.round(t - opens[i]));
        // Give-up: short steps, no retry after it.
        const statuses = [];
        let attempts = 0, gaveUp = 0;
        const g = connect({
          url, project: 'p', transport, backoffMs: [50], retryAfterGiveUp: false,
          token: () => { attempts++; return 't'; },
          onStatus: (s) => statuses.push(s), onGiveUp: () => { gaveUp++; },
        });
        await new Promise((res) => setTimeout(res, 2000));
        return { gaps, attempts, statuses, gaveUp, status: g.status };
      }, { url: deadUrl, transport });
      console.log(`BACKOFF ${transport} ${JSON.stringify(r)}`);
      const [g1, g2, g3] = r.gaps;
      assert.ok(g1 >= 780 && g1 <= 1450, `1st retry after ${g1} ms`);
      assert.ok(g2 >= 1580 && g2 <= 2650, `2nd retry after ${g2} ms`);
      assert.ok(g3 >= 3980 && g3 <= 6250, `3rd retry after ${g3} ms`);
      assert.equal(r.attempts, 5, 'no attempt after giving up (retryAfterGiveUp: false)');
      assert.equal(r.gaveUp, 1);
      assert.equal(r.status, 'offline');
      assert.deepEqual(r.statuses, ['connecting', 'offline']);
    });

    test('a 401 makes it call the token function again and connect', async () => {
      const expired = hs256Token(SECRET, { projects: ['tok'], exp: Math.floor(Date.now() / 1000) - 3600 });
      const good = hs256Token(SECRET, { projects: ['tok'] });
      const handle = await page.evaluateHandle(({ transport, expired, good }) => import('/nagare.js').then(({ connect }) => {
        const st = { calls: 0, events: [], statuses: [] };
        st.conn = connect({
          project: 'tok', subjects: ['t.*'], transport,
          token: async () => (++st.calls === 1 ? expired : good),
          onEvent: (ev) => { st.events.push(ev.payload); },
          onStatus: (s) => st.statuses.push(s),
        });
        return st;
      }), { transport, expired, good });
      await page.waitForFunction((st) => st.conn.status === 'live', handle, { timeout: 10000 });
      await publish(broker.url, 'tok', 't.x', JSON.stringify({ transport }));
      await page.waitForFunction((st) => st.events.length === 1, handle, { timeout: 5000 });
      const r = await handle.evaluate((st) => { st.conn.close(); return { calls: st.calls, statuses: st.statuses, events: st.events }; });
      assert.equal(r.calls, 2);
      assert.deepEqual(r.statuses, ['connecting', 'live', 'offline']);
      assert.deepEqual(r.events, [{ transport }]);
    });
  });
}

test('websocket: resends of an event whose async onEvent is still running are dropped; one ack after it settles', async () => {
  const token = hs256Token(SECRET, { projects: ['slowh'] });
  const handle = await page.evaluateHandle((token) => import('/nagare.js').then(({ connect }) => {
    const st = { calls: [], settled: 0 };
    st.conn = connect({
      project: 'slowh', subjects: ['s.*'], transport: 'websocket', token,
      onEvent: (ev) => {
        st.calls.push({ msgId: ev.msgId, redelivered: ev.redelivered ?? 0 });
        return new Promise((r) => setTimeout(() => { st.settled++; r(); }, 1200));
      },
    });
    return st;
  }), token);
  await page.waitForFunction((st) => st.conn.status === 'live', handle, { timeout: 10000 });
  const before = await (await fetch(`${gateway.base}/stats`)).json();
  await publish(broker.url, 'slowh', 's.one', '{"k":1}', { msgId: 'slow-handler-1' });
  await page.waitForFunction((st) => st.settled === 1, handle, { timeout: 5000 });
  await new Promise((r) => setTimeout(r, 3 * ACK_WAIT_MS));  // no resend once acked
  const stats = await (await fetch(`${gateway.base}/stats`)).json();
  const r = await handle.evaluate((st) => { st.conn.close(); return { calls: st.calls, stats: st.conn.stats, lastId: st.conn.lastId }; });
  console.log(`DEDUP ${JSON.stringify({ ...r, resends: stats.resends - before.resends, acks: stats.acks - before.acks })}`);
  assert.deepEqual(r.calls, [{ msgId: 'slow-handler-1', redelivered: 0 }], 'onEvent once');
  assert.ok(stats.resends - before.resends >= 2, 'the gateway resent while the handler ran');
  assert.ok(r.stats.duplicates >= 2, 'nagare.js dropped the resends');
  assert.equal(stats.acks - before.acks, 1, 'one ack, after the handler settled');
  assert.ok(r.lastId, 'lastId set once handled');
});
