// A first session against aivo-gw's native protocol, with no dependencies:
//   TOKEN=$(./build/aivo-gw token --sub alice)
//   node --experimental-websocket examples/ws-client.js [ws://127.0.0.1:4003/ws] [TOKEN]
// (Node 22+ has WebSocket built in and needs no flag.) The token is the second argument or
// $AIVO_TOKEN; it goes in the URL as ?token= because the WebSocket API cannot set headers
// (other clients should prefer an "Authorization: Bearer" header, docs/security.md).
// It echoes with and without an ack, joins a room and sends to it.
'use strict';

const base = process.argv[2] || 'ws://127.0.0.1:4003/ws';
const token = process.argv[3] || process.env.AIVO_TOKEN;
if (!token) {
  console.error('no token: pass one as the second argument or in AIVO_TOKEN, e.g.\n' +
    '  TOKEN=$(./build/aivo-gw token --sub alice)\n' +
    `  node --experimental-websocket examples/ws-client.js ${base} "$TOKEN"`);
  process.exit(2);
}
const url = `${base}${base.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
const ws = new WebSocket(url);
let nextId = 1;
const pending = new Map();

function request(event, data) {
  const id = nextId++;
  ws.send(JSON.stringify({ event, data, id }));
  return new Promise((resolve) => pending.set(id, resolve));
}

ws.addEventListener('message', (e) => {
  const msg = JSON.parse(e.data);
  if ('ack' in msg && pending.has(msg.ack)) {
    pending.get(msg.ack)(msg);
    pending.delete(msg.ack);
  } else {
    console.log('event  ', JSON.stringify(msg));
  }
});

ws.addEventListener('open', async () => {
  console.log('connected to', base);
  console.log('ack    ', JSON.stringify(await request('echo', { hello: 'world', n: 42 })));
  ws.send(JSON.stringify({ event: 'echo', data: 'no ack asked: comes back as an event' }));
  console.log('ack    ', JSON.stringify(await request('join', { room: 'lobby' })));
  console.log('ack    ', JSON.stringify(await request('room:send', { room: 'lobby', msg: 'hi all' })));
  console.log('ack    ', JSON.stringify(await request('agent:learning', { action: 'start_session' })));
  console.log('ack    ', JSON.stringify(await request('no-such-event', {})));
  setTimeout(() => ws.close(1000), 200);
});

ws.addEventListener('close', (e) => console.log('closed ', e.code, e.reason));
ws.addEventListener('error', () => {
  // the WebSocket API hides the HTTP status: 401 (bad token) and 403 (origin) look the same
  console.error(`cannot connect to ${base}: is aivo-gw running, and is the token valid and unexpired?`);
  process.exitCode = 1;
});
