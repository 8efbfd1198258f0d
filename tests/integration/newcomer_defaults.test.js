'use strict';
// What a newcomer runs first, against the real binary (issue 11):
// - started from another folder with no --policy, the gateway finds the shipped default policy
//   (as it finds lua/ and plugins/) and serves;
// - a --policy path that cannot be opened says why (the OS error);
// - --plugin-path ADDS a folder before the shipped plugins/ (a policy can use its own plugin
//   and `echo` together);
// - --check on the default policy with no JWT key passes with a warning, while the gateway
//   itself still refuses to start without a key;
// - scripts/run.sh with the development secret listens on 127.0.0.1 only, unless --listen.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { spawn } = require('node:child_process');
const { BIN, REPO, LISTENING_RE, gatewayEnv, connect, runGateway, withTimeout } = require('./lib/gateway');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-newcomer-'));
const procs = new Set();
after(() => {
  for (const p of procs) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
  fs.rmSync(tmp, { recursive: true, force: true });
});

// Spawns cmd in `cwd`, waits for "listening on", resolves {port, logs(), stop()}.
function start(cmd, args, { cwd, env }) {
  const proc = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(proc);
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening on" in 20 s:\n${out}`)), 20000);
    proc.stderr.on('data', () => {
      const m = LISTENING_RE.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    exited.then((r) => { clearTimeout(timer); reject(new Error(`exited ${JSON.stringify(r)} before listening:\n${out}`)); });
  });
  return started.then((port) => ({
    port,
    logs: () => out,
    async stop() {
      try { process.kill(proc.pid, 'SIGTERM'); } catch { /* gone */ }
      const r = await withTimeout(exited, 15000, 'the gateway to exit');
      procs.delete(proc);
      return r;
    },
  }));
}

function get(host, port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: p, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

// Local addresses listening on `port` (IPv4 and IPv6), from /proc: no ss/netstat needed.
function listeners(port) {
  const found = [];
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== '0A') continue; // 0A: LISTEN
      const [addr, hexPort] = cols[1].split(':');
      if (parseInt(hexPort, 16) === port) found.push(addr);
    }
  }
  return found;
}

test('started from another folder with no --policy, it finds the shipped default policy', async () => {
  const gw = await start(BIN, ['--listen', '127.0.0.1:0', '--admin-listen', 'off'], { cwd: tmp, env: gatewayEnv() });
  try {
    assert.match(gw.logs(), /policy \/[^ ]*policies\/default\.lua/, 'logs the absolute path of the policy it found');
    assert.equal((await get('127.0.0.1', gw.port, '/healthz')).status, 200);
    const c = await connect(gw.port);
    const ack = await c.request('echo', { hi: 1 });
    assert.deepEqual(ack, { ack: 1, data: { hi: 1 } }, 'the default policy (echo plugin) serves');
    await c.close();
  } finally {
    assert.equal((await gw.stop()).code, 0);
  }
});

test('a --policy that cannot be opened prints the OS reason', async () => {
  const r = await runGateway(['--policy', path.join(tmp, 'no-such-policy.lua'), '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no-such-policy\.lua: cannot open policy file: No such file or directory/);
  const dir = path.join(tmp, 'locked');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'p.lua'), 'return {}');
  fs.chmodSync(dir, 0o000);
  try {
    if (process.getuid && process.getuid() !== 0) { // root reads anything
      const r2 = await runGateway(['--policy', path.join(dir, 'p.lua'), '--check']);
      assert.equal(r2.code, 1);
      assert.match(r2.stderr, /cannot open policy file: Permission denied/);
    }
  } finally {
    fs.chmodSync(dir, 0o700);
  }
});

test('--plugin-path adds to the shipped plugins: a policy uses its own plugin and echo', async () => {
  const plugins = path.join(tmp, 'my-plugins');
  fs.mkdirSync(plugins);
  fs.writeFileSync(path.join(plugins, 'shout.lua'), `
local gw = require "aivo"
return gw.plugin {
  name = "shout", version = "0.1.0",
  events = { shout = function(conn, msg) return gw.DONE, string.upper(msg.data) end },
}
`);
  const pdir = path.join(tmp, 'policy');
  fs.mkdirSync(pdir);
  const policy = path.join(pdir, 'mine.lua');
  fs.writeFileSync(policy, `
local gw = require "aivo"
return gw.policy {
  name = "mine",
  plugins = { "shout", "echo" },
  auth = function(claims) return true, { user = claims and claims.sub or "anon" } end,
}
`);
  const check = await runGateway(['--policy', policy, '--plugin-path', plugins, '--check']);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, /shout@0\.1\.0/);
  assert.match(check.stdout, /echo@1\.0\.0/);

  const gw = await start(BIN, ['--policy', policy, '--plugin-path', plugins, '--listen', '127.0.0.1:0',
    '--admin-listen', 'off'], { cwd: tmp, env: gatewayEnv() });
  try {
    const c = await connect(gw.port);
    assert.deepEqual(await c.request('shout', 'hi'), { ack: 1, data: 'HI' });
    assert.deepEqual(await c.request('echo', 7), { ack: 2, data: 7 });
    await c.close();
  } finally {
    await gw.stop();
  }
});

