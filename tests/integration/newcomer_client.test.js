'use strict';
// README "A first session": the example clients against a real gateway.
// - build/aivo-ws-client (examples/ws_client.c, libwebsockets' client API): what the build
//   produces, so a fresh machine needs no Node;
// - examples/ws-client.js run with plain `node` (no --experimental-websocket, which Debian 12's
//   Node 18 rejects): its own RFC 6455 client when Node has no global WebSocket.
// Both must print the acks for the README's example messages and end with close 1000, exit 0.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { startGateway, mintToken, BIN, REPO } = require('./lib/gateway');

const CLIENT = path.join(path.dirname(BIN), 'aivo-ws-client');
let gw;
before(async () => { gw = await startGateway({ args: ['--admin-listen', 'off'] }); });
after(async () => { if (gw) await gw.stop(); });

function run(cmd, args, env = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20000, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

// The lines of a session, parsed: [kind, json | code].
function parse(stdout) {
  return stdout.trim().split('\n').map((line) => {
    const m = /^(connected to|ack|event|closed)\s+(.*)$/.exec(line);
    assert.ok(m, `unexpected line: ${line}`);
    if (m[1] === 'ack' || m[1] === 'event') return [m[1], JSON.parse(m[2])];
    return [m[1], m[2].trim()];
  });
}

function assertSession(r, url) {
  assert.equal(r.code, 0, `exit code\n${r.stdout}\n${r.stderr}`);
  const lines = parse(r.stdout);
  assert.deepEqual(lines[0], ['connected to', url]);
  const acks = lines.filter(([k]) => k === 'ack').map(([, j]) => j);
  assert.deepEqual(acks.map((a) => a.ack), [1, 2, 3, 4, 5]);
  assert.deepEqual(acks[0].data, { hello: 'world', n: 42 });
  assert.deepEqual(acks[1].data, { ok: true, room: 'lobby' });
  assert.deepEqual(acks[2].data, { ok: true });
  assert.equal(acks[3].data.ok, true);
  assert.match(acks[3].data.sessionId, /^[0-9a-f]{32}$/);
  assert.equal(acks[4].error.code, 'unknown_event');
  assert.ok(lines.some(([k, j]) => k === 'event' && j.event === 'echo' &&
    j.data === 'no ack asked: comes back as an event'), 'the no-ack echo comes back as an event');
  assert.deepEqual(lines[lines.length - 1], ['closed', '1000']);
}

test('build/aivo-ws-client: the README session, acks printed, exit 0 on close 1000', async () => {
  const url = gw.url('/ws');
  assertSession(await run(CLIENT, [url, mintToken({ sub: 'alice' })]), url);
  // the token from $AIVO_TOKEN works too
  assertSession(await run(CLIENT, [url], { AIVO_TOKEN: mintToken({ sub: 'bob' }) }), url);
});

test('build/aivo-ws-client: a bad token is refused with 401 and exit 1; no token is a usage error', async () => {
  const bad = await run(CLIENT, [gw.url('/ws'), 'not-a-token']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /HTTP 401/);
  assert.doesNotMatch(bad.stdout, /connected to/);
  const none = await run(CLIENT, [gw.url('/ws')], { AIVO_TOKEN: '' });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no token/);
});

test('examples/ws-client.js runs with plain node (no --experimental-websocket)', async () => {
  const url = gw.url('/ws');
  const r = await run(process.execPath, [path.join(REPO, 'examples', 'ws-client.js'), url, mintToken({ sub: 'carol' })]);
  // the close line also prints the (empty) reason
  r.stdout = r.stdout.replace(/^closed\s+(\d+)\s*$/m, 'closed  $1');
  assertSession(r, url);
  const bad = await run(process.execPath, [path.join(REPO, 'examples', 'ws-client.js'), url, 'not-a-token']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /cannot connect/);
});
