// A TCP relay the browser test controls, between a page and the gateway: it
// can delay every byte in both directions (a slow link: WebSocket pings and
// pongs included, so the gateway measures it) and refuse new connections.
import net from 'node:net';

export async function startRelay(targetPort) {
  const sockets = new Set();
  const relay = { delayMs: 0, refuse: false, connections: 0 };

  // Write `chunk` to `to` after relay.delayMs, never before an earlier chunk.
  function pipe(from, to) {
    let last = 0;
    from.on('data', (chunk) => {
      const at = Math.max(Date.now() + relay.delayMs, last);
      last = at;
      if (at <= Date.now()) { if (!to.destroyed) to.write(chunk); return; }
      setTimeout(() => { if (!to.destroyed) to.write(chunk); }, at - Date.now());
    });
    const end = () => setTimeout(() => to.destroy(), Math.max(0, last - Date.now()));
    from.on('end', end);
    from.on('close', end);
    from.on('error', () => {});
  }

  const server = net.createServer((down) => {
    sockets.add(down);
    down.on('close', () => sockets.delete(down));
    if (relay.refuse) { down.destroy(); return; }
    relay.connections++;
    const up = net.connect(targetPort, '127.0.0.1');
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.setNoDelay(true);
    down.setNoDelay(true);
    pipe(down, up);
    pipe(up, down);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  relay.port = server.address().port;
  relay.close = () => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return relay;
}
