'use strict';
// Reload under load (issue 5): 200 connections (150 native /ws, 50 socket.io-client) each keep
// one request in flight while the policy is reloaded 50 times through POST /admin/reload,
// alternating valid edits with broken ones (syntax error, error at load, unknown hook key,
// failing plugin init). A plugin stamps the policy version into every reply, so the test can
// tell exactly when each connection switched:
//   - no connection closes, no request goes unanswered or gets internal_error;
//   - the versions a client sees never go back and are all versions that loaded;
//   - a request sent after /admin/reload answered 200 sees the new version, every client;
//   - a broken edit answers 422 with file:line and the version stays;
//   - aivo_policy_reload_total{result="ok"} and {result="error"} each rise by exactly 25.
// Then the folder watch and coalescing: a rename-style save reloads exactly once; SIGHUP, a
// save and POST /admin/reload fired together end on the saved content without an error and
// without a reload of their own for the save; SIGHUPs and a save made during a (slow) reload
// give one more reload; a broken save followed by a fix recovers.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { startGateway, clientPool, mintToken, delay } = require('./lib/gateway');
const sio = require('./lib/sio');

const N_WS = 150;
const N_SIO = 50;
// of the Socket.IO clients: 5 long-polling only, 5 default transports (polling, then the
// upgrade to WebSocket), the rest WebSocket only
const SIO_TRANSPORTS = (i) => (i < 5 ? ['polling'] : i < 10 ? ['polling', 'websocket'] : ['websocket']);
const RELOADS = 50;
const REQUEST_TIMEOUT_MS = 20000;
const DEBOUNCE_SETTLE_MS = 1200; // the watch debounces 300 ms; leave room on a loaded machine

let root;
let policyDir; // watched by the gateway (the policy's folder)
let liveDir; // --plugin-path, NOT under the policy's folder: edits here reload only when asked
let gw;
let adminPort;
const pool = clientPool();
const natives = [];
const sockets = [];

// ---- policy sources ------------------------------------------------------------------

// The policy answers "tag" itself (for the folder-watch tests); "version" goes to the stamp
// plugin. The limit hook is there so that --set ratelimit.per_minute=0 turns it off.
const policySource = (tag, { slowLoad = 0 } = {}) => `local gw = require "aivo"
local TAG = "${tag}"
${slowLoad ? `gw.log.info("loading the slow policy %s", TAG)
local t0 = os.clock()
while os.clock() - t0 < ${slowLoad} do end` : ''}
return gw.policy {
  name = "reload-load",
  config = { ratelimit = { per_minute = 100 } },
  plugins = { "stamp" },
  limit = function(conn, msg)
    local per_minute = gw.config.ratelimit.per_minute
    if per_minute > 0 then
      return { name = "per_connection", key = "conn:" .. conn.id, limit = per_minute, window = 60 }
    end
  end,
  message = function(conn, msg)
    if msg.event == "tag" then return gw.DONE, { tag = TAG } end
  end,
}
`;

// A valid stamp plugin of version v, or one broken in one of four ways. A broken edit also
// carries a version (never loaded), so a broken edit that slipped through would show up.
const BROKEN = ['syntax', 'runtime', 'unknown_hook', 'init'];
function stampSource(v, broken) {
  const lines = [
    'local gw = require "aivo"',
    `local V = ${v}`,
    broken === 'syntax' ? 'local x = = 1' : '-- line 3',
    broken === 'runtime' ? 'error("broken at load on purpose")' : '-- line 4',
    'return gw.plugin {',
    `  name = "stamp", version = "${v}.0.0",`,
    broken === 'unknown_hook' ? '  on_mesage = function(conn, msg) end,' : '  -- line 7',
    broken === 'init' ? '  init = function(cfg) error("init refuses on purpose") end,' : '  -- line 8',
    '  events = { version = function(conn, msg) return gw.DONE, { v = V } end },',
    '}',
    '',
  ];
  return lines.join('\n');
}
// What the error of each kind must say, with the file and line.
const BROKEN_ERROR = {
  syntax: /stamp\.lua:3: .*'='/,
  runtime: /stamp\.lua:4: broken at load on purpose/,
  unknown_hook: /stamp\.lua:7: unknown plugin key 'on_mesage'/,
  init: /stamp\.lua: init failed: .*stamp\.lua:8: init refuses on purpose/,
};

