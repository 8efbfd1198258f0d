// The Socket.IO helper (clients/js/socketio.js) around the real
// socket.io-client against the real gateway: queue while disconnected, order,
// rate-limit retries, refusals, quality.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocketIOKit, emitWithAck } from '../../clients/js/socketio.js';
import { memoryStorage } from '../../clients/js/index.js';
import { startGateway, connect, mintToken, waitFor, kitRequire, KIT_POLICY, withTimeout } from './lib.mjs';

const { io } = kitRequire('socket.io-client');
const closers = [];
after(async () => { for (const f of closers.reverse()) await f(); });
async function gateway(opts) {
  const g = await startGateway(opts);
  closers.push(() => g.stop());
  return g;
}
function socket(gw, sub = 'alice') {
  const s = io(`http://127.0.0.1:${gw.port}`, {
    auth: { token: mintToken({ sub }) }, transports: ['websocket'], autoConnect: false,
    reconnectionDelay: 100, reconnectionDelayMax: 500,
  });
  closers.push(() => s.disconnect());
  return s;
}

test('queued while disconnected, sent in order on connect; a refusal fails with its code', async () => {
  const gw = await gateway({ policy: KIT_POLICY });
  const receiver = await connect(gw, { claims: { sub: 'bob' } });
  closers.push(() => receiver.close());
  await receiver.request('join', { room: 's' });
  const s = socket(gw);
  const kit = createSocketIOKit(s, { queue: { storage: memoryStorage() }, quality: { probeIntervalMs: 0 } });
  closers.push(() => kit.destroy());
  const join = kit.queue.emit('join', { room: 's' });
  const sends = [];
  for (let i = 1; i <= 10; i++) sends.push(kit.queue.emit('room:send', (id) => ({ room: 's', msg: { i, id } })));
  const refused = kit.queue.emit('room:send', { room: 'not-joined', msg: 1 });
  assert.equal(kit.queue.getSnapshot().size, 12);
  s.connect();
  assert.deepEqual(await withTimeout(join.done, 15000, 'join'), { ok: true, room: 's' });
  await withTimeout(Promise.all(sends.map((m) => m.done)), 15000, 'sends');
  await assert.rejects(refused.done, (e) => e.code === 'not_in_room');
  await receiver.sync();
  assert.deepEqual(receiver.events('room:message').map((f) => f.data.msg.id), sends.map((m) => m.id));
  assert.equal(kit.queue.size, 0);
});

test('rate_limited acks (the old service\'s shape) are waited out and retried', async () => {
  const gw = await gateway({ policy: KIT_POLICY, set: ['client.limit=2', 'client.window=1'] });
  const s = socket(gw);
  const kit = createSocketIOKit(s, { queue: { storage: memoryStorage(), maxRetries: 0 }, quality: { probeIntervalMs: 0 } });
  closers.push(() => kit.destroy());
  const retries = [];
  kit.queue.on('retry', (item, info) => retries.push(info));
  s.connect();
  const items = [1, 2, 3, 4, 5].map((i) => kit.queue.emit('echo', i));
  assert.deepEqual(await withTimeout(Promise.all(items.map((m) => m.done)), 30000, 'all'), [1, 2, 3, 4, 5]);
  assert.ok(retries.length >= 1 && retries.every((r) => r.reason === 'rate_limited' && r.delayMs > 0), JSON.stringify(retries));
  // without the queue: emitWithAck turns the refusal into the same AivoError as the native client's
  let err = null;
  for (let i = 0; i < 5 && !err; i++) err = await emitWithAck(s, 'echo', i).then(() => null, (e) => e);
  assert.equal(err.code, 'rate_limited');
  assert.ok(err.retryAfterMs > 0);
});

test('quality: the gateway\'s class over Socket.IO, offline after a disconnect', async () => {
  const gw = await gateway({ policy: KIT_POLICY, set: ['socketio.ping_interval=300'] });
  const s = socket(gw);
  const kit = createSocketIOKit(s, { queue: { storage: memoryStorage() }, quality: { probeIntervalMs: 0, tickMs: 100 } });
  closers.push(() => kit.destroy());
  assert.equal(kit.quality.getSnapshot().quality, 'offline');
  s.connect();
  const snap = await waitFor(() => (kit.quality.getSnapshot().server ? kit.quality.getSnapshot() : null), 'a report', 15000);
  assert.equal(snap.quality, 'excellent');
  assert.equal(typeof snap.latency, 'number');
  s.disconnect();
  await waitFor(() => kit.quality.getSnapshot().quality === 'offline', 'offline');
});
