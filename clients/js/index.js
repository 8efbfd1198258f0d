// @aivo/client: the native /ws client, the offline queue and connection quality.
// No runtime dependency; ES modules; browsers and Node 18+ (pass WebSocket
// from the `ws` package where there is no global WebSocket).
export { AivoClient } from './src/client.js';
export { AivoError } from './src/errors.js';
export { OfflineQueue, QUEUE_DEFAULTS, newMessageId, clientTransport } from './src/queue.js';
export { ConnectionQuality, QUALITY_DEFAULTS, CLASSES, clientQualitySource } from './src/quality.js';
export { memoryStorage, defaultStorage } from './src/storage.js';
export { backoffDelay } from './src/backoff.js';

import { AivoClient } from './src/client.js';
import { OfflineQueue } from './src/queue.js';
import { ConnectionQuality, clientQualitySource } from './src/quality.js';

/**
 * The usual trio in one call: a client (connected), its offline queue and
 * its quality value. opts: client options, plus `queue` and `quality`
 * (their options).
 */
export function createAivo(url, opts = {}) {
  const { queue: queueOpts, quality: qualityOpts, connect = true, ...clientOpts } = opts;
  const client = new AivoClient(url, clientOpts);
  const queue = new OfflineQueue(client, queueOpts);
  const quality = new ConnectionQuality(clientQualitySource(client), qualityOpts);
  if (connect) client.connect();
  return {
    client, queue, quality,
    destroy() { queue.destroy(); quality.destroy(); client.close(); },
  };
}