function writeByRename(file, text, tmpName = `.goutputstream-${process.pid}`) {
  const tmp = path.join(path.dirname(file), tmpName);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

// ---- HTTP: admin API and metrics -----------------------------------------------------

function httpRequest(port, method, p) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: method === 'POST' ? { 'content-length': 0 } : {} },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { text += d; });
        res.on('end', () => {
          let json = null;
          try { json = JSON.parse(text); } catch { /* not JSON */ }
          resolve({ status: res.statusCode, json, text });
        });
      });
    req.setTimeout(30000, () => req.destroy(new Error(`${method} ${p}: no answer within 30 s`)));
    req.on('error', reject);
    req.end();
  });
}
const admin = (method, p) => httpRequest(adminPort, method, p);

async function reloadCounters() {
  const body = (await httpRequest(gw.port, 'GET', '/metrics/prometheus')).text;
  const get = (result) => {
    const m = new RegExp(`^aivo_policy_reload_total\\{result="${result}"\\} (\\S+)$`, 'm').exec(body);
    return m ? Number(m[1]) : 0;
  };
  return { ok: get('ok'), error: get('error') };
}

const countLines = (re) => (gw.logs().match(re) || []).length;

// ---- setup ---------------------------------------------------------------------------

async function inBatches(n, size, fn) {
  const out = [];
  for (let i = 0; i < n; i += size) {
    out.push(...await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, j) => fn(i + j))));
  }
  return out;
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-reload-load-'));
  policyDir = path.join(root, 'policy');
  liveDir = path.join(root, 'live');
  fs.mkdirSync(policyDir);
  fs.mkdirSync(liveDir);
  fs.writeFileSync(path.join(policyDir, 'policy.lua'), policySource('t0'));
  fs.writeFileSync(path.join(liveDir, 'stamp.lua'), stampSource(0));
  gw = await startGateway({
    policy: path.join(policyDir, 'policy.lua'),
    // the slow loads below spin 1 s of CPU: on a busy machine that is more than the default
    // 2 s wall-clock bound of a load (lua.load_timeout_ms)
    set: ['ratelimit.per_minute=0', 'lua.load_timeout_ms=20000'],
    args: ['--plugin-path', liveDir, '--admin-listen', '127.0.0.1:0'],
  });
  const t0 = Date.now();
  let m;
  while (!(m = /admin API on 127\.0\.0\.1:(\d+)/.exec(gw.logs())) && Date.now() - t0 < 5000) await delay(50);
  assert.ok(m, `no admin API line in the log:\n${gw.logs()}`);
  adminPort = Number(m[1]);

  natives.push(...await inBatches(N_WS, 25, () => pool.connect(gw)));
  sockets.push(...await inBatches(N_SIO, 10, (i) => sio.connect(gw, '/', {
    transports: SIO_TRANSPORTS(i),
    reconnection: false, // a dropped connection must stay dropped, not come back unnoticed
    auth: { token: mintToken() },
  })));
});

