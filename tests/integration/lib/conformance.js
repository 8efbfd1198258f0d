'use strict';
// The gateway's own WebSocket conformance cases, numbered like the Autobahn TestSuite's
// server cases (groups 1-7, and 9 for limits), run over raw TCP (lib/wsraw.js) against
// the real binary at /ws. Expectations follow RFC 6455 and Autobahn's:
//   - a protocol error fails the connection with a close frame carrying 1002, invalid UTF-8
//     in a text message (or a close reason) with 1007, a message over the limit with 1009;
//   - pings are answered with a pong carrying the same payload; unsolicited pongs are ignored;
//   - a close is answered with a close (the code echoed, or 1000) and nothing after it.
// Where Autobahn expects the server to echo a message, /ws answers in its own JSON protocol:
// a text message {"event":"echo","data":D,"id":N} comes back as {"ack":N,"data":D}, a binary
// message comes back as the same bytes (the echo plugin of the default policy). A text
// message that is valid UTF-8 but not a JSON envelope gets an "error" event and the
// connection stays open: that is what "accepted" means there.
//
// KNOWN lists the cases that fail today because of a known defect (issue 12 item 11, or found
// by this harness); they are run and reported but do not fail the test. Delete an entry when
// its fix lands (the run says "KNOWN but passes" for it, unless it is marked intermittent).

const { OP, frame, closePayload, connectRaw } = require('./wsraw');

const KNOWN = new Map([
  // found by this harness (not in issue 12's list): lws drops the TCP connection without the
  // close frame RFC 6455 §7.1.7 asks for, or handles data that came after the client's close
  ['2.5', 'found by the harness: a ping over 125 bytes drops the connection without a close 1002'],
  ['7.3.6', 'found by the harness: a close payload over 125 bytes drops the connection without a close 1002'],
  ['7.5.1', 'found by the harness: a close reason that is not UTF-8 drops the connection without a close 1007'],
  ['7.1.4', 'intermittent, found by the harness: a text message after the client\'s close is still handled (acked)'],
  ['7.1.5', 'intermittent, found by the harness: a message completed after the client\'s close is still handled (acked)'],
  // intermittent: an entry whose reason starts with "intermittent" passes some runs
  ['2.10', 'intermittent, found by the harness: of 10 pings in one burst the latest is often never answered (RFC 6455 §5.5.3)'],
  ['7.1.1', 'intermittent, found by the harness: the close reply can overtake the ack of the message sent just before the close'],
  ['7.1.6', 'intermittent, found by the harness: a 256 KiB message, a ping and a close sent together: about 1 run in 8 the connection ends with nothing sent back (no ack, no pong, no close)'],
]);

class CaseFailure extends Error {}
function fail(msg) { throw new CaseFailure(msg); }

let seq = 0;
const envelope = (data, id) => JSON.stringify({ event: 'echo', data, id });

// A text message of exactly `size` bytes that is an echo request with id.
function envelopeOfSize(size, id) {
  const base = envelope('', id);
  if (size < base.length) throw new Error(`no envelope of ${size} bytes`);
  return envelope('*'.repeat(size - base.length), id);
}

function describe(f) {
  if (!f) return 'nothing';
  if (f.type === 'text') return `text ${f.data.toString('utf8').slice(0, 80)}`;
  if (f.type === 'close') return `close ${f.data.length >= 2 ? f.data.readUInt16BE(0) : '(no code)'}`;
  return `${f.type} (${f.data.length} bytes)`;
}

// Events the gateway sends on its own (connection:quality, ...): not answers to a case. An
// "error" event is an answer (to a message that is not an envelope).
function unsolicited(f) {
  if (f.opcode !== OP.TEXT) return false;
  let m;
  try { m = JSON.parse(f.payload.toString('utf8')); } catch { return false; }
  return m !== null && typeof m === 'object' && typeof m.event === 'string' && m.event !== 'error' && m.ack === undefined;
}

// ---- expectations -----------------------------------------------------------------------

async function expectAck(c, id, data) {
  const m = await c.nextMessage();
  if (!m || m.type !== 'text' || !m.json || m.json.ack !== id) fail(`expected the ack ${id}, got ${describe(m)}`);
  if (data !== undefined) {
    const want = Buffer.from(data, 'utf8');
    const got = Buffer.from(String(m.json.data), 'utf8');
    if (typeof m.json.data !== 'string' || !got.equals(want)) fail(`ack ${id} data differs: ${JSON.stringify(m.json.data).slice(0, 80)}`);
  }
}

/** Sends an echo request and waits for its ack: the connection is open and in sync. */
async function expectAlive(c) {
  const id = 1000 + (++seq % 1000);
  c.send({ opcode: OP.TEXT, payload: envelope('alive', id) });
  await expectAck(c, id, 'alive');
}

async function expectBinaryEcho(c, bytes) {
  const m = await c.nextMessage();
  if (!m || m.type !== 'binary') fail(`expected a binary echo, got ${describe(m)}`);
  if (!m.data.equals(bytes)) fail(`binary echo differs (${m.data.length} bytes back for ${bytes.length})`);
}

/** A valid message that is not an envelope: an error event, and the connection stays open. */
async function expectErrorEvent(c) {
  const m = await c.nextMessage();
  if (!m || m.type !== 'text' || !m.json || m.json.event !== 'error') fail(`expected an error event, got ${describe(m)}`);
  await expectAlive(c);
}

