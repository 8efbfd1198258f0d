// A room member on aivo-gw's native /ws protocol, for the cluster walkthrough (README.md here).
// No dependencies: Node 18 or later, node:net and node:crypto only.
//
//   node examples/cluster/room-client.js URL TOKEN ROOM [--say TEXT] [--count N] [--timeout S]
//
// Connects to URL (ws://HOST:PORT/ws), joins ROOM and prints every event it receives, one line
// each (except the gateway's connection:quality reports). --say TEXT sends TEXT to the room once joined (the other members get room:message).
// --count N exits 0 once N events came in; --timeout S exits 1 if they did not come within S
// seconds (without --count, --timeout S just ends it after S seconds). Without either it runs
// until Ctrl-C. The token goes in the URL as ?token=.
'use strict';

const net = require('node:net');
const crypto = require('node:crypto');

function usage(msg) {
  if (msg) console.error(`room-client: ${msg}`);
  console.error('usage: node room-client.js URL TOKEN ROOM [--say TEXT] [--count N] [--timeout S]');
  process.exit(2);
}

const pos = [];
const opt = { say: null, count: 0, timeout: 0 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--say' || a === '--count' || a === '--timeout') {
    if (i + 1 >= process.argv.length) usage(`${a} needs a value`);
    opt[a.slice(2)] = process.argv[++i];
  } else if (a.startsWith('--')) {
    usage(`unknown option ${a}`);
  } else {
    pos.push(a);
  }
}
if (pos.length !== 3) usage();
const [url, token, room] = pos;
opt.count = Number(opt.count);
opt.timeout = Number(opt.timeout);
if (!Number.isInteger(opt.count) || opt.count < 0) usage('--count must be a whole number');
if (!(opt.timeout >= 0)) usage('--timeout must be a number of seconds');

let u;
try {
  u = new URL(url);
} catch {
  usage(`'${url}' is not a URL`);
}
if (u.protocol !== 'ws:') usage('only ws:// URLs (the cluster runs on loopback without TLS)');
u.searchParams.set('token', token);
const port = Number(u.port) || 80;
const host = u.hostname.replace(/^\[|\]$/g, '');
const where = `${u.host}${u.pathname}`;

const MAX_MESSAGE = 1 << 20; // refuse to buffer more than 1 MiB from the server
const key = crypto.randomBytes(16).toString('base64');
const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
const sock = net.connect({ host, port });
let buf = Buffer.alloc(0);
let open = false;
let parts = [];
let received = 0;
let nextId = 1;
let timer = null;

function finish(code, msg) {
  if (msg) (code ? console.error : console.log)(msg);
  if (timer) clearTimeout(timer);
  process.exitCode = code;
  sock.destroy();
}

function frame(opcode, payload) { // a masked client frame (RFC 6455 5.2, 5.3)
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len])
    : len < 65536 ? Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 255])
      : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]), (() => {
        const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b;
      })()]);
  const mask = crypto.randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, body]);
}

function send(obj) { sock.write(frame(1, Buffer.from(JSON.stringify(obj)))); }

function onMessage(text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return finish(1, `room-client: not JSON from the gateway: ${text.slice(0, 200)}`);
  }
  if (m.ack !== undefined) {
    if (m.error) return finish(1, `room-client: ${where}: request ${m.ack} refused: ${JSON.stringify(m.error)}`);
    if (m.ack === 1) {
      console.log(`joined '${room}' on ${where}`);
      if (opt.say !== null) send({ event: 'room:send', data: { room, msg: opt.say }, id: ++nextId });
    } else {
      console.log(`sent    '${opt.say}' to '${room}'`);
    }
    return undefined;
  }
  if (m.event === 'connection:quality') return undefined; // the link-quality indicator, not news
  console.log(`event   ${m.event} ${JSON.stringify(m.data)}`);
  if (opt.count && ++received >= opt.count) {
    sock.write(frame(8, Buffer.from([0x03, 0xe8]))); // close 1000
    finish(0);
  }
  return undefined;
}

function onFrames() {
  for (;;) {
    if (buf.length < 2) return;
    const fin = buf[0] & 0x80, opcode = buf[0] & 0x0f;
    let len = buf[1] & 0x7f, off = 2;
    if (buf[1] & 0x80) return finish(1, 'room-client: a masked frame from the server');
    if (len === 126) {
      if (buf.length < 4) return;
      len = buf.readUInt16BE(2); off = 4;
    } else if (len === 127) {
      if (buf.length < 10) return;
      const big = buf.readBigUInt64BE(2);
      if (big > BigInt(MAX_MESSAGE)) return finish(1, 'room-client: a frame over 1 MiB');
      len = Number(big); off = 10;
    }
    if (buf.length < off + len) return;
    const payload = buf.subarray(off, off + len);
    buf = buf.subarray(off + len);
    if (opcode === 9) sock.write(frame(10, payload)); // ping -> pong
    else if (opcode === 8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      const why = payload.subarray(2).toString();
      return finish(code === 1000 ? 0 : 1, `closed  ${code}${why ? ` ${why}` : ''}`);
    } else if (opcode === 1 || opcode === 0) {
      parts.push(payload);
      if (parts.reduce((n, p) => n + p.length, 0) > MAX_MESSAGE) return finish(1, 'room-client: a message over 1 MiB');
      if (fin) {
        const text = Buffer.concat(parts).toString();
        parts = [];
        onMessage(text);
        if (sock.destroyed) return undefined;
      }
    }
  }
}

sock.once('connect', () => {
  sock.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
});
sock.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  if (!open) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buf.length > 16384) finish(1, 'room-client: an oversized HTTP answer');
      return;
    }
    const head = buf.subarray(0, end).toString('latin1');
    const rest = buf.subarray(end + 4);
    const status = head.split('\r\n')[0];
    const got = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head);
    if (!/^HTTP\/1\.1 101/.test(status) || !got || got[1] !== accept) {
      return finish(1, `room-client: ${where}: the upgrade was refused: ${status} ${rest.toString().slice(0, 200)}`);
    }
    open = true;
    buf = rest;
    send({ event: 'join', data: { room }, id: 1 });
  }
  onFrames();
});
sock.on('error', (err) => finish(1, `room-client: ${where}: ${err.message}`));
sock.on('close', () => { if (process.exitCode === undefined) finish(1, 'room-client: the connection closed'); });
if (opt.timeout > 0) {
  timer = setTimeout(() => (opt.count
    ? finish(1, `room-client: ${received} of ${opt.count} events within ${opt.timeout}s`)
    : finish(0, `done    after ${opt.timeout}s`)), opt.timeout * 1000);
}