after(async () => {
  await sio.closeAll();
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

// ---- the load ------------------------------------------------------------------------

// One closed-loop sender per connection; `ask(cb)` sends one "version" request and calls
// cb(err, reply) where reply is {v} or an error object.
function nativeAsk(c) {
  return () => c.request('version', undefined, { timeout: REQUEST_TIMEOUT_MS }).then((f) => (f.error ? { error: f.error } : f.data));
}
function sioAsk(s) {
  return () => new Promise((resolve, reject) => {
    s.timeout(REQUEST_TIMEOUT_MS).emit('version', (err, res) => (err ? reject(err) : resolve(res)));
  });
}

test('200 connections keep sending while the policy is reloaded 50 times, valid and broken in turn', async (t) => {
  const started = Date.now();
  const countersBefore = await reloadCounters();
  const genBefore = (await admin('GET', '/admin/policy')).json.generation;

  const clients = [
    ...natives.map((c, i) => ({ name: `ws#${i}`, ask: nativeAsk(c), isOpen: () => c.open && !c.closeInfo })),
    ...sockets.map((s, i) => {
      const rec = { name: `sio#${i}(${s.io.engine.transport.name})`, ask: sioAsk(s), disconnects: [] };
      s.on('disconnect', (reason) => rec.disconnects.push(reason));
      rec.isOpen = () => s.connected && rec.disconnects.length === 0;
      return rec;
    }),
  ];
  const closes = [];
  natives.forEach((c, i) => c.closed.then((info) => closes.push(`ws#${i}: ${JSON.stringify(info)}`)));

  // When a request is sent, the confirmed version (the last one /admin/reload answered 200
  // for) is its floor: the gateway swapped before answering, so anything sent after that
  // answer must see it. A request sent earlier may be handled before or after a swap (it may
  // even reach the gateway late: socket.io-client's polling transport holds an emit while
  // its previous POST is out), so its ceiling is only known when the reply comes: a loaded
  // version, or the one being loaded right now if that edit is a valid one.
  const state = { confirmed: 0, candidate: null, round: 0, stop: false };
  const loaded = new Set([0]);
  const failures = [];
  let answered = 0;
  let overlapped = 0; // answers to requests sent while a reload was out
  let caughtUp = 0;
  let onCaughtUp = null;
  let onFailure = null;
  const fail = (msg) => {
    failures.push(msg);
    if (onFailure) onFailure();
  };

  for (const cl of clients) {
    cl.seen = [];
    cl.caughtUpRound = 0;
    cl.loop = (async () => {
      while (!state.stop) {
        const snap = { lo: state.confirmed, round: state.round, out: state.candidate !== null };
        let reply;
        try {
          reply = await cl.ask();
        } catch (err) {
          fail(`${cl.name}: request unanswered: ${err.message}`);
          return;
        }
        answered++;
        if (!reply || typeof reply.v !== 'number') {
          fail(`${cl.name}: bad reply ${JSON.stringify(reply)}`);
          return;
        }
        const v = reply.v;
        const prev = cl.seen.length ? cl.seen[cl.seen.length - 1] : -1;
        if (v < prev) fail(`${cl.name}: version went back from ${prev} to ${v}`);
        if (v < snap.lo) {
          fail(`${cl.name}: got version ${v} for a request sent after version ${snap.lo} was confirmed`);
        } else if (!loaded.has(v) && !(v === state.candidate && state.candidateValid)) {
          fail(`${cl.name}: got version ${v}, which was never loaded (confirmed: ${state.confirmed}, ` +
            `being loaded: ${state.candidate})`);
        }
        if (snap.out) overlapped++;
        if (prev !== v) cl.seen.push(v);
        if (!snap.out && snap.round === state.round && cl.caughtUpRound < snap.round) {
          cl.caughtUpRound = snap.round;
          if (++caughtUp === clients.length && onCaughtUp) onCaughtUp();
        }
        if (failures.length > 20) return;
      }
    })();
  }

  // Every client has an answer to a request it sent after the last reload answered.
  async function everyClientCaughtUp(what) {
    if (caughtUp < clients.length) {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`after ${what}: only ${caughtUp}/${clients.length} clients ` +
          `were answered within 20 s; failures: ${failures.slice(0, 5).join('; ')}`)), 20000);
        onCaughtUp = () => { clearTimeout(timer); resolve(); };
        onFailure = () => { clearTimeout(timer); reject(new Error(`after ${what}: ${failures.slice(0, 5).join('; ')}`)); };
        if (failures.length) onFailure();
      });
      onCaughtUp = null;
      onFailure = null;
    }
  }

  let ok = 0;
  let errors = 0;
  let generation = genBefore;
  let version = 0;
  const stampFile = path.join(liveDir, 'stamp.lua');
  try {
    await delay(200); // load running before the first reload
    for (let i = 0; i < RELOADS && failures.length === 0; i++) {
      const valid = i % 2 === 0;
      const kind = valid ? null : BROKEN[((i - 1) / 2) % BROKEN.length];
      const candidate = valid ? version + 1 : 1000 + i;
      writeByRename(stampFile, stampSource(candidate, kind));
      state.candidate = candidate;
      state.candidateValid = valid;
      const r = await admin('POST', '/admin/reload');
      const what = `reload ${i + 1} (${valid ? `valid, version ${candidate}` : `broken: ${kind}`})`;
      if (valid) {
        assert.equal(r.status, 200, `${what}: ${r.text}\n${gw.logs().slice(-3000)}`);
        assert.equal(r.json.last_reload.result, 'ok', what);
        assert.deepEqual(r.json.last_reload.errors, [], what);
        assert.equal(r.json.generation, generation + 1, `${what}: generation`);
        generation = r.json.generation;
        version = candidate;
        loaded.add(version);
        ok++;
      } else {
        assert.equal(r.status, 422, `${what}: ${r.text}`);
        assert.equal(r.json.last_reload.result, 'error', what);
        assert.ok(r.json.last_reload.errors.some((e) => BROKEN_ERROR[kind].test(e)),
          `${what}: no ${BROKEN_ERROR[kind]} in ${JSON.stringify(r.json.last_reload.errors)}`);
        assert.ok(r.json.last_reload.errors.every((e) => /stamp\.lua:\d+/.test(e)),
          `${what}: every error has file:line: ${JSON.stringify(r.json.last_reload.errors)}`);
        assert.equal(r.json.generation, generation, `${what}: the running generation must not change`);
        errors++;
      }
      // from here on every request must see `version`, and every client sends one
      state.confirmed = version;
      state.candidate = null;
      state.round++;
      caughtUp = 0;
      await everyClientCaughtUp(what);
    }
    await delay(200); // and some more load after the last one
  } finally {
    // the last edit was a broken one: put the running version back on disk for the next tests
    writeByRename(stampFile, stampSource(version));
    state.stop = true;
    await Promise.all(clients.map((cl) => cl.loop));
  }

  const seconds = (Date.now() - started) / 1000;
  assert.deepEqual(failures, [], failures.slice(0, 20).join('\n'));
  assert.equal(ok, RELOADS / 2);
  assert.equal(errors, RELOADS / 2);

  // nobody dropped
  assert.deepEqual(closes, [], 'native connections closed during the reloads');
  const down = clients.filter((cl) => !cl.isOpen()).map((cl) => `${cl.name} ${JSON.stringify(cl.disconnects || [])}`);
  assert.deepEqual(down, [], 'connections not open at the end');

  // versions: only loaded ones, and each client saw every one of them in order
  for (const cl of clients) {
    assert.ok(cl.seen.every((v) => loaded.has(v)), `${cl.name} saw ${cl.seen} (loaded: ${[...loaded]})`);
    assert.deepEqual(cl.seen, [...loaded].sort((a, b) => a - b), `${cl.name}: versions seen`);
  }

  const countersAfter = await reloadCounters();
  assert.equal(countersAfter.ok - countersBefore.ok, RELOADS / 2, 'aivo_policy_reload_total{result="ok"}');
  assert.equal(countersAfter.error - countersBefore.error, RELOADS / 2, 'aivo_policy_reload_total{result="error"}');
  // the broken edits were logged with file:line too
  assert.equal(countLines(/policy reload \(admin API\) failed; generation \d+ keeps serving/g), RELOADS / 2);

  const msg = `${answered} requests answered (${overlapped} of them sent while a reload was out) by ` +
    `${clients.length} connections (${N_WS} /ws, ${N_SIO} Socket.IO); reloads ok ${ok}, error ${errors}; ` +
    `${seconds.toFixed(1)} s`;
  t.diagnostic(msg);
  assert.ok(overlapped > 0, 'some requests must have been in flight during a reload');
});

