import { Emitter, Store } from './emitter.js';
import { AivoError } from './errors.js';
import { backoffDelay } from './backoff.js';

const OPEN = 1;

// Close codes after which reconnecting cannot help (docs/protocol.md): the
// policy closed us on purpose, or we were rate limited into a close. 4401
// (token expired) reconnects only when getToken can supply a new token.
const NO_RECONNECT = new Set([4429]);

/**
 * A client of aivo-gw's native protocol (/ws, docs/protocol.md).
 *
 *   const client = new AivoClient('wss://gw.example/ws', { getToken });
 *   client.connect();
 *   await client.join('lobby');
 *   const ack = await client.emit('room:send', { room: 'lobby', msg: 'hi' });
 *
 * States (client.getSnapshot().state): idle → connecting → open → (closed |
 * reconnecting → connecting → open ...). `ready` is true once open AND the
 * rooms joined before a reconnect are joined again.
 *
 * Local events (client.on): client:state, client:open, client:ready,
 * client:close, client:reconnecting, client:recovered ({recovered, streams,
 * offsets} after each reconnect: recovered false means something was missed and
 * the app should reload its state), client:auth,
 * client:error, client:frame. Every other name is a gateway event
 * (room:message, connection:quality, error, ...).
 */
export class AivoClient extends Emitter {
  constructor(url, opts = {}) {
    super();
    if (typeof url !== 'string' || !/^wss?:\/\//.test(url)) {
      throw new TypeError(`url must be a ws:// or wss:// URL, got ${JSON.stringify(url)}`);
    }
    this.url = url;
    this.opts = {
      token: undefined,
      getToken: undefined,
      WebSocket: undefined,
      ackTimeoutMs: 10000,
      reconnect: true,
      rooms: [],
      initialDelayMs: 500,
      maxDelayMs: 10000,
      factor: 2,
      resume: true,
      autoAck: true,
      ...opts,
    };
    this._WS = this.opts.WebSocket || globalThis.WebSocket;
    if (typeof this._WS !== 'function') {
      throw new TypeError('no WebSocket: pass the WebSocket option (Node 18: import WebSocket from "ws")');
    }
    this._token = this.opts.token;
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map();
    // Rooms to be in: opts.rooms are joined on every open, before `ready`.
    this._rooms = new Set(Array.isArray(this.opts.rooms) ? this.opts.rooms : []);
    this._attempt = 0;
    this._timer = null;
    this._wanted = false;
    this._everOpened = false;
    // Positions per stream ({offset, epoch}, docs/offline-replay.md), for resume.
    this._positions = new Map();
    this._userChannel = null; // the gateway names it in the first resume answer
    this.lastMessageAt = 0;
    this.store = new Store({ state: 'idle', ready: false, attempt: 0, rooms: [], lastClose: null, nextRetryAt: null });
    this.subscribe = this.store.subscribe;
    this.getSnapshot = this.store.getSnapshot;
    // The browser says the network is back: retry now instead of after the backoff.
    this._onOnline = () => { if (this._timer && this._wanted) this._reconnectNow(); };
  }

  get state() { return this.store.getSnapshot().state; }
  get ready() { return this.store.getSnapshot().ready; }
  get isOpen() { return !!this._ws && this._ws.readyState === OPEN; }
  /** Rooms this client is in (and will rejoin after a reconnect). */
  get rooms() { return [...this._rooms]; }

  _setState(patch) {
    const prev = this.store.getSnapshot();
    const next = { ...prev, ...patch, rooms: [...this._rooms] };
    this.store._set(next);
    if (patch.state && patch.state !== prev.state) this._emit('client:state', next.state, prev.state);
  }

  /** Open the connection (and keep it open: reconnects until close()). */
  connect() {
    this._wanted = true;
    if (typeof globalThis.addEventListener === 'function') globalThis.addEventListener('online', this._onOnline);
    if (this._ws || this._timer) return this;
    this._open();
    return this;
  }

