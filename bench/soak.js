#!/usr/bin/env node
'use strict';
// Soak test (not CI): runs the real aivo-gw on 127.0.0.1 for a long time under connection
// churn, messages and a policy reload (SIGHUP) every 10 s, prints the gateway's RSS, open
// fds and Lua memory once a minute, and exits 1 when one of them trends upward.
//
//   node bench/soak.js [duration]        duration: 1800 (seconds, the default), 10m, 2h
//
// Environment: AIVO_GW_BIN (default build/aivo-gw), SOAK_CLIENTS (churning clients, 20),
// SOAK_HOLD (long-lived connections, 50), SOAK_SAMPLE_S (60), SOAK_RELOAD_S (10; 0: no
// reloads, to tell a reload leak from a connection leak), SOAK_USERS (identities the clients
// take turns at, 200).
// Needs the `ws` package of the integration tests (cd tests/integration && npm ci).
//
// The verdict: samples of the first warm-up period (2 samples, or the first fifth of a short
// run) are left out; of the rest, the mean of the last third is compared with the mean of the
// first third. Growth over the tolerance (RSS: 10 % + 4 MiB, fds: +8, Lua memory: 25 % +
// 2 MiB) fails the run. Everything is bounded: loopback only, a fixed number of clients, each
// waiting for its previous answer before sending again.

const path = require('node:path');
const fs = require('node:fs');
const crypto = require('node:crypto');
const http = require('node:http');
const { spawn } = require('node:child_process');

const REPO = path.resolve(__dirname, '..');
let WebSocket;
try {
  WebSocket = require(path.join(REPO, 'tests', 'integration', 'node_modules', 'ws'));
} catch {
  console.error('soak: the ws package is missing: run `npm ci` in tests/integration first');
  process.exit(2);
}

function parseDuration(s) {
  if (s === undefined) return 1800;
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(String(s));
  if (!m) {
    console.error(`soak: bad duration "${s}" (seconds, or 10m, 2h)`);
    process.exit(2);
  }
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[m[2] || 's']);
}

const DURATION_S = parseDuration(process.argv[2]);
const BIN = process.env.AIVO_GW_BIN || path.join(REPO, 'build', 'aivo-gw');
const CLIENTS = Number(process.env.SOAK_CLIENTS || 20);
const HOLD = Number(process.env.SOAK_HOLD || 50);
const SAMPLE_S = Number(process.env.SOAK_SAMPLE_S || 60);
const RELOAD_S = Number(process.env.SOAK_RELOAD_S || 10);
// identities the clients cycle through: per-identity state (user rooms, stability records)
// stays bounded as with real users reconnecting, so growth means a leak
const USERS = Number(process.env.SOAK_USERS || 200);
const SECRET = crypto.randomBytes(32).toString('hex');

const TOL = {
  rss: { rel: 0.10, abs: 4 * 1024 * 1024 },
  fds: { rel: 0, abs: 8 },
  lua: { rel: 0.25, abs: 2 * 1024 * 1024 },
};

