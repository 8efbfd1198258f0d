// The client kit's demo: token login, a room, chat through the offline
// queue, the quality indicator in its three variants, the queue's contents.
// URL parameters (all optional): gw (ws URL; default ws://<host>:4003/ws),
// token, room (default lobby), name, autoconnect=1, maxDelayMs (reconnect cap).
import React from 'react';
import { useAivo, useOfflineQueue, useConnectionQuality, ConnectionQualityIndicator } from '@aivo/client/react';

const h = React.createElement;
const { useState, useEffect, useRef } = React;
const params = new URLSearchParams(location.search);
const DEFAULT_GW = params.get('gw') || `ws://${location.hostname || 'localhost'}:4003/ws`;
const TOKEN_KEY = 'aivo-demo-token';

function Login({ onLogin }) {
  const [gw, setGw] = useState(DEFAULT_GW);
  const [token, setToken] = useState(params.get('token') || sessionStorage.getItem(TOKEN_KEY) || '');
  const [room, setRoom] = useState(params.get('room') || 'lobby');
  const submit = (e) => { e.preventDefault(); if (token.trim()) onLogin({ gw, token: token.trim(), room }); };
  return h('form', { className: 'panel', onSubmit: submit, 'aria-label': 'Log in' },
    h('h2', null, 'Log in with a development token'),
    h('p', { className: 'muted' }, 'Mint one with ', h('code', null, './build/aivo-gw token --sub alice'), '.'),
    h('div', { className: 'row' },
      h('label', { htmlFor: 'gw' }, 'Gateway'), h('input', { id: 'gw', type: 'text', value: gw, onChange: (e) => setGw(e.target.value), size: 28 }),
      h('label', { htmlFor: 'token' }, 'Token'), h('input', { id: 'token', type: 'password', className: 'wide', value: token, onChange: (e) => setToken(e.target.value), 'data-testid': 'token' }),
      h('label', { htmlFor: 'room' }, 'Room'), h('input', { id: 'room', type: 'text', value: room, onChange: (e) => setRoom(e.target.value), size: 10 }),
      h('button', { type: 'submit', 'data-testid': 'connect' }, 'Connect')));
}

function Chat({ config }) {
  const { gw, token, room } = config;
  const aivo = useAivo({
    url: gw, token, rooms: [room],
    maxDelayMs: Number(params.get('maxDelayMs')) || 10000,
  });
  const queue = useOfflineQueue(aivo.queue);
  const quality = useConnectionQuality(aivo.quality);
  const [messages, setMessages] = useState([]);
  const [dupes, setDupes] = useState(0);
  const [failed, setFailed] = useState([]);
  const [resume, setResume] = useState('');
  const [text, setText] = useState('');
  const seen = useRef(new Set());

  useEffect(() => {
    const { client, queue: q } = aivo;
    if (!client) return undefined;
    // Delivery is at least once: drop a message whose id was seen already.
    const add = (m) => {
      if (m.id && seen.current.has(m.id)) { setDupes((n) => n + 1); return; }
      if (m.id) seen.current.add(m.id);
      setMessages((list) => [...list, m].slice(-200));
    };
    const offs = [
      client.on('room:message', (d) => add({ id: d.msg && d.msg.id, from: d.from, text: d.msg && d.msg.text, mine: false })),
      q.on('sent', (item) => add({ id: item.data.msg.id, from: 'me', text: item.data.msg.text, mine: true })),
      q.on('failed', (item, err) => setFailed((l) => [...l, { id: item.id, text: item.data.msg && item.data.msg.text, code: err.code }])),
      // after a reconnect: did the gateway replay everything missed (docs/offline-replay.md)?
      client.on('client:recovered', (info) => setResume(info.recovered ? 'recovered' : 'missed')),
    ];
    window.aivoDemo = { client, queue: q };
    return () => offs.forEach((o) => o());
  }, [aivo.client, aivo.queue]);

  const send = (e) => {
    e.preventDefault();
    if (!text.trim() || !aivo.queue) return;
    aivo.queue.emit('room:send', (id) => ({ room, msg: { id, text } }));
    setText('');
  };

  return h(React.Fragment, null,
    h('section', { className: 'panel', 'aria-label': 'Connection' },
      h('div', { className: 'row' },
        h('span', null, 'State: ', h('span', { className: 'state', 'data-testid': 'state', 'data-ready': String(aivo.ready) }, aivo.ready ? 'ready' : aivo.status)),
        h('span', { className: 'muted' }, `room ${room} · ${gw}`),
        resume ? h('span', { 'data-testid': 'resume', 'data-recovered': String(resume === 'recovered') },
          resume === 'recovered' ? 'Reconnected: nothing missed' : 'Reconnected: messages were missed (reload to catch up)') : null),
      h('div', { className: 'variants', style: { marginTop: 10 } },
        ['full', 'badge', 'card'].map((variant) => h('div', { className: 'variant', key: variant },
          h('span', { className: 'muted' }, variant),
          h('div', { 'data-testid': `indicator-${variant}` }, h(ConnectionQualityIndicator, { quality, variant })))))),
    h('div', { className: 'grid' },
      h('section', { className: 'panel', 'aria-label': 'Chat' },
        h('h2', null, 'Chat'),
        h('form', { className: 'row', onSubmit: send },
          h('label', { htmlFor: 'msg', className: 'muted' }, 'Message'),
          h('input', { id: 'msg', type: 'text', className: 'wide', value: text, onChange: (e) => setText(e.target.value), 'data-testid': 'message' }),
          h('button', { type: 'submit', 'data-testid': 'send' }, 'Send')),
        h('p', { className: 'muted' }, 'Duplicates dropped: ', h('span', { 'data-testid': 'dupes' }, String(dupes))),
        h('ul', { className: 'log', 'data-testid': 'messages', 'aria-live': 'polite' },
          messages.map((m) => h('li', { key: m.id || Math.random(), 'data-id': m.id, 'data-mine': String(m.mine) },
            h('b', null, m.from, ': '), m.text)))),
      h('section', { className: 'panel', 'aria-label': 'Offline queue' },
        h('h2', null, 'Offline queue: ', h('output', { 'data-testid': 'queue-size' }, String(queue.size)), ` / ${queue.maxSize || 100}`),
        h('p', { className: 'muted' }, 'Messages wait here while disconnected (kept in localStorage across reloads) and go out in order on reconnect.'),
        h('ol', { className: 'log', 'data-testid': 'queue-items' },
          queue.items.map((m) => h('li', { key: m.id, 'data-id': m.id },
            `${m.event}: ${m.data && m.data.msg ? m.data.msg.text : JSON.stringify(m.data)}`,
            m.attempts ? h('span', { className: 'muted' }, ` (retry ${m.attempts})`) : null))),
        failed.length ? h('div', null, h('h2', null, 'Failed'),
          h('ul', { className: 'log', 'data-testid': 'failed' }, failed.map((f) => h('li', { key: f.id }, `${f.text} (${f.code})`)))) : null)));
}

function App() {
  const [config, setConfig] = useState(() => {
    const token = params.get('token') || sessionStorage.getItem(TOKEN_KEY);
    return params.get('autoconnect') === '1' && token ? { gw: DEFAULT_GW, token, room: params.get('room') || 'lobby' } : null;
  });
  const login = (c) => { sessionStorage.setItem(TOKEN_KEY, c.token); setConfig(c); };
  return h('main', null,
    h('h1', null, 'aivo-gw client kit demo'),
    config ? h(Chat, { config }) : h(Login, { onLogin: login }));
}

ReactDOM.createRoot(document.getElementById('root')).render(h(App));