async function expectPong(c, payload) {
  const m = await c.nextMessage();
  if (!m || m.type !== 'pong') fail(`expected a pong, got ${describe(m)}`);
  const want = Buffer.isBuffer(payload) ? payload : Buffer.from(payload || '');
  if (!m.data.equals(want)) fail(`pong payload differs (${m.data.length} bytes for ${want.length})`);
}

/** Pongs for pings payload-0..payload-(n-1) sent in a row: in order, and the last one answered
 * (RFC 6455 §5.5.3 lets a busy endpoint answer only the most recent of several pings). */
async function expectPongsUpTo(c, n) {
  let last = -1;
  while (last < n - 1) {
    const m = await c.nextMessage();
    if (!m || m.type !== 'pong') fail(`expected a pong for payload-${n - 1} (last: ${last}; server pings ${c.serverPings}), got ${describe(m)}`);
    const k = Number((/^payload-(\d+)$/.exec(m.data.toString()) || [])[1]);
    if (!(k > last)) fail(`pong "${m.data.toString().slice(0, 40)}" out of order or unknown`);
    last = k;
  }
}

/** The ack of an echo sent just before a violation: it may be lost when the violation came in
 * the same read (Autobahn grades that "non-strict"); then the connection must fail. */
async function maybeAckThenFail(c, id, data, code) {
  const m = await c.nextMessage(4000);
  if (m && !(m.type === 'text' && m.json && m.json.ack === id)) c.frames.unshift(m.frame);
  if (m && m.type === 'text' && m.json && m.json.ack === id && m.json.data !== data) fail(`ack ${id} data differs`);
  await expectFail(c, code);
}

/** The server fails the connection: a close frame with `code`, then the TCP connection ends. */
async function expectFail(c, code) {
  for (;;) {
    const m = await c.nextMessage(4000);
    if (!m) fail(c.closed ? `the connection was dropped without a close frame (expected ${code})` : `no close ${code}: the connection stays open`);
    if (m.type === 'close') break;
    if (m.type === 'pong' || m.type === 'text' || m.type === 'binary') {
      fail(`expected close ${code}, got ${describe(m)} first`);
    }
  }
  const got = c.closeFrame.code;
  if (got !== code) fail(`expected close ${code}, got close ${got === null ? '(no code)' : got}`);
  c.sock.end();
  if (!(await c.waitClosed(3000))) fail('the server did not close the TCP connection after its close');
}

/** After the client's close: a close back (code one of `codes`), nothing else, then TCP end. */
async function expectCloseReply(c, codes) {
  const m = await c.nextMessage(4000);
  if (!m || m.type !== 'close') fail(`expected a close reply, got ${describe(m)}`);
  const got = c.closeFrame.code;
  if (!codes.includes(got)) fail(`expected close ${codes.join(' or ')}, got ${got === null ? '(no code)' : got}`);
  const extra = await c.nextMessage(300);
  if (extra) fail(`${describe(extra)} after the close`);
  c.sock.end();
  if (!(await c.waitClosed(3000))) fail('the server did not close the TCP connection');
}

// ---- the cases ----------------------------------------------------------------------------

const cases = [];
const add = (id, desc, run) => cases.push({ id, desc, run });
const delay = (ms) => new Promise((r) => setTimeout(r, ms));
const chop = (c, buf, size = 1, gap = 0) => c.writeChunked(buf, size, gap);

// 1: framing, text and binary of the sizes at the length-encoding boundaries
const SIZES = [0, 125, 126, 127, 128, 65535, 65536];
SIZES.forEach((n, i) => {
  add(`1.1.${i + 1}`, `text message of ${n} bytes`, async (c) => {
    if (n === 0) {
      c.send({ opcode: OP.TEXT, payload: '' });
      await expectErrorEvent(c);
      return;
    }
    c.send({ opcode: OP.TEXT, payload: envelopeOfSize(n, 1) });
    await expectAck(c, 1, '*'.repeat(n - envelope('', 1).length));
  });
});
add('1.1.8', 'text message of 65536 bytes written in 997-byte chunks', async (c) => {
  await chop(c, frame({ opcode: OP.TEXT, payload: envelopeOfSize(65536, 1) }), 997);
  await expectAck(c, 1);
});
SIZES.forEach((n, i) => {
  add(`1.2.${i + 1}`, `binary message of ${n} bytes`, async (c) => {
    const b = Buffer.alloc(n, 0xfe);
    c.send({ opcode: OP.BINARY, payload: b });
    await expectBinaryEcho(c, b);
  });
});
add('1.2.8', 'binary message of 65536 bytes written in 997-byte chunks', async (c) => {
  const b = Buffer.alloc(65536, 0xfe);
  await chop(c, frame({ opcode: OP.BINARY, payload: b }), 997);
  await expectBinaryEcho(c, b);
});
add('1.3.1', 'unmasked text frame from the client', async (c) => {
  c.send({ opcode: OP.TEXT, payload: envelope('x', 1), mask: false });
  await expectFail(c, 1002);
});
add('1.3.2', 'unmasked binary frame from the client', async (c) => {
  c.send({ opcode: OP.BINARY, payload: Buffer.from([1, 2, 3]), mask: false });
  await expectFail(c, 1002);
});
add('1.3.3', 'unmasked ping from the client (no data frame after it)', async (c) => {
  c.send({ opcode: OP.PING, payload: 'p', mask: false });
  // lws may answer the ping before the guard's close: a pong first is allowed, a close 1002 must follow
  for (;;) {
    const m = await c.nextMessage(4000);
    if (!m) fail(c.closed ? 'the connection was dropped without a close frame (expected 1002)' : 'no close 1002: the connection stays open');
    if (m.type === 'close') break;
    if (m.type !== 'pong') fail(`expected close 1002, got ${describe(m)} first`);
  }
  if (c.closeFrame.code !== 1002) fail(`expected close 1002, got close ${c.closeFrame.code}`);
});
add('1.3.4', 'a masked text then an unmasked one in the same write: the first is answered, the second closes 1002', async (c) => {
  c.sock.write(Buffer.concat([frame({ opcode: OP.TEXT, payload: envelope('x', 1) }),
    frame({ opcode: OP.TEXT, payload: envelope('y', 2), mask: false })]));
  const first = await c.nextMessage(4000);
  if (!first || first.type !== 'text' || !String(first.data).includes('"ack":1')) fail(`expected the ack of the masked text, got ${describe(first)}`);
  await expectFail(c, 1002);
});

