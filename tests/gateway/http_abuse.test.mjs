// Malformed and hostile HTTP against nagare-gateway: garbage, oversized
// heads, slowloris, piles of half-open connections. The gateway may answer
// 4xx or close, never crash nor hang; after each abuse it still serves
// /status and delivers a real event (assertServes).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertServes, closeAll, httpGet, openSseWelcomed, openWsWelcomed, rawConnect, rawRequest, uniqueProject } from './clients.mjs';
import { publish, sleep, startStack, stopAll } from './servers.mjs';

// docs/gateway.md names no header timeout; this is the bound asserted here (the observed time is printed).
const SLOW_CLOSE_BOUND_MS = 30000;
const REFUSALS = [400, 405, 413, 414, 431, 501, 505];
let broker, gw;

before(async () => {
  ({ broker, gw } = await startStack());
});
after(async () => {
  closeAll();
  await stopAll();
});

// A refusal: a 4xx/5xx answer among REFUSALS, or the connection closed without an answer.
function assertRefused(r, what) {
  if (r.status === null) return;
  assert.ok(REFUSALS.includes(r.status), `${what}: got ${r.status} ${r.body.slice(0, 200)}`);
}

describe('malformed requests', () => {
  const cases = [
    ['garbage request line', 'GARBAGE\r\n\r\n'],
    ['method only', 'GET\r\n\r\n'],
    ['no version', 'GET /status\r\n\r\n'],
    ['HTTP/9.9', 'GET /status HTTP/9.9\r\nHost: x\r\n\r\n'],
    ['binary junk', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 0xff))],
    ['NUL in the target', 'GET /sta\0tus HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['header without a colon', 'GET /status HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n'],
    ['space before the colon', 'GET /status HTTP/1.1\r\nHost : x\r\n\r\n'],
    ['negative Content-Length', 'POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'],
    ['two Content-Lengths', 'POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
    ['bad chunk size', 'POST /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n'],
  ];
  for (const [name, request] of cases) {
    test(`${name} → 4xx or close, never a hang`, async () => {
      const r = await rawRequest(gw.port, request, { timeoutMs: 10000 });
      assertRefused(r, name);
      await assertServes(gw, broker, `after ${name}`);
    });
  }

  // RFC 9112 2.2: a recipient MAY accept a bare LF; either way an answer or a close, quickly.
  test('bare LF line ends → 200, 4xx or close', async () => {
    const r = await rawRequest(gw.port, 'GET /status HTTP/1.1\nHost: x\n\n', { timeoutMs: 10000 });
    if (r.status !== 200) assertRefused(r, 'bare LF');
    await assertServes(gw, broker, 'after bare LF line ends');
  });

  test('a 100 KiB header → 431/400 or close', async () => {
    const r = await rawRequest(gw.port, `GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`);
    assertRefused(r, '100 KiB header');
    assert.notEqual(r.status, 200);
    await assertServes(gw, broker, 'after a 100 KiB header');
  });

  test('4000 small headers → 431/400 or close', async () => {
    let req = 'GET /status HTTP/1.1\r\nHost: x\r\n';
    for (let i = 0; i < 4000; i++) req += `X-H${i}: v\r\n`;
    const r = await rawRequest(gw.port, `${req}\r\n`);
    assertRefused(r, '4000 headers');
    assert.notEqual(r.status, 200);
    await assertServes(gw, broker, 'after 4000 headers');
  });

  test('a 100 KiB request target → 414/431/400 or close', async () => {
    const r = await rawRequest(gw.port, `GET /events?project=${'p'.repeat(100 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertRefused(r, '100 KiB target');
    await assertServes(gw, broker, 'after a 100 KiB target');
  });

  test('a 1 MiB header sent in full, then the socket kept open → refused or closed within 10 s', async () => {
    const r = await rawRequest(gw.port, async (s) => {
      s.write('GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ');
      const chunk = 'b'.repeat(64 * 1024);
      for (let i = 0; i < 16 && !s.destroyed; i++) {
        if (!s.write(chunk)) await new Promise((r2) => { s.once('drain', r2); s.once('close', r2); });
      }
    }, { timeoutMs: 10000 });
    assertRefused(r, '1 MiB header');
    await assertServes(gw, broker, 'after a 1 MiB header');
  });

  test('Content-Length: 10 GB on POST → refused quickly', async () => {
    const r = await rawRequest(gw.port, 'POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\nabc',
      { timeoutMs: 10000 });
    assertRefused(r, 'POST with a 10 GB Content-Length');
    await assertServes(gw, broker, 'after a 10 GB Content-Length');
  });

  test('unknown path → 404 and wrong method → 405, with JSON error bodies', async () => {
    const r404 = await httpGet(`${gw.base}/no/such/path`);
    assert.equal(r404.status, 404);
    assert.equal(typeof r404.json?.error, 'string', `404 body: ${r404.body}`);
    for (const [method, path] of [['POST', '/status'], ['DELETE', '/events?project=x'], ['PUT', '/realtime?project=x']]) {
      const r = await httpGet(`${gw.base}${path}`, { method });
      assert.equal(r.status, 405, `${method} ${path}: ${r.status}`);
      assert.equal(typeof r.json?.error, 'string', `${method} ${path} body: ${r.body}`);
    }
  });

  test('two pipelined requests on one connection get two answers', async () => {
    const s = await rawConnect(gw.port);
    let buf = '';
    s.setEncoding('latin1');
    s.on('data', (d) => { buf += d; });
    s.write('GET /status HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await Promise.race([new Promise((r) => s.once('close', r)), sleep(5000)]);
    s.destroy();
    assert.equal((buf.match(/HTTP\/1\.1 200/g) || []).length, 2, `answers: ${buf.slice(0, 400)}`);
  });
});

describe('slow and idle clients', () => {
  test(`slowloris (a header byte per second) and an idle connection are closed within ${SLOW_CLOSE_BOUND_MS / 1000} s`, async (t) => {
    const slow = rawRequest(gw.port, async (s) => {
      const head = `GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'z'.repeat(200)}`;
      for (let i = 0; i < head.length && !s.destroyed; i++) {
        s.write(head[i]);
        await sleep(1000);
      }
    }, { timeoutMs: SLOW_CLOSE_BOUND_MS + 5000 });
    const idle = rawRequest(gw.port, async () => {}, { timeoutMs: SLOW_CLOSE_BOUND_MS + 5000 });
    // While they linger, the gateway serves others.
    await sleep(2000);
    await assertServes(gw, broker, 'during slowloris');
    const [s, i] = await Promise.all([slow.catch((e) => e), idle.catch((e) => e)]);
    assert.ok(!(s instanceof Error), `slowloris connection: ${s.message}`);
    assert.ok(!(i instanceof Error), `idle connection: ${i.message}`);
    t.diagnostic(`slowloris closed after ${s.elapsedMs} ms (answer ${s.status}), idle after ${i.elapsedMs} ms (answer ${i.status})`);
    console.log(`# observed: slowloris closed after ${s.elapsedMs} ms, idle connection after ${i.elapsedMs} ms`);
    assert.ok(s.closed || s.status !== null);
    assertRefused(s, 'slowloris');
    assert.ok(s.elapsedMs <= SLOW_CLOSE_BOUND_MS, `slowloris lasted ${s.elapsedMs} ms`);
    assert.ok(i.elapsedMs <= SLOW_CLOSE_BOUND_MS, `idle lasted ${i.elapsedMs} ms`);
    await assertServes(gw, broker, 'after slowloris');
  });

  test('300 half-open connections (idle, partial head, request then FIN) do not stop service', async () => {
    const sockets = [];
    let errors = 0;
    for (let i = 0; i < 300; i++) {
      try {
        const s = await rawConnect(gw.port);
        s.on('error', () => {});
        s.on('data', () => {});
        if (i % 3 === 1) s.write('GET /events?project=half HTTP/1.1\r\nHost: x\r\nAccept: text/e');
        if (i % 3 === 2) s.end('GET /status HTTP/1.1\r\nHost: x\r\n\r\n');
        sockets.push(s);
      } catch {
        errors++;
      }
    }
    assert.equal(errors, 0, `${errors} of 300 connections failed`);
    const t0 = Date.now();
    await assertServes(gw, broker, 'with 300 half-open connections');
    // SSE as well, while they are all there.
    const project = uniqueProject();
    const sse = await openSseWelcomed(gw.base, `project=${project}`);
    await publish(broker.url, project, 'half.open', '{"n":1}', { msgId: `half-${project}` });
    let got = null;
    for (let k = 0; k < 5 && !got; k++) {
      const item = await sse.items.next(5000, 'SSE event');
      if (item?.json?.msgId) got = item.json;
    }
    assert.equal(got?.msgId, `half-${project}`);
    sse.destroy();
    assert.ok(Date.now() - t0 < 10000, `serving took ${Date.now() - t0} ms with 300 half-open connections`);
    for (const s of sockets) s.destroy();
    await sleep(200);
    await assertServes(gw, broker, 'after the half-open connections went away');
  });

  test('200 WebSocket clients that vanish without a close frame are forgotten (/stats connections back to 0)', async () => {
    const clients = [];
    for (let i = 0; i < 200; i++) clients.push(await openWsWelcomed(gw.base, `project=${uniqueProject()}`));
    const during = (await httpGet(`${gw.base}/stats`)).json;
    assert.ok(during.connections.websocket >= 200, `/stats during: ${JSON.stringify(during.connections)}`);
    for (const c of clients) c.ws.terminate();
    let now = during;
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      now = (await httpGet(`${gw.base}/stats`)).json;
      if (now.connections.websocket === 0) break;
      await sleep(200);
    }
    assert.equal(now.connections.websocket, 0, `/stats 10 s after 200 abrupt disconnects: ${JSON.stringify(now.connections)}`);
    await assertServes(gw, broker, 'after 200 abrupt WebSocket disconnects');
  });
});
