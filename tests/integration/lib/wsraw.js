'use strict';
// A raw WebSocket client over node:net for the conformance harness: it does the RFC 6455
// handshake itself and writes frames byte by byte as told, so it can send what a real
// client library refuses to (unmasked frames, reserved bits and opcodes, fragmented control
// frames, bad close payloads, invalid UTF-8, lengths it never sends). Frames from the
// server are parsed and queued; every wait is bounded.

const net = require('node:net');
const tls = require('node:tls');
const crypto = require('node:crypto');

const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

/**
 * One frame as bytes. opts: fin (true), rsv (0..7: RSV1 = 4, RSV2 = 2, RSV3 = 1), opcode,
 * payload (Buffer or string), mask (true: a random key; false: unmasked), len (announce
 * this length instead of the payload's: a header that lies).
 */
function frame(opts) {
  const payload = Buffer.isBuffer(opts.payload) ? opts.payload : Buffer.from(opts.payload || '');
  const fin = opts.fin === undefined ? true : opts.fin;
  const mask = opts.mask === undefined ? true : opts.mask;
  const len = opts.len === undefined ? payload.length : opts.len;
  const head = [(fin ? 0x80 : 0) | ((opts.rsv || 0) << 4) | (opts.opcode & 0x0f)];
  const m = mask ? 0x80 : 0;
  let ext;
  if (len < 126) {
    head.push(m | len);
    ext = Buffer.alloc(0);
  } else if (len < 65536) {
    head.push(m | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(len);
  } else {
    head.push(m | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(BigInt(len));
  }
  let body = payload;
  let key = Buffer.alloc(0);
  if (mask) {
    key = crypto.randomBytes(4);
    body = Buffer.alloc(payload.length);
    for (let i = 0; i < payload.length; i++) body[i] = payload[i] ^ key[i & 3];
  }
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

/** A close frame's payload: the code (when given) and the reason (string or Buffer). */
function closePayload(code, reason = '') {
  if (code === undefined) return Buffer.alloc(0);
  const r = Buffer.isBuffer(reason) ? reason : Buffer.from(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code);
  r.copy(b, 2);
  return b;
}

class RawConn {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.frames = []; // parsed, not yet taken
    this.waiters = [];
    this.closed = false; // the TCP connection ended
    this.closeFrame = null; // {code, reason} of the server's close frame, when one came
    this.protocolError = null; // the server sent something we could not parse
    this.serverPings = 0;
    this.skip = null; // frame => true: dropped before the caller sees it
    this.skipped = 0;
    this.closeSent = false; // a close frame went out: no more pongs
    this.chunking = false; // writeChunked is under way
    this.pendingPongs = [];
    sock.on('data', (d) => this._onData(d));
    const onEnd = () => { this.closed = true; this._wake(); };
    sock.on('close', onEnd);
    sock.on('end', onEnd);
    sock.on('error', onEnd);
  }

  _onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const f = parseFrame(this.buf);
      if (!f) break;
      if (f.error) {
        this.protocolError = f.error;
        break;
      }
      this.buf = this.buf.subarray(f.size);
      if (f.opcode === OP.CLOSE && !this.closeFrame) {
        const p = f.payload;
        this.closeFrame = p.length >= 2
          ? { code: p.readUInt16BE(0), reason: p.subarray(2).toString('utf8') }
          : { code: null, reason: '' };
      }
      if (f.opcode === OP.PING) {
        // the gateway's own keepalive and quality pings: answered like any client would, and
        // not handed to the cases (they test pings they send)
        this.serverPings++;
        // never in the middle of a frame being written in pieces: after it
        const pong = frame({ opcode: OP.PONG, payload: f.payload });
        if (this.chunking) this.pendingPongs.push(pong);
        else if (!this.closeSent) this.write(pong);
        continue;
      }
      if (this.skip && this.skip(f)) { // what the caller does not want to see (server events)
        this.skipped++;
        continue;
      }
      this.frames.push(f);
    }
    this._wake();
  }

  _wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  _changed(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== done); resolve(false); }, ms);
      const done = () => { clearTimeout(t); resolve(true); };
      this.waiters.push(done);
    });
  }

  write(buf) {
    if (!this.sock.destroyed && this.sock.writable) this.sock.write(buf);
  }

  send(opts) {
    if (opts.opcode === OP.CLOSE) this.closeSent = true;
    this.write(frame(opts));
  }

  /** Writes buf in pieces of `size` bytes, `gapMs` apart (a slow or fragmenting peer). */
  async writeChunked(buf, size, gapMs = 1) {
    this.chunking = true;
    try {
      for (let i = 0; i < buf.length; i += size) {
        this.write(buf.subarray(i, i + size));
        await new Promise((r) => setTimeout(r, gapMs));
      }
    } finally {
      this.chunking = false;
      for (const p of this.pendingPongs.splice(0)) if (!this.closeSent) this.write(p);
    }
  }

  /** The next frame from the server (ping/pong/text/binary/close), or null after ms. */
  async nextFrame(ms = 3000) {
    const end = Date.now() + ms;
    while (!this.frames.length) {
      if (this.closed || Date.now() >= end) return null;
      await this._changed(end - Date.now());
    }
    return this.frames.shift();
  }

  /** The next data frame (text or binary), skipping nothing else: a control frame first is returned. */
  async nextMessage(ms = 3000) {
    const f = await this.nextFrame(ms);
    if (!f) return null;
    if (f.opcode === OP.TEXT) return { type: 'text', data: f.payload, json: safeJson(f.payload), frame: f };
    if (f.opcode === OP.BINARY) return { type: 'binary', data: f.payload, frame: f };
    return { type: opName(f.opcode), data: f.payload, frame: f };
  }

  /** Waits until the server closed the TCP connection (true), or ms passed (false). */
  async waitClosed(ms = 5000) {
    const end = Date.now() + ms;
    while (!this.closed && Date.now() < end) await this._changed(end - Date.now());
    return this.closed;
  }

  destroy() { this.sock.destroy(); }
}

