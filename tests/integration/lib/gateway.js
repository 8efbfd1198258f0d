'use strict';
// Helpers shared by the integration tests: start the real aivo-gw binary on an
// ephemeral loopback port, run it for one-shot CLI checks, and talk the native
// /ws protocol with a small promise-based client.

const path = require('node:path');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');
const net = require('node:net');
const http = require('node:http');
const WebSocket = require('ws');

const REPO = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.AIVO_GW_BIN || path.resolve(__dirname, '..', '..', '..', 'build', 'aivo-gw');
const DEFAULT_POLICY = path.join(REPO, 'policies', 'default.lua');
const TEST_POLICIES = path.join(REPO, 'tests', 'policies');
const LISTENING_RE = /listening on [^ ]+:(\d+)/;

// Generous defaults: CI is a loaded 2-core machine, but every wait is bounded.
const START_TIMEOUT_MS = 10000;
const WAIT_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 15000;
const LOG_CAP = 8 * 1024 * 1024;

// Auth (docs/security.md): the default policy requires a token. Every gateway
// started here gets JWT_SECRET = TEST_SECRET, and connect() presents a token
// minted with it unless told otherwise, so suites that do not test auth need
// not care. Variables a developer's shell may hold are cleared so runs are
// hermetic; opts.env can set them again (a value of undefined removes one).
const TEST_SECRET = crypto.randomBytes(32).toString('hex');
const CLEARED_ENV = ['NEXTAUTH_SECRET', 'SSL_ENABLED', 'SSL_CERT_PATH', 'SSL_KEY_PATH', 'CORS_ORIGIN',
  'REDIS_URL', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_DB', 'REDIS_PASSWORD',
  'AIVO_DEV_SECRET_FILE'];

function gatewayEnv(extra = {}) {
  const env = { ...process.env, JWT_SECRET: TEST_SECRET };
  for (const k of CLEARED_ENV) delete env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined || v === null) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

let tokenSeq = 0;
const b64url = (x) => Buffer.from(x).toString('base64url');

/**
 * A signed JWT (node:crypto only). claims are merged over
 * {sub: 'user-<n>' (unique per call), iat: now, exp: now + 3600}; a claim set
 * to undefined is left out. opts: alg (HS256 default; HS384/512, RS*, ES*,
 * 'none'), secret (HS256/384/512, default TEST_SECRET), key (RS and ES: a private
 * KeyObject or PEM), kid, header (extra header fields).
 */
function mintToken(claims = {}, opts = {}) {
  const alg = opts.alg || 'HS256';
  const header = { alg, typ: 'JWT', ...(opts.kid !== undefined ? { kid: opts.kid } : {}), ...(opts.header || {}) };
  const now = Math.floor(Date.now() / 1000);
  const payload = { sub: `user-${++tokenSeq}`, iat: now, exp: now + 3600, ...claims };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const hash = `sha${alg.slice(2)}`;
  let sig;
  if (alg.startsWith('HS')) sig = crypto.createHmac(hash, opts.secret || TEST_SECRET).update(input).digest();
  else if (alg.startsWith('RS')) sig = crypto.sign(hash, Buffer.from(input), opts.key);
  else if (alg.startsWith('ES')) sig = crypto.sign(hash, Buffer.from(input), { key: opts.key, dsaEncoding: 'ieee-p1363' });
  else sig = Buffer.alloc(0);
  return `${input}.${b64url(sig)}`;
}

// Every gateway we spawn, so none outlives the test process even when a test
// throws before its teardown runs.
const live = new Set();

// A running child and its pipes must not keep the test process alive on their
// own, or a test that fails before its teardown would hang instead of reaching
// the exit hook below. Every wait in this file has its own (ref'd) timer.
function track(proc) {
  live.add(proc);
  proc.unref();
  proc.stdout.unref();
  proc.stderr.unref();
}

function killAll() {
  for (const proc of live) {
    try { process.kill(proc.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + (sig === 'SIGHUP' ? 1 : sig === 'SIGINT' ? 2 : 15));
  });
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Rejects with a readable message if `promise` does not settle in time.
/** Poll fn until it returns something truthy (returned); throws after ms with the last value. */
async function until(what, fn, ms = 10000, stepMs = 25) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < ms) {
    last = await fn();
    if (last) return last;
    await delay(stepMs);
  }
  throw new Error(`timed out after ${ms} ms: ${what} (last: ${JSON.stringify(last)})`);
}

