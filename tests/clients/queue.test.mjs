// The offline queue (clients/js) against the real gateway: order, bound,
// persistence, retries of unacked messages, rate-limit waits, refusals.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { AivoClient, OfflineQueue, memoryStorage } from '../../clients/js/index.js';
import { startGateway, connect, mintToken, waitFor, WebSocket, KIT_POLICY, withTimeout } from './lib.mjs';

const closers = [];
after(async () => { for (const f of closers.reverse()) await f(); });
async function gateway(opts) {
  const g = await startGateway(opts);
  closers.push(() => g.stop());
  return g;
}
function client(gw, sub = 'alice') {
  const c = new AivoClient(gw.url('/ws'), { WebSocket, token: mintToken({ sub }), initialDelayMs: 100, maxDelayMs: 500 });
  closers.push(() => c.close());
  return c;
}
function record(queue) {
  const log = [];
  for (const ev of ['enqueued', 'sent', 'failed', 'dropped', 'retry']) {
    queue.on(ev, (item, extra) => log.push({ ev, id: item.id, data: item.data, extra }));
  }
  return log;
}

test('messages queued while disconnected go out in order, exactly once, when the client is ready', async () => {
  const gw = await gateway({ policy: KIT_POLICY });
  const receiver = await connect(gw, { claims: { sub: 'bob' } });
  closers.push(() => receiver.close());
  await receiver.request('join', { room: 'q' });
  const c = client(gw);
  const queue = new OfflineQueue(c, { storage: memoryStorage() });
  // first a join, then 30 messages, all before the client connects
  queue.emit('join', { room: 'q' });
  const ids = [];
  for (let i = 1; i <= 30; i++) ids.push(queue.emit('room:send', (id) => ({ room: 'q', msg: { i, id } })).id);
  assert.equal(queue.getSnapshot().size, 31);
  assert.deepEqual(queue.getSnapshot().items.slice(1).map((m) => m.data.msg.i), Array.from({ length: 30 }, (_, k) => k + 1));
  assert.equal(new Set(ids).size, 30, 'every message has its own client message id');
  c.connect();
  await waitFor(() => queue.size === 0, 'the queue to drain');
  await receiver.sync();
  const got = receiver.events('room:message').map((f) => f.data.msg);
  assert.deepEqual(got.map((m) => m.i), Array.from({ length: 30 }, (_, k) => k + 1));
  assert.deepEqual(got.map((m) => m.id), ids, 'the id travels in the payload for receivers to dedupe');
});

test('the queue is bounded: the oldest message is dropped and reported', async () => {
  const gw = await gateway({ policy: KIT_POLICY });
  const c = client(gw);
  const queue = new OfflineQueue(c, { storage: memoryStorage(), maxSize: 3 });
  const log = record(queue);
  const first = queue.emit('echo', 1);
  for (let i = 2; i <= 5; i++) queue.emit('echo', i);
  await assert.rejects(first.done, (e) => e.code === 'dropped');
  assert.deepEqual(log.filter((e) => e.ev === 'dropped').map((e) => e.data), [1, 2]);
  assert.deepEqual(queue.getSnapshot().items.map((m) => m.data), [3, 4, 5]);
  c.connect();
  await waitFor(() => queue.size === 0, 'drain');
  assert.deepEqual(log.filter((e) => e.ev === 'sent').map((e) => e.data), [3, 4, 5]);
});

test('the queue survives a restart of the page: a new queue on the same storage sends what was left', async () => {
  const gw = await gateway({ policy: KIT_POLICY });
  const storage = memoryStorage();
  const c1 = client(gw);
  const q1 = new OfflineQueue(c1, { storage });
  for (let i = 1; i <= 5; i++) q1.emit('echo', { i });
  q1.destroy(); // the page goes away before it ever connected
  assert.ok(storage.getItem('aivo_websocket_queue'), 'kept under the old service\'s localStorage key');
  const c2 = client(gw);
  const q2 = new OfflineQueue(c2, { storage });
  assert.deepEqual(q2.getSnapshot().items.map((m) => m.data.i), [1, 2, 3, 4, 5]);
  const log = record(q2);
  c2.connect();
  await waitFor(() => q2.size === 0, 'drain');
  assert.deepEqual(log.filter((e) => e.ev === 'sent').map((e) => e.data.i), [1, 2, 3, 4, 5]);
  assert.equal(storage.getItem('aivo_websocket_queue'), null, 'an empty queue leaves nothing behind');
  // a corrupt entry does not stop a queue from starting
  storage.setItem('aivo_websocket_queue', '{not json');
  assert.equal(new OfflineQueue(c2, { storage }).size, 0);
});

