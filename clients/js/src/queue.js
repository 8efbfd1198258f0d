import { Emitter, Store } from './emitter.js';
import { AivoError } from './errors.js';
import { backoffDelay } from './backoff.js';
import { defaultStorage } from './storage.js';

export const QUEUE_DEFAULTS = Object.freeze({
  maxSize: 100,
  maxRetries: 3,
  ackTimeoutMs: 10000,
  retryInitialDelayMs: 1000,
  retryMaxDelayMs: 30000,
  storageKey: 'aivo_websocket_queue',
});

let seq = 0;
/** A client message id: unique per browser/process, sortable by creation. */
export function newMessageId() {
  const rnd = globalThis.crypto && typeof globalThis.crypto.randomUUID === 'function'
    ? globalThis.crypto.randomUUID().slice(0, 8)
    : Math.random().toString(16).slice(2, 10);
  seq = (seq + 1) % 1e6;
  return `${Date.now().toString(36)}-${seq.toString(36)}-${rnd}`;
}

/** The transport of an AivoClient (native /ws). */
export function clientTransport(client) {
  return {
    isReady: () => client.ready,
    emitWithAck: (event, data, timeoutMs) => client.emit(event, data, { timeoutMs }),
    onReady: (fn) => client.on('client:ready', fn),
  };
}

/**
 * The offline queue: messages wait here while the transport is not ready, in
 * a bounded list persisted in storage, and go out one at a time, in order.
 *
 *   const queue = new OfflineQueue(client);
 *   const { id, done } = queue.emit('room:send', (id) => ({ room, msg: { text, id } }));
 *
 * Delivery is at least once: a message whose ack was lost (timeout, or the
 * connection dropped after it was sent) is sent again, so receivers dedupe by
 * the id. Events: enqueued, sent, failed, dropped, retry, change.
 */
export class OfflineQueue extends Emitter {
  constructor(clientOrTransport, opts = {}) {
    super();
    this.opts = { ...QUEUE_DEFAULTS, storage: undefined, ...opts };
    if (!(this.opts.maxSize >= 1)) throw new RangeError('maxSize must be at least 1');
    this.transport = typeof clientOrTransport.emitWithAck === 'function'
      ? clientOrTransport
      : clientTransport(clientOrTransport);
    this.storage = this.opts.storage || defaultStorage();
    this._waiters = new Map(); // id -> {resolve, reject} for emit() callers of this page
    this._items = this._load();
    this._draining = false;
    this._timer = null;
    this._wake = null;
    this._destroyed = false;
    this.store = new Store(this._snapshot());
    this.subscribe = this.store.subscribe;
    this.getSnapshot = this.store.getSnapshot;
    this._offReady = this.transport.onReady(() => this.drain());
    if (this.transport.isReady()) this.drain();
  }

  _load() {
    try {
      const raw = this.storage.getItem(this.opts.storageKey);
      if (!raw) return [];
      const items = JSON.parse(raw);
      if (!Array.isArray(items)) return [];
      return items.filter((m) => m && typeof m.id === 'string' && typeof m.event === 'string')
        .slice(-this.opts.maxSize);
    } catch {
      return []; // corrupt entry: start empty rather than never start
    }
  }

  _save() {
    try {
      if (this._items.length) this.storage.setItem(this.opts.storageKey, JSON.stringify(this._items));
      else this.storage.removeItem(this.opts.storageKey);
    } catch (err) {
      this._emit('error', err); // quota: the queue still works in memory
    }
  }

  _snapshot() {
    return Object.freeze({
      size: this._items.length,
      items: Object.freeze(this._items.map((m) => Object.freeze({ ...m }))),
      draining: !!this._draining,
      maxSize: this.opts.maxSize,
    });
  }

  _changed() {
    // A destroyed queue (an unmounted component) must not overwrite what a
    // newer queue on the same storage keeps.
    if (this._destroyed) return;
    this._save();
    this.store._set(this._snapshot());
    this._emit('change', this.store.getSnapshot());
  }

  get size() { return this._items.length; }

