// A first session against aivo-gw's native protocol, with no dependencies (Node 18 or later,
// Debian 12's own nodejs included; no flag needed):
//   TOKEN=$(./build/aivo-gw token --sub alice)
//   node examples/ws-client.js [ws://127.0.0.1:4003/ws] [TOKEN]
// Node 22+ has a WebSocket built in and it is used; older Node gets the small RFC 6455 client
// below (node:net / node:tls / node:crypto only). The token is the second argument or
// $AIVO_TOKEN; it goes in the URL as ?token= because the WebSocket API cannot set headers
// (other clients should prefer an "Authorization: Bearer" header, docs/security.md).
// It echoes with and without an ack, joins a room and sends to it. Exit 0 after a close 1000.
'use strict';

const base = process.argv[2] || 'ws://127.0.0.1:4003/ws';
const token = process.argv[3] || process.env.AIVO_TOKEN;
if (!token) {
  console.error('no token: pass one as the second argument or in AIVO_TOKEN, e.g.\n' +
    '  TOKEN=$(./build/aivo-gw token --sub alice)\n' +
    `  node examples/ws-client.js ${base} "$TOKEN"`);
  process.exit(2);
}

// The part of the WebSocket API this example uses (addEventListener open/message/close/error,
// send(text), close(code)), over a TCP or TLS socket. Text frames only, as the /ws protocol;
// client frames masked (RFC 6455 §5.3); pings answered; fragmented messages reassembled.
class MiniWebSocket {
  constructor(url) {
    const net = require('node:net');
    const tls = require('node:tls');
    const crypto = require('node:crypto');
    const u = new URL(url);
    const secure = u.protocol === 'wss:';
    this.listeners = { open: [], message: [], close: [], error: [] };
    this.buf = Buffer.alloc(0);
    this.parts = [];
    this.open = false;
    this.closed = false;
    this.closeCode = 1006;
    this.crypto = crypto;
    const key = crypto.randomBytes(16).toString('base64');
    this.accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    const port = Number(u.port) || (secure ? 443 : 80);
    const opts = { host: u.hostname.replace(/^\[|\]$/g, ''), port, servername: u.hostname };
    this.sock = secure ? tls.connect(opts) : net.connect(opts);
    this.sock.once(secure ? 'secureConnect' : 'connect', () => {
      this.sock.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    this.sock.on('data', (d) => this._onData(d));
    this.sock.on('error', (err) => { this.error = err; });
    this.sock.on('close', () => this._finish());
  }

  addEventListener(type, fn) { this.listeners[type].push(fn); }
  _emit(type, ev) { for (const fn of this.listeners[type]) fn(ev); }

  _finish() {
    if (this.closed) return;
    this.closed = true;
    if (!this.open) this._emit('error', { error: this.error });
    this._emit('close', { code: this.closeCode, reason: this.closeReason || '' });
  }

  _onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    if (!this.open) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString('latin1');
      this.buf = this.buf.subarray(end + 4);
      const status = Number(head.split(' ')[1]);
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head);
      if (status !== 101 || !accept || accept[1] !== this.accept) {
        this.error = new Error(`the upgrade was refused: ${head.split('\r\n')[0]}`);
        this.sock.destroy();
        return;
      }
      this.open = true;
      this._emit('open', {});
    }
    for (;;) { // every complete frame in the buffer
      if (this.buf.length < 2) return;
      const fin = this.buf[0] & 0x80, op = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f, at = 2;
      if (len === 126) { if (this.buf.length < 4) return; len = this.buf.readUInt16BE(2); at = 4; }
      else if (len === 127) { if (this.buf.length < 10) return; len = Number(this.buf.readBigUInt64BE(2)); at = 10; }
      if (this.buf.length < at + len) return;
      const payload = this.buf.subarray(at, at + len);
      this.buf = this.buf.subarray(at + len);
      if (op === 0x9) this._send(0xa, payload); // ping -> pong
      else if (op === 0x8) { // close: answer it, then the socket ends
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.closeReason = payload.subarray(2).toString('utf8');
        if (!this.closing) this._send(0x8, payload.subarray(0, 2));
        this.closing = true;
        this.sock.end();
      } else if (op === 0x1 || op === 0x0) {
        this.parts.push(payload);
        if (fin) {
          const data = Buffer.concat(this.parts).toString('utf8');
          this.parts = [];
          this._emit('message', { data });
        }
      }
    }
  }

  _send(op, payload) {
    const mask = this.crypto.randomBytes(4);
    const n = payload.length;
    const head = n < 126 ? Buffer.from([0x80 | op, 0x80 | n])
      : n < 65536 ? Buffer.from([0x80 | op, 0x80 | 126, n >> 8, n & 0xff])
        : Buffer.concat([Buffer.from([0x80 | op, 0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
    const body = Buffer.from(payload);
    for (let i = 0; i < n; i++) body[i] ^= mask[i & 3];
    this.sock.write(Buffer.concat([head, mask, body]));
  }

  send(text) { this._send(0x1, Buffer.from(String(text), 'utf8')); }

  close(code = 1000) {
    if (this.closing) return;
    this.closing = true;
    const b = Buffer.alloc(2);
    b.writeUInt16BE(code);
    this._send(0x8, b);
  }
}

const url = `${base}${base.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
const ws = typeof globalThis.WebSocket === 'function' ? new globalThis.WebSocket(url) : new MiniWebSocket(url);
let nextId = 1;
const pending = new Map();

function request(event, data) {
  const id = nextId++;
  ws.send(JSON.stringify({ event, data, id }));
  return new Promise((resolve) => pending.set(id, resolve));
}

ws.addEventListener('message', (e) => {
  const msg = JSON.parse(e.data);
  if ('ack' in msg && pending.has(msg.ack)) {
    pending.get(msg.ack)(msg);
    pending.delete(msg.ack);
  } else {
    console.log('event  ', JSON.stringify(msg));
  }
});

ws.addEventListener('open', async () => {
  console.log('connected to', base);
  console.log('ack    ', JSON.stringify(await request('echo', { hello: 'world', n: 42 })));
  ws.send(JSON.stringify({ event: 'echo', data: 'no ack asked: comes back as an event' }));
  console.log('ack    ', JSON.stringify(await request('join', { room: 'lobby' })));
  console.log('ack    ', JSON.stringify(await request('room:send', { room: 'lobby', msg: 'hi all' })));
  console.log('ack    ', JSON.stringify(await request('agent:learning', { action: 'start_session' })));
  console.log('ack    ', JSON.stringify(await request('no-such-event', {})));
  setTimeout(() => ws.close(1000), 200);
});

ws.addEventListener('close', (e) => {
  console.log('closed ', e.code, e.reason);
  if (e.code !== 1000) process.exitCode = 1;
});
ws.addEventListener('error', () => {
  // the WebSocket API hides the HTTP status: 401 (bad token) and 403 (origin) look the same
  console.error(`cannot connect to ${base}: is aivo-gw running, and is the token valid and unexpired?`);
  process.exitCode = 1;
});