// 2: pings and pongs
add('2.1', 'ping without payload', async (c) => { c.send({ opcode: OP.PING }); await expectPong(c, ''); });
add('2.2', 'ping with a small text payload', async (c) => {
  c.send({ opcode: OP.PING, payload: 'Hello, world!' });
  await expectPong(c, 'Hello, world!');
});
add('2.3', 'ping with a small binary payload', async (c) => {
  const p = Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]);
  c.send({ opcode: OP.PING, payload: p });
  await expectPong(c, p);
});
add('2.4', 'ping with a 125-byte binary payload', async (c) => {
  const p = Buffer.alloc(125, 0xfe);
  c.send({ opcode: OP.PING, payload: p });
  await expectPong(c, p);
});
add('2.5', 'ping with a 126-byte payload (control frames hold at most 125)', async (c) => {
  c.send({ opcode: OP.PING, payload: Buffer.alloc(126, 0xfe) });
  await expectFail(c, 1002);
});
add('2.6', 'ping with a 125-byte payload written one byte at a time', async (c) => {
  const p = Buffer.alloc(125, 0xfe);
  await chop(c, frame({ opcode: OP.PING, payload: p }), 1);
  await expectPong(c, p);
});
add('2.7', 'unsolicited pong without payload', async (c) => { c.send({ opcode: OP.PONG }); await expectAlive(c); });
add('2.8', 'unsolicited pong with payload', async (c) => {
  c.send({ opcode: OP.PONG, payload: 'unsolicited pong payload' });
  await expectAlive(c);
});
add('2.9', 'unsolicited pong, then a ping', async (c) => {
  c.send({ opcode: OP.PONG, payload: 'unsolicited pong payload' });
  c.send({ opcode: OP.PING, payload: 'ping payload' });
  await expectPong(c, 'ping payload');
});
add('2.10', '10 pings, each answered', async (c) => {
  for (let i = 0; i < 10; i++) c.send({ opcode: OP.PING, payload: `payload-${i}` });
  await expectPongsUpTo(c, 10);
});
add('2.11', '10 pings written one byte at a time', async (c) => {
  const all = [];
  for (let i = 0; i < 10; i++) all.push(frame({ opcode: OP.PING, payload: `payload-${i}` }));
  await chop(c, Buffer.concat(all), 1);
  await expectPongsUpTo(c, 10);
});

// 3: reserved bits (no extension is negotiated, so any set bit is a protocol error)
add('3.1', 'text with RSV = 1', async (c) => {
  c.send({ opcode: OP.TEXT, rsv: 1, payload: envelope('x', 1) });
  await expectFail(c, 1002);
});
add('3.2', 'echo, then text with RSV = 2, then ping', async (c) => {
  c.send({ opcode: OP.TEXT, payload: envelope('x', 1) });
  c.send({ opcode: OP.TEXT, rsv: 2, payload: envelope('y', 2) });
  c.send({ opcode: OP.PING });
  await maybeAckThenFail(c, 1, 'x', 1002);
});
add('3.3', 'echo, then text with RSV = 3, then ping, frame by frame', async (c) => {
  c.send({ opcode: OP.TEXT, payload: envelope('x', 1) });
  await delay(10);
  c.send({ opcode: OP.TEXT, rsv: 3, payload: envelope('y', 2) });
  await delay(10);
  c.send({ opcode: OP.PING });
  await maybeAckThenFail(c, 1, 'x', 1002);
});
add('3.4', 'echo, then text with RSV = 4, then ping, one byte at a time', async (c) => {
  await chop(c, Buffer.concat([frame({ opcode: OP.TEXT, payload: envelope('x', 1) }),
    frame({ opcode: OP.TEXT, rsv: 4, payload: envelope('y', 2) }), frame({ opcode: OP.PING })]), 1);
  await maybeAckThenFail(c, 1, 'x', 1002);
});
add('3.5', 'binary with RSV = 5', async (c) => {
  c.send({ opcode: OP.BINARY, rsv: 5, payload: Buffer.from([1, 2, 3]) });
  await expectFail(c, 1002);
});
add('3.6', 'ping with RSV = 6', async (c) => {
  c.send({ opcode: OP.PING, rsv: 6, payload: 'ping' });
  await expectFail(c, 1002);
});
add('3.7', 'close with RSV = 7', async (c) => {
  c.send({ opcode: OP.CLOSE, rsv: 7, payload: closePayload(1000) });
  await expectFail(c, 1002);
});

