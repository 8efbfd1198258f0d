'use strict';
// Bad input from one client: protocol errors are reported and the connection
// stays usable; frame-level violations (oversized, invalid UTF-8) close that
// connection with the right code. Other clients are served throughout.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, clientPool } = require('./lib/gateway');

const MAX = 65536;
let gw;
let bystander; // connected all along; must keep being served
const pool = clientPool();

before(async () => {
  gw = await startGateway({ set: [`server.max_message_size=${MAX}`] });
  bystander = await pool.connect(gw);
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
});

async function bystanderServed(label) {
  const ack = await bystander.request('echo', label);
  assert.equal(ack.data, label, `bystander not served after ${label}`);
  assert.ok(gw.alive(), `gateway died after ${label}\n${gw.logs()}`);
}

function assertBadRequestEvent(ev, what) {
  assert.equal(ev.data && ev.data.code, 'bad_request', `${what}: ${JSON.stringify(ev)}`);
  assert.equal(typeof ev.data.message, 'string', `${what}: no message`);
}

// A text frame of exactly `size` bytes holding a valid echo request.
function echoFrame(size) {
  const head = '{"event":"echo","data":"';
  const tail = '"}';
  return head + 'x'.repeat(size - head.length - tail.length) + tail;
}

test('invalid JSON gets an error event with bad_request and the connection stays usable', async () => {
  const c = await pool.connect(gw);
  for (const junk of ['{not json', '', '{"event":"echo",', 'undefined', '{"event":"echo"} trailing']) {
    await c.sendRaw(junk);
    assertBadRequestEvent(await c.next('error'), `payload ${JSON.stringify(junk)}`);
    const ack = await c.request('echo', 'still here');
    assert.equal(ack.data, 'still here', `connection unusable after ${JSON.stringify(junk)}`);
  }
  assert.ok(c.open);
  await bystanderServed('invalid JSON');
});

test('JSON that is not an object is refused with bad_request', async () => {
  const c = await pool.connect(gw);
  for (const v of ['[1,2,3]', '"echo"', '42', 'null', 'true', '[{"event":"echo","id":1}]']) {
    await c.sendRaw(v);
    assertBadRequestEvent(await c.next('error'), v);
  }
  assert.equal((await c.request('echo', 1)).data, 1);
  await bystanderServed('non-object JSON');
});

test('missing or non-string event is bad_request, as an ack error when the id is readable', async () => {
  const c = await pool.connect(gw);
  // No id: error event.
  for (const v of [{ data: 1 }, { event: 42 }, { event: null }, { event: { name: 'echo' } }]) {
    await c.sendRaw(JSON.stringify(v));
    assertBadRequestEvent(await c.next('error'), JSON.stringify(v));
  }
  // Readable id: ack error for that id.
  let id = 1000;
  for (const v of [{ data: 1 }, { event: 42 }, { event: ['echo'] }]) {
    const msg = { ...v, id: ++id };
    await c.sendRaw(JSON.stringify(msg));
    const ack = await c.nextMatching((f) => f.ack === id, `ack ${id}`);
    assert.equal(ack.error && ack.error.code, 'bad_request', `${JSON.stringify(msg)} -> ${JSON.stringify(ack)}`);
    assert.equal(typeof ack.error.message, 'string');
  }
  assert.equal(c.events('error').length, 4, 'no extra error events for acked failures');
  await bystanderServed('bad event field');
});

test('an id that is not a non-negative integer is bad_request and the event is not run', async () => {
  const c = await pool.connect(gw);
  for (const id of ['7', -1, 1.5, true, { n: 1 }, [3]]) {
    const raw = JSON.stringify({ event: 'echo', data: 'must-not-echo', id });
    await c.sendRaw(raw);
    // The id is unusable, so the gateway may answer with an error event or an
    // ack error echoing the raw id; either way the code is bad_request.
    const f = await c.nextMatching((x) => x.event === 'error' || 'ack' in x, `an answer to ${raw}`);
    const code = f.event === 'error' ? f.data && f.data.code : f.error && f.error.code;
    assert.equal(code, 'bad_request', `${raw} -> ${JSON.stringify(f)}`);
  }
  await c.sync();
  const echoed = c.received.filter((f) => (f.event === 'echo' || 'ack' in f) && JSON.stringify(f).includes('must-not-echo'));
  assert.deepEqual(echoed, [], 'a message with a bad id must not reach the handler');
  await bystanderServed('bad id');
});

