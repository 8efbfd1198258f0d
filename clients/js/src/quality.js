import { Store } from './emitter.js';

export const CLASSES = ['excellent', 'good', 'fair', 'poor'];
export const QUALITY_DEFAULTS = Object.freeze({
  probeIntervalMs: 15000,
  staleAfterMs: 30000,
  tickMs: 1000,
});

/** The source of a native AivoClient. */
export function clientQualitySource(client) {
  return {
    isOpen: () => client.isOpen,
    state: () => client.state,
    lastMessageAt: () => client.lastMessageAt,
    onReport: (fn) => client.on('connection:quality', fn),
    onChange: (fn) => {
      const offs = [client.on('client:state', fn), client.on('client:frame', fn)];
      return () => offs.forEach((o) => o());
    },
    probe: (timeoutMs) => client.emit('connection:quality', undefined, { timeoutMs }),
  };
}

const worse = (a, b) => (CLASSES.indexOf(a) >= CLASSES.indexOf(b) ? a : b);

/**
 * Combine the gateway's `connection:quality` reports with what the client sees
 * itself into one value. The rule (first match wins):
 *   1. the connection is not open, or the browser says it is offline → "offline";
 *   2. nothing at all received for staleAfterMs → "poor" (reason "stale");
 *   3. a probe has been waiting for an answer for more than probeIntervalMs →
 *      at best "fair" (reason "slow");
 *   4. else the gateway's class ("unknown" until its first report).
 * While open and quiet for probeIntervalMs, the client asks the gateway
 * (`connection:quality` with an ack), so an idle link is still judged.
 */
export class ConnectionQuality {
  constructor(source, opts = {}) {
    this.opts = { ...QUALITY_DEFAULTS, ...opts };
    this.source = source;
    this._report = null;
    this._probeSince = 0;
    this._online = typeof navigator !== 'undefined' && typeof navigator.onLine === 'boolean' ? navigator.onLine : true;
    this.store = new Store(null);
    this.subscribe = this.store.subscribe;
    this.getSnapshot = this.store.getSnapshot;
    this._offs = [
      source.onReport((data) => { if (data && typeof data === 'object') { this._report = data; this.update(); } }),
      source.onChange(() => this.update()),
    ];
    this._onOnline = () => { this._online = true; this.update(); };
    this._onOffline = () => { this._online = false; this.update(); };
    if (typeof globalThis.addEventListener === 'function') {
      globalThis.addEventListener('online', this._onOnline);
      globalThis.addEventListener('offline', this._onOffline);
    }
    this._timer = setInterval(() => this._tick(), this.opts.tickMs);
    this._timer.unref?.(); // never keeps a Node process alive on its own
    this.update();
  }

  _tick() {
    const now = Date.now();
    if (this.opts.probeIntervalMs > 0 && this.source.isOpen() && !this._probeSince &&
        now - (this.source.lastMessageAt() || now) >= this.opts.probeIntervalMs) {
      this._probeSince = now;
      this.source.probe(this.opts.staleAfterMs)
        .then((data) => { if (data && typeof data === 'object' && data.quality) this._report = data; })
        .catch(() => {})
        .finally(() => { this._probeSince = 0; this.update(); });
    }
    this.update();
  }

  /** Recompute (also done on every event and once a second). */
  update() {
    const now = Date.now();
    const open = this.source.isOpen();
    const r = this._report;
    let quality;
    let reason;
    const last = this.source.lastMessageAt() || 0;
    if (!open || !this._online) {
      quality = 'offline';
      reason = !this._online ? 'browser_offline' : this.source.state();
    } else if (last && now - last > this.opts.staleAfterMs) {
      quality = 'poor';
      reason = 'stale';
    } else {
      quality = r && CLASSES.includes(r.quality) ? r.quality : 'unknown';
      reason = 'gateway';
      if (this._probeSince && now - this._probeSince > this.opts.probeIntervalMs) {
        quality = quality === 'unknown' ? 'fair' : worse(quality, 'fair');
        reason = 'slow';
      }
    }
    const next = {
      quality,
      reason,
      state: this.source.state(),
      online: this._online,
      latency: r && typeof r.latency === 'number' ? r.latency : null,
      jitter: r && typeof r.jitter === 'number' ? r.jitter : null,
      packetLoss: r && typeof r.packetLoss === 'number' ? r.packetLoss : null,
      stability: r && typeof r.stability === 'number' ? r.stability : null,
      server: r ? r.quality : null,
      lastMessageAt: last || null,
    };
    const prev = this.store.getSnapshot();
    if (prev && Object.keys(next).every((k) => prev[k] === next[k])) return prev;
    this.store._set(Object.freeze(next));
    return next;
  }

  destroy() {
    clearInterval(this._timer);
    this._offs.forEach((o) => o());
    if (typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('online', this._onOnline);
      globalThis.removeEventListener('offline', this._onOffline);
    }
  }
}
