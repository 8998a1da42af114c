// Headless Chromium for the browser tests: Debian's /usr/bin/chromium (or
// $CHROMIUM) through playwright-core, a fresh profile per launch, no
// background networking (the machines have no outside network). Also the
// dashboard helpers the tests share.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// Directory for screenshots ($NAGARE_ARTIFACTS, set by CTest).
export function artifactsDir() {
  const dir = process.env.NAGARE_ARTIFACTS || join(tmpdir(), 'nagare-artifacts');
  mkdirSync(dir, { recursive: true });
  return dir;
}

// Returns {context, newPage(), close()}. Each page's console errors and page
// errors are collected in page.problems (tests assert there are none).
export async function launchBrowser({ viewport = { width: 1280, height: 860 } } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'nagare-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
  });
  return {
    context,
    async newPage() {
      const page = await context.newPage();
      page.problems = [];
      page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (process.env.NAGARE_TEST_VERBOSE) process.stderr.write(`[page ${m.type()}] ${m.text()}\n`);
        if (m.type() === 'error' && !/Failed to load resource|WebSocket connection to|ERR_/.test(m.text())) {
          page.problems.push(`console: ${m.text()}`);
        }
      });
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// The dashboard of gateway `base` with the given query (project, subjects, transport, token, rows).
export async function openDashboard(page, base, query) {
  const q = new URLSearchParams(query);
  await page.goto(`${base}/?${q}`);
  await page.waitForSelector('#status[data-status="live"]', { timeout: 15000 });
}

// The rows the page holds, oldest first: [{id, msgId, subject, receivedAt, payload}].
export async function dashboardRows(page) {
  const rows = await page.$$eval('#events li[data-id]', (lis) => lis.map((li) => ({
    id: li.dataset.id,
    msgId: li.dataset.msgId,
    subject: li.dataset.subject,
    receivedAt: Number(li.dataset.receivedAt),
    timestamp: li.querySelector('time')?.dateTime ?? '',
    payload: li.querySelector('.payload')?.textContent ?? '',
  })));
  return rows.reverse();
}

// Waits until #count-events reaches `n` (events the page handled).
export async function waitForCount(page, n, timeoutMs = 30000) {
  await page.waitForFunction((want) => Number(document.getElementById('count-events').dataset.value) >= want,
    n, { timeout: timeoutMs, polling: 50 });
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
