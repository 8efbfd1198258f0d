'use strict';
// A real redis-server for the cluster tests: started on a free loopback port
// (optionally with a password), stopped by PID; kill -9, SIGSTOP/SIGCONT and a
// restart on the same port for the failure tests. Commands go through redis-cli.

const { spawn, execFile } = require('node:child_process');
const net = require('node:net');
const { freePort, delay } = require('./gateway');

const REDIS_SERVER = process.env.AIVO_REDIS_SERVER || '/usr/bin/redis-server';
const REDIS_CLI = process.env.AIVO_REDIS_CLI || '/usr/bin/redis-cli';
const live = new Set();

function killAll() {
  for (const p of live) {
    try { process.kill(p.pid, 'SIGCONT'); } catch { /* gone */ }
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', killAll);

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// aof: a directory for an append-only file fsynced on every write (a restart on the same
// port and directory keeps what was written).
async function startRedis({ port, password, aof } = {}) {
  port = port || await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--protected-mode', 'no',
    '--loglevel', 'warning'];
  if (aof) args.push('--appendonly', 'yes', '--appendfsync', 'always', '--dir', aof);
  else args.push('--appendonly', 'no');
  if (password) args.push('--requirepass', password);
  const proc = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let log = '';
  proc.stdout.on('data', (d) => { log = (log + d).slice(-8000); });
  proc.stderr.on('data', (d) => { log = (log + d).slice(-8000); });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => { live.delete(proc); resolve({ code, signal }); }));
  for (let i = 0; i < 100 && !(await portOpen(port)); i++) await delay(50);
  if (!(await portOpen(port))) throw new Error(`redis-server on ${port} did not start\n${log}`);
  const r = {
    port,
    password,
    proc,
    url: () => `redis://${password ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:${port}`,
    cli(...cmd) {
      const a = ['-h', '127.0.0.1', '-p', String(port), '--no-auth-warning'];
      if (password) a.push('-a', password);
      return new Promise((resolve, reject) => execFile(REDIS_CLI, [...a, ...cmd], { timeout: 5000 },
        (err, stdout) => (err ? reject(err) : resolve(stdout.trim()))));
    },
    signal(sig) { process.kill(proc.pid, sig); },
    async kill9() {
      process.kill(proc.pid, 'SIGKILL');
      await exited;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      try { process.kill(proc.pid, 'SIGCONT'); } catch { /* gone */ }
      try { process.kill(proc.pid, 'SIGTERM'); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
      await exited;
      clearTimeout(t);
    },
    exited,
  };
  return r;
}

module.exports = { startRedis };