  async _open() {
    this._setState({ state: 'connecting', ready: false, nextRetryAt: null });
    let token = this._token;
    if (this.opts.getToken && (this._everOpened || token === undefined || this._attempt > 0)) {
      try {
        token = await this.opts.getToken();
        this._token = token;
      } catch (err) {
        this._emit('client:error', err);
        this._scheduleReconnect();
        return;
      }
    }
    if (!this._wanted) return;
    // Browsers cannot set headers on a WebSocket: the token goes in ?token=
    // (docs/security.md; use short-lived tokens).
    let url = this.url;
    if (token) url += (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
    // resume=1: kept rooms hold their live events from the join until our resume, so the
    // replay and the live events meet without a gap or a duplicate
    if (this.opts.resume) url += (url.includes('?') ? '&' : '?') + 'resume=1';
    let ws;
    try {
      ws = new this._WS(url);
    } catch (err) {
      this._emit('client:error', err);
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (ev) => this._onMessage(ws, ev);
    ws.onerror = () => this._emit('client:error', new AivoError('socket_error', 'WebSocket error'));
    ws.onclose = (ev) => this._onClose(ws, ev);
  }

  async _onOpen(ws) {
    if (ws !== this._ws) return;
    const reconnect = this._everOpened;
    this._everOpened = true;
    this._attempt = 0;
    this.lastMessageAt = Date.now();
    this._setState({ state: 'open', ready: false, attempt: 0 });
    this._emit('client:open', { reconnect });
    // Rooms are the gateway's per-connection state: join them again before
    // the app (and the offline queue) sends anything that assumes them.
    for (const room of [...this._rooms]) {
      try {
        await this.emit('join', { room });
      } catch (err) {
        if (ws !== this._ws) return;
        if (err.code !== 'disconnected' && err.code !== 'timeout') this._rooms.delete(room);
        this._emit('client:error', err);
      }
    }
    if (ws !== this._ws || ws.readyState !== OPEN) return;
    await this._resume(ws, reconnect);
    if (ws !== this._ws || ws.readyState !== OPEN) return;
    this._setState({ ready: true });
    this._emit('client:ready', { reconnect });
  }

  _onMessage(ws, ev) {
    if (ws !== this._ws) return;
    this.lastMessageAt = Date.now();
    if (typeof ev.data !== 'string') {
      this._emit('client:frame', { binary: ev.data });
      this._emit('binary', ev.data);
      return;
    }
    let frame;
    try { frame = JSON.parse(ev.data); } catch {
      this._emit('client:error', new AivoError('bad_frame', 'the gateway sent a frame that is not JSON'));
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    this._emit('client:frame', frame);
    if ('ack' in frame) {
      const p = this._pending.get(frame.ack);
      if (!p) return; // a late ack of a request that already timed out
      this._pending.delete(frame.ack);
      clearTimeout(p.timer);
      if (frame.error) {
        const e = frame.error;
        p.reject(new AivoError(String(e.code || 'error'), e.message, { retryAfterMs: e.retryAfterMs }));
      } else {
        p.resolve(frame.data);
      }
      return;
    }
    if (typeof frame.event !== 'string') return;
    const kept = typeof frame.channel === 'string' && Number.isInteger(frame.offset) && typeof frame.epoch === 'string';
    if (kept) {
      // A message we already have (at-least-once redelivery, a replay overlapping what
      // came live): acknowledged again so the gateway stops, not handed to the app twice.
      const have = this._positions.get(frame.channel);
      const dup = have && have.epoch === frame.epoch && frame.offset <= have.offset;
      if (!dup) this._positions.set(frame.channel, { offset: frame.offset, epoch: frame.epoch });
      if (frame.ackRequired && this.opts.autoAck && dup) this._ackReplay(frame);
      if (dup) return;
    }
    if (frame.event === 'auth:refresh') this._refresh(frame.data);
    this._emit(frame.event, frame.data, frame);
    if (kept && frame.ackRequired && this.opts.autoAck) this._ackReplay(frame);
  }

  /** Acknowledge a message that needs it (`frame.ackRequired`; automatic unless autoAck: false). */
  ackMessage(frame) {
    return this._ackReplay(frame);
  }

  _ackReplay(frame) {
    return this.send('replay:ack', { channel: frame.channel, offset: frame.offset, epoch: frame.epoch });
  }

  // The resume after the rooms are joined (docs/offline-replay.md): every stream we have a
  // position for gets what it missed; the first time, positions are only learned.
  async _resume(ws, reconnect) {
    if (!this.opts.resume) {
      if (reconnect) this._emit('client:recovered', { recovered: false, streams: {}, offsets: this.getOffsets() });
      return;
    }
    const names = new Set(['$user', ...this._rooms]);
    for (const ch of this._positions.keys()) if (ch !== this._userChannel) names.add(ch);
    const streams = {};
    for (const n of names) {
      const real = n === '$user' ? this._userChannel : n;
      streams[n] = (real && this._positions.get(real)) || null;
    }
    const entries = Object.entries(streams);
    const answers = {};
    for (let i = 0; i < entries.length; i += 16) { // the gateway takes 16 streams per resume
      try {
        const ack = await this.emit('resume', { streams: Object.fromEntries(entries.slice(i, i + 16)) });
        Object.assign(answers, (ack && ack.streams) || {});
      } catch (err) {
        if (ws !== this._ws) return;
        this._emit('client:error', err);
      }
    }
    let recovered = true;
    for (const [ch, a] of Object.entries(answers)) {
      if (ch.startsWith('user:') && !this._userChannel) this._userChannel = ch;
      if (a.reason === 'not_kept' || a.reason === 'not_member') { // nothing to resume there
        this._positions.delete(ch);
        continue;
      }
      if (a.recovered === false) recovered = false;
      if (Number.isInteger(a.offset) && typeof a.epoch === 'string') {
        const have = this._positions.get(ch);
        if (!have || have.epoch !== a.epoch || have.offset < a.offset) this._positions.set(ch, { offset: a.offset, epoch: a.epoch });
      }
    }
    if (reconnect) this._emit('client:recovered', { recovered, streams: answers, offsets: this.getOffsets() });
  }

  async _refresh(info) {
    if (!this.opts.getToken) {
      this._emit('client:auth', { ok: false, error: new AivoError('no_refresher', 'auth:refresh asked for, but no getToken option'), info });
      return;
    }
    try {
      const token = await this.opts.getToken();
      this._token = token;
      const ack = await this.emit('auth:refresh', { token });
      this._emit('client:auth', { ok: true, exp: ack && ack.exp, info });
    } catch (err) {
      this._emit('client:auth', { ok: false, error: err, info });
    }
  }

  _onClose(ws, ev) {
    if (ws !== this._ws) return;
    this._ws = null;
    const info = { code: ev.code, reason: ev.reason || '' };
    for (const [, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new AivoError('disconnected', `connection closed (${info.code}) before the ack`));
    }
    this._pending.clear();
    this._setState({ state: 'closed', ready: false, lastClose: info });
    this._emit('client:close', info);
    if (!this._wanted) return;
    if (NO_RECONNECT.has(info.code) || (info.code === 4401 && !this.opts.getToken) || !this.opts.reconnect) {
      this._wanted = false;
      return;
    }
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    if (!this._wanted || this._timer) return;
    const delay = backoffDelay(this._attempt, this.opts);
    this._attempt++;
    this._setState({ state: 'reconnecting', ready: false, attempt: this._attempt, nextRetryAt: Date.now() + delay });
    this._emit('client:reconnecting', { attempt: this._attempt, delayMs: delay });
    this._timer = setTimeout(() => { this._timer = null; if (this._wanted) this._open(); }, delay);
  }

  _reconnectNow() {
    clearTimeout(this._timer);
    this._timer = null;
    this._open();
  }

  /**
   * Send an event and wait for its ack. Resolves with the ack's data; rejects
   * with an AivoError: the gateway's code/message (retryAfterMs for
   * rate_limited), `timeout` after timeoutMs, `disconnected`.
   */
  emit(event, data, { timeoutMs = this.opts.ackTimeoutMs } = {}) {
    if (!this.isOpen) return Promise.reject(new AivoError('disconnected', 'not connected'));
    const id = this._nextId++;
    const msg = { event, id };
    if (data !== undefined) msg.data = data;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new AivoError('timeout', `no ack for ${event} within ${timeoutMs} ms`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      try {
        this._ws.send(JSON.stringify(msg));
      } catch (err) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new AivoError('disconnected', err.message));
      }
    });
  }