// 4: reserved opcodes
[[1, 3, false, false], [2, 4, true, false], [3, 5, false, true], [4, 6, true, true], [5, 7, true, 'chop']]
  .forEach(([n, op, payload, after]) => {
    add(`4.1.${n}`, `reserved data opcode ${op}${payload ? ' with payload' : ''}${after ? ' after an echo, then ping' : ''}`, async (c) => {
      const bytes = [];
      if (after) bytes.push(frame({ opcode: OP.TEXT, payload: envelope('x', 1) }));
      bytes.push(frame({ opcode: op, payload: payload ? 'reserved opcode payload' : '' }));
      if (after) bytes.push(frame({ opcode: OP.PING }));
      if (after === 'chop') await chop(c, Buffer.concat(bytes), 1);
      else c.write(Buffer.concat(bytes));
      if (after) await maybeAckThenFail(c, 1, 'x', 1002);
      else await expectFail(c, 1002);
    });
  });
[[1, 11, false, false], [2, 12, true, false], [3, 13, false, true], [4, 14, true, true], [5, 15, true, 'chop']]
  .forEach(([n, op, payload, after]) => {
    add(`4.2.${n}`, `reserved control opcode ${op}${payload ? ' with payload' : ''}${after ? ' after an echo, then ping' : ''}`, async (c) => {
      const bytes = [];
      if (after) bytes.push(frame({ opcode: OP.TEXT, payload: envelope('x', 1) }));
      bytes.push(frame({ opcode: op, payload: payload ? 'reserved opcode payload' : '' }));
      if (after) bytes.push(frame({ opcode: OP.PING }));
      if (after === 'chop') await chop(c, Buffer.concat(bytes), 1);
      else c.write(Buffer.concat(bytes));
      if (after) await maybeAckThenFail(c, 1, 'x', 1002);
      else await expectFail(c, 1002);
    });
  });

// 5: fragmentation
// How the bytes go out: 'frames' at once, 'chop' one byte at a time, 'slow' frame by frame 20 ms apart.
async function sendAs(c, frames, how) {
  if (how === 'chop') await chop(c, Buffer.concat(frames), 1);
  else if (how === 'slow') for (const f of frames) { c.write(f); await delay(20); }
  else c.write(Buffer.concat(frames));
}
function fragments(text, n, opcode = OP.TEXT) {
  const b = Buffer.from(text);
  const out = [];
  const step = Math.ceil(b.length / n);
  for (let i = 0, k = 0; i < b.length || k === 0; i += step, k++) {
    const last = i + step >= b.length;
    out.push(frame({ opcode: k === 0 ? opcode : OP.CONT, fin: last, payload: b.subarray(i, i + step) }));
  }
  return out;
}
add('5.1', 'ping in 2 fragments', async (c) => {
  c.write(Buffer.concat([frame({ opcode: OP.PING, fin: false, payload: 'frag1' }), frame({ opcode: OP.CONT, payload: 'frag2' })]));
  await expectFail(c, 1002);
});
add('5.2', 'pong in 2 fragments', async (c) => {
  c.write(Buffer.concat([frame({ opcode: OP.PONG, fin: false, payload: 'frag1' }), frame({ opcode: OP.CONT, payload: 'frag2' })]));
  await expectFail(c, 1002);
});
[['5.3', 'frames'], ['5.4', 'chop'], ['5.5', 'slow']].forEach(([id, how]) => {
  add(id, `text message in 2 fragments (${how})`, async (c) => {
    await sendAs(c, fragments(envelope('fragmented', 1), 2), how);
    await expectAck(c, 1, 'fragmented');
  });
});
[['5.6', 'frames'], ['5.7', 'chop'], ['5.8', 'slow']].forEach(([id, how]) => {
  add(id, `text message in 2 fragments with a ping between (${how})`, async (c) => {
    const [a, b] = fragments(envelope('fragmented', 1), 2);
    await sendAs(c, [a, frame({ opcode: OP.PING, payload: 'between' }), b], how);
    // the pong and the ack, in either order (the RFC asks for the pong "as soon as practical")
    const m1 = await c.nextMessage();
    if (m1 && m1.type === 'pong') {
      c.frames.unshift(m1.frame);
      await expectPong(c, 'between');
      await expectAck(c, 1, 'fragmented');
    } else {
      if (m1) c.frames.unshift(m1.frame);
      await expectAck(c, 1, 'fragmented');
      await expectPong(c, 'between');
    }
  });
});
[['5.9', 'frames'], ['5.10', 'chop'], ['5.11', 'slow']].forEach(([id, how]) => {
  add(id, `continuation (FIN) with no message started, then a text (${how})`, async (c) => {
    await sendAs(c, [frame({ opcode: OP.CONT, payload: 'non-continuation payload' }),
      frame({ opcode: OP.TEXT, payload: envelope('x', 1) })], how);
    await expectFail(c, 1002);
  });
});
[['5.12', 'frames'], ['5.13', 'chop'], ['5.14', 'slow']].forEach(([id, how]) => {
  add(id, `continuation (no FIN) with no message started, then a text (${how})`, async (c) => {
    await sendAs(c, [frame({ opcode: OP.CONT, fin: false, payload: 'non-continuation payload' }),
      frame({ opcode: OP.TEXT, payload: envelope('x', 1) })], how);
    await expectFail(c, 1002);
  });
});
add('5.15', 'a fragmented text, then a continuation with no message started', async (c) => {
  c.write(Buffer.concat([...fragments(envelope('first', 1), 2),
    frame({ opcode: OP.CONT, fin: false, payload: 'fragment3' }), frame({ opcode: OP.TEXT, payload: 'fragment4' })]));
  await maybeAckThenFail(c, 1, 'first', 1002);
});
add('5.16', 'continuations with no message started, twice', async (c) => {
  const seqf = [frame({ opcode: OP.CONT, fin: false, payload: 'fragment1' }), frame({ opcode: OP.TEXT, fin: false, payload: 'fragment2' }),
    frame({ opcode: OP.CONT, payload: 'fragment3' })];
  c.write(Buffer.concat([...seqf, ...seqf]));
  await expectFail(c, 1002);
});
add('5.17', 'continuations (FIN) with no message started, twice', async (c) => {
  const seqf = [frame({ opcode: OP.CONT, payload: 'fragment1' }), frame({ opcode: OP.TEXT, fin: false, payload: 'fragment2' }),
    frame({ opcode: OP.CONT, payload: 'fragment3' })];
  c.write(Buffer.concat([...seqf, ...seqf]));
  await expectFail(c, 1002);
});
add('5.18', 'a new text message while one is fragmented', async (c) => {
  c.write(Buffer.concat([frame({ opcode: OP.TEXT, fin: false, payload: 'fragment1' }), frame({ opcode: OP.TEXT, payload: 'fragment2' })]));
  await expectFail(c, 1002);
});
[['5.19', 'slow'], ['5.20', 'chop']].forEach(([id, how]) => {
  add(id, `text in 5 fragments with pings between (${how})`, async (c) => {
    const parts = fragments(envelope('five fragments', 1), 5);
    const all = [];
    parts.forEach((f, i) => { all.push(f); if (i < parts.length - 1) all.push(frame({ opcode: OP.PING, payload: `pongme ${i}` })); });
    await sendAs(c, all, how);
    for (let i = 0; i < parts.length - 1; i++) await expectPong(c, `pongme ${i}`);
    await expectAck(c, 1, 'five fragments');
  });
});

