'use strict';
// examples/grafana/aivo-gw.json and examples/prometheus/prometheus.yml: the
// dashboard is importable, every panel queries something, every metric its
// PromQL names is one a real gateway exports at /metrics/prometheus (a panel
// on a metric the gateway does not export fails here, not silently in
// Grafana), the labels it groups or filters by are ones those series carry,
// and the old Node service's example queries are on it unchanged. When
// promtool is installed, every query must parse (`promtool check rules`) and
// the Prometheus config must pass `promtool check config`.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { startGateway, clientPool, connect, REPO, TEST_POLICIES } = require('./lib/gateway');

const DASHBOARD = path.join(REPO, 'examples', 'grafana', 'aivo-gw.json');
const PROM_CONFIG = path.join(REPO, 'examples', 'prometheus', 'prometheus.yml');

// The old service's docs ("Monitoring Setup", Grafana "Example queries").
const LEGACY_QUERIES = [
  'websocket_connections_total',
  'rate(websocket_messages_sent_total[5m])',
  'histogram_quantile(0.95, rate(websocket_message_latency_ms_bucket[5m]))',
];

// Labels Prometheus attaches at scrape time, not the gateway.
const TARGET_LABELS = new Set(['job', 'instance']);

// PromQL words that look like identifiers but are not metric names.
const KEYWORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool',
  'and', 'or', 'unless', 'offset', 'atan2', 'inf', 'nan',
]);

let gw;
let faultyGw;
const pool = clientPool();
let dashboard;
let exposition; // { families: Map name -> {type, labels:Set, samples}, text }
let faultyExposition;

function scrape(g) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: g.port, path: '/metrics/prometheus' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`/metrics/prometheus answered ${res.statusCode}`));
        else resolve(body);
      });
    }).on('error', reject);
  });
}

// Text exposition -> family name -> { type, labels (names seen on samples), samples }.
function parseExposition(text) {
  const families = new Map();
  const family = (name) => {
    if (!families.has(name)) families.set(name, { type: 'untyped', labels: new Set(), samples: 0 });
    return families.get(name);
  };
  for (const line of text.split('\n')) {
    let m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/.exec(line);
    if (m) { family(m[1]).type = m[2]; continue; }
    if (!line || line.startsWith('#')) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? \S+$/.exec(line);
    assert.ok(m, `unparsable exposition line: ${line}`);
    let name = m[1];
    const base = name.replace(/_(bucket|sum|count)$/, '');
    if (base !== name && families.has(base) && families.get(base).type === 'histogram') name = base;
    const f = family(name);
    f.samples++;
    for (const lm of (m[3] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) {
      if (lm[1] !== 'le') f.labels.add(lm[1]);
    }
  }
  return families;
}

/**
 * The metric names and label names a PromQL expression uses. Strings,
 * Grafana variables, range selectors and numbers are removed; label matchers
 * and by/without/on/ignoring/group_x lists give label names; what remains that
 * is an identifier not followed by "(" (a function or aggregation) and not a
 * keyword is a metric name.
 */
function promqlNames(expr) {
  const labels = new Set();
  const metrics = new Set();
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\$\{[^}]*\}|\$[a-zA-Z_]\w*/g, ' ');
  s = s.replace(/\{([^}]*)\}/g, (_, body) => {
    for (const m of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
      if (m[1] === '__name__') throw new Error(`${expr}: select metrics by name, not by {__name__=...}`);
      labels.add(m[1]);
    }
    return ' ';
  });
  s = s.replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_, kw, list) => {
    for (const l of list.split(',').map((x) => x.trim()).filter(Boolean)) labels.add(l);
    return ' ';
  });
  s = s.replace(/\boffset\s+-?[0-9a-z]+/g, ' ');
  for (const m of s.matchAll(/(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const rest = s.slice(m.index + word.length);
    if (/^\s*\(/.test(rest)) continue; // function or aggregation
    if (KEYWORDS.has(word.toLowerCase())) continue;
    metrics.add(word);
  }
  return { metrics, labels };
}

// Every PromQL expression in the dashboard: panel targets, annotation queries
// and query variables (label_values(EXPR, LABEL) is Grafana's, not PromQL).
function allQueries(d) {
  const out = [];
  for (const p of panelsOf(d)) {
    for (const t of p.targets || []) {
      out.push({ where: `panel "${p.title}" target ${t.refId}`, expr: t.expr, legend: t.legendFormat || '' });
    }
  }
  for (const a of d.annotations.list) {
    if (a.expr) out.push({ where: `annotation "${a.name}"`, expr: a.expr, legend: a.textFormat || '' });
  }
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query.query;
    const m = /^\s*label_values\(\s*(.+?)\s*,\s*([a-zA-Z_]\w*)\s*\)\s*$/.exec(q);
    if (m) out.push({ where: `variable "${v.name}"`, expr: m[1], legend: `{{${m[2]}}}` });
    else out.push({ where: `variable "${v.name}"`, expr: q, legend: '' });
  }
  return out;
}

// Panels, including those inside collapsed rows, rows themselves excluded.
function panelsOf(d) {
  const out = [];
  for (const p of d.panels) {
    if (p.type === 'row') out.push(...(p.panels || []));
    else out.push(p);
  }
  return out;
}

// A metric name as the dashboard writes it -> the family that exports it, or
// an explanation why there is none.
function familyOf(name, families) {
  const f = families.get(name);
  if (f) {
    if (f.type === 'histogram') return { error: `${name} is a histogram: query ${name}_bucket, _sum or _count` };
    return { family: name, f };
  }
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m && families.has(m[1])) {
    const base = families.get(m[1]);
    if (base.type === 'histogram') return { family: m[1], f: base, histogram: true };
    return { error: `${name}: ${m[1]} is a ${base.type}, it has no _${m[2]} series` };
  }
  return { error: `${name} is not exported by the gateway` };
}