// ---- the folder watch ----------------------------------------------------------------

async function tag(c) {
  const r = await c.request('tag');
  assert.ok(!r.error, JSON.stringify(r));
  return r.data.tag;
}

async function waitForTag(c, want, ms = 8000) {
  const t0 = Date.now();
  let seen;
  while (Date.now() - t0 < ms) {
    if ((seen = await tag(c)) === want) return;
    await delay(50);
  }
  assert.fail(`policy tag stayed ${seen}, expected ${want}\n${gw.logs().slice(-3000)}`);
}

test('a rename-style save reloads exactly once (temp file + rename, and vim\'s backup rename)', async () => {
  const c = natives[0];
  const file = path.join(policyDir, 'policy.lua');
  const saves = {
    // gedit, VS Code's atomic writers, write-file-atomic: a new file renamed over the old one
    'temp file renamed over it': (text) => writeByRename(file, text),
    // vim (backupcopy=auto): the old file renamed to a backup, a new one written, backup removed
    'backup rename, new file, unlink backup': (text) => {
      fs.renameSync(file, `${file}~`);
      fs.writeFileSync(file, text);
      fs.unlinkSync(`${file}~`);
    },
  };
  let n = 0;
  for (const [how, save] of Object.entries(saves)) {
    const counters = await reloadCounters();
    const lines = countLines(/policy reloaded \(file change\)/g);
    const want = `rename-${++n}`;
    save(policySource(want));
    await waitForTag(c, want);
    await delay(DEBOUNCE_SETTLE_MS); // a second reload, if any, would have happened by now
    const after = await reloadCounters();
    assert.equal(countLines(/policy reloaded \(file change\)/g) - lines, 1, `${how}: "policy reloaded (file change)" lines`);
    assert.equal(after.ok - counters.ok, 1, `${how}: ok reloads`);
    assert.equal(after.error - counters.error, 0, `${how}: failed reloads`);
  }
});

