// React bindings (React 18+, a peer dependency). No JSX: no build step.
import React from 'react';
import { AivoClient } from './src/client.js';
import { OfflineQueue } from './src/queue.js';
import { ConnectionQuality, clientQualitySource } from './src/quality.js';

const { createElement: h, useEffect, useMemo, useRef, useState, useSyncExternalStore, useCallback } = React;

const EMPTY_QUEUE = Object.freeze({ size: 0, items: Object.freeze([]), draining: false, maxSize: 0 });
const noopSubscribe = () => () => {};

// useSyncExternalStore over one of the kit's stores (subscribe/getSnapshot),
// or `fallback` while there is none. The server snapshot is the same, so
// server rendering (Next.js and the like) works too.
function useStore(store, fallback) {
  const get = store ? store.getSnapshot : () => fallback;
  return useSyncExternalStore(store ? store.subscribe : noopSubscribe, get, get);
}

/**
 * Connect while mounted. opts: url (required), token | getToken, WebSocket,
 * reconnect options, queue (OfflineQueue options, or false for none),
 * quality (ConnectionQuality options, or false). A change of url or token
 * makes a new connection. Returns { client, queue, quality, status, ready,
 * isConnected, rooms, emit, send, join, leave, connect, disconnect,
 * queueSize }. `emit` goes through the offline queue when there is one.
 */
export function useAivo(opts) {
  const { url, token } = opts;
  const optsRef = useRef(opts);
  optsRef.current = opts;
  const [kit, setKit] = useState(null);

  useEffect(() => {
    if (!url) return undefined;
    const o = optsRef.current;
    const client = new AivoClient(url, {
      ...o,
      getToken: o.getToken ? () => optsRef.current.getToken() : undefined,
    });
    const queue = o.queue === false ? null : new OfflineQueue(client, o.queue || {});
    const quality = o.quality === false ? null : new ConnectionQuality(clientQualitySource(client), o.quality || {});
    client.connect();
    setKit({ client, queue, quality });
    return () => {
      queue?.destroy();
      quality?.destroy();
      client.close();
    };
  }, [url, token]);

  const client = kit?.client;
  const queue = kit?.queue;
  const snap = useStore(client, null);
  const qsnap = useStore(queue, EMPTY_QUEUE);

  const emit = useCallback((event, data, o) => {
    if (queue) return queue.emit(event, data, o).done;
    if (!client) return Promise.reject(new Error('not connected'));
    return client.emit(event, data, o);
  }, [client, queue]);

  return useMemo(() => ({
    client, queue, quality: kit?.quality,
    status: snap ? snap.state : 'idle',
    ready: !!snap?.ready,
    isConnected: snap?.state === 'open',
    rooms: snap ? snap.rooms : [],
    lastClose: snap ? snap.lastClose : null,
    emit,
    send: (event, data) => (client ? client.send(event, data) : false),
    join: (room) => client.join(room),
    leave: (room) => client.leave(room),
    connect: () => client?.connect(),
    disconnect: () => client?.close(),
    queueSize: qsnap.size,
  }), [client, queue, kit, snap, qsnap, emit]);
}

/** The old app's name for useAivo. */
export const useWebSocket = useAivo;

/**
 * The queue's contents: { size, items, draining, maxSize } plus emit, remove
 * and clear. Pass an OfflineQueue (e.g. useAivo().queue).
 */
export function useOfflineQueue(queue) {
  const snap = useStore(queue, EMPTY_QUEUE);
  return useMemo(() => ({
    ...snap,
    queueSize: snap.size,
    emit: (event, data, o) => queue.emit(event, data, o),
    remove: (id) => queue.remove(id),
    clear: () => queue.clear(),
  }), [snap, queue]);
}

/**
 * The combined quality value (see ConnectionQuality): { quality, reason,
 * latency, jitter, packetLoss, stability, state, online, server,
 * lastMessageAt }. Pass a ConnectionQuality, or an AivoClient (one is made
 * for it while mounted).
 */
