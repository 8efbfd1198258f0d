/**
 * An error from the gateway (an ack error: code, message, retryAfterMs for
 * rate_limited) or from the client itself: `timeout` (no ack within
 * timeoutMs), `disconnected` (not open, or the connection closed before the
 * ack), `closed` (client.close() was called).
 */
export class AivoError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = 'AivoError';
    this.code = code;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
    if (extra.data !== undefined) this.data = extra.data;
  }
}

// Codes for which sending the same message again may succeed.
export const TRANSIENT_CODES = new Set(['timeout', 'disconnected', 'internal_error']);
