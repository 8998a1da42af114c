// SSE details of nagare-gateway (docs/gateway.md "SSE stream", "Event ids
// and resume", "Auth", errors): headers, retry, heartbeat comments, the
// id/event/data lines, Last-Event-ID resume (from the hub's ring and by
// catch-up), reset for another epoch and past retention, 401/403, and 503
// with Retry-After over --connect-rate and --max-connections.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import {
  closeAll, httpGet, nextSseEvent, openSse, openSseWelcomed, openWs, openWsWelcomed, parseId, uniqueProject,
} from './clients.mjs';
import {
  hs256Token, publish, publishLines, sleep, startBroker, startGateway, stopAll, streamAdd, streamInfo,
} from './servers.mjs';

const HEARTBEAT_MS = 200;
let broker, gw;

before(async () => {
  broker = await startBroker();
  gw = await startGateway({ brokerUrl: broker.url, args: ['--heartbeat-ms', String(HEARTBEAT_MS)] });
});
after(async () => {
  closeAll();
  await stopAll();
});

// The next SSE event that carries an event JSON (skips heartbeats, resets excepted).
async function nextData(c, timeoutMs = 5000) {
  const e = await nextSseEvent(c, timeoutMs);
  assert.ok(e, 'SSE stream ended');
  return e;
}

// Publishes `n` events and returns their SSE events as seen by a live client.
async function publishSeen(project, subject, n) {
  const live = await openSseWelcomed(gw.base, `project=${project}`);
  await publishLines(broker.url, project, subject, Array.from({ length: n }, (_, i) => `{"i":${i}}`));
  const seen = [];
  for (let i = 0; i < n; i++) seen.push(await nextData(live));
  live.destroy();
  return seen;
}

function otherEpoch(epoch) {
  for (;;) {
    const e = BigInt(`0x${randomBytes(7).toString('hex')}`).toString();
    if (e !== String(epoch)) return e;
  }
}