export function useConnectionQuality(source, opts) {
  const own = useMemo(() => {
    if (source instanceof AivoClient) return new ConnectionQuality(clientQualitySource(source), opts || {});
    return null;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [source]);
  useEffect(() => () => own?.destroy(), [own]);
  const q = own || source;
  const snap = useStore(q, null);
  return snap || UNKNOWN;
}

const UNKNOWN = Object.freeze({
  quality: 'unknown', reason: 'none', state: 'idle', online: true, latency: null, jitter: null,
  packetLoss: null, stability: null, server: null, lastMessageAt: null,
});

export const QUALITY_LABELS = Object.freeze({
  excellent: 'Excellent', good: 'Good', fair: 'Fair', poor: 'Poor', offline: 'Offline', unknown: 'Unknown',
});
const BARS = { excellent: 4, good: 3, fair: 2, poor: 1, offline: 0, unknown: 0 };

const fmtMs = (v) => (typeof v === 'number' ? `${Math.round(v)} ms` : '—');
const fmtPct = (v) => (typeof v === 'number' ? `${Math.round(v * 10) / 10} %` : '—');

/** The aria-label: the class and the round trip, in words. */
export function qualityDescription(q, labels = QUALITY_LABELS) {
  const label = labels[q.quality] || q.quality;
  const parts = [`Connection quality: ${label}`];
  if (typeof q.latency === 'number' && q.quality !== 'offline') parts.push(`round trip ${Math.round(q.latency)} ms`);
  if (typeof q.packetLoss === 'number' && q.packetLoss > 0 && q.quality !== 'offline') parts.push(`packet loss ${fmtPct(q.packetLoss)}`);
  return parts.join(', ');
}

function Bars({ level }) {
  // The number of filled bars repeats the class in shape, not only in colour.
  return h('span', { className: 'aivo-quality__bars', 'aria-hidden': 'true', 'data-bars': level },
    [1, 2, 3, 4].map((i) => h('span', { key: i, className: 'aivo-quality__bar' + (i <= level ? ' aivo-quality__bar--on' : '') })));
}

/**
 * The indicator. Props: quality (a value from useConnectionQuality) or
 * client/source (it subscribes itself), variant "full" | "badge" | "card"
 * (default "full"), className, style, labels (text per class), title (card
 * heading). Always: a visible text label, role="status", aria-live="polite",
 * an aria-label with the class and the round trip, data-quality and
 * data-variant attributes for styling; colours come from CSS custom
 * properties (indicator.css), never carry meaning alone.
 */
export function ConnectionQualityIndicator(props) {
  const { variant = 'full', className = '', style, labels = QUALITY_LABELS, title = 'Connection' } = props;
  const fromSource = useConnectionQuality(props.quality ? null : (props.client || props.source || null));
  const q = props.quality || fromSource;
  const label = labels[q.quality] || q.quality;
  const common = {
    className: `aivo-quality aivo-quality--${variant} ${className}`.trim(),
    style,
    role: 'status',
    'aria-live': 'polite',
    'aria-label': qualityDescription(q, labels),
    'data-quality': q.quality,
    'data-variant': variant,
  };
  const labelEl = h('span', { className: 'aivo-quality__label' }, label);
  const bars = h(Bars, { level: BARS[q.quality] ?? 0 });
  if (variant === 'badge') {
    return h('span', common, bars, labelEl);
  }
  if (variant === 'card') {
    const row = (name, value) => h('div', { className: 'aivo-quality__row', key: name },
      h('dt', null, name), h('dd', null, value));
    return h('section', common,
      h('header', { className: 'aivo-quality__header' },
        h('span', { className: 'aivo-quality__title' }, title), bars, labelEl),
      h('dl', { className: 'aivo-quality__details' },
        row('Latency', fmtMs(q.latency)),
        row('Jitter', fmtMs(q.jitter)),
        row('Packet loss', fmtPct(q.packetLoss)),
        row('Stability', typeof q.stability === 'number' ? `${q.stability} %` : '—'),
        row('State', q.state)));
  }
  return h('div', common, bars, labelEl,
    h('span', { className: 'aivo-quality__metrics' },
      h('span', { className: 'aivo-quality__metric' }, `Latency ${fmtMs(q.latency)}`),
      h('span', { className: 'aivo-quality__metric' }, `Loss ${fmtPct(q.packetLoss)}`),
      h('span', { className: 'aivo-quality__metric' }, `Stability ${typeof q.stability === 'number' ? q.stability + ' %' : '—'}`)));
}
