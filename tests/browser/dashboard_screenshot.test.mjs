// A screenshot of the dashboard with live traffic, saved as an artefact
// ($NAGARE_ARTIFACTS/dashboard.png): the file exists, is a PNG of the
// viewport's size and is not blank (a blank page compresses to a few KiB).
// Also checks what the screenshot shows: rows, the subject list, the
// /stats counters and a drawn rate chart.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { artifactsDir, launchBrowser, openDashboard, waitForCount } from './browser.mjs';
import { publishLines, sleep, startBroker, startGateway, stopAll } from '../gateway/servers.mjs';

const VIEWPORT = { width: 1280, height: 860 };
const PNG_BYTES_MIN = 30 * 1024;

let broker, gateway, browser;

before(async () => {
  broker = await startBroker();
  gateway = await startGateway({ brokerUrl: broker.url });
  browser = await launchBrowser({ viewport: VIEWPORT });
});

after(async () => {
  await browser?.close();
  await stopAll();
});

test('dashboard screenshot with live traffic', async () => {
  const page = await browser.newPage();
  const project = 'demo';
  await openDashboard(page, gateway.base, { project, subjects: 'task.*,order.*,user.*', transport: 'websocket' });

  const subjects = ['task.created', 'task.updated', 'order.created', 'user.login'];
  let sent = 0;
  for (let second = 0; second < 4; second++) {
    for (const [k, subject] of subjects.entries()) {
      const n = 3 + ((second * 7 + k * 5) % 9);
      const lines = Array.from({ length: n }, (_, i) =>
        JSON.stringify({ id: `${subject.split('.')[0]}-${sent + i}`, status: ['open', 'done', 'review'][i % 3], by: 'ana' }));
      await publishLines(broker.url, project, subject, lines);
      sent += n;
    }
    await sleep(1000);
  }
  await waitForCount(page, sent, 10000);
  await page.waitForFunction(() => Number(document.getElementById('stat-delivered').dataset.value) > 0, null, { timeout: 5000 });
  await sleep(1100);  // one more /stats tick on the chart

  assert.equal(await page.$$eval('#subjects-seen li', (l) => l.length), subjects.length);
  assert.ok(await page.evaluate(() => window.dashboard.gatewayRate.some((v) => v > 0)), 'the chart has a non-zero point');
  // The chart's canvas has drawn pixels in the accent colour's region (not blank).
  const inked = await page.$eval('#rate-chart', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  assert.ok(inked > 500, `chart pixels drawn: ${inked}`);

  const file = join(artifactsDir(), 'dashboard.png');
  await page.screenshot({ path: file });
  const png = readFileSync(file);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  assert.equal(png.readUInt32BE(12), 0x49484452, 'IHDR first');
  assert.equal(png.readUInt32BE(16), VIEWPORT.width);
  assert.equal(png.readUInt32BE(20), VIEWPORT.height);
  assert.ok(statSync(file).size > PNG_BYTES_MIN, `PNG of ${statSync(file).size} bytes`);
  console.log(`SCREENSHOT ${file} ${statSync(file).size} bytes, ${sent} events`);
  assert.deepEqual(page.problems, []);
  await page.close();
});