describe('stream format', () => {
  test('headers, retry: 1000 first, then a welcome event', async () => {
    const c = await openSse(gw.base, `project=${uniqueProject()}`);
    assert.equal(c.status, 200);
    assert.match(c.headers['content-type'] ?? '', /^text\/event-stream/);
    assert.match(c.headers['cache-control'] ?? '', /no-cache/);
    assert.equal(c.headers['x-accel-buffering'], 'no');
    assert.match(c.headers.connection ?? '', /keep-alive/i);
    assert.equal(c.headers['content-length'], undefined, 'an event stream with a Content-Length');
    const first = await nextSseEvent(c, 5000, { keepComments: true });
    assert.ok(c.raw.startsWith('retry: 1000\n') || c.raw.startsWith('retry: 1000\r\n'), `stream starts ${JSON.stringify(c.raw.slice(0, 40))}`);
    let welcome = first;
    if (welcome.event !== 'welcome') welcome = await nextSseEvent(c, 5000);
    assert.equal(welcome.event, 'welcome');
    assert.equal(welcome.json?.type, 'welcome');
    assert.equal(welcome.json.recovered, false);
    assert.match(String(welcome.json.epoch), /^\d+$/);
    c.destroy();
  });

  test(`a heartbeat comment ": hb" every heartbeat_ms (${HEARTBEAT_MS} ms)`, async () => {
    const c = await openSseWelcomed(gw.base, `project=${uniqueProject()}`);
    const items = await c.items.drain(1500);
    const hbs = items.filter((i) => i.comment === 'hb');
    assert.ok(hbs.length >= 4 && hbs.length <= 10, `${hbs.length} heartbeats in 1.5 s: ${JSON.stringify(items.slice(0, 5))}`);
    assert.ok(c.raw.includes('\n: hb\n'), 'heartbeat is not the line ": hb"');
    c.destroy();
  });

  test('id:, event:, data: per event, data is the event JSON, subject filter applies', async () => {
    const project = uniqueProject();
    const c = await openSseWelcomed(gw.base, `project=${project}&subjects=task.*,order.created`);
    const epoch = String(c.welcome.epoch);
    await publish(broker.url, project, 'task.updated', '{"t":1}', { msgId: 'sse-m1' });
    await publish(broker.url, project, 'order.paid', '{"skip":1}', { msgId: 'sse-m2' });
    const t0 = Date.now();
    await publish(broker.url, project, 'order.created', '{"o":2}', { msgId: 'sse-m3' });
    const e1 = await nextData(c);
    assert.equal(e1.event, 'task.updated');
    assert.equal(e1.id, e1.json.id);
    assert.equal(parseId(e1.id).epoch, epoch);
    assert.deepEqual(
      { event: e1.json.event, msgId: e1.json.msgId, project: e1.json.project, payload: e1.json.payload },
      { event: 'task.updated', msgId: 'sse-m1', project, payload: { t: 1 } });
    assert.match(e1.json.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const e2 = await nextData(c);
    assert.equal(e2.json.msgId, 'sse-m3', 'order.paid leaked through the subject filter');
    assert.equal(e2.event, 'order.created');
    assert.ok(e2.at - t0 < 1000, `event flushed ${e2.at - t0} ms after publishing`);
    assert.ok(parseId(e2.id).offset > parseId(e1.id).offset);
    c.destroy();
  });

  test('named=0 leaves out the event: line', async () => {
    const project = uniqueProject();
    const c = await openSseWelcomed(gw.base, `project=${project}&named=0`);
    await publish(broker.url, project, 'task.unnamed', '{"u":1}', { msgId: 'sse-unnamed' });
    const e = await nextData(c);
    assert.equal(e.json?.msgId, 'sse-unnamed');
    assert.equal(e.event, undefined, `event: ${e.event}`);
    assert.ok(!/^event:/m.test(c.raw), `an event: line with named=0: ${c.raw.slice(0, 300)}`);
    c.destroy();
  });

  test('bad requests → 400 JSON before the stream (no project, bad pattern, bad Last-Event-ID)', async () => {
    for (const [query, headers] of [
      ['subjects=task.*', {}],
      [`project=${uniqueProject()}&subjects=a..b`, {}],
      [`project=${uniqueProject()}`, { 'Last-Event-ID': 'nonsense' }],
      [`project=${uniqueProject()}&last_id=1:2:3`, {}],
    ]) {
      const r = await openSse(gw.base, query, { headers });
      assert.equal(r.status, 400, `${query} ${JSON.stringify(headers)}: ${r.status}`);
      assert.equal(typeof r.json?.error, 'string', `body ${r.body}`);
    }
  });
});

describe('resume', () => {
  test('Last-Event-ID: the events after it, recovered: true, then live ones', async () => {
    const project = uniqueProject();
    const seen = await publishSeen(project, 'task.r', 5);
    const c = await openSseWelcomed(gw.base, `project=${project}`, { headers: { 'Last-Event-ID': seen[2].id } });
    assert.equal(c.welcome.recovered, true);
    assert.equal((await nextData(c)).id, seen[3].id);
    assert.equal((await nextData(c)).id, seen[4].id);
    await publish(broker.url, project, 'task.r', '{"live":1}', { msgId: 'sse-after-resume' });
    const live = await nextData(c);
    assert.equal(live.json?.msgId, 'sse-after-resume', `got ${live.data}`);
    c.destroy();
  });

  test('last_id= works like Last-Event-ID, and the header wins over it', async () => {
    const project = uniqueProject();
    const seen = await publishSeen(project, 'task.q', 4);
    const q = await openSseWelcomed(gw.base, `project=${project}&last_id=${seen[1].id}`);
    assert.equal(q.welcome.recovered, true);
    assert.equal((await nextData(q)).id, seen[2].id);
    q.destroy();
    const both = await openSseWelcomed(gw.base, `project=${project}&last_id=${seen[0].id}`,
      { headers: { 'Last-Event-ID': seen[2].id } });
    assert.equal((await nextData(both)).id, seen[3].id, 'last_id= won over Last-Event-ID');
    both.destroy();
  });

  test('the id of the newest event: recovered, nothing replayed', async () => {
    const project = uniqueProject();
    const seen = await publishSeen(project, 'task.n', 2);
    const c = await openSseWelcomed(gw.base, `project=${project}`, { headers: { 'Last-Event-ID': seen[1].id } });
    assert.equal(c.welcome.recovered, true);
    const more = (await c.items.drain(600)).filter((i) => i.comment === undefined);
    assert.deepEqual(more.map((e) => e.data), []);
    c.destroy();
  });

  test('a gateway that never saw the events resumes them by catch-up from the broker', async () => {
    const project = uniqueProject();
    const seen = await publishSeen(project, 'task.c', 6);
    const fresh = await startGateway({ brokerUrl: broker.url });
    try {
      const c = await openSseWelcomed(fresh.base, `project=${project}`, { headers: { 'Last-Event-ID': seen[1].id } });
      assert.equal(c.welcome.recovered, true);
      const ids = [];
      for (let i = 0; i < 4; i++) ids.push((await nextData(c, 10000)).id);
      assert.deepEqual(ids, seen.slice(2).map((e) => e.id));
      await publish(broker.url, project, 'task.c', '{"live":1}', { msgId: 'catchup-live' });
      assert.equal((await nextData(c, 10000)).json?.msgId, 'catchup-live');
      c.destroy();
    } finally {
      await fresh.stop();
    }
  });

  test('an id from another epoch → event: reset {"reason":"epoch"}, then live events only', async () => {
    const project = uniqueProject();
    const seen = await publishSeen(project, 'task.e', 3);
    const bad = `${otherEpoch(parseId(seen[0].id).epoch)}:1`;
    const c = await openSse(gw.base, `project=${project}`, { headers: { 'Last-Event-ID': bad } });
    assert.equal(c.status, 200);
    let reset = null;
    for (let i = 0; i < 4 && !reset; i++) {
      const e = await nextData(c);
      if (e.data === undefined && e.retry !== undefined) continue;
      if (e.event === 'welcome') assert.notEqual(e.json?.recovered, true, 'recovered: true with a foreign epoch');
      else if (e.event === 'reset') reset = e;
      else assert.fail(`before the reset: ${e.event} ${e.data}`);
    }
    assert.ok(reset, 'no event: reset');
    assert.equal(JSON.parse(reset.data).reason, 'epoch', `reset data ${reset.data}`);
    await publish(broker.url, project, 'task.e', '{"live":1}', { msgId: 'after-epoch-reset' });
    const e = await nextData(c);
    assert.equal(e.json?.msgId, 'after-epoch-reset', `replayed an old event: ${e.data}`);
    c.destroy();
  });

  test('WebSocket: last_id from another epoch → {"type":"reset","reason":"epoch"}', async () => {
    const project = uniqueProject();
    const seen = await publishSeen(project, 'task.w', 1);
    const c = await openWs(gw.base, `project=${project}&last_id=${otherEpoch(parseId(seen[0].id).epoch)}:0`);
    const msgs = [];
    for (let i = 0; i < 2; i++) msgs.push((await c.messages.next(5000, 'message')).json);
    assert.equal(msgs[0].type, 'welcome');
    assert.notEqual(msgs[0].recovered, true);
    assert.deepEqual(msgs[1], { type: 'reset', reason: 'epoch' });
    c.ws.terminate();
  });

  test('an id older than the retention → event: reset {"reason":"retention"}', async () => {
    // A stream small enough that retention (checked once a second by the broker) drops its first segments.
    await streamAdd(broker.url, 'small', ['small.>'], ['--partitions', '1', '--max-bytes', '64KiB', '--segment-bytes', '64KiB']);
    const project = uniqueProject();
    // Segments roll between appended batches: eight separate publishes of 50 (~45 KiB each).
    for (let b = 0; b < 8; b++) {
      await publishLines(broker.url, project, 'small.x',
        Array.from({ length: 50 }, (_, i) => `{"i":${b * 50 + i},"pad":"${'y'.repeat(900)}"}`));
    }
    let info;
    const deadline = Date.now() + 10000;
    do {
      await sleep(250);
      info = await streamInfo(broker.url, 'small');
    } while (info.partitions[0].first_offset === 0 && Date.now() < deadline);
    const first = info.partitions[0].first_offset;
    assert.ok(first > 1, `retention removed nothing: ${info.text}`);
    const g = await startGateway({ brokerUrl: broker.url, args: ['--stream', 'small'] });
    try {
      const c = await openSse(g.base, `project=${project}`, { headers: { 'Last-Event-ID': `${info.epoch}:0` } });
      assert.equal(c.status, 200);
      let reset = null;
      for (let i = 0; i < 4 && !reset; i++) {
        const e = await nextData(c, 10000);
        if (e.data === undefined && e.retry !== undefined) continue;
        if (e.event === 'reset') reset = e;
        else if (e.event !== 'welcome') assert.fail(`before the reset: ${e.event} ${e.data?.slice(0, 100)}`);
      }
      assert.ok(reset, 'no event: reset');
      assert.equal(JSON.parse(reset.data).reason, 'retention', `reset data ${reset.data}`);
      c.destroy();
      // An id inside the retention still resumes.
      const ok = await openSseWelcomed(g.base, `project=${project}`, { headers: { 'Last-Event-ID': `${info.epoch}:${first + 5}` } });
      assert.equal(ok.welcome.recovered, true);
      const e = await nextData(ok, 10000);
      assert.equal(e.id, `${info.epoch}:${first + 6}`);
      ok.destroy();
      const st = (await httpGet(`${g.base}/stats`)).json;
      assert.ok(st.resume.resets >= 1 && st.resume.hits >= 1, `/stats resume ${JSON.stringify(st.resume)}`);
    } finally {
      await g.stop();
    }
  });
});

describe('auth', () => {
  const SECRET = 'sse-test-secret-0123456789';
  let ag;
  before(async () => { ag = await startGateway({ brokerUrl: broker.url, secret: SECRET }); });
  after(async () => { await ag.stop(); });

  const tokenFor = (claims) => hs256Token(SECRET, claims);
  const expectRefused = async (query, headers, status, code) => {
    const r = await openSse(ag.base, query, { headers });
    if (r.destroy) r.destroy();
    assert.equal(r.status, status, `${query} ${JSON.stringify(headers)}: ${r.status} ${r.body ?? ''}`);
    assert.equal(r.json?.error, code, `body ${r.body}`);
  };

  test('no token, bad signature, alg none, expired, garbage → 401 NOT_AUTHORIZED', async () => {
    const p = uniqueProject();
    const good = tokenFor({ projects: [p] });
    const [h, b] = good.split('.');
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${b}.`;
    await expectRefused(`project=${p}`, {}, 401, 'NOT_AUTHORIZED');
    await expectRefused(`project=${p}`, { authorization: `Bearer ${hs256Token('wrong-secret', { projects: [p] })}` }, 401, 'NOT_AUTHORIZED');
    await expectRefused(`project=${p}`, { authorization: `Bearer ${h}.${b}.AAAA` }, 401, 'NOT_AUTHORIZED');
    await expectRefused(`project=${p}`, { authorization: `Bearer ${none}` }, 401, 'NOT_AUTHORIZED');
    await expectRefused(`project=${p}`, { authorization: `Bearer ${tokenFor({ projects: [p], exp: Math.floor(Date.now() / 1000) - 120 })}` }, 401, 'NOT_AUTHORIZED');
    await expectRefused(`project=${p}&token=not.a.jwt`, {}, 401, 'NOT_AUTHORIZED');
    // WebSocket too.
    const err = await openWs(ag.base, `project=${p}`).then((c) => { c.ws.terminate(); return null; }, (e) => e);
    assert.equal(err?.status, 401);
  });

  test('a valid token through Bearer, the nagare_token cookie or ?token= → 200', async () => {
    const p = uniqueProject();
    const t = tokenFor({ projects: [p] });
    for (const [query, headers] of [
      [`project=${p}`, { authorization: `Bearer ${t}` }],
      [`project=${p}`, { cookie: `other=1; nagare_token=${t}` }],
      [`project=${p}&token=${t}`, {}],
    ]) {
      const c = await openSseWelcomed(ag.base, query, { headers });
      c.destroy();
    }
  });

  test('forbidden project, no projects claim, uncovered subject, private pattern without admin → 403 FORBIDDEN', async () => {
    const p = uniqueProject();
    await expectRefused(`project=${p}`, { authorization: `Bearer ${tokenFor({ projects: ['someone-else'] })}` }, 403, 'FORBIDDEN');
    await expectRefused(`project=${p}`, { authorization: `Bearer ${tokenFor({})}` }, 403, 'FORBIDDEN');
    await expectRefused(`project=${p}&subjects=order.*`,
      { authorization: `Bearer ${tokenFor({ projects: [p], subjects: ['task.*'] })}` }, 403, 'FORBIDDEN');
    await expectRefused(`project=${p}&subjects=audit.*`, { authorization: `Bearer ${tokenFor({ projects: ['*'] })}` }, 403, 'FORBIDDEN');
    const st = (await httpGet(`${ag.base}/stats`)).json;
    assert.ok(st.rejected.forbidden >= 4 && st.rejected.auth >= 1, `/stats rejected ${JSON.stringify(st.rejected)}`);
  });

  test('private subjects reach admin only, whatever the wildcard', async () => {
    const p = uniqueProject();
    const user = await openSseWelcomed(ag.base, `project=${p}&subjects=>`, { headers: { authorization: `Bearer ${tokenFor({ projects: [p] })}` } });
    const admin = await openSseWelcomed(ag.base, `project=${p}&subjects=>`, { headers: { authorization: `Bearer ${tokenFor({ projects: [p], roles: ['admin'] })}` } });
    await publish(broker.url, p, 'audit.login', '{"who":"x"}', { msgId: 'priv-1' });
    await publish(broker.url, p, 'task.public', '{"p":1}', { msgId: 'pub-1' });
    assert.equal((await nextData(user)).json?.msgId, 'pub-1', 'a non-admin got a private event');
    assert.equal((await nextData(admin)).json?.msgId, 'priv-1');
    assert.equal((await nextData(admin)).json?.msgId, 'pub-1');
    user.destroy();
    admin.destroy();
  });
});

describe('overload', () => {
  test('over --connect-rate 1 (burst 2) → 503 OVERLOADED with Retry-After: 1; later accepted again', async () => {
    const g = await startGateway({ brokerUrl: broker.url, args: ['--connect-rate', '1'] });
    try {
      const tries = await Promise.all(Array.from({ length: 6 }, () => openSse(g.base, `project=${uniqueProject()}`)));
      const refused = tries.filter((r) => r.status === 503);
      for (const r of tries) if (r.destroy) r.destroy();
      assert.ok(refused.length >= 3, `statuses ${tries.map((r) => r.status)}`);
      for (const r of refused) {
        assert.equal(r.headers['retry-after'], '1');
        assert.equal(r.json?.error, 'OVERLOADED');
        assert.equal(typeof r.json?.retry_ms, 'number');
      }
      await sleep(2500);
      const later = await openSseWelcomed(g.base, `project=${uniqueProject()}`);
      later.destroy();
    } finally {
      await g.stop();
    }
  });

  test('over --max-connections 2 → 503 OVERLOADED; a slot freed is taken again', async () => {
    const g = await startGateway({ brokerUrl: broker.url, args: ['--max-connections', '2'] });
    try {
      const a = await openSseWelcomed(g.base, `project=${uniqueProject()}`);
      const b = await openWsWelcomed(g.base, `project=${uniqueProject()}`);
      const third = await openSse(g.base, `project=${uniqueProject()}`);
      assert.equal(third.status, 503);
      assert.equal(third.headers['retry-after'], '1');
      assert.equal(third.json?.error, 'OVERLOADED');
      a.destroy();
      let ok = null;
      for (let i = 0; i < 20 && !ok; i++) {
        await sleep(100);
        const r = await openSse(g.base, `project=${uniqueProject()}`);
        if (r.status === 200) ok = r;
      }
      assert.ok(ok, 'the freed slot was not given again within 2 s');
      ok.destroy();
      b.ws.terminate();
    } finally {
      await g.stop();
    }
  });
});
