// Shared by the client kit's tests: the integration helpers (the real
// gateway, tokens, a raw /ws client) and the kit's own dev dependencies,
// which live in clients/js/node_modules (installed by clients.npm_ci).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
export const KIT = path.join(REPO, 'clients', 'js');
export const kitRequire = createRequire(path.join(KIT, 'package.json'));
const gwlib = createRequire(import.meta.url)('../integration/lib/gateway.js');

export const { startGateway, connect, mintToken, delay, withTimeout, TEST_POLICIES } = gwlib;
export const WebSocket = kitRequire('ws');
export const KIT_POLICY = path.join(TEST_POLICIES, 'client_kit.lua');

/** Poll `cond` until it returns a truthy value (returned); bounded. */
export async function waitFor(cond, what, timeoutMs = 15000, stepMs = 25) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(stepMs);
  }
}

/** Resolve with the args of the next `event` on an Emitter (bounded). */
export function nextEvent(emitter, event, timeoutMs = 15000) {
  let off;
  return withTimeout(new Promise((resolve) => {
    off = emitter.on(event, (...args) => resolve(args));
  }), timeoutMs, `event ${event}`).finally(() => off());
}