// 6: UTF-8 handling (the payload goes in the envelope's data string)
const enc = (s) => Buffer.from(s, 'utf8');
function envelopeBytes(bytes, id) {
  return Buffer.concat([enc('{"event":"echo","data":"'), bytes, enc(`","id":${id}}`)]);
}
add('6.1.1', 'text in 3 empty fragments', async (c) => {
  c.write(Buffer.concat([frame({ opcode: OP.TEXT, fin: false }), frame({ opcode: OP.CONT, fin: false }), frame({ opcode: OP.CONT })]));
  await expectErrorEvent(c);
});
add('6.1.2', 'text: empty fragments, then the message', async (c) => {
  c.write(Buffer.concat([frame({ opcode: OP.TEXT, fin: false }), frame({ opcode: OP.CONT, fin: false }),
    frame({ opcode: OP.CONT, payload: envelope('x', 1) })]));
  await expectAck(c, 1, 'x');
});
add('6.1.3', 'text: the message split around an empty fragment', async (c) => {
  const b = enc(envelope('middle', 1));
  c.write(Buffer.concat([frame({ opcode: OP.TEXT, fin: false, payload: b.subarray(0, 10) }), frame({ opcode: OP.CONT, fin: false }),
    frame({ opcode: OP.CONT, payload: b.subarray(10) })]));
  await expectAck(c, 1, 'middle');
});

function validCase(id, desc, bytes, how = 'one') {
  add(id, desc, async (c) => {
    const msg = envelopeBytes(bytes, 1);
    if (how === 'one') c.send({ opcode: OP.TEXT, payload: msg });
    else if (how === 'codepoints') c.write(Buffer.concat(fragments(msg, 2)));
    else { // one fragment per byte
      const fr = [];
      for (let i = 0; i < msg.length; i++) fr.push(frame({ opcode: i ? OP.CONT : OP.TEXT, fin: i === msg.length - 1, payload: msg.subarray(i, i + 1) }));
      c.write(Buffer.concat(fr));
    }
    await expectAck(c, 1, bytes.toString('utf8'));
  });
}
function invalidCase(id, desc, bytes, how = 'one') {
  add(id, desc, async (c) => {
    const msg = envelopeBytes(bytes, 1);
    if (how === 'one') c.send({ opcode: OP.TEXT, payload: msg });
    else {
      const fr = [];
      for (let i = 0; i < msg.length; i++) fr.push(frame({ opcode: i ? OP.CONT : OP.TEXT, fin: i === msg.length - 1, payload: msg.subarray(i, i + 1) }));
      c.write(Buffer.concat(fr));
    }
    await expectFail(c, 1007);
  });
}
const HELLO = enc('Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!');
const KOSME = Buffer.from('cebae1bdb9cf83cebcceb5', 'hex');
validCase('6.2.1', 'valid UTF-8 in one frame', HELLO);
validCase('6.2.2', 'valid UTF-8 in 2 fragments', HELLO, 'codepoints');
validCase('6.2.3', 'valid UTF-8, one fragment per byte (code points split)', HELLO, 'bytes');
validCase('6.2.4', 'valid UTF-8 (kosme), one fragment per byte', KOSME, 'bytes');
invalidCase('6.3.1', 'invalid UTF-8 in one frame', Buffer.from('cebae1bdb9cf83cebcceb5eda080656469746564', 'hex'));
invalidCase('6.3.2', 'invalid UTF-8, one fragment per byte', Buffer.from('cebae1bdb9cf83cebcceb5eda080656469746564', 'hex'), 'bytes');