  /** Send an event without an ack. Returns false when not connected. */
  send(event, data) {
    if (!this.isOpen) return false;
    const msg = { event };
    if (data !== undefined) msg.data = data;
    this._ws.send(JSON.stringify(msg));
    return true;
  }

  /** Join a room (the rooms plugin's `join`); it is joined again after every reconnect. */
  async join(room) {
    const ack = await this.emit('join', { room });
    this._rooms.add(room);
    this._setState({});
    return ack;
  }

  async leave(room) {
    this._rooms.delete(room);
    this._setState({});
    if (!this.isOpen) return { ok: true, room };
    return this.emit('leave', { room });
  }

  /** The latest position per stream: {channel: {offset, epoch}} (kept for resume). */
  getOffsets() {
    return Object.fromEntries(this._positions);
  }

  /** Close for good (no reconnect). Pending acks reject with `closed`. */
  close(code = 1000, reason = '') {
    this._wanted = false;
    clearTimeout(this._timer);
    this._timer = null;
    const ws = this._ws;
    this._ws = null;
    for (const [, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new AivoError('closed', 'client closed'));
    }
    this._pending.clear();
    if (ws) {
      try { ws.close(code, reason); } catch { /* already closing */ }
    }
    if (typeof globalThis.removeEventListener === 'function') globalThis.removeEventListener('online', this._onOnline);
    this._setState({ state: 'closed', ready: false, nextRetryAt: null });
  }
}
