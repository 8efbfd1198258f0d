'use strict';
// Socket.IO / Engine.IO wire abuse against the real binary, with requests built by hand over
// HTTP long-polling (issue 12, items 1 and 9):
// - a binary event whose arguments name one attachment from thousands of placeholders is a
//   protocol error: the session is closed at once, the gateway's memory stays bounded and
//   /healthz keeps answering (it used to copy the attachment once per placeholder: 2.7 GB);
// - the same attachment used by two placeholders is refused too, one use each is fine;
// - a polling POST with "Content-Length: 0" gets 400 (it reached memcpy(NULL, ..., 0), which
//   aborted the sanitizer build).

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, TEST_POLICIES } = require('./lib/gateway');

const POLICY = path.join(TEST_POLICIES, 'socketio.lua');
const gateways = [];

async function gateway(set = []) {
  const gw = await startGateway({ policy: POLICY, set, args: ['--admin-listen', 'off'] });
  gateways.push(gw);
  return gw;
}

// A graceful stop must exit 0: under an ASan build a leak or UB report fails it here.
after(async () => {
  for (const gw of gateways) {
    const r = await gw.stop('SIGTERM');
    assert.equal(r.code, 0, `gateway exit ${JSON.stringify(r)}\n${gw.logs().slice(-3000)}`);
  }
});

function request(port, method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    // a Content-Length (lws 4.1 reads no chunked bodies)
    const h = body === undefined ? headers : { 'content-length': Buffer.byteLength(body), ...headers };
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent: false, headers: h }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${p}: no answer in 10 s`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const eio = (sid) => `/socket.io/?EIO=4&transport=polling${sid ? `&sid=${sid}` : ''}`;

// A polling session with the root namespace connected: its sid.
async function session(port) {
  const open = await request(port, 'GET', eio());
  assert.equal(open.status, 200, open.body);
  const { sid } = JSON.parse(open.body.slice(1));
  const post = await request(port, 'POST', eio(sid), '40', { 'content-type': 'text/plain;charset=UTF-8' });
  assert.equal(post.status, 200, post.body);
  const poll = await request(port, 'GET', eio(sid));
  assert.match(poll.body, /(^|\x1e)40\{"sid"/, `no CONNECT reply: ${poll.body}`);
  return sid;
}

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

async function healthzMs(port) {
  const t0 = Date.now();
  const r = await request(port, 'GET', '/healthz');
  assert.equal(r.status, 200);
  return Date.now() - t0;
}

// One binary event: the header packet with the given placeholders, then the attachments.
function binaryEvent(nums, attachments, id) {
  const args = nums.map((num) => ({ _placeholder: true, num }));
  const head = `45${attachments.length}-${id === undefined ? '' : id}${JSON.stringify(['echo', args])}`;
  return [head, ...attachments.map((a) => `b${a.toString('base64')}`)].join('\x1e');
}

test('3,000 placeholders naming one 250 KB attachment: refused at once, memory bounded', async () => {
  const gw = await gateway();
  const sid = await session(gw.port);
  const before = rssKiB(gw.proc.pid);
  const body = binaryEvent(new Array(3000).fill(0), [Buffer.alloc(250 * 1024, 7)]);
  assert.ok(body.length > 300000 && body.length < 1000000, `${body.length} bytes: under maxPayload`);
  let peakKiB = before;
  const sampler = setInterval(() => { peakKiB = Math.max(peakKiB, rssKiB(gw.proc.pid)); }, 20);
  const t0 = Date.now();
  const post = request(gw.port, 'POST', eio(sid), body, { 'content-type': 'text/plain;charset=UTF-8' });
  const slowest = Math.max(await healthzMs(gw.port), await healthzMs(gw.port));
  const r = await post;
  const took = Date.now() - t0;
  const after = await healthzMs(gw.port);
  clearInterval(sampler);
  peakKiB = Math.max(peakKiB, rssKiB(gw.proc.pid));
  assert.equal(r.status, 400, `a protocol error: ${r.status} ${r.body}`);
  assert.ok(took < 3000, `refused in ${took} ms`);
  assert.ok(Math.max(slowest, after) < 1000, `/healthz took ${slowest} / ${after} ms`);
  // the old gateway peaked at 2.7 GB here; bounded now by what came in (~1 MB of buffers)
  assert.ok(peakKiB - before < 100 * 1024, `RSS grew ${(peakKiB - before) / 1024} MiB (peak ${peakKiB} KiB)`);
  // the session is gone: a poll on it is "Session ID unknown"
  const poll = await request(gw.port, 'GET', eio(sid));
  assert.equal(poll.status, 400, poll.body);
  assert.match(poll.body, /Session ID unknown/);
  assert.match(gw.logs(), /attachment 0 referenced twice/);
});

test('an attachment used by two placeholders is refused; each used once is echoed', async () => {
  const gw = await gateway();
  const a = Buffer.from('first attachment');
  const b = Buffer.from('second one');
  // one use each: the echo plugin acks with both as binary attachments
  const sid = await session(gw.port);
  const ok = await request(gw.port, 'POST', eio(sid), binaryEvent([0, 1], [a, b], 7),
    { 'content-type': 'text/plain;charset=UTF-8' });
  assert.equal(ok.status, 200, ok.body);
  const poll = await request(gw.port, 'GET', eio(sid));
  const packets = poll.body.split('\x1e');
  assert.match(packets[0], /^462-7\[/, poll.body);
  assert.deepEqual(packets.slice(1).map((p) => Buffer.from(p.slice(1), 'base64').toString()),
    ['first attachment', 'second one']);
  // the same num twice: a protocol error, the session closes
  const sid2 = await session(gw.port);
  const bad = await request(gw.port, 'POST', eio(sid2), binaryEvent([0, 0], [a, b], 8),
    { 'content-type': 'text/plain;charset=UTF-8' });
  assert.equal(bad.status, 400, bad.body);
  const gone = await request(gw.port, 'GET', eio(sid2));
  assert.match(gone.body, /Session ID unknown/);
});

test('a polling POST with Content-Length: 0 gets 400, and the gateway lives on', async () => {
  const gw = await gateway();
  const sid = await session(gw.port);
  const r = await request(gw.port, 'POST', eio(sid), undefined, { 'content-length': '0' });
  assert.equal(r.status, 400, r.body);
  assert.match(r.body, /Bad request/);
  assert.ok(gw.alive(), 'the gateway is still running');
  assert.ok((await healthzMs(gw.port)) < 1000);
  assert.doesNotMatch(gw.logs(), /runtime error|AddressSanitizer/);
});