// 6.4: fail fast: the close comes when the bad bytes arrive, before the rest is sent
function failFast(id, desc, first, second, rest) {
  add(id, desc, async (c) => {
    c.send({ opcode: OP.TEXT, fin: false, payload: Buffer.concat([enc('{"event":"echo","data":"'), first]) });
    if (second) { await delay(50); c.send({ opcode: OP.CONT, fin: false, payload: second }); }
    const m = await c.nextMessage(1500);
    if (!m || m.type !== 'close') fail(`no close before the rest of the message (${describe(m)})`);
    c.frames.unshift(m.frame);
    c.send({ opcode: OP.CONT, payload: Buffer.concat([rest, enc('","id":1}')]) });
    await expectFail(c, 1007);
  });
}
failFast('6.4.1', 'fail fast: the first fragment holds invalid UTF-8', Buffer.from('cebae1bdb9cf83cebcceb5f4908080', 'hex'), null, enc('edited'));
failFast('6.4.2', 'fail fast: a sequence made invalid by the second fragment', Buffer.from('cebae1bdb9cf83cebcceb5f4', 'hex'),
  Buffer.from('90', 'hex'), Buffer.from('8080656469746564', 'hex'));
failFast('6.4.3', 'fail fast: invalid UTF-8 in the middle of three fragments', Buffer.from('cebae1bdb9cf83cebcceb5', 'hex'),
  Buffer.from('f4908080', 'hex'), enc('edited'));
failFast('6.4.4', 'fail fast: invalid continuation byte in the second fragment', Buffer.from('cebae1bdb9cf83cebcceb5', 'hex'),
  Buffer.from('c0', 'hex'), enc('80edited'));

const VALID = [
  ['6.5.1', 'kosme', 'cebae1bdb9cf83cebcceb5'],
  ['6.6.1', 'first 2-byte code point U+0080', 'c280'],
  ['6.6.2', 'first 3-byte code point U+0800', 'e0a080'],
  ['6.6.3', 'first 4-byte code point U+10000', 'f0908080'],
  ['6.7.1', 'last 1-byte code point U+007F', '7f'],
  ['6.7.2', 'last 2-byte code point U+07FF', 'dfbf'],
  ['6.7.3', 'last 3-byte code point U+FFFF', 'efbfbf'],
  ['6.7.4', 'last code point U+10FFFF', 'f48fbfbf'],
  ['6.11.1', 'U+D7FF', 'ed9fbf'],
  ['6.11.2', 'U+E000', 'ee8080'],
  ['6.11.3', 'U+FFFD', 'efbfbd'],
  ['6.22.1', 'noncharacter U+FFFE', 'efbfbe'],
  ['6.22.2', 'noncharacter U+1FFFE', 'f09fbfbe'],
  ['6.22.3', 'noncharacter U+10FFFE', 'f48fbfbe'],
  ['6.22.4', 'noncharacters U+FDD0..U+FDD2', 'efb790efb791efb792'],
  ['6.23.1', 'replacement character inside text', '61efbfbd62'],
];
for (const [id, desc, hex] of VALID) validCase(id, `valid: ${desc}`, Buffer.from(hex, 'hex'));
validCase('6.6.4', 'valid: kosme, one fragment per byte', KOSME, 'bytes');