test('a message not acked in time is retried with backoff, and fails after 3 retries', async () => {
  // the flaky handler keeps the gateway busy for delayMs on its first tries
  const gw = await gateway({ policy: KIT_POLICY, set: ['lua.instruction_budget=0'] });
  const c = client(gw);
  const queue = new OfflineQueue(c, { storage: memoryStorage(), ackTimeoutMs: 500, retryInitialDelayMs: 50, retryMaxDelayMs: 200 });
  const log = record(queue);
  c.connect();
  await waitFor(() => c.ready, 'ready');
  const ok = queue.emit('flaky', { key: 'two-slow', slow: 2, delayMs: 1200 });
  const bad = queue.emit('flaky', { key: 'always-slow', slow: 100, delayMs: 700 });
  const last = queue.emit('echo', 'after');
  const ack = await withTimeout(ok.done, 30000, 'the retried message');
  // The gateway handles tries one after another, so a busy gateway may see a
  // further retry before it answers the third: the ack names the try it answers,
  // and every retry the client made is one of those tries.
  assert.ok(ack.try >= 3 && ack.try <= 4, `acked on try ${ack.try}: the slow tries were retried`);
  const retries = log.filter((e) => e.ev === 'retry' && e.id === ok.id);
  assert.equal(retries.length, ack.try - 1);
  assert.ok(retries.every((e) => e.extra.reason === 'timeout'));
  await assert.rejects(withTimeout(bad.done, 30000, 'the failing message'), (e) => e.code === 'timeout');
  const failed = log.filter((e) => e.ev === 'failed');
  assert.deepEqual(failed.map((e) => e.id), [bad.id]);
  assert.equal(log.filter((e) => e.ev === 'retry' && e.id === bad.id).length, 3, '3 retries, then failed');
  assert.equal(await withTimeout(last.done, 30000, 'the next message'), 'after', 'the queue goes on after a failure');
  assert.deepEqual(log.filter((e) => e.ev === 'sent').map((e) => e.id), [ok.id, last.id]);
});

test('a rate_limited refusal waits retryAfterMs and is retried, not counted as a failure', async () => {
  const gw = await gateway({ policy: KIT_POLICY, set: ['client.limit=2', 'client.window=1'] });
  const c = client(gw);
  c.connect();
  await waitFor(() => c.ready, 'ready');
  // the refusal itself, as the app sees it without the queue
  await c.emit('echo', 0); await c.emit('echo', 0);
  const err = await c.emit('echo', 0).catch((e) => e);
  assert.equal(err.code, 'rate_limited');
  assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 1000, String(err.retryAfterMs));
  const queue = new OfflineQueue(c, { storage: memoryStorage(), maxRetries: 0 });
  const log = record(queue);
  const started = Date.now();
  const items = [];
  for (let i = 1; i <= 6; i++) items.push(queue.emit('echo', i));
  const acks = await withTimeout(Promise.all(items.map((m) => m.done)), 30000, 'every message');
  assert.deepEqual(acks, [1, 2, 3, 4, 5, 6]);
  const waits = log.filter((e) => e.ev === 'retry');
  assert.ok(waits.length >= 1, 'some were refused');
  assert.ok(waits.every((e) => e.extra.reason === 'rate_limited' && e.extra.delayMs === e.extra.error.retryAfterMs));
  assert.equal(log.filter((e) => e.ev === 'failed').length, 0, 'with maxRetries 0, still no failure');
  // 2 per second: 6 messages (after the 3 above) take at least ~2 s
  assert.ok(Date.now() - started >= 1500, `took ${Date.now() - started} ms`);
});

test('a refusal (not_in_room) fails at once without retries', async () => {
  const gw = await gateway({ policy: KIT_POLICY });
  const c = client(gw);
  const queue = new OfflineQueue(c, { storage: memoryStorage() });
  const log = record(queue);
  c.connect();
  const m = queue.emit('room:send', { room: 'nope', msg: 1 });
  await assert.rejects(withTimeout(m.done, 15000, 'the refusal'), (e) => e.code === 'not_in_room');
  assert.equal(log.filter((e) => e.ev === 'retry').length, 0);
  assert.equal(queue.size, 0);
});

test('a message in flight when the gateway goes away is sent again after the reconnect', async () => {
  let gw = await gateway({ policy: KIT_POLICY });
  const port = gw.port;
  const c = client(gw);
  const queue = new OfflineQueue(c, { storage: memoryStorage() });
  c.connect();
  await waitFor(() => c.ready, 'ready');
  await gw.stop();
  await waitFor(() => !c.ready, 'down');
  const items = [1, 2, 3].map((i) => queue.emit('echo', i));
  assert.equal(queue.getSnapshot().size, 3);
  gw = await gateway({ policy: KIT_POLICY, listen: `127.0.0.1:${port}` });
  assert.deepEqual(await withTimeout(Promise.all(items.map((m) => m.done)), 30000, 'drain'), [1, 2, 3]);
});
