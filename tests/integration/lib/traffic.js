'use strict';
// Helpers for the traffic-control tests (ratelimit.test.js, quality.test.js):
// tokens for gateways that require one, metrics, raw upgrades that may be
// refused with HTTP 429, log waits, and a TCP relay that can delay or drop the
// client's WebSocket pongs.

const crypto = require('node:crypto');
const http = require('node:http');
const net = require('node:net');
const WebSocket = require('ws');
const { delay } = require('./gateway');

// Every gateway in these tests gets this HMAC secret, and every client a token
// signed with it: the tests then hold whether or not the gateway requires one.
const SECRET = 'traffic-tests-secret-0123456789abcdef0123456789';
const ENV = { JWT_SECRET: SECRET };
const ARGS = ['--admin-listen', 'off'];

function mintToken(sub, ttlSeconds = 3600) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ sub, iat: now, exp: now + ttlSeconds });
  const sig = crypto.createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** Options for lib/gateway.js connect(): a token for sub, and a source address. */
function wsOpts(sub = 'tester', extra = {}) {
  return { headers: { Authorization: `Bearer ${mintToken(sub)}` }, ...extra };
}

function get(port, path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

/** name{labels} -> value, from /metrics/prometheus (an empty map if it is not served). */
async function metrics(port) {
  const r = await get(port, '/metrics/prometheus');
  const out = new Map();
  if (r.status !== 200) return out;
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/**
 * Opens a WebSocket to url and reports what happened: {open: ws} once upgraded,
 * or {status, headers, body} when the upgrade was answered with an HTTP error.
 */
function upgrade(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: 10000, ...options });
    ws.once('open', () => resolve({ open: ws }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    ws.once('error', (err) => reject(err));
  });
}

/** Resolves once re matches the gateway's log (after `from` characters). */
async function waitForLog(gw, re, from = 0, ms = 10000) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (re.test(gw.logs().slice(from))) return;
    await delay(50);
  }
  throw new Error(`log never matched ${re}\n${gw.logs().slice(-4000)}`);
}

/**
 * A TCP relay between clients and the gateway. Client-to-gateway bytes are
 * parsed into WebSocket frames after the HTTP upgrade request, so that pongs
 * (opcode 0xA) can be passed, delayed by relay.delayMs, or dropped, according
 * to relay.mode ('pass' | 'delay' | 'drop'). Everything else goes through.
 */
function startRelay(targetPort) {
  const relay = { mode: 'pass', delayMs: 0, pongs: { passed: 0, delayed: 0, dropped: 0 }, sockets: new Set() };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    relay.sockets.add(client);
    relay.sockets.add(upstream);
    upstream.pipe(client);
    let buf = Buffer.alloc(0);
    let headersDone = false;
    const forward = (frame) => { if (!upstream.destroyed) upstream.write(frame); };
    client.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (!headersDone) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        forward(buf.subarray(0, end + 4));
        buf = buf.subarray(end + 4);
        headersDone = true;
      }
      for (;;) {
        if (buf.length < 2) return;
        const opcode = buf[0] & 0x0f;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf[1] & 0x80) off += 4; // client frames are masked
        if (buf.length < off + len) return;
        const frame = Buffer.from(buf.subarray(0, off + len));
        buf = buf.subarray(off + len);
        if (opcode !== 0x0a || relay.mode === 'pass') {
          if (opcode === 0x0a) relay.pongs.passed++;
          forward(frame);
        } else if (relay.mode === 'drop') {
          relay.pongs.dropped++;
        } else {
          relay.pongs.delayed++;
          setTimeout(() => forward(frame), relay.delayMs);
        }
      }
    });
    const closeBoth = () => { client.destroy(); upstream.destroy(); };
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      relay.port = server.address().port;
      relay.close = () => new Promise((res) => {
        for (const s of relay.sockets) s.destroy();
        server.close(() => res());
      });
      resolve(relay);
    });
  });
}

module.exports = { SECRET, ENV, ARGS, mintToken, wsOpts, metrics, upgrade, waitForLog, startRelay, get };
