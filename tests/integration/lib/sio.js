'use strict';
// Socket.IO helpers for the integration tests: the real socket.io-client from npm
// (pinned in package.json), HS256 tokens for the default policy, raw Engine.IO over
// HTTP and WebSocket for what a well-behaved client never does.

const crypto = require('node:crypto');
const { io, Manager } = require('socket.io-client');
const WebSocket = require('ws');

const WAIT_MS = 10000;
const SECRET = 'socketio-test-secret-0123456789abcdef';

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

/** An HS256 JWT signed with `secret` (JWT_SECRET of the gateway under test). */
function mintToken(claims, secret = SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ iat: now, exp: now + 3600, ...claims }));
  const sig = b64url(crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest());
  return `${head}.${body}.${sig}`;
}

// Every socket made here, closed by closeAll() so that no test leaves one reconnecting.
const sockets = new Set();

/**
 * A socket.io-client socket to gw (a handle or a port) at namespace nsp, with client
 * options opts. Not connected yet unless connect() is used.
 */
function client(gw, nsp = '/', opts = {}) {
  const port = typeof gw === 'number' ? gw : gw.port;
  const s = io(`http://127.0.0.1:${port}${nsp}`, {
    reconnectionDelay: 100,
    reconnectionDelayMax: 300,
    timeout: WAIT_MS,
    ...opts,
  });
  sockets.add(s);
  return s;
}

/** A Manager: one Engine.IO connection; manager.socket(nsp, { auth }) multiplexes on it. */
function manager(gw, opts = {}) {
  const port = typeof gw === 'number' ? gw : gw.port;
  return new Manager(`http://127.0.0.1:${port}`, { reconnectionDelay: 100, reconnectionDelayMax: 300, timeout: WAIT_MS, ...opts });
}

function track(s) {
  sockets.add(s);
  return s;
}

/** Resolves with the event's arguments (an array); rejects after ms. */
function once(emitter, event, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${ms} ms waiting for "${event}"`));
    }, ms);
    function on(...args) {
      clearTimeout(timer);
      resolve(args);
    }
    emitter.once(event, on);
  });
}

/** Connects and resolves with the socket; rejects with the connect_error. */
function connect(gw, nsp = '/', opts = {}) {
  const s = client(gw, nsp, opts);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connect to ${nsp} within ${WAIT_MS} ms`)), WAIT_MS);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('connect_error', onError);
      resolve(s);
    });
    function onError(err) {
      clearTimeout(timer);
      s.disconnect();
      reject(err);
    }
    s.once('connect_error', onError);
  });
}

/** The connect_error a connection attempt gets (fails when it connects instead). */
async function connectError(gw, nsp = '/', opts = {}) {
  const s = client(gw, nsp, { reconnection: false, ...opts });
  const [err] = await Promise.race([
    once(s, 'connect_error'),
    once(s, 'connect').then(() => { throw new Error(`${nsp}: connected, expected a connect_error`); }),
  ]);
  s.disconnect();
  return err;
}

/** emit with an ack; resolves with the ack's arguments (an array). */
function ack(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(WAIT_MS).emit(event, ...args, (err, ...res) => (err ? reject(err) : resolve(res)));
  });
}

async function closeAll() {
  for (const s of sockets) s.disconnect();
  sockets.clear();
}

/** Raw Engine.IO over HTTP: fetch with the gateway's /socket.io/ path. */
function eioUrl(gw, query) {
  return `http://127.0.0.1:${gw.port}/socket.io/?${query}`;
}

/** A raw WebSocket at /socket.io/ (frames collected as strings or Buffers). */
function rawWs(gw, query = 'EIO=4&transport=websocket') {
  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/socket.io/?${query}`);
  ws.frames = [];
  ws.waiters = [];
  ws.on('message', (data, isBinary) => {
    const f = isBinary ? Buffer.from(data) : data.toString();
    const w = ws.waiters.shift();
    if (w) w(f);
    else ws.frames.push(f);
  });
  ws.on('error', () => {});
  ws.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  ws.next = (ms = WAIT_MS) => (ws.frames.length ? Promise.resolve(ws.frames.shift())
    : new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no frame')), ms);
      ws.waiters.push((f) => { clearTimeout(t); resolve(f); });
    }));
  ws.opened = new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  return ws;
}

module.exports = { SECRET, mintToken, client, manager, track, connect, connectError, once, ack, closeAll, eioUrl, rawWs, WAIT_MS };