// Clients authenticate with an HS256 token signed with JWT_SECRET (Authorization: Bearer).
const SECRET = crypto.randomBytes(32).toString('hex');
const GW_ENV = { JWT_SECRET: SECRET };
const RATE_LIMIT = 10; // messages per minute per connection, low enough to hit

function b64url(x) {
  return Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
}

function token(sub) {
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub, iat: now, exp: now + 3600 })}`;
  return `${unsigned}.${crypto.createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
}

function authed(g, sub) {
  return pool.connect(g, { wsOptions: { headers: { Authorization: `Bearer ${token(sub)}` } } });
}

// A connection without a token: refused (aivo_auth_refusals_total{reason}),
// whether at the upgrade or by a close right after it.
async function refusedAttempt(g) {
  let c;
  try { c = await connect(g); } catch { return; }
  await c.close().catch(() => {});
}

before(async () => {
  dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));

  // The default policy, with traffic first so labelled families have series.
  gw = await startGateway({
    args: ['--admin-listen', 'off'], env: GW_ENV, set: [`ratelimit.per_minute=${RATE_LIMIT}`],
  });
  const a = await authed(gw, 'dash-a');
  const b = await authed(gw, 'dash-b');
  for (let i = 0; i < 5; i++) await a.request('echo', { i, text: 'x'.repeat(100) });
  await a.request('agent:learning', { action: 'start_session' });
  a.ws.send('not json'); // websocket_errors_total{type="bad_request"}
  await a.next('error');
  // Past the per-connection limit: websocket_rate_limited_total, aivo_rate_limited_total{rule}.
  for (let i = 0; i < RATE_LIMIT + 3; i++) await b.request('echo', i);
  await refusedAttempt(gw);
  exposition = parseExposition(await scrape(gw));

  // A policy whose handler raises, so aivo_lua_errors_total{plugin,hook,kind}
  // has a series whose labels the Lua errors panel can be checked against.
  faultyGw = await startGateway({
    policy: path.join(TEST_POLICIES, 'faulty.lua'), args: ['--admin-listen', 'off'], env: GW_ENV,
  });
  const c = await authed(faultyGw, 'dash-c');
  await c.request('boom', null);
  assert.equal((await c.request('echo', 'after boom')).data, 'after boom');
  faultyExposition = parseExposition(await scrape(faultyGw));
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
  if (faultyGw) await faultyGw.stop('SIGKILL');
});

