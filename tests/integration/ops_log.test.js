'use strict';
// Log injection before authentication: a token whose header `kid` holds a newline
// and a forged log line is refused, and the refusal's log line carries the kid
// escaped, in the text and in the JSON log format: no forged line appears.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, mintToken, upgrade, delay } = require('./lib/gateway');

const FORGED = '2026-01-01T00:00:00.000Z error forged';
const KID = `k1\n${FORGED}\r\nlevel=error forged`;

async function refuseForgedKid(format) {
  const gw = await startGateway({ args: ['--log-format', format] });
  try {
    const r = await upgrade(gw, { token: mintToken({}, { kid: KID }) });
    assert.equal(r.status, 401);
    const t0 = Date.now();
    while (!/unknown_kid/.test(gw.logs()) && Date.now() - t0 < 3000) await delay(20);
    return gw.logs();
  } finally {
    await gw.stop('SIGTERM');
  }
}

test('text format: the kid is escaped on its own line, no forged line', async () => {
  const logs = await refuseForgedKid('text');
  const lines = logs.split('\n').filter(Boolean);
  const stamp = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info |warn |error) /;
  for (const l of lines) assert.match(l, stamp, `a line the gateway did not write: ${JSON.stringify(l)}`);
  assert.ok(!lines.some((l) => l.startsWith(FORGED) || l.startsWith('level=error')), logs);
  assert.ok(logs.includes(`k1\\n${FORGED}\\r\\nlevel=error forged`), logs);
});

test('json format: every line is one JSON object, the kid stays inside msg', async () => {
  const logs = await refuseForgedKid('json');
  const lines = logs.split('\n').filter(Boolean);
  const parsed = lines.map((l) => {
    try { return JSON.parse(l); } catch { assert.fail(`not a JSON line: ${JSON.stringify(l)}`); }
    return null;
  });
  assert.ok(!parsed.some((o) => o.level === 'error'), logs);
  const refusal = parsed.find((o) => /unknown_kid/.test(o.msg));
  assert.ok(refusal, logs);
  assert.ok(refusal.msg.includes(KID), refusal.msg); // decoded back, the kid is intact
});
