// A token without the `admin` role subscribed to `>` never receives an
// `audit.*` event, while an admin token does (gateway started with an HS256
// secret; events published: audit.login, task.updated, audit.login,
// task.updated, then task.done as the end marker).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { dashboardRows, launchBrowser, openDashboard, waitForCount } from './browser.mjs';
import { hs256Token, publish, startBroker, startGateway, stopAll } from '../gateway/servers.mjs';

const PROJECT = 'acme';
const SECRET = randomBytes(32).toString('hex');

let broker, gateway, browser;
const userToken = hs256Token(SECRET, { sub: 'u1', projects: [PROJECT], roles: ['user'] });
const adminToken = hs256Token(SECRET, { sub: 'a1', projects: [PROJECT], roles: ['admin'] });

before(async () => {
  broker = await startBroker();
  gateway = await startGateway({ brokerUrl: broker.url, secret: SECRET });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopAll();
});

test('the gateway answers 401 without a valid token and 403 for an explicit private pattern', async () => {
  const q = (params) => `${gateway.base}/events?${new URLSearchParams({ project: PROJECT, ...params })}`;
  const none = await fetch(q({ subjects: '>' }));
  assert.equal(none.status, 401);
  await none.body?.cancel();
  const forged = await fetch(q({ subjects: '>', token: hs256Token('not-the-secret', { projects: [PROJECT], roles: ['admin'] }) }));
  assert.equal(forged.status, 401);
  await forged.body?.cancel();
  const explicit = await fetch(q({ subjects: 'audit.*', token: userToken }));
  assert.equal(explicit.status, 403);
  await explicit.body?.cancel();
});

for (const transport of ['sse', 'websocket']) {
  test(`${transport}: subscribed to '>', only the admin page sees audit.*`, async () => {
    const user = await browser.newPage();
    const admin = await browser.newPage();
    const subjects = '>';
    await openDashboard(user, gateway.base, { project: PROJECT, subjects, transport, token: userToken });
    await openDashboard(admin, gateway.base, { project: PROJECT, subjects, transport, token: adminToken });

    const tag = `${transport}-${Date.now()}`;
    const sequence = ['audit.login', 'task.updated', 'audit.login', 'task.updated', 'task.done'];
    for (const [i, subject] of sequence.entries()) {
      await publish(broker.url, PROJECT, subject, JSON.stringify({ tag, i }));
    }
    // Events of one project arrive in order: once task.done is on a page,
    // nothing published before it can still come.
    await waitForCount(admin, sequence.length, 10000);
    await user.waitForSelector('#events li[data-subject="task.done"]', { timeout: 10000 });
    await new Promise((r) => setTimeout(r, 300));

    const mine = (rows) => rows.filter((r) => JSON.parse(r.payload).tag === tag).map((r) => r.subject);
    const adminSubjects = mine(await dashboardRows(admin));
    const userSubjects = mine(await dashboardRows(user));
    console.log(`PRIVATE ${JSON.stringify({ transport, adminSubjects, userSubjects })}`);
    assert.deepEqual(adminSubjects, sequence);
    assert.deepEqual(userSubjects, ['task.updated', 'task.updated', 'task.done']);
    assert.equal(await user.$$eval('#events li[data-subject^="audit."]', (l) => l.length), 0);
    assert.equal(await user.$$eval('#subjects-seen li[data-subject^="audit."]', (l) => l.length), 0);
    assert.equal(await user.getAttribute('#status', 'data-status'), 'live');
    assert.deepEqual(user.problems, []);
    assert.deepEqual(admin.problems, []);
    await user.close();
    await admin.close();
  });
}