// Triggers coalesce: a reload reads every source, so a save already seen when a reload starts
// (by SIGHUP or POST /admin/reload) is part of it and gets no reload of its own.
test('SIGHUP, a save and POST /admin/reload fired together: no error, two reloads, the saved content wins', async () => {
  const c = natives[1];
  const file = path.join(policyDir, 'policy.lua');
  // The POST always reloads (it answers with the result). The save is always made before
  // the SIGHUP or the POST reaches the gateway (the POST connects asynchronously), so one
  // of them reads it: two reloads in every order, never a third for the save itself.
  const orders = {
    'save, SIGHUP, POST': (text) => {
      writeByRename(file, text);
      gw.proc.kill('SIGHUP');
      return admin('POST', '/admin/reload');
    },
    'SIGHUP, POST, save': (text) => {
      gw.proc.kill('SIGHUP');
      const post = admin('POST', '/admin/reload');
      writeByRename(file, text);
      return post;
    },
    'POST, save, SIGHUP': (text) => {
      const post = admin('POST', '/admin/reload');
      writeByRename(file, text);
      gw.proc.kill('SIGHUP');
      return post;
    },
  };
  let n = 0;
  for (const [order, fire] of Object.entries(orders)) {
    const counters = await reloadCounters();
    const failedLines = countLines(/policy reload \([^)]*\) failed/g);
    const want = `together-${++n}`;
    const r = await fire(policySource(want));
    assert.equal(r.status, 200, `${order}: ${r.text}`);
    await waitForTag(c, want);
    await delay(DEBOUNCE_SETTLE_MS);
    assert.equal(await tag(c), want, `${order}: ends on the saved content`);
    const after = await reloadCounters();
    assert.equal(after.error - counters.error, 0, `${order}: failed reloads`);
    assert.equal(countLines(/policy reload \([^)]*\) failed/g), failedLines, `${order}: failures in the log`);
    assert.equal(after.ok - counters.ok, 2, `${order}: reloads\n${gw.logs().split('\n').filter((l) => /reload/.test(l)).slice(-4).join('\n')}`);
    assert.equal((await admin('GET', '/admin/policy')).json.last_reload.result, 'ok');
  }
});