function withTimeout(promise, ms, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

function buildArgs({ policy, listen, set = [], args = [] }) {
  const argv = [];
  if (policy !== null) argv.push('--policy', policy || DEFAULT_POLICY);
  if (listen !== null) argv.push('--listen', listen || '127.0.0.1:0');
  for (const kv of set) argv.push('--set', kv);
  return argv.concat(args);
}

function exitPromise(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve({ code: proc.exitCode, signal: proc.signalCode });
      return;
    }
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/**
 * Start a gateway and wait for its `listening on HOST:PORT` line.
 * opts: policy (path; default policies/default.lua; null = no --policy),
 *       listen (default 127.0.0.1:0; null = no --listen), set (["k=v", ...]),
 *       args (extra argv), env (merged over process.env, see gatewayEnv:
 *       JWT_SECRET is TEST_SECRET unless set here), timeoutMs.
 * Resolves { port, url(path), proc, logs(), stop(signal), exited }.
 */
async function startGateway(opts = {}) {
  const argv = buildArgs(opts);
  // opts.wrapper: a command the gateway runs under, e.g. ['valgrind', '--leak-check=full']
  const [cmd, ...cmdArgs] = opts.wrapper ? [...opts.wrapper, BIN, ...argv] : [BIN, ...argv];
  const proc = spawn(cmd, cmdArgs, {
    cwd: REPO,
    env: gatewayEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(proc);
  const exited = exitPromise(proc).then((r) => { live.delete(proc); return r; });

  let stderr = '';
  let stdout = '';
  // Keep draining both pipes for the whole run: a full pipe would block the
  // gateway's logger and look like a hang.
  proc.stderr.setEncoding('utf8');
  proc.stdout.setEncoding('utf8');
  proc.stderr.on('data', (s) => { stderr = (stderr + s).slice(-LOG_CAP); });
  proc.stdout.on('data', (s) => { stdout = (stdout + s).slice(-LOG_CAP); });

  const timeoutMs = opts.timeoutMs || START_TIMEOUT_MS;
  const describe = () =>
    `${BIN} ${argv.join(' ')}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`;

  let port;
  try {
    port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`gateway did not log "listening on" within ${timeoutMs} ms\n${describe()}`));
      }, timeoutMs);
      const onData = () => {
        const m = LISTENING_RE.exec(stderr);
        if (m) { cleanup(); resolve(Number(m[1])); }
      };
      const onError = (err) => {
        cleanup();
        reject(new Error(`cannot start gateway: ${err.message}\n${describe()}`));
      };
      // 'close' fires after the pipes are drained, so the report has all of stderr.
      const onExit = (code, signal) => {
        cleanup();
        reject(new Error(`gateway exited (code ${code}, signal ${signal}) before listening\n${describe()}`));
      };
      function cleanup() {
        clearTimeout(timer);
        proc.stderr.off('data', onData);
        proc.off('error', onError);
        proc.off('close', onExit);
      }
      proc.stderr.on('data', onData);
      proc.on('error', onError);
      proc.on('close', onExit);
    });
  } catch (err) {
    try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
    await exited;
    throw err;
  }

  return {
    port,
    proc,
    exited,
    url: (p = '/ws') => `ws://127.0.0.1:${port}${p}`,
    logs: () => stderr + stdout,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    /**
     * Send `signal` (default SIGTERM) and resolve {code, signal} once the
     * process is gone. If it has not exited after timeoutMs it is SIGKILLed
     * and the result says so (timedOut: true), so teardown never hangs.
     */
    async stop(signal = 'SIGTERM', timeoutMs = STOP_TIMEOUT_MS) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      try { process.kill(proc.pid, signal); } catch { return exited; }
      let timer;
      const res = await Promise.race([
        exited,
        new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); }),
      ]);
      clearTimeout(timer);
      if (res) return res;
      try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
      const killed = await exited;
      return { ...killed, timedOut: true };
    },
  };
}

/**
 * Run the binary to completion (for --help, --check, startup errors).
 * Resolves { code, signal, stdout, stderr, timedOut }.
 */
function runGateway(argv, opts = {}) {
  const timeoutMs = opts.timeoutMs || 15000;
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, argv, {
      cwd: REPO,
      env: gatewayEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(proc);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (s) => { stdout += s; });
    proc.stderr.on('data', (s) => { stderr += s; });
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
    }, timeoutMs);
    proc.on('error', (err) => {
      clearTimeout(timer);
      live.delete(proc);
      reject(new Error(`cannot run ${BIN}: ${err.message}`));
    });
    // 'close' rather than 'exit': waits for the pipes to be fully read.
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(proc);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

