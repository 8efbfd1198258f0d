'use strict';
// /metrics/prometheus (the old service's path) and /metrics: the old names its
// Grafana panels query, counters that move with traffic, cumulative histogram
// buckets, and output that `promtool check metrics` accepts (bar the two legacy
// names documented in docs/operations.md).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { spawnSync } = require('node:child_process');
const { startGateway, clientPool } = require('./lib/gateway');

let gw;
const pool = clientPool();

before(async () => { gw = await startGateway({ args: ['--admin-listen', 'off'] }); });
after(async () => { await pool.closeAll(); if (gw) await gw.stop('SIGKILL'); });

function get(path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gw.port, path }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
    }).on('error', reject);
  });
}

// name{labels} -> value
function parse(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

test('both paths serve the text format with the old service names', async () => {
  const a = await get('/metrics/prometheus');
  const b = await get('/metrics');
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  assert.match(a.type, /^text\/plain; version=0\.0\.4/);
  for (const name of ['websocket_connections_total', 'websocket_messages_sent_total',
    'websocket_messages_received_total', 'websocket_message_latency_ms', 'websocket_errors_total',
    'websocket_rate_limited_total', 'websocket_sessions_active', 'websocket_connection_quality',
    'aivo_policy_generation', 'aivo_policy_reload_total', 'aivo_lua_memory_bytes',
    'process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds',
    'process_start_time_seconds']) {
    assert.match(a.body, new RegExp(`^# TYPE ${name} `, 'm'), `${name} missing`);
  }
  assert.match(a.body, /^# TYPE websocket_connections_total gauge$/m, 'the old panels read it as a gauge');
});

test('counters and gauges move with traffic; histogram buckets are cumulative', async () => {
  const before = parse((await get('/metrics')).body);
  const c = await pool.connect(gw);
  for (let i = 0; i < 5; i++) await c.request('echo', i);
  await c.request('agent:learning', { action: 'start_session' });
  c.ws.send('not json');
  await c.next('error');
  const m = parse((await get('/metrics')).body);
  assert.equal(m.get('websocket_connections_total'), before.get('websocket_connections_total') + 1);
  assert.equal(m.get('aivo_connections{protocol="ws"}'), 1);
  assert.equal(m.get('websocket_messages_received_total') - before.get('websocket_messages_received_total'), 7);
  assert.ok(m.get('websocket_messages_sent_total') - before.get('websocket_messages_sent_total') >= 7);
  assert.equal(m.get('websocket_sessions_active'), 1);
  assert.equal(m.get('websocket_errors_total{type="bad_request"}'), 1);
  let prev = 0;
  for (const [k, v] of m) {
    if (!k.startsWith('websocket_message_latency_ms_bucket')) continue;
    assert.ok(v >= prev, `${k} = ${v} < ${prev}: buckets must be cumulative`);
    prev = v;
  }
  assert.equal(prev, m.get('websocket_message_latency_ms_count'), '+Inf bucket equals the count');
  assert.ok(m.get('websocket_message_latency_ms_count') >= 7);
  await c.close();
  const after = parse((await get('/metrics')).body);
  assert.equal(after.get('websocket_connections_total'), before.get('websocket_connections_total'));
  assert.equal(after.get('websocket_sessions_active'), 0, 'sessions end with their connection');
});

test('promtool check metrics reports nothing but the two documented legacy names', async (t) => {
  const which = spawnSync('sh', ['-c', 'command -v promtool']);
  if (which.status !== 0) return t.skip('promtool not installed (scripts/install-deps.sh --test installs it)');
  const c = await pool.connect(gw);
  await c.request('echo', 'warm up every family');
  const { body } = await get('/metrics/prometheus');
  const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  const problems = (r.stdout + r.stderr).split('\n').map((l) => l.trim()).filter(Boolean);
  const allowed = [
    /^websocket_connections_total non-counter metrics should not have "_total" suffix$/,
    /^websocket_message_latency_ms metric names should not contain abbreviated units$/,
  ];
  const unexpected = problems.filter((p) => !allowed.some((re) => re.test(p)));
  assert.deepEqual(unexpected, [], `promtool found:\n${problems.join('\n')}`);
  assert.ok(r.status === 0 || r.status === 3, `promtool exit ${r.status}: only lint findings are accepted`);
});