const b64url = (x) => Buffer.from(x).toString('base64url');
let seq = 0;
function token() {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify({
    sub: `soak-${++seq % USERS}`, iat: now, exp: now + 7 * 86400 }))}`;
  return `${input}.${b64url(crypto.createHmac('sha256', SECRET).update(input).digest())}`;
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

function startGateway() {
  const proc = spawn(BIN, ['--policy', path.join(REPO, 'policies', 'default.lua'),
    '--listen', '127.0.0.1:0', '--set', 'ratelimit.per_minute=0'], {
    cwd: REPO, env: { ...process.env, JWT_SECRET: SECRET }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL'); // never leave it behind
      reject(new Error(`no "listening on" in 10 s:\n${log}`));
    }, 10000);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (s) => {
      log = (log + s).slice(-65536);
      const m = /listening on [^ ]+:(\d+)/.exec(log);
      if (m && timer) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]), log: () => log });
      }
    });
    proc.on('exit', (code, sig) => reject(new Error(`gateway exited (${code}, ${sig}):\n${log}`)));
  });
}

function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}
// The fewest open fds over five reads 100 ms apart: churning clients come and go, a leak
// raises the floor.
async function fdCount(pid) {
  let min = Infinity;
  for (let i = 0; i < 5; i++) {
    min = Math.min(min, fs.readdirSync(`/proc/${pid}/fd`).length);
    await delay(100);
  }
  return min;
}

function luaMemory(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics/prometheus', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (s) => { body += s; });
      res.on('end', () => {
        const m = /^aivo_lua_memory_bytes(?:\{[^}]*\})? ([0-9.e+]+)$/m.exec(body);
        resolve(m ? Number(m[1]) : NaN);
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(NaN));
  });
}

const stats = { cycles: 0, messages: 0, errors: 0, reloads: 0 };
let stopping = false;

// One echo with an ack; resolves when the ack is back (or the socket failed).
function echo(ws, id, data) {
  return new Promise((resolve, reject) => {
    const onMsg = (raw) => {
      let m;
      try { m = JSON.parse(raw); } catch { return; }
      if (m.ack === id) { ws.off('message', onMsg); resolve(m); }
    };
    ws.on('message', onMsg);
    ws.send(JSON.stringify({ event: 'echo', data, id }), (err) => { if (err) reject(err); });
    setTimeout(() => { ws.off('message', onMsg); reject(new Error('ack timeout')); }, 10000);
  });
}

function open(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Authorization: `Bearer ${token()}` } });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

// A client that connects, sends a few messages (one of them a 16 KiB payload, sometimes a
// room join), and closes; then again, until the end.
async function churner(port, n) {
  const big = 'x'.repeat(16384);
  while (!stopping) {
    try {
      const ws = await open(port);
      const k = 1 + (stats.cycles % 8);
      for (let i = 1; i <= k && !stopping; i++) {
        await echo(ws, i, i === 3 ? big : { n: i, client: n, t: Date.now() });
        stats.messages++;
      }
      if (stats.cycles % 5 === 0) {
        ws.send(JSON.stringify({ event: 'join', data: { room: `r${n % 7}` }, id: 99 }));
      }
      // half close cleanly, half just drop the TCP connection
      if (stats.cycles % 2) ws.close(1000); else ws.terminate();
      stats.cycles++;
    } catch {
      stats.errors++;
      await delay(200);
    }
    await delay(100);
  }
}

// Long-lived connections that send a message every second.
async function holder(port, n) {
  let ws;
  try { ws = await open(port); } catch { stats.errors++; return; }
  let id = 0;
  while (!stopping) {
    try {
      await echo(ws, ++id, { hold: n, id });
      stats.messages++;
    } catch {
      stats.errors++;
      try { ws.terminate(); } catch { /* gone */ }
      try { ws = await open(port); } catch { await delay(500); }
    }
    await delay(1000);
  }
  ws.close(1000);
}

const fmtMiB = (b) => (b / 1048576).toFixed(1);
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;

function verdict(samples) {
  const warm = Math.max(2, Math.floor(samples.length / 5));
  const rest = samples.slice(warm);
  if (rest.length < 3) return { ok: true, lines: ['too few samples after warm-up for a trend: no verdict'] };
  const third = Math.max(1, Math.floor(rest.length / 3));
  const first = rest.slice(0, third);
  const last = rest.slice(rest.length - third);
  let ok = true;
  const lines = [];
  for (const key of ['rss', 'fds', 'lua']) {
    const a = mean(first.map((s) => s[key]));
    const b = mean(last.map((s) => s[key]));
    const limit = a * (1 + TOL[key].rel) + TOL[key].abs;
    const grew = b > limit;
    if (grew) ok = false;
    const show = key === 'fds' ? (x) => x.toFixed(1) : (x) => `${fmtMiB(x)} MiB`;
    lines.push(`${key}: first third ${show(a)}, last third ${show(b)} (limit ${show(limit)}): ${grew ? 'GROWS' : 'flat'}`);
  }
  return { ok, lines };
}

async function main() {
  const gw = await startGateway();
  const pid = gw.proc.pid;
  gatewayPid = pid;
  let died = null;
  gw.proc.on('exit', (code, sig) => { died = `gateway exited (${code}, ${sig})`; stopping = true; });
  console.log(`soak: ${BIN} pid ${pid} on 127.0.0.1:${gw.port}, ${DURATION_S} s, ${CLIENTS} churning + ${HOLD} held clients, ${RELOAD_S > 0 ? `SIGHUP every ${RELOAD_S} s` : 'no reloads'}`);
  console.log('min   rss_MiB  fds  lua_MiB  cycles  messages  reloads  errors');

  const workers = [];
  for (let i = 0; i < HOLD; i++) workers.push(holder(gw.port, i));
  for (let i = 0; i < CLIENTS; i++) workers.push(churner(gw.port, i));
  const reload = RELOAD_S > 0 ? setInterval(() => {
    if (!stopping) { process.kill(pid, 'SIGHUP'); stats.reloads++; }
  }, RELOAD_S * 1000) : null;

  const samples = [];
  const t0 = Date.now();
  const sample = async () => {
    const s = { t: (Date.now() - t0) / 60000, rss: rssBytes(pid), fds: await fdCount(pid), lua: await luaMemory(gw.port) };
    samples.push(s);
    console.log(`${s.t.toFixed(1).padStart(4)}  ${fmtMiB(s.rss).padStart(7)}  ${String(s.fds).padStart(3)}  ${fmtMiB(s.lua).padStart(7)}  ${String(stats.cycles).padStart(6)}  ${String(stats.messages).padStart(8)}  ${String(stats.reloads).padStart(7)}  ${String(stats.errors).padStart(6)}`);
  };
  while (!stopping && Date.now() - t0 < DURATION_S * 1000) {
    await delay(Math.min(SAMPLE_S * 1000, DURATION_S * 1000 - (Date.now() - t0)));
    if (!died) await sample();
  }
  stopping = true;
  if (reload) clearInterval(reload);
  await Promise.race([Promise.allSettled(workers), delay(15000)]);
  if (died) {
    console.log(`soak: FAIL: ${died}\n${gw.log().slice(-4000)}`);
    process.exit(1);
  }
  process.kill(pid, 'SIGTERM');
  const code = await new Promise((r) => {
    const t = setTimeout(() => { process.kill(pid, 'SIGKILL'); r('killed after 15 s'); }, 15000);
    gw.proc.removeAllListeners('exit');
    gw.proc.once('exit', (c, sig) => { clearTimeout(t); r(c === 0 ? 0 : `${c} ${sig}`); });
  });
  gatewayPid = 0;
  const v = verdict(samples);
  const rate = stats.messages / ((Date.now() - t0) / 1000);
  console.log(`totals: ${stats.cycles} connection cycles, ${stats.messages} messages (${rate.toFixed(0)}/s), ${stats.reloads} reloads, ${stats.errors} client errors; drain exit: ${code}`);
  for (const l of v.lines) console.log(l);
  const ok = v.ok && code === 0;
  console.log(ok ? 'soak: PASS' : 'soak: FAIL');
  process.exit(ok ? 0 : 1);
}

let gatewayPid = 0;
process.on('exit', () => { if (gatewayPid) try { process.kill(gatewayPid, 'SIGKILL'); } catch { /* gone */ } });
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130));
main().catch((err) => { console.error(`soak: ${err.stack || err}`); process.exit(2); });