test('an unknown event is refused with unknown_event', async () => {
  const c = await pool.connect(gw);
  const ack = await c.request('no:such:event', { x: 1 });
  assert.equal(ack.error && ack.error.code, 'unknown_event', JSON.stringify(ack));
  assert.match(ack.error.message, /no:such:event/, 'the message names the event');
  c.send('no:such:event', 1);
  const ev = await c.next('error');
  assert.equal(ev.data.code, 'unknown_event');
  assert.equal((await c.request('echo', 'ok')).data, 'ok');
  await bystanderServed('unknown event');
});

test('a message just under server.max_message_size is accepted, also when fragmented', async () => {
  const c = await pool.connect(gw);
  const frame = echoFrame(MAX - 100);
  await c.sendRaw(frame);
  const ev = await c.next('echo');
  assert.equal(ev.data.length, MAX - 100 - '{"event":"echo","data":""}'.length);

  // Same size in 4 fragments: the gateway reassembles before decoding.
  const q = Math.ceil(frame.length / 4);
  for (let i = 0; i < 4; i++) {
    await c.sendRaw(frame.slice(i * q, (i + 1) * q), { fin: i === 3 });
  }
  const ev2 = await c.next('echo');
  assert.equal(ev2.data, ev.data);
  assert.ok(c.open);
});

test('an oversized text frame closes that connection with 1009', async () => {
  const c = await pool.connect(gw);
  await c.sendRaw(echoFrame(70000));
  const { code } = await c.waitClose();
  assert.equal(code, 1009, `close code; gateway log:\n${gw.logs().slice(-2000)}`);
  await bystanderServed('oversized frame');
});

test('an oversized message sent as fragments closes with 1009', async () => {
  // Each fragment is small; only the total is over the limit.
  const c = await pool.connect(gw);
  const frame = echoFrame(70000);
  const n = 7;
  const q = Math.ceil(frame.length / n);
  try {
    for (let i = 0; i < n; i++) {
      await c.sendRaw(frame.slice(i * q, (i + 1) * q), { fin: i === n - 1 });
    }
  } catch {
    // The gateway may close before the last fragment is written.
  }
  const { code } = await c.waitClose();
  assert.equal(code, 1009, `close code; gateway log:\n${gw.logs().slice(-2000)}`);
  await bystanderServed('oversized fragments');
});

test('an oversized binary frame closes with 1009', async () => {
  const c = await pool.connect(gw);
  await c.sendRaw(Buffer.alloc(70000, 0xab), { binary: true });
  const { code } = await c.waitClose();
  assert.equal(code, 1009);
  await bystanderServed('oversized binary');
});

test('invalid UTF-8 in a text frame closes that connection with 1007', async () => {
  const c = await pool.connect(gw);
  // ws does not validate outgoing text, so these bytes go out as an opcode-1 frame.
  const bad = Buffer.concat([Buffer.from('{"event":"echo","data":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
  await c.sendRaw(bad, { binary: false });
  const { code } = await c.waitClose();
  assert.equal(code, 1007, `close code; gateway log:\n${gw.logs().slice(-2000)}`);
  await bystanderServed('invalid UTF-8');
});

test('invalid UTF-8 split across fragments also closes with 1007', async () => {
  // A truncated multi-byte sequence at the end of the message.
  const c = await pool.connect(gw);
  await c.sendRaw(Buffer.from('{"event":"echo","data":"ab'), { binary: false, fin: false });
  await c.sendRaw(Buffer.from([0xe2, 0x82]), { fin: false });
  await c.sendRaw(Buffer.from('"}'), { fin: true });
  const { code } = await c.waitClose();
  assert.equal(code, 1007);
  await bystanderServed('fragmented invalid UTF-8');
});

test('the gateway is still healthy after all of the above', async () => {
  const fresh = await pool.connect(gw);
  assert.equal((await fresh.request('echo', { after: 'abuse' })).data.after, 'abuse');
  assert.ok(bystander.open, 'the bystander was never disconnected');
  assert.equal(bystander.closeInfo, null);
});