test('the dashboard is an importable Grafana dashboard', () => {
  const d = dashboard;
  assert.equal(typeof d.title, 'string');
  assert.ok(d.title.length > 0);
  assert.equal(typeof d.uid, 'string');
  assert.ok(Number.isInteger(d.schemaVersion) && d.schemaVersion >= 36, `schemaVersion ${d.schemaVersion}`);
  assert.ok(Array.isArray(d.panels) && d.panels.length > 0);
  assert.ok(d.templating && Array.isArray(d.templating.list));
  assert.ok(d.annotations && Array.isArray(d.annotations.list));

  // The Prometheus data source is chosen at import: an ${DS_...} input or a
  // datasource template variable, never a uid of the author's Grafana.
  const dsVars = d.templating.list.filter((v) => v.type === 'datasource' && v.query === 'prometheus')
    .map((v) => `\${${v.name}}`);
  const inputs = (d.__inputs || []).filter((i) => i.type === 'datasource' && i.pluginId === 'prometheus')
    .map((i) => `\${${i.name}}`);
  const allowed = new Set([...dsVars, ...inputs]);
  assert.ok(allowed.size > 0, 'needs a ${DS_PROMETHEUS} input or a datasource variable');
  const checkDs = (ds, where) => {
    assert.ok(ds, `${where}: no datasource`);
    const uid = typeof ds === 'string' ? ds : ds.uid;
    assert.ok(allowed.has(uid), `${where}: datasource ${JSON.stringify(ds)} is not one of ${[...allowed]}`);
  };

  const ids = new Set();
  for (const p of d.panels) {
    assert.ok(Number.isInteger(p.id), `panel "${p.title}" has no id`);
    assert.ok(!ids.has(p.id), `panel id ${p.id} is used twice`);
    ids.add(p.id);
    const g = p.gridPos;
    assert.ok(g && [g.x, g.y, g.w, g.h].every(Number.isInteger), `panel "${p.title}" has no gridPos`);
    assert.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24, `panel "${p.title}" is outside the 24-column grid`);
  }
  const panels = panelsOf(d);
  assert.ok(panels.length >= 10, `only ${panels.length} panels`);
  for (const p of panels) {
    assert.ok(typeof p.title === 'string' && p.title.length > 0, `panel ${p.id} has no title`);
    assert.ok(Array.isArray(p.targets) && p.targets.length > 0, `panel "${p.title}" has no target`);
    checkDs(p.datasource, `panel "${p.title}"`);
    const refs = new Set();
    for (const t of p.targets) {
      assert.ok(typeof t.expr === 'string' && t.expr.trim(), `panel "${p.title}" target ${t.refId} has no expr`);
      assert.ok(t.refId && !refs.has(t.refId), `panel "${p.title}": refId ${t.refId} missing or repeated`);
      refs.add(t.refId);
      checkDs(t.datasource, `panel "${p.title}" target ${t.refId}`);
    }
  }
  for (const a of d.annotations.list) if (a.expr) checkDs(a.datasource, `annotation "${a.name}"`);
  for (const v of d.templating.list) if (v.type === 'query') checkDs(v.datasource, `variable "${v.name}"`);

  // Every template variable a query uses is defined.
  const defined = new Set(d.templating.list.map((v) => v.name));
  for (const q of allQueries(d)) {
    for (const m of q.expr.matchAll(/\$\{?([a-zA-Z_]\w*)/g)) {
      if (m[1].startsWith('__')) continue; // Grafana's own: $__rate_interval, ...
      assert.ok(defined.has(m[1]), `${q.where}: $${m[1]} is not a dashboard variable`);
    }
  }
});

test('the PromQL extraction finds metric names and labels', () => {
  const r = promqlNames('sum by (plugin, hook) (rate(aivo_lua_errors_total{kind!="x",job=~"$job"}[5m])) '
    + '/ on(instance) group_left() max without (le) (foo_bucket offset 5m) > 0.5e3');
  assert.deepEqual([...r.metrics].sort(), ['aivo_lua_errors_total', 'foo_bucket']);
  assert.deepEqual([...r.labels].sort(), ['hook', 'instance', 'job', 'kind', 'le', 'plugin']);
  const fam = new Map([['h', { type: 'histogram' }], ['c_total', { type: 'counter' }]]);
  assert.equal(familyOf('h_bucket', fam).family, 'h');
  assert.ok(familyOf('h', fam).error, 'a bare histogram name has no series');
  assert.ok(familyOf('c_total_count', fam).error, 'a counter has no _count series');
  assert.ok(familyOf('nope_total', fam).error);
});

