// A first session against aivo-gw's native protocol, with no dependencies:
//   node --experimental-websocket examples/ws-client.js [ws://127.0.0.1:4003/ws]
// (Node 22+ has WebSocket built in and needs no flag.)
// It echoes with and without an ack, joins a room and sends to it.
'use strict';

const url = process.argv[2] || 'ws://127.0.0.1:4003/ws';
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
  console.log('connected to', url);
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
  console.error(`cannot connect to ${url}: is aivo-gw running?`);
  process.exitCode = 1;
});