const INVALID = [
  ['6.8.1', '5-byte sequence', 'f888808080'],
  ['6.8.2', '6-byte sequence', 'fc8480808080'],
  ['6.9.1', 'above U+10FFFF (U+110000)', 'f4908080'],
  ['6.9.2', 'last 4-byte form U+1FFFFF', 'f7bfbfbf'],
  ['6.10.1', 'last 5-byte form', 'fbbfbfbfbf'],
  ['6.10.2', 'last 6-byte form', 'fdbfbfbfbfbf'],
  ['6.12.1', 'lone continuation byte 0x80', '80'],
  ['6.12.2', 'lone continuation byte 0xBF', 'bf'],
  ['6.12.3', 'two continuation bytes', '80bf'],
  ['6.12.4', 'three continuation bytes', '80bf80'],
  ['6.12.5', 'all 64 continuation bytes', Buffer.from(Array.from({ length: 64 }, (_, i) => 0x80 + i)).toString('hex')],
  ['6.13.1', 'lonely 2-byte starts followed by spaces', Array.from({ length: 32 }, (_, i) => (0xc0 + i).toString(16) + '20').join('')],
  ['6.13.2', 'lonely 3-byte starts followed by spaces', Array.from({ length: 16 }, (_, i) => (0xe0 + i).toString(16) + '20').join('')],
  ['6.13.3', 'lonely 4-byte starts followed by spaces', Array.from({ length: 8 }, (_, i) => (0xf0 + i).toString(16) + '20').join('')],
  ['6.14.1', '2-byte sequence without its last byte', 'c0'],
  ['6.14.2', '3-byte sequence without its last byte', 'e080'],
  ['6.14.3', '4-byte sequence without its last byte', 'f08080'],
  ['6.14.4', 'U+07FF without its last byte', 'df'],
  ['6.14.5', 'U+FFFF without its last byte', 'efbf'],
  ['6.14.6', 'U+10FFFF without its last byte', 'f48fbf'],
  ['6.15.1', 'incomplete sequences concatenated', 'c0e080f08080dfefbff48fbf'],
  ['6.16.1', 'impossible byte 0xFE', 'fe'],
  ['6.16.2', 'impossible byte 0xFF', 'ff'],
  ['6.16.3', 'impossible bytes FE FE FF FF', 'fefeffff'],
  ['6.17.1', 'overlong "/" in 2 bytes', 'c0af'],
  ['6.17.2', 'overlong "/" in 3 bytes', 'e080af'],
  ['6.17.3', 'overlong "/" in 4 bytes', 'f08080af'],
  ['6.18.1', 'maximum overlong 2 bytes', 'c1bf'],
  ['6.18.2', 'maximum overlong 3 bytes', 'e09fbf'],
  ['6.18.3', 'maximum overlong 4 bytes', 'f08fbfbf'],
  ['6.19.1', 'overlong NUL in 2 bytes', 'c080'],
  ['6.19.2', 'overlong NUL in 3 bytes', 'e08080'],
  ['6.19.3', 'overlong NUL in 4 bytes', 'f0808080'],
  ['6.20.1', 'UTF-16 surrogate U+D800', 'eda080'],
  ['6.20.2', 'UTF-16 surrogate U+DB7F', 'edadbf'],
  ['6.20.3', 'UTF-16 surrogate U+DB80', 'edae80'],
  ['6.20.4', 'UTF-16 surrogate U+DBFF', 'edafbf'],
  ['6.20.5', 'UTF-16 surrogate U+DC00', 'edb080'],
  ['6.20.6', 'UTF-16 surrogate U+DF80', 'edbe80'],
  ['6.20.7', 'UTF-16 surrogate U+DFFF', 'edbfbf'],
  ['6.21.1', 'paired surrogates U+D800 U+DC00', 'eda080edb080'],
  ['6.21.2', 'paired surrogates U+DBFF U+DFFF', 'edafbfedbfbf'],
];
for (const [id, desc, hex] of INVALID) invalidCase(id, `invalid: ${desc}`, Buffer.from(hex, 'hex'));

// 7: close handling
add('7.1.1', 'echo, then a close', async (c) => {
  c.send({ opcode: OP.TEXT, payload: envelope('Hello World!', 1) });
  c.send({ opcode: OP.CLOSE, payload: closePayload(1000) });
  await expectAck(c, 1, 'Hello World!');
  await expectCloseReply(c, [1000]);
});
add('7.1.2', 'two closes', async (c) => {
  c.write(Buffer.concat([frame({ opcode: OP.CLOSE, payload: closePayload(1000) }), frame({ opcode: OP.CLOSE, payload: closePayload(1000) })]));
  await expectCloseReply(c, [1000]);
});
add('7.1.3', 'a ping after the close gets no pong', async (c) => {
  c.write(Buffer.concat([frame({ opcode: OP.CLOSE, payload: closePayload(1000) }), frame({ opcode: OP.PING, payload: 'after close' })]));
  await expectCloseReply(c, [1000]);
});
add('7.1.4', 'a text after the close gets no answer', async (c) => {
  c.write(Buffer.concat([frame({ opcode: OP.CLOSE, payload: closePayload(1000) }), frame({ opcode: OP.TEXT, payload: envelope('x', 1) })]));
  await expectCloseReply(c, [1000]);
});
add('7.1.5', 'a close in the middle of a fragmented text', async (c) => {
  const [a, b] = fragments(envelope('never', 1), 2);
  c.write(Buffer.concat([a, frame({ opcode: OP.CLOSE, payload: closePayload(1000) }), b]));
  await expectCloseReply(c, [1000]);
});
add('7.1.6', 'a 256 KiB text, a ping and a close', async (c) => {
  c.write(Buffer.concat([frame({ opcode: OP.TEXT, payload: envelopeOfSize(262144, 1) }), frame({ opcode: OP.PING, payload: 'p' }),
    frame({ opcode: OP.CLOSE, payload: closePayload(1000) })]));
  // the echo and the pong may or may not come before the close: skip them
  for (;;) {
    const m = await c.nextMessage(4000);
    if (!m) fail('no close reply');
    if (m.type === 'close') { c.frames.unshift(m.frame); break; }
  }
  await expectCloseReply(c, [1000]);
});
add('7.3.1', 'close without payload', async (c) => {
  c.send({ opcode: OP.CLOSE });
  await expectCloseReply(c, [null, 1000]);
});
add('7.3.2', 'close with a 1-byte payload', async (c) => {
  c.send({ opcode: OP.CLOSE, payload: Buffer.from([0x03]) });
  await expectFail(c, 1002);
});
add('7.3.3', 'close 1000 without reason', async (c) => {
  c.send({ opcode: OP.CLOSE, payload: closePayload(1000) });
  await expectCloseReply(c, [1000]);
});
add('7.3.4', 'close 1000 with a reason', async (c) => {
  c.send({ opcode: OP.CLOSE, payload: closePayload(1000, 'Hello World!') });
  await expectCloseReply(c, [1000]);
});
add('7.3.5', 'close 1000 with a 123-byte reason (125 in all)', async (c) => {
  c.send({ opcode: OP.CLOSE, payload: closePayload(1000, '*'.repeat(123)) });
  await expectCloseReply(c, [1000]);
});
add('7.3.6', 'close 1000 with a 124-byte reason (126 in all: too long)', async (c) => {
  c.send({ opcode: OP.CLOSE, payload: closePayload(1000, '*'.repeat(124)) });
  await expectFail(c, 1002);
});
add('7.5.1', 'close with an invalid UTF-8 reason', async (c) => {
  c.send({ opcode: OP.CLOSE, payload: closePayload(1000, Buffer.from('cebae1bdb9cf83cebcceb5eda080656469746564', 'hex')) });
  await expectFail(c, 1007);
});
[1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].forEach((code, i) => {
  add(`7.7.${i + 1}`, `close with the valid code ${code}`, async (c) => {
    c.send({ opcode: OP.CLOSE, payload: closePayload(code) });
    await expectCloseReply(c, [code, 1000]);
  });
});
[0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999].forEach((code, i) => {
  add(`7.9.${i + 1}`, `close with the invalid code ${code}`, async (c) => {
    c.send({ opcode: OP.CLOSE, payload: closePayload(code) });
    await expectFail(c, 1002);
  });
});
add('7.13.1', 'close with the code 5000', async (c) => {
  c.send({ opcode: OP.CLOSE, payload: closePayload(5000) });
  await expectFail(c, 1002);
});
add('7.13.2', 'close with the code 65535', async (c) => {
  c.send({ opcode: OP.CLOSE, payload: closePayload(65535) });
  await expectFail(c, 1002);
});

