// A minimal event emitter (no dependency on node:events, so it runs in browsers).
export class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  /** Add a listener; returns a function that removes it. */
  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    let set = this._handlers.get(event);
    if (!set) this._handlers.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  once(event, fn) {
    const off = this.on(event, (...args) => { off(); fn(...args); });
    return off;
  }

  off(event, fn) {
    const set = this._handlers.get(event);
    if (!set) return;
    if (fn === undefined) set.clear();
    else set.delete(fn);
    if (set.size === 0) this._handlers.delete(event);
  }

  // A throwing listener must not break the client's own bookkeeping: report it
  // asynchronously (it still shows up as an uncaught error) and go on.
  _emit(event, ...args) {
    const set = this._handlers.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        setTimeout(() => { throw err; }, 0);
      }
    }
  }
}

/** A tiny observable store for useSyncExternalStore: subscribe(fn) / getSnapshot(). */
export class Store {
  constructor(initial) {
    this._snapshot = initial;
    this._subs = new Set();
    this.subscribe = this.subscribe.bind(this);
    this.getSnapshot = this.getSnapshot.bind(this);
  }

  getSnapshot() {
    return this._snapshot;
  }

  subscribe(fn) {
    this._subs.add(fn);
    this._onSubscribers?.(this._subs.size);
    return () => {
      this._subs.delete(fn);
      this._onSubscribers?.(this._subs.size);
    };
  }

  _set(next) {
    if (next === this._snapshot) return;
    this._snapshot = next;
    for (const fn of [...this._subs]) {
      try { fn(next); } catch (err) { setTimeout(() => { throw err; }, 0); }
    }
  }
}
