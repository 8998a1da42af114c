// The dashboard connects over SSE and over WebSocket and shows an event
// published with `nagare pub` within 300 ms.
//
// What is measured, per event: t0 = just before `nagare pub` is spawned (the
// test's clock), row = Date.now() in the page when the row was rendered
// (same machine, same clock). The asserted figure is the median of
// row - t0 over RUNS events: it includes the CLI's process start, its
// connect to the broker, the publish, broker -> gateway -> browser and the
// rendering. Also printed: the CLI's own start-up (median of `nagare --help`)
// and the broker timestamp -> row time.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { artifactsDir, launchBrowser, median, openDashboard } from './browser.mjs';
import { binary, publish, startBroker, startGateway, stopAll } from '../gateway/servers.mjs';

const RUNS = 7;
const LATENCY_MS_MAX = 300;
const execFileP = promisify(execFile);

let broker, gateway, browser;

before(async () => {
  broker = await startBroker();
  gateway = await startGateway({ brokerUrl: broker.url });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopAll();
});

async function cliStartupMs() {
  const times = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await execFileP(binary('NAGARE_CLI'), ['--help']);
    times.push(performance.now() - t0);
  }
  return median(times);
}

for (const transport of ['sse', 'websocket']) {
  describe(`dashboard over ${transport}`, () => {
    test(`shows a published event within ${LATENCY_MS_MAX} ms`, async () => {
      const page = await browser.newPage();
      const project = `lat-${transport}`;
      await openDashboard(page, gateway.base, { project, subjects: 'task.*', transport });
      assert.equal(await page.getAttribute('#status', 'data-status'), 'live');
      assert.match(await page.textContent('#status-text'), transport === 'sse' ? /SSE/ : /WebSocket/);

      const totals = [], afterExit = [], fromBroker = [];
      for (let i = 0; i <= RUNS; i++) {
        const msgId = `${transport}-lat-${i}-${Date.now()}`;
        const t0 = Date.now();
        await publish(broker.url, project, 'task.updated', JSON.stringify({ run: i }), { msgId });
        const t1 = Date.now();
        const row = await page.waitForSelector(`#events li[data-msg-id="${msgId}"]`, { timeout: 5000 });
        const receivedAt = Number(await row.getAttribute('data-received-at'));
        const brokerTs = Date.parse(await row.$eval('time', (t) => t.dateTime));
        assert.equal(await row.getAttribute('data-subject'), 'task.updated');
        assert.equal(await row.$eval('.payload', (p) => p.textContent), JSON.stringify({ run: i }));
        const toasts = await page.$$eval('#toasts .toast[data-subject="task.updated"]', (t) => t.length);
        if (i === 0) assert.equal(toasts, 1, 'a toast for the first task.updated');
        else assert.ok(toasts <= 1, 'one toast per new subject, not per event');
        if (i === 0) continue;  // warm-up: the first event also sets up the gateway's hub path
        totals.push(receivedAt - t0);
        afterExit.push(receivedAt - t1);
        fromBroker.push(receivedAt - brokerTs);
      }
      const startup = await cliStartupMs();
      const report = {
        transport,
        runs: RUNS,
        pub_start_to_row_ms_median: median(totals),
        pub_start_to_row_ms_max: Math.max(...totals),
        pub_exit_to_row_ms_median: median(afterExit),
        broker_timestamp_to_row_ms_median: median(fromBroker),
        cli_startup_ms_median: Math.round(startup * 10) / 10,
        pub_start_to_row_minus_cli_startup_ms: Math.round((median(totals) - startup) * 10) / 10,
      };
      console.log(`LATENCY ${JSON.stringify(report)}`);
      assert.ok(median(totals) < LATENCY_MS_MAX,
        `median pub -> row ${median(totals)} ms >= ${LATENCY_MS_MAX} ms (${totals.join(', ')})`);

      // Every event was acked over WebSocket (the gateway counts acks).
      if (transport === 'websocket') {
        const stats = await (await fetch(`${gateway.base}/stats`)).json();
        assert.ok(stats.acks >= RUNS + 1, `acks ${stats.acks} < ${RUNS + 1}`);
        assert.equal(stats.resends, 0);
      }
      await page.screenshot({ path: join(artifactsDir(), `dashboard-${transport}.png`) });
      assert.deepEqual(page.problems, []);
      await page.close();
    });
  });
}