// 9: limits (server.max_message_size, set by the caller: limits.maxMessage)
add('9.1.1', 'a text frame announcing 2^40 bytes is refused on its header', async (c, limits) => {
  // the header, 4 payload bytes, and nothing more: a refusal must not wait for the rest
  c.write(frame({ opcode: OP.TEXT, payload: 'abcd', len: 2 ** 40 }).subarray(0, 2 + 8 + 4 + 4));
  void limits;
  await expectFail(c, 1009);
});
add('9.1.2', 'a text message one byte over the limit, in one frame', async (c, limits) => {
  c.send({ opcode: OP.TEXT, payload: envelopeOfSize(limits.maxMessage + 1, 1) });
  await expectFail(c, 1009);
});
add('9.1.3', 'a text message over the limit, in 64 KiB fragments', async (c, limits) => {
  const msg = enc(envelopeOfSize(limits.maxMessage + 65536, 1));
  const fr = [];
  for (let i = 0; i < msg.length; i += 65536) {
    fr.push(frame({ opcode: i ? OP.CONT : OP.TEXT, fin: i + 65536 >= msg.length, payload: msg.subarray(i, i + 65536) }));
  }
  c.write(Buffer.concat(fr));
  await expectFail(c, 1009);
});
add('9.1.4', 'a binary message of exactly the limit is echoed', async (c, limits) => {
  const b = Buffer.alloc(limits.maxMessage, 0x5a);
  c.send({ opcode: OP.BINARY, payload: b });
  await expectBinaryEcho(c, b);
});

/**
 * Runs every case (or those whose id starts with one of `only`, and that `filter` keeps)
 * against the gateway on `port`, a fresh connection each. Returns the results:
 * [{id, desc, ok, known, reason, ms}].
 */
// lws closes a connection it found in violation right after queueing its close frame; now and
// then (about 1 run in 50 of group 3 in the sanitizer build, seen on 3.2 and 3.6) the peer
// gets the connection's end without that frame. A case that fails only that way runs once
// more: a real regression fails twice, and the report says it was retried.
const RACE = 'the connection was dropped without a close frame';

async function runOne(k, { port, path, headers, limits }) {
  let c;
  let ok = true;
  let reason = '';
  try {
    c = await connectRaw(port, path, typeof headers === 'function' ? headers() : headers);
    c.skip = unsolicited;
    let timer;
    await Promise.race([k.run(c, limits), new Promise((_, rej) => {
      timer = setTimeout(() => rej(new CaseFailure('the case took over 10 s')), 10000);
    })]).finally(() => clearTimeout(timer));
    if (c.protocolError) fail(`the server broke the protocol: ${c.protocolError}`);
  } catch (e) {
    ok = false;
    reason = e instanceof CaseFailure ? e.message : `error: ${e.message}`;
  } finally {
    if (c) c.destroy();
  }
  return { ok, reason };
}

async function runCases({ port, path = '/ws', headers = {}, limits, only, filter = () => true, log = () => {} }) {
  const results = [];
  for (const k of cases) {
    if (only && !only.some((p) => k.id === p || k.id.startsWith(`${p}.`))) continue;
    if (!filter(k)) continue;
    const t0 = Date.now();
    let { ok, reason } = await runOne(k, { port, path, headers, limits });
    let retried = '';
    if (!ok && !KNOWN.has(k.id) && reason.startsWith(RACE)) {
      retried = reason;
      ({ ok, reason } = await runOne(k, { port, path, headers, limits }));
    }
    const r = { id: k.id, desc: k.desc, ok, known: KNOWN.get(k.id), reason, retried, ms: Date.now() - t0 };
    results.push(r);
    log(r);
  }
  return results;
}

module.exports = { cases, runCases, KNOWN };