test('--check with no JWT key: a warning and exit 0; the gateway still refuses to start', async () => {
  const env = { JWT_SECRET: undefined, NEXTAUTH_SECRET: undefined, HOME: tmp, XDG_STATE_HOME: undefined };
  const check = await runGateway(['--policy', 'policies/default.lua', '--check'], { env });
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, /policy OK/);
  assert.match(check.stderr, /warn .*no JWT key is configured/);

  const run = await runGateway(['--policy', 'policies/default.lua', '--listen', '127.0.0.1:0'], { env });
  assert.equal(run.code, 1, 'fail closed: no key, no gateway');
  assert.match(run.stderr, /auth\.required is on but no key is configured/);
  assert.doesNotMatch(run.stderr + run.stdout, /listening on/);

  // a real policy error still fails --check
  const bad = await runGateway(['--policy', path.join(REPO, 'tests', 'policies', 'broken_syntax.lua'), '--check'], { env });
  assert.equal(bad.code, 1);
});

test('scripts/run.sh with the development secret listens on 127.0.0.1 only', async () => {
  const home = fs.mkdtempSync(path.join(tmp, 'home-'));
  const env = gatewayEnv({ JWT_SECRET: undefined, HOME: home, XDG_STATE_HOME: undefined, PORT: '0', AIVO_GW_BIN: BIN });
  const gw = await start('sh', [path.join(REPO, 'scripts', 'run.sh'), '--admin-listen', 'off'], { cwd: tmp, env });
  try {
    assert.match(gw.logs(), /development secret/i);
    assert.match(gw.logs(), /listening on 127\.0\.0\.1:\d+/);
    assert.equal((await get('127.0.0.1', gw.port, '/healthz')).status, 200);
    assert.deepEqual(listeners(gw.port), ['0100007F'], 'bound to 127.0.0.1 only, not 0.0.0.0 or ::');
  } finally {
    await gw.stop();
  }

  // asked otherwise: --listen wins
  const gw2 = await start('sh', [path.join(REPO, 'scripts', 'run.sh'), '--listen', '0.0.0.0:0', '--admin-listen', 'off'],
    { cwd: tmp, env });
  try {
    assert.match(gw2.logs(), /listening on 0\.0\.0\.0:\d+/);
    assert.deepEqual(listeners(gw2.port), ['00000000']);
  } finally {
    await gw2.stop();
  }
});

test('cmake --install: the installed binary, run from another folder, finds its share folder', async (t) => {
  const buildDir = path.dirname(BIN);
  if (!fs.existsSync(path.join(buildDir, 'cmake_install.cmake'))) return t.skip(`${buildDir} is not a CMake build folder`);
  const prefix = path.join(tmp, 'prefix');
  const inst = await new Promise((resolve) => {
    const p = spawn('cmake', ['--install', buildDir, '--prefix', prefix], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', (code) => resolve({ code, out }));
  });
  assert.equal(inst.code, 0, inst.out);
  const bin = path.join(prefix, 'bin', 'aivo-gw');
  assert.ok(fs.existsSync(path.join(prefix, 'bin', 'aivo-ws-client')), 'the example client is installed too');
  const share = fs.realpathSync(path.join(prefix, 'share', 'aivo-gw'));
  const gw = await start(bin, ['--listen', '127.0.0.1:0', '--admin-listen', 'off'], { cwd: '/', env: gatewayEnv() });
  try {
    // the installed copy, not the source tree's
    assert.ok(gw.logs().includes(`policy ${share}/policies/default.lua`), gw.logs());
    const c = await connect(gw.port);
    assert.deepEqual(await c.request('echo', 'x'), { ack: 1, data: 'x' }, 'installed plugins load');
    await c.close();
  } finally {
    await gw.stop();
  }
});

test('examples/systemd/aivo-gw.service passes systemd-analyze verify', async (t) => {
  const which = require('node:child_process').spawnSync('sh', ['-c', 'command -v systemd-analyze']); // check-deps: optional
  if (which.status !== 0) return t.skip('systemd-analyze not installed');
  const unit = fs.readFileSync(path.join(REPO, 'examples', 'systemd', 'aivo-gw.service'), 'utf8');
  assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.match(unit, /^KillSignal=SIGTERM$/m);
  assert.match(unit, /^NoNewPrivileges=yes$/m);
  assert.match(unit, /^ProtectSystem=strict$/m);
  assert.match(unit, /^EnvironmentFile=/m);
  assert.doesNotMatch(unit, /^ExecStart=.*--dev-secret/m);
  // the unit names /usr/local/bin/aivo-gw: point it at this build's binary to verify it
  const file = path.join(tmp, 'aivo-gw.service');
  fs.writeFileSync(file, unit.replaceAll('/usr/local/bin/aivo-gw', BIN));
  const r = require('node:child_process').spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', cwd: tmp }); // check-deps: optional
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(r.stderr.trim(), '', r.stderr);
});
