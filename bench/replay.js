#!/usr/bin/env node
'use strict';
// Offline replay figures (docs/benchmarks.md, "Offline replay"), memory store and Redis
// Streams (a redis-server started here on loopback):
//  - memory per kept message: 10,000 user streams filled to their cap (100 messages of about
//    80 bytes each, 1,000,000 messages), the gateway's RSS (memory store) or Redis's
//    used_memory (Redis) before and after;
//  - messages/s replayed: one client resuming a 1,000-message stream from its start, 20 times.
//
//   node bench/replay.js            (AIVO_GW_BIN: default build/aivo-gw)
//   BENCH_STREAMS=2000 node bench/replay.js   (a quicker run)
// Needs the integration tests' node modules (cd tests/integration && npm ci).

const fs = require('node:fs');
const path = require('node:path');
const REPO = path.resolve(__dirname, '..');
process.env.AIVO_GW_BIN = process.env.AIVO_GW_BIN || path.join(REPO, 'build', 'aivo-gw');
const { startGateway, connect } = require(path.join(REPO, 'tests', 'integration', 'lib', 'gateway'));
const { startRedis } = require(path.join(REPO, 'tests', 'integration', 'lib', 'redis'));

const STREAMS = Number(process.env.BENCH_STREAMS || 10000);
const PER = 100;
const BYTES = 50; // payload "x" * 50 inside {"i":N,"p":"..."}: about 80 bytes of JSON per message
const POLICY = path.join(REPO, 'bench', 'policies', 'replay.lua');

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

// settle(lastStream): waits until a batch is stored (Redis appends are asynchronous, and a
// gateway refuses appends past 100,000 Redis commands in flight rather than queue without
// bound: the benchmark paces itself instead of counting refusals)
async function fill(c, prefix, from, to, per, settle) {
  const step = Math.max(1, Math.floor(5000 / per)); // streams per call: stays inside the hook budget
  for (let s = from; s <= to; s += step) {
    const last = Math.min(to, s + step - 1);
    const ack = await c.request('fill', { prefix, from: s, to: last, per, bytes: BYTES }, { timeout: 60000 });
    if (ack.error) throw new Error(JSON.stringify(ack.error));
    if (settle) await settle(`${prefix}${last}`, per);
  }
}

async function measure(name, redis) {
  const set = ['history.max_total_bytes=4294967296', `history.max_streams=${STREAMS + 100}`, 'lua.call_timeout_ms=10000'];
  const args = redis ? ['--redis', redis.url()] : [];
  const g = await startGateway({ policy: POLICY, set, args });
  const c = await connect(g);
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.cli('INFO', 'memory'))[1]);
  const before = redis ? await usedMemory() : rssKiB(g.proc.pid) * 1024;
  const settle = redis ? async (stream, n) => {
    while (Number(await redis.cli('XLEN', `aivo:stream:${stream}`)) !== n) await new Promise((r) => setTimeout(r, 20));
  } : null;
  const t0 = process.hrtime.bigint();
  await fill(c, 'user:u', 1, STREAMS, PER, settle);
  const fillS = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = redis ? await usedMemory() : rssKiB(g.proc.pid) * 1024;
  const n = STREAMS * PER;

  // replay rate: a 1000-message stream resumed from its start
  await c.request('join', { room: 'big:r1' });
  await fill(c, 'big:r', 1, 1, 1000, settle);
  const top = (await c.request('resume', { streams: { 'big:r1': null } })).data.streams['big:r1'];
  let replayed = 0;
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < 20; i++) {
    const a = await c.request('resume', { streams: { 'big:r1': { offset: 0, epoch: top.epoch } } }, { timeout: 60000 });
    replayed += a.data.streams['big:r1'].replayed;
  }
  const replayS = Number(process.hrtime.bigint() - t1) / 1e9;
  const metrics = await (await fetch(`http://127.0.0.1:${g.port}/metrics/prometheus`)).text();
  const failed = /aivo_replay_store_failed_total (\d+)/.exec(metrics)[1];
  await g.stop('SIGTERM');
  console.log(`${name.padEnd(7)} kept ${n} messages in ${STREAMS} streams: ${fillS.toFixed(2)} s ` +
    `(${Math.round(n / fillS)} msg/s kept), ${((after - before) / n).toFixed(1)} bytes per kept message ` +
    `(${redis ? 'Redis used_memory' : 'gateway RSS'} +${((after - before) / 1048576).toFixed(1)} MiB); ` +
    `replayed ${replayed} in ${replayS.toFixed(2)} s: ${Math.round(replayed / replayS)} msg/s; not kept: ${failed}`);
}

(async () => {
  console.log(`# node bench/replay.js (BENCH_STREAMS=${STREAMS}, ${PER} messages per stream, ${BYTES}-byte payloads)`);
  await measure('memory', null);
  const r = await startRedis();
  try {
    await measure('redis', r);
  } finally {
    await r.stop();
  }
})().catch((e) => { console.error(e); process.exit(1); });