  /**
   * Queue a message. `data` may be a function of the message id (to put the
   * id in the payload for receivers to dedupe). Returns { id, done }: done
   * resolves with the ack data, or rejects with the AivoError that made it
   * fail (it never settles if the page is reloaded first: use the events).
   */
  emit(event, data, { timeoutMs } = {}) {
    if (typeof event !== 'string' || !event) throw new TypeError('event must be a non-empty string');
    const id = newMessageId();
    const payload = typeof data === 'function' ? data(id) : data;
    const item = { id, event, data: payload, createdAt: Date.now(), attempts: 0 };
    if (timeoutMs) item.timeoutMs = timeoutMs;
    const done = new Promise((resolve, reject) => this._waiters.set(id, { resolve, reject }));
    done.catch(() => {}); // a caller that ignores it must not see an unhandled rejection
    this._items.push(item);
    while (this._items.length > this.opts.maxSize) {
      const dropped = this._items.shift();
      this._settle(dropped.id, new AivoError('dropped', 'the offline queue was full: oldest message dropped'));
      this._emit('dropped', dropped);
    }
    this._changed();
    this._emit('enqueued', item);
    this.drain();
    return { id, done };
  }

  _settle(id, err, value) {
    const w = this._waiters.get(id);
    if (!w) return;
    this._waiters.delete(id);
    if (err) w.reject(err); else w.resolve(value);
  }

  /** Remove one message (by id) or, without an id, every message. */
  remove(id) {
    const before = this._items.length;
    this._items = id === undefined ? [] : this._items.filter((m) => m.id !== id);
    if (this._items.length !== before) this._changed();
  }

  clear() { this.remove(); }

  _sleep(ms) {
    return new Promise((resolve) => {
      this._timer = setTimeout(() => { this._timer = null; this._wake = null; resolve(); }, ms);
      this._wake = () => { clearTimeout(this._timer); this._timer = null; this._wake = null; resolve(); };
    });
  }

  /** Send what is queued, in order, while the transport is ready (called on every reconnect). */
  async drain() {
    if (this._draining || this._destroyed) return;
    this._draining = true;
    this._changed();
    try {
      while (this._items.length && this.transport.isReady() && !this._destroyed) {
        const item = this._items[0];
        let result;
        let error = null;
        try {
          result = await this.transport.emitWithAck(item.event, item.data, item.timeoutMs || this.opts.ackTimeoutMs);
        } catch (err) {
          error = err instanceof AivoError ? err : new AivoError(err.code || 'error', err.message);
        }
        if (this._items[0] !== item) continue; // removed meanwhile
        if (!error) {
          this._items.shift();
          this._changed();
          this._settle(item.id, null, result);
          this._emit('sent', item, result);
          continue;
        }
        if (error.code === 'rate_limited') {
          // Not a failure: the gateway said when the same message will pass.
          const wait = Math.max(0, Number(error.retryAfterMs) || this.opts.retryInitialDelayMs);
          this._emit('retry', item, { reason: 'rate_limited', delayMs: wait, error });
          await this._sleep(wait);
          continue;
        }
        if (error.code === 'disconnected' || error.code === 'closed') {
          break; // stays first; sent again when the transport is ready
        }
        if (error.code === 'timeout' || error.code === 'internal_error') {
          item.attempts++;
          if (item.attempts > this.opts.maxRetries) {
            this._fail(item, error);
            continue;
          }
          this._changed();
          const wait = backoffDelay(item.attempts - 1, {
            initialDelayMs: this.opts.retryInitialDelayMs, maxDelayMs: this.opts.retryMaxDelayMs,
          });
          this._emit('retry', item, { reason: error.code, delayMs: wait, error });
          await this._sleep(wait);
          continue;
        }
        // A refusal (bad_request, not_in_room, forbidden, ...): sending the
        // same message again gets the same answer.
        this._fail(item, error);
      }
    } finally {
      this._draining = false;
      this._changed();
    }
  }

  _fail(item, error) {
    this._items.shift();
    this._changed();
    this._settle(item.id, error);
    this._emit('failed', item, error);
  }

  /** Stop draining and forget listeners (the stored queue stays). */
  destroy() {
    this._destroyed = true;
    this._offReady?.();
    if (this._wake) this._wake();
  }
}
