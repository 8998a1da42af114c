// WebSocket conformance of nagare-gateway (docs/gateway.md "WebSocket
// messages", RFC 6455): the handshake, masking, fragmentation, control
// frames, the close handshake, the close codes the contract names, the
// welcome and the event JSON. Raw frames (RawWs) where a well-behaved client
// cannot misbehave on purpose, the independent `ws` library elsewhere.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  closeAll, httpGet, OP, openSseWelcomed, openWs, openWsWelcomed, parseId, RawWs, uniqueProject, wsAccept,
} from './clients.mjs';
import { publish, publishLines, sleep, startGateway, stopAll, stopChild, startStack } from './servers.mjs';

const ACK_WAIT_MS = 500;
let broker, gw;

before(async () => {
  ({ broker, gw } = await startStack({ args: ['--ack-wait-ms', String(ACK_WAIT_MS)] }));
});
after(async () => {
  closeAll();
  await stopAll();
});

// A raw WebSocket on /realtime that got its 101 and its welcome.
async function rawWelcomed(query = `project=${uniqueProject()}`) {
  const r = await RawWs.connect(gw.port, `/realtime?${query}`);
  assert.equal(r.status, 101, `upgrade refused: ${r.status} ${r.body}`);
  const first = await r.ws.nextMessage(5000);
  assert.ok(first && first.json, `no JSON welcome: ${JSON.stringify(first)}`);
  assert.equal(first.json.type, 'welcome');
  r.ws.welcome = first.json;
  return r.ws;
}

// Asserts the gateway closes `ws` with `code`: a close frame carrying it, answered (RFC 6455 5.5.1) by the
// client's own close frame, then the TCP close.
async function assertClosedWith(ws, codes, what) {
  const want = [].concat(codes);
  const c = await ws.waitClose(5000);
  assert.ok(want.includes(c.code), `${what}: expected close ${want.join('/')}, got ${c.code} "${c.reason}"` +
    (c.socketClosed ? ' (the TCP connection ended without a close frame)' : ''));
  if (!ws.socket.destroyed) ws.sendClose(c.code);
  await Promise.race([ws.closed, sleep(3000).then(() => assert.fail(`${what}: TCP not closed after the close handshake`))]);
}

// Asserts that `ws` is still open and answering: a ping gets its pong.
async function assertAlive(ws, what) {
  const payload = Buffer.from(`alive-${Date.now()}`);
  ws.send(OP.PING, payload);
  for (;;) {
    const f = await ws.nextFrame(3000);
    assert.ok(f !== null, `${what}: connection closed`);
    assert.notEqual(f.opcode, OP.CLOSE, `${what}: closed with ${f.payload.length >= 2 ? f.payload.readUInt16BE(0) : '?'}`);
    if (f.opcode === OP.PONG && f.payload.equals(payload)) return;
  }
}

async function gatewayServes() {
  const r = await httpGet(`${gw.base}/status`);
  assert.equal(r.status, 200);
}

