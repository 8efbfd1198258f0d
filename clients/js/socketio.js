// The offline queue and quality helpers for apps that keep socket.io-client.
// Wraps a Socket the app created (socket.io-client is not a dependency):
//
//   import { io } from 'socket.io-client';
//   import { createSocketIOKit } from '@aivo/client/socketio';
//   const socket = io('https://gw.example', { auth: { token } });
//   const { queue, quality } = createSocketIOKit(socket);
//   queue.emit('room:send', { room: 'lobby', msg: 'hi' });
import { AivoError } from './src/errors.js';
import { OfflineQueue } from './src/queue.js';
import { ConnectionQuality } from './src/quality.js';

// The gateway acks refusals on Socket.IO as {ok: false, error: {code, message}}
// and rate limits as {rateLimited: true, retryAfterMs, code, message}
// (docs/socketio.md): turn both into AivoErrors like the native client's.
export function ackError(ack) {
  if (!ack || typeof ack !== 'object') return null;
  if (ack.rateLimited === true) {
    return new AivoError('rate_limited', ack.message, { retryAfterMs: ack.retryAfterMs });
  }
  if (ack.ok === false && ack.error && typeof ack.error === 'object') {
    return new AivoError(String(ack.error.code || 'error'), ack.error.message);
  }
  return null;
}

/** emit with an ack and a timeout (socket.timeout(ms).emitWithAck), as the native client's emit. */
export async function emitWithAck(socket, event, data, timeoutMs = 10000) {
  if (!socket.connected) throw new AivoError('disconnected', 'not connected');
  let ack;
  try {
    ack = data === undefined
      ? await socket.timeout(timeoutMs).emitWithAck(event)
      : await socket.timeout(timeoutMs).emitWithAck(event, data);
  } catch (err) {
    // socket.io-client rejects with "operation has timed out" on a timeout
    // and buffers emits while disconnected.
    throw new AivoError(socket.connected ? 'timeout' : 'disconnected', err && err.message);
  }
  const err = ackError(ack);
  if (err) throw err;
  return ack;
}

/** The OfflineQueue transport of a Socket.IO socket. */
export function socketTransport(socket) {
  return {
    isReady: () => socket.connected,
    emitWithAck: (event, data, timeoutMs) => emitWithAck(socket, event, data, timeoutMs),
    onReady: (fn) => {
      socket.on('connect', fn);
      return () => socket.off('connect', fn);
    },
  };
}

/** The ConnectionQuality source of a Socket.IO socket. */
export function socketQualitySource(socket) {
  let lastMessageAt = socket.connected ? Date.now() : 0;
  let state = socket.connected ? 'open' : 'connecting';
  const touch = () => { lastMessageAt = Date.now(); };
  socket.onAny(touch);
  socket.on('connect', () => { state = 'open'; touch(); });
  socket.on('disconnect', () => { state = socket.active ? 'reconnecting' : 'closed'; });
  // Engine.IO pings are invisible to the app but prove the link is alive.
  socket.io?.on?.('ping', touch);
  return {
    isOpen: () => socket.connected,
    state: () => state,
    lastMessageAt: () => lastMessageAt,
    onReport: (fn) => { socket.on('connection:quality', fn); return () => socket.off('connection:quality', fn); },
    onChange: (fn) => {
      const events = ['connect', 'disconnect'];
      events.forEach((e) => socket.on(e, fn));
      socket.onAny(fn);
      return () => { events.forEach((e) => socket.off(e, fn)); socket.offAny(fn); };
    },
    probe: (timeoutMs) => emitWithAck(socket, 'connection:quality', undefined, timeoutMs),
  };
}

/** A queue and a quality value over an existing Socket.IO socket. */
export function createSocketIOKit(socket, { queue: queueOpts, quality: qualityOpts } = {}) {
  const queue = new OfflineQueue(socketTransport(socket), queueOpts);
  const quality = new ConnectionQuality(socketQualitySource(socket), qualityOpts);
  return { socket, queue, quality, destroy() { queue.destroy(); quality.destroy(); } };
}

export { OfflineQueue, ConnectionQuality, AivoError };