// A port that was free a moment ago (for the PORT env test).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A native-protocol client. Every frame received is kept in `received`
 * (JSON text frames parsed; binary frames as {binary: Buffer}; unparsable
 * text as {text}). Acks settle the matching request(); other frames wait in
 * an inbox until next()/nextBinary() takes them.
 */
class Client {
  constructor(ws) {
    this.ws = ws;
    this.received = [];
    this.inbox = [];
    this.waiters = [];
    this.pending = new Map();
    this.nextId = 1;
    this.closeInfo = null;
    this.error = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const [, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(new Error(`connection closed (code ${code}) before ack ${p.id} (${p.event})`));
        }
        this.pending.clear();
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error(`connection closed (code ${code}) while waiting for ${w.what}`));
        }
        resolve(this.closeInfo);
      });
    });
    // Errors (e.g. ECONNRESET) are followed by 'close'; keep them for assertions.
    ws.on('error', (err) => { this.error = err; });
    ws.on('message', (raw, isBinary) => this._onFrame(raw, isBinary));
  }

  _onFrame(raw, isBinary) {
    let frame;
    if (isBinary) {
      frame = { binary: Buffer.from(raw) };
    } else {
      const text = raw.toString('utf8');
      try { frame = JSON.parse(text); } catch { frame = { text }; }
    }
    this.received.push(frame);
    if (frame && typeof frame === 'object' && !Array.isArray(frame) && 'ack' in frame) {
      const p = this.pending.get(frame.ack);
      if (p) {
        this.pending.delete(frame.ack);
        clearTimeout(p.timer);
        p.resolve(frame);
        return;
      }
    }
    const i = this.waiters.findIndex((w) => w.match(frame));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(frame);
    } else {
      this.inbox.push(frame);
    }
  }

  /** Send {event, data, id} and resolve with the ack frame ({ack, data} or {ack, error}). */
  request(event, data, { timeout = WAIT_TIMEOUT_MS } = {}) {
    const id = this.nextId++;
    const msg = { event, id };
    if (data !== undefined) msg.data = data;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no ack for id ${id} (event ${event}) within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { id, event, resolve, reject, timer });
      this.ws.send(JSON.stringify(msg), (err) => {
        if (err) {
          clearTimeout(timer);
          this.pending.delete(id);
          reject(err);
        }
      });
    });
  }

  /** Send an event without asking for an ack. */
  send(event, data) {
    const msg = { event };
    if (data !== undefined) msg.data = data;
    this.ws.send(JSON.stringify(msg));
  }

  /** Send raw bytes/text as-is (opts passed to ws.send: binary, fin, ...). */
  sendRaw(payload, opts = {}) {
    return new Promise((resolve, reject) => {
      this.ws.send(payload, opts, (err) => (err ? reject(err) : resolve()));
    });
  }

  _wait(match, what, timeout) {
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    if (this.closeInfo) {
      return Promise.reject(new Error(`connection closed (code ${this.closeInfo.code}) while waiting for ${what}`));
    }
    return new Promise((resolve, reject) => {
      const w = { match, what, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; received so far: ` +
          JSON.stringify(this.received.slice(-5)).slice(0, 2000)));
      }, timeout);
      this.waiters.push(w);
    });
  }

  /** Next not-yet-consumed event frame named `event` ({event, data}). */
  next(event, { timeout = WAIT_TIMEOUT_MS } = {}) {
    return this._wait((f) => f && f.event === event, `event "${event}"`, timeout);
  }

  /** Next not-yet-consumed frame for which match(frame) is true. */
  nextMatching(match, what = 'a matching frame', { timeout = WAIT_TIMEOUT_MS } = {}) {
    return this._wait((f) => f && match(f), what, timeout);
  }

  /** Next not-yet-consumed binary frame, as a Buffer. */
  async nextBinary({ timeout = WAIT_TIMEOUT_MS } = {}) {
    const f = await this._wait((x) => x && Buffer.isBuffer(x.binary), 'a binary frame', timeout);
    return f.binary;
  }

  /** Every event frame named `event` received so far (consumed or not). */
  events(event) {
    return this.received.filter((f) => f && f.event === event);
  }

  /**
   * A round trip through the gateway. The gateway keeps per-connection order,
   * so anything queued to this client before the barrier has arrived once it
   * resolves: a cheap way to assert that something was NOT delivered.
   */
  async sync(opts) {
    const ack = await this.request('echo', 'sync', opts);
    if (ack.error) throw new Error(`sync echo failed: ${JSON.stringify(ack.error)}`);
  }

  /** Resolve {code, reason} when the connection closes (bounded). */
  waitClose(timeout = WAIT_TIMEOUT_MS) {
    return withTimeout(this.closed, timeout, 'the connection to close');
  }

  get open() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Close politely, then force it if the gateway does not answer. */
  async close(timeout = 3000) {
    if (this.ws.readyState === WebSocket.CLOSED) return this.closeInfo;
    if (this.ws.readyState !== WebSocket.CLOSING) this.ws.close(1000);
    try {
      return await withTimeout(this.closed, timeout, 'close handshake');
    } catch {
      this.ws.terminate();
      return this.closed;
    }
  }
}

/**
 * Connect to ws://127.0.0.1:PORT/ws (gw may be a gateway handle or a port).
 * A token minted with TEST_SECRET goes in an Authorization: Bearer header:
 * opts.token gives one (null: none), opts.claims are minted into it.
 * opts.secure: wss:// (wsOptions carry ca / rejectUnauthorized).
 */
function connect(gw, { path: p = '/ws', timeout = WAIT_TIMEOUT_MS, wsOptions = {}, token, claims, secure = false } = {}) {
  const port = typeof gw === 'number' ? gw : gw.port;
  const url = `${secure ? 'wss' : 'ws'}://127.0.0.1:${port}${p}`;
  const tok = token === undefined ? mintToken(claims) : token;
  const headers = { ...(tok ? { authorization: `Bearer ${tok}` } : {}), ...(wsOptions.headers || {}) };
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: timeout, ...wsOptions, headers });
    // Attach the client (and its listeners) before open so no early frame is lost.
    const client = new Client(ws);
    const onOpen = () => { ws.off('error', onError); resolve(client); };
    const onError = (err) => {
      ws.off('open', onOpen);
      reject(new Error(`cannot connect to ${url}: ${err.message}`));
    };
    ws.once('open', onOpen);
    ws.once('error', onError);
  });
}