test('triggers during a reload coalesce into one more reload', async () => {
  const c = natives[1];
  const file = path.join(policyDir, 'policy.lua');
  const counters = await reloadCounters();
  // a policy that takes 1 s (CPU) to load, and says when it starts
  writeByRename(file, policySource('slow-1', { slowLoad: 1 }));
  const post = admin('POST', '/admin/reload');
  const t0 = Date.now();
  while (!/loading the slow policy slow-1/.test(gw.logs()) && Date.now() - t0 < 10000) await delay(10);
  assert.match(gw.logs(), /loading the slow policy slow-1/);
  // while it loads: a save and three SIGHUPs
  writeByRename(file, policySource('during', { slowLoad: 1 }));
  for (let i = 0; i < 3; i++) {
    gw.proc.kill('SIGHUP');
    await delay(20);
  }
  const r = await post;
  assert.equal(r.status, 200, r.text);
  await waitForTag(c, 'during', 15000);
  await delay(DEBOUNCE_SETTLE_MS);
  const after = await reloadCounters();
  assert.equal(after.error - counters.error, 0, 'failed reloads');
  assert.equal(after.ok - counters.ok, 2, `the POST's reload and one more\n${gw.logs().split('\n').filter((l) => /reload/.test(l)).slice(-5).join('\n')}`);
  assert.equal(await tag(c), 'during');
  writeByRename(file, policySource('fast'));
  await waitForTag(c, 'fast');
});

test('a broken save followed by a fix recovers through the folder watch', async () => {
  const c = natives[1];
  const file = path.join(policyDir, 'policy.lua');
  const current = await tag(c);
  writeByRename(file, 'local gw = require "aivo"\nreturn gw.policy {\n  oops oops\n}\n');
  const t0 = Date.now();
  const failed = /policy reload \(file change\) failed[^\n]*\n[^\n]*policy\.lua:3:/;
  while (!failed.test(gw.logs()) && Date.now() - t0 < 8000) await delay(50);
  assert.match(gw.logs(), failed);
  assert.equal(await tag(c), current, 'the running policy keeps serving');
  writeByRename(file, policySource('fixed'));
  await waitForTag(c, 'fixed');
});

test('after all of it every connection is still open and served', async () => {
  assert.deepEqual(natives.filter((c) => !c.open).length, 0);
  assert.deepEqual(sockets.filter((s) => !s.connected).length, 0);
  const replies = await Promise.all([
    ...natives.map((c) => c.request('version').then((f) => f.data.v)),
    ...sockets.map((s) => sio.ack(s, 'version').then(([res]) => res.v)),
  ]);
  assert.ok(replies.every((v) => v === RELOADS / 2), `versions: ${[...new Set(replies)]}`);
});

test('the gateway then stops cleanly (exit 0; no sanitizer report in an ASan build)', async () => {
  await sio.closeAll();
  await pool.closeAll();
  const r = await gw.stop('SIGTERM');
  assert.equal(r.code, 0, JSON.stringify(r));
  assert.doesNotMatch(gw.logs(), /AddressSanitizer|LeakSanitizer|runtime error:/);
});