function opName(op) {
  return { 0: 'continuation', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' }[op] || `opcode ${op}`;
}

function safeJson(b) {
  try { return JSON.parse(b.toString('utf8')); } catch { return undefined; }
}

// A server frame (unmasked) from the front of buf: {fin, rsv, opcode, payload, size}, null
// when incomplete, {error} when a server frame breaks the RFC.
function parseFrame(buf) {
  if (buf.length < 2) return null;
  const fin = (buf[0] & 0x80) !== 0;
  const rsv = (buf[0] >> 4) & 7;
  const opcode = buf[0] & 0x0f;
  if (buf[1] & 0x80) return { error: 'the server masked a frame' };
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    const big = buf.readBigUInt64BE(2);
    if (big > BigInt(64 * 1024 * 1024)) return { error: `the server announced ${big} bytes` };
    len = Number(big);
    off = 10;
  }
  if (buf.length < off + len) return null;
  return { fin, rsv, opcode, payload: Buffer.from(buf.subarray(off, off + len)), size: off + len };
}

/**
 * Opens a WebSocket to 127.0.0.1:port/path with the handshake written by hand.
 * headers: extra request headers. Resolves a RawConn once the 101 came (rejects otherwise).
 */
function connectRaw(port, path, headers = {}, ms = 5000, { secure = false } = {}) {
  return new Promise((resolve, reject) => {
    // secure: TLS, the certificate not checked (the tests make their own)
    const sock = secure ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false })
      : net.connect({ host: '127.0.0.1', port });
    sock.setNoDelay(true);
    const key = crypto.randomBytes(16).toString('base64');
    const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('handshake timed out')); }, ms);
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      sock.off('data', onData);
      const text = head.subarray(0, end).toString('latin1');
      const status = /^HTTP\/1\.1 (\d+)/.exec(text);
      if (!status || status[1] !== '101') {
        sock.destroy();
        reject(new Error(`upgrade refused: ${text.split('\r\n')[0]}`));
        return;
      }
      const acc = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(text);
      if (!acc || acc[1] !== accept) {
        sock.destroy();
        reject(new Error('bad Sec-WebSocket-Accept'));
        return;
      }
      const conn = new RawConn(sock);
      const rest = head.subarray(end + 4);
      if (rest.length) conn._onData(rest);
      resolve(conn);
    };
    sock.on('data', onData);
    sock.once('error', (e) => { clearTimeout(timer); reject(e); });
    const lines = [`GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Upgrade: websocket',
      'Connection: Upgrade', `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13'];
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    sock.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
}

module.exports = { OP, frame, closePayload, connectRaw, RawConn, parseFrame };