describe('handshake', () => {
  test('101 with the RFC 6455 Sec-WebSocket-Accept, then a welcome first', async () => {
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const r = await RawWs.connect(gw.port, `/realtime?project=${uniqueProject()}`, { headers: { 'Sec-WebSocket-Key': key } });
    assert.equal(r.status, 101);
    assert.equal(r.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.equal(wsAccept(key), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.match(r.headers.upgrade ?? '', /^websocket$/i);
    assert.match(r.headers.connection ?? '', /upgrade/i);
    const first = await r.ws.nextMessage(5000);
    assert.equal(first.json.type, 'welcome');
    assert.equal(first.json.recovered, false);
    assert.equal(typeof first.json.connection, 'string');
    assert.ok(first.json.connection.length > 0);
    assert.match(String(first.json.epoch), /^\d+$/);
    r.ws.destroy();
  });

  test('a random key gets its own accept', async () => {
    const r = await RawWs.connect(gw.port, `/realtime?project=${uniqueProject()}`);
    assert.equal(r.status, 101);
    assert.equal(r.headers['sec-websocket-accept'], wsAccept(r.key));
    r.ws.destroy();
  });

  test('missing Sec-WebSocket-Key → 400', async () => {
    const r = await RawWs.connect(gw.port, `/realtime?project=${uniqueProject()}`, { headers: { 'Sec-WebSocket-Key': null } });
    assert.equal(r.status, 400, `got ${r.status}`);
  });

  test('malformed Sec-WebSocket-Key → 400', async () => {
    for (const key of ['abc', 'not base64 at all!!!!!!!', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
      const r = await RawWs.connect(gw.port, `/realtime?project=${uniqueProject()}`, { headers: { 'Sec-WebSocket-Key': key } });
      assert.equal(r.status, 400, `key ${key}: got ${r.status}`);
    }
  });

  test('wrong or missing Sec-WebSocket-Version → 426 or 400 naming version 13', async () => {
    for (const version of ['12', '8', null]) {
      const r = await RawWs.connect(gw.port, `/realtime?project=${uniqueProject()}`,
        { headers: { 'Sec-WebSocket-Version': version } });
      assert.ok([400, 426].includes(r.status), `version ${version}: got ${r.status}`);
      if (version !== null) {
        // RFC 6455 4.2.2: the answer names the versions the server speaks.
        assert.match(r.headers['sec-websocket-version'] ?? '', /\b13\b/, `version ${version}: no Sec-WebSocket-Version: 13`);
      }
    }
  });

  test('GET /realtime without Upgrade → 400 or 426 with a JSON error', async () => {
    const r = await httpGet(`${gw.base}/realtime?project=${uniqueProject()}`);
    assert.ok([400, 426].includes(r.status), `got ${r.status}`);
    assert.equal(typeof r.json?.error, 'string', `body is not a JSON error: ${r.body}`);
  });

  test('Upgrade: websocket without Connection: Upgrade → no 101', async () => {
    const r = await RawWs.connect(gw.port, `/realtime?project=${uniqueProject()}`, { headers: { Connection: 'keep-alive' } });
    assert.ok([400, 426].includes(r.status), `got ${r.status}`);
  });

  test('bad query → 400 before the upgrade (no project, bad pattern, bad last_id)', async () => {
    const cases = [
      ['subjects=task.*', null],
      [`project=${uniqueProject()}&subjects=task..x`, 'BAD_PATTERN'],
      [`project=${uniqueProject()}&subjects=task.>.x`, 'BAD_PATTERN'],
      [`project=${uniqueProject()}&last_id=banana`, null],
      [`project=${uniqueProject()}&last_id=12:`, null],
    ];
    for (const [query, code] of cases) {
      const err = await openWs(gw.base, query).then((c) => { c.ws.terminate(); return null; }, (e) => e);
      assert.ok(err, `${query}: upgraded`);
      assert.equal(err.status, 400, `${query}: ${err.message}`);
      let body;
      try { body = JSON.parse(err.body); } catch { body = undefined; }
      assert.equal(typeof body?.error, 'string', `${query}: body not a JSON error: ${err.body}`);
      if (code) assert.equal(body.error, code, `${query}`);
    }
  });
});

describe('frames', () => {
  test('an unmasked client frame → close 1002', async () => {
    const ws = await rawWelcomed();
    ws.sendText('{"ack":"nothing"}', { mask: false });
    await assertClosedWith(ws, 1002, 'unmasked frame');
    await gatewayServes();
  });

  test('RSV bits without an extension → close 1002', async () => {
    const ws = await rawWelcomed();
    ws.sendText('{"ack":"nothing"}', { rsv: 4 });
    await assertClosedWith(ws, 1002, 'RSV1 set');
  });

  test('a reserved opcode → close 1002', async () => {
    const ws = await rawWelcomed();
    ws.send(3, Buffer.from('x'));
    await assertClosedWith(ws, 1002, 'opcode 3');
  });

  test('a control frame over 125 bytes or fragmented → close 1002', async () => {
    let ws = await rawWelcomed();
    ws.send(OP.PING, Buffer.alloc(126, 0x61));
    await assertClosedWith(ws, 1002, 'ping of 126 bytes');
    ws = await rawWelcomed();
    ws.send(OP.PING, Buffer.from('ab'), { fin: false });
    await assertClosedWith(ws, 1002, 'fragmented ping');
  });

  test('a continuation frame with nothing to continue → close 1002', async () => {
    const ws = await rawWelcomed();
    ws.send(OP.CONT, Buffer.from('{"ack":"x"}'));
    await assertClosedWith(ws, 1002, 'stray continuation');
  });

  test('ping → pong with the same payload (empty, text, 125 bytes)', async () => {
    const ws = await rawWelcomed();
    for (const payload of [Buffer.alloc(0), Buffer.from('hello-nagare'), Buffer.alloc(125, 0x7a)]) {
      ws.send(OP.PING, payload);
      let pong = null;
      for (let i = 0; i < 10 && !pong; i++) {
        const f = await ws.nextFrame(3000);
        assert.ok(f, 'closed');
        if (f.opcode === OP.PONG) pong = f;
        else assert.notEqual(f.opcode, OP.CLOSE);
      }
      assert.ok(pong, 'no pong');
      assert.ok(pong.payload.equals(payload), `pong payload ${pong.payload.toString('hex')} for ${payload.toString('hex')}`);
      assert.equal(pong.masked, false, 'server frames must not be masked');
    }
    ws.destroy();
  });

  test('an unsolicited pong is ignored', async () => {
    const ws = await rawWelcomed();
    ws.send(OP.PONG, Buffer.from('unsolicited'));
    await assertAlive(ws, 'after an unsolicited pong');
    ws.destroy();
  });

  test('close 1000 from the client is echoed, then the TCP close', async () => {
    const ws = await rawWelcomed();
    ws.sendClose(1000, 'bye');
    const c = await ws.waitClose(5000);
    assert.equal(c.code, 1000, `echoed ${c.code}`);
    assert.equal(c.frame.masked, false);
    await Promise.race([ws.closed, sleep(3000).then(() => assert.fail('TCP not closed'))]);
  });

  test('close with an invalid code (1005, 999) → close 1002', async () => {
    for (const code of [1005, 999]) {
      const ws = await rawWelcomed();
      ws.sendClose(code);
      await assertClosedWith(ws, 1002, `close ${code}`);
    }
  });

  test('invalid UTF-8 in a text message → close 1007', async () => {
    let ws = await rawWelcomed();
    ws.send(OP.TEXT, Buffer.from([0x7b, 0x22, 0x61, 0xff, 0xfe, 0x22, 0x7d]));
    await assertClosedWith(ws, 1007, 'invalid UTF-8');
    // Split inside a multi-byte sequence across fragments is valid; an overlong encoding is not.
    ws = await rawWelcomed();
    ws.send(OP.TEXT, Buffer.from([0x7b, 0x22, 0x61, 0x63, 0x6b, 0x22, 0x3a, 0x22, 0xc3]), { fin: false });
    ws.send(OP.CONT, Buffer.from([0xa9, 0x22, 0x7d]));
    await assertAlive(ws, 'UTF-8 sequence split over fragments');
    ws.send(OP.TEXT, Buffer.from([0x22, 0xc0, 0xaf, 0x22]));
    await assertClosedWith(ws, 1007, 'overlong UTF-8');
  });

  test('a message over 64 KiB → close 1009 (one frame, and in fragments); 64 KiB is accepted', async () => {
    const ack = (bytes) => {
      const pad = 'x'.repeat(bytes - '{"ack":""}'.length);
      return `{"ack":"${pad}"}`;
    };
    let ws = await rawWelcomed();
    ws.sendText(ack(65536));
    await assertAlive(ws, '64 KiB ack (unknown msgId, ignored)');
    ws.sendText(ack(65537));
    await assertClosedWith(ws, 1009, '64 KiB + 1');
    // The limit is crossed while the client is still sending: the 1009 must not be lost to a TCP reset.
    const big = Buffer.from(ack(100 * 1024));
    for (let i = 0; i < 10; i++) {
      ws = await rawWelcomed();
      ws.socket.on('error', () => {});
      ws.send(OP.TEXT, big.subarray(0, 40000), { fin: false });
      ws.send(OP.CONT, big.subarray(40000, 80000), { fin: false });
      ws.send(OP.CONT, big.subarray(80000), { fin: true });
      await assertClosedWith(ws, 1009, `100 KiB in three fragments (attempt ${i + 1} of 10)`);
    }
  });

  test('bad JSON or an unknown message → close 1008; an ack of an unknown msgId is ignored', async () => {
    const bad = ['{"ack":', 'hello', '{"hello":1}', '{"ack":42}', '[]', '{"ack":{"id":"x"}}', '{"type":"subscribe"}'];
    for (const text of bad) {
      const ws = await rawWelcomed();
      ws.sendText(text);
      await assertClosedWith(ws, 1008, `message ${text}`);
    }
    const ws = await rawWelcomed();
    ws.sendText('{"ack":"01NOSUCHMSGID"}');
    ws.sendText('{"ack":["01NOSUCH1","01NOSUCH2"]}');
    await assertAlive(ws, 'acks of unknown msgIds');
    ws.destroy();
  });

  test('a binary message → close 1008 (or 1003, unsupported data)', async () => {
    const ws = await rawWelcomed();
    ws.send(OP.BINARY, Buffer.from('{"ack":"x"}'));
    await assertClosedWith(ws, [1008, 1003], 'binary message');
  });
});

describe('events', () => {
  test('events are JSON per the contract, id E:O with the welcome epoch, filtered by subject', async () => {
    const project = uniqueProject();
    const c = await openWsWelcomed(gw.base, `project=${project}&subjects=task.*`);
    const epoch = String(c.welcome.epoch);
    await publish(broker.url, project, 'task.updated', '{"title":"write tests","n":1}', { msgId: 'conf-m1' });
    await publish(broker.url, project, 'order.created', '{"skip":true}', { msgId: 'conf-m2' });
    await publish(broker.url, uniqueProject(), 'task.updated', '{"other":"project"}', { msgId: 'conf-m3' });
    await publish(broker.url, project, 'task.done', 'plain text, not JSON', { msgId: 'conf-m4' });
    await publishLines(broker.url, project, 'task.bytes', [Buffer.from([0xff, 0xfe, 0x41, 0x42])]);

    // Every event acked (ack_wait is short here), so nothing is resent.
    const next = async (what) => {
      const m = (await c.messages.next(5000, what)).json;
      if (m?.msgId) c.ws.send(JSON.stringify({ ack: m.msgId }));
      return m;
    };
    const e1 = await next('event 1');
    assert.equal(e1.event, 'task.updated');
    assert.equal(e1.msgId, 'conf-m1');
    assert.equal(e1.project, project);
    assert.deepEqual(e1.payload, { title: 'write tests', n: 1 });
    assert.equal(e1.redelivered, undefined);
    assert.match(e1.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Math.abs(Date.parse(e1.timestamp) - Date.now()) < 60000, `timestamp ${e1.timestamp}`);
    const id1 = parseId(e1.id);
    assert.equal(id1.epoch, epoch, 'event epoch differs from the welcome epoch');

    const e2 = await next('event 2');
    assert.equal(e2.msgId, 'conf-m4', `order.created or another project leaked: ${JSON.stringify(e2)}`);
    assert.equal(e2.event, 'task.done');
    assert.equal(e2.payload, 'plain text, not JSON');
    assert.ok(parseId(e2.id).offset > id1.offset, `ids do not grow: ${e1.id} then ${e2.id}`);

    const e3 = await next('event 3');
    assert.equal(e3.event, 'task.bytes');
    assert.equal(e3.encoding, 'base64');
    assert.equal(e3.payload, Buffer.from([0xff, 0xfe, 0x41, 0x42]).toString('base64'));
    assert.ok(parseId(e3.id).offset > parseId(e2.id).offset);

    const extra = await c.messages.drain(2 * ACK_WAIT_MS);
    assert.deepEqual(extra.map((m) => m.text), [], 'unexpected extra messages');
    c.ws.close(1000);
  });

  test('a fragmented ack (with a ping between the fragments) is accepted: no resend, counted', async () => {
    const project = uniqueProject();
    const ws = await rawWelcomed(`project=${project}&subjects=task.*`);
    const acksBefore = (await httpGet(`${gw.base}/stats`)).json?.acks ?? 0;
    await publish(broker.url, project, 'task.frag', '{"frag":true}', { msgId: 'conf-frag-1' });
    const m = await ws.nextMessage(5000);
    assert.equal(m.json?.msgId, 'conf-frag-1', `got ${m.text}`);
    const text = Buffer.from(JSON.stringify({ ack: m.json.msgId }));
    ws.send(OP.TEXT, text.subarray(0, 4), { fin: false });
    ws.send(OP.PING, Buffer.from('mid'));
    ws.send(OP.CONT, text.subarray(4, 9), { fin: false });
    ws.send(OP.CONT, text.subarray(9), { fin: true });
    // Nothing but the pong for 3 × ack_wait: no resend, no close.
    const deadline = Date.now() + 3 * ACK_WAIT_MS;
    let pong = false;
    while (Date.now() < deadline) {
      let f;
      try { f = await ws.nextFrame(deadline - Date.now()); } catch { break; }
      assert.ok(f, 'closed after a fragmented ack');
      if (f.opcode === OP.PONG) { pong = pong || f.payload.toString() === 'mid'; continue; }
      assert.fail(`unexpected frame after the ack: opcode ${f.opcode} ${f.payload.toString()}`);
    }
    assert.ok(pong, 'no pong for the ping between the fragments');
    const acksAfter = (await httpGet(`${gw.base}/stats`)).json?.acks;
    assert.ok(acksAfter >= acksBefore + 1, `/stats acks ${acksBefore} → ${acksAfter}`);
    ws.destroy();
  });

  test('an unacked event is resent after ack_wait (the fragmented-ack test above is not vacuous)', async () => {
    const project = uniqueProject();
    const ws = await rawWelcomed(`project=${project}&subjects=task.*`);
    await publish(broker.url, project, 'task.frag', '{"frag":false}', { msgId: 'conf-frag-2' });
    const m = await ws.nextMessage(5000);
    assert.equal(m.json?.msgId, 'conf-frag-2');
    const again = await ws.nextMessage(ACK_WAIT_MS * 4);
    assert.equal(again.json?.msgId, 'conf-frag-2');
    assert.equal(again.json?.redelivered, 1);
    ws.destroy();
  });
});

describe('liveness and shutdown', () => {
  test('pings every heartbeat_ms; a client that never pongs is closed within 2 intervals (+ slack)', async () => {
    const hb = await startGateway({ brokerUrl: broker.url, args: ['--heartbeat-ms', '200'] });
    try {
      const r = await RawWs.connect(hb.port, `/realtime?project=${uniqueProject()}`);
      assert.equal(r.status, 101);
      const ws = r.ws;
      const t0 = Date.now();
      let pings = 0;
      let firstPingAt = null;
      let closedAt = null;
      while (Date.now() - t0 < 5000) {
        const f = await ws.nextFrame(5000 - (Date.now() - t0), { keepPings: true, autoPong: false }).catch(() => null);
        if (f === null || f.opcode === OP.CLOSE) { closedAt = Date.now(); break; }
        if (f.opcode === OP.PING) { pings++; firstPingAt ??= Date.now(); }
      }
      assert.ok(pings >= 1, 'no ping within 5 s with --heartbeat-ms 200');
      assert.ok(closedAt !== null, 'a client that never answers pings is still open after 5 s');
      // Contract: closed when no pong within 2 intervals (400 ms); allow one more interval and scheduling slack.
      assert.ok(closedAt - firstPingAt <= 1200, `closed ${closedAt - firstPingAt} ms after the first unanswered ping`);

      // The `ws` library answers pings: such a client stays open.
      const c = await openWsWelcomed(hb.base, `project=${uniqueProject()}`);
      let pinged = 0;
      c.ws.on('ping', () => { pinged++; });
      await sleep(1500);
      assert.equal(c.ws.readyState, 1, 'a client that pongs was closed');
      assert.ok(pinged >= 3, `only ${pinged} pings in 1.5 s with --heartbeat-ms 200`);
      c.ws.close(1000);
    } finally {
      await hb.stop();
    }
  });

  test('SIGTERM: WebSocket clients get close 1001, SSE streams end, exit code 0', async () => {
    const g = await startGateway({ brokerUrl: broker.url });
    const c = await openWsWelcomed(g.base, `project=${uniqueProject()}`);
    const sse = await openSseWelcomed(g.base, `project=${uniqueProject()}`);
    const exited = new Promise((resolve) => g.child.once('exit', (code, signal) => resolve({ code, signal })));
    g.child.kill('SIGTERM');
    const closed = await Promise.race([c.closed, sleep(6000).then(() => null)]);
    assert.ok(closed, 'WebSocket not closed within 6 s of SIGTERM');
    assert.equal(closed.code, 1001, `close ${closed.code} ${closed.reason}`);
    const ended = await Promise.race([sse.ended.then(() => true), sleep(6000).then(() => false)]);
    assert.ok(ended, 'SSE stream not ended within 6 s of SIGTERM');
    const exit = await Promise.race([exited, sleep(6000).then(() => null)]);
    assert.ok(exit, 'gateway did not exit within 6 s of SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    await stopChild(g.child, 'SIGKILL');
  });
});