test('every metric the dashboard queries is exported by the gateway', (t) => {
  const queries = allQueries(dashboard);
  assert.ok(queries.length > 0);
  const problems = [];
  const used = new Set();
  for (const q of queries) {
    let names;
    try { names = promqlNames(q.expr); } catch (err) { problems.push(`${q.where}: ${err.message}`); continue; }
    if (names.metrics.size === 0) problems.push(`${q.where}: no metric in ${q.expr}`);
    for (const name of names.metrics) {
      const r = familyOf(name, exposition);
      if (r.error) problems.push(`${q.where}: ${r.error} (${q.expr})`);
      else used.add(r.family);
    }
  }
  assert.deepEqual(problems, [], `the dashboard queries metrics /metrics/prometheus does not export:\n${problems.join('\n')}`);
  const empty = [...used].filter((n) => exposition.get(n).samples === 0);
  if (empty.length) t.diagnostic(`exported, no series yet without such traffic: ${empty.join(', ')}`);
  // The families the issue asks the dashboard to show are all on it.
  for (const name of ['websocket_connections_total', 'aivo_connections', 'websocket_messages_sent_total',
    'websocket_messages_received_total', 'websocket_message_latency_ms', 'websocket_errors_total',
    'websocket_rate_limited_total', 'websocket_connection_quality', 'websocket_sessions_active',
    'aivo_policy_reload_total', 'aivo_policy_generation', 'aivo_lua_errors_total', 'aivo_lua_memory_bytes',
    'aivo_received_bytes_total', 'aivo_sent_bytes_total', 'aivo_slow_consumer_closes_total',
    'process_cpu_seconds_total', 'process_resident_memory_bytes']) {
    assert.ok(used.has(name), `no panel shows ${name}`);
  }
});

test('labels the dashboard groups, filters or names in legends are on the series', (t) => {
  const problems = [];
  const unverified = [];
  for (const q of allQueries(dashboard)) {
    const { metrics, labels } = promqlNames(q.expr);
    for (const m of q.legend.matchAll(/\{\{\s*([a-zA-Z_]\w*)\s*\}\}/g)) labels.add(m[1]);
    const fams = [...metrics].map((n) => familyOf(n, exposition)).filter((r) => !r.error);
    for (const label of labels) {
      if (TARGET_LABELS.has(label)) continue;
      if (label === 'le') {
        if (!fams.some((r) => r.histogram)) problems.push(`${q.where}: "le" without a histogram (${q.expr})`);
        continue;
      }
      const seen = fams.flatMap((r) => [exposition.get(r.family), faultyExposition.get(r.family)])
        .filter((f) => f && f.samples > 0);
      if (seen.length === 0) { unverified.push(`${q.where}: ${label}`); continue; }
      if (!seen.some((f) => f.labels.has(label))) {
        problems.push(`${q.where}: no series of ${fams.map((r) => r.family).join(', ')} has label "${label}" (${q.expr})`);
      }
    }
  }
  assert.deepEqual(problems, [], problems.join('\n'));
  if (unverified.length) t.diagnostic(`labels of families with no series here, not checked: ${unverified.join('; ')}`);
});

test('every PromQL expression parses (promtool check rules)', (t) => {
  const which = spawnSync('sh', ['-c', 'command -v promtool']);
  if (which.status !== 0) return t.skip('promtool not installed (scripts/install-deps.sh --test installs it)');
  // Each expression as a recording rule, Grafana's variables replaced by what
  // they expand to; a rules file is YAML, and JSON is YAML.
  const rules = allQueries(dashboard).map((q, i) => ({
    record: `dashboard:query_${i}`,
    expr: q.expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?[a-zA-Z_]\w*\}?/g, '.+'),
  }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-dash-'));
  try {
    const file = path.join(dir, 'rules.yml');
    fs.writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    const where = (r.stdout + r.stderr).replace(/dashboard:query_(\d+)/g, (m, i) => `${m} = ${rules[i].expr}`);
    assert.equal(r.status, 0, `promtool rejects a dashboard query:\n${where}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the old service's example queries are on the dashboard unchanged", () => {
  const exprs = panelsOf(dashboard).flatMap((p) => p.targets.map((t) => t.expr.trim()));
  for (const q of LEGACY_QUERIES) assert.ok(exprs.includes(q), `no panel queries ${q}`);
});

test('the Prometheus example scrapes /metrics/prometheus on :4003 every 15 s', (t) => {
  const text = fs.readFileSync(PROM_CONFIG, 'utf8');
  assert.match(text, /^\s*metrics_path:\s*['"]?\/metrics\/prometheus['"]?\s*$/m);
  assert.match(text, /^\s*-?\s*targets:\s*\[\s*['"]localhost:4003['"]\s*\]/m);
  assert.match(text, /^\s*scrape_interval:\s*15s\s*$/m);
  assert.match(text, /^\s*-\s*job_name:\s*['"]?aivo-gw['"]?\s*$/m, 'the dashboard\'s job variable defaults to aivo-gw');

  const which = spawnSync('sh', ['-c', 'command -v promtool']);
  if (which.status !== 0) return t.skip('promtool not installed (scripts/install-deps.sh --test installs it)');
  const r = spawnSync('promtool', ['check', 'config', PROM_CONFIG], { encoding: 'utf8' });
  assert.equal(r.status, 0, `promtool check config failed:\n${r.stdout}${r.stderr}`);
});