/**
 * Try a WebSocket upgrade and report how it went, without throwing:
 * {client} when it was accepted (close it), or {status, headers, body} with
 * the HTTP answer that refused it, or {error} (network). Same options as
 * connect() (default: a valid token; token: null for none).
 */
function upgrade(gw, { path: p = '/ws', timeout = WAIT_TIMEOUT_MS, wsOptions = {}, token, claims, secure = false } = {}) {
  const port = typeof gw === 'number' ? gw : gw.port;
  const url = `${secure ? 'wss' : 'ws'}://127.0.0.1:${port}${p}`;
  const tok = token === undefined ? mintToken(claims) : token;
  const headers = { ...(tok ? { authorization: `Bearer ${tok}` } : {}), ...(wsOptions.headers || {}) };
  return withTimeout(new Promise((resolve) => {
    const ws = new WebSocket(url, { handshakeTimeout: timeout, ...wsOptions, headers });
    const client = new Client(ws);
    ws.once('open', () => resolve({ client }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(body); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, body, json });
      });
      res.on('error', () => resolve({ status: res.statusCode, headers: res.headers, body, json: null }));
    });
    ws.once('error', (error) => resolve({ error }));
  }), timeout + 1000, `the upgrade of ${url}`);
}

/**
 * One HTTP request to 127.0.0.1:port (the admin API, /readyz, /metrics): resolves
 * {status, json (null when the body is not JSON), text}. opts: body (an object is sent as
 * JSON), token (an Authorization: Bearer header; none when absent).
 */
function httpRequest(port, method, p, { body, token } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Track clients so a test can close them all in teardown. */
function clientPool() {
  const all = [];
  return {
    async connect(gw, opts) {
      const c = await connect(gw, opts);
      all.push(c);
      return c;
    },
    async closeAll() {
      await Promise.all(all.map((c) => c.close().catch(() => {})));
    },
  };
}

module.exports = {
  until,
  TEST_SECRET,
  httpRequest,
  mintToken,
  upgrade,
  gatewayEnv,
  BIN,
  REPO,
  DEFAULT_POLICY,
  TEST_POLICIES,
  LISTENING_RE,
  startGateway,
  runGateway,
  connect,
  clientPool,
  freePort,
  delay,
  withTimeout,
  Client,
};
