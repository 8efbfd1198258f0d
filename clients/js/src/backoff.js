// Capped exponential backoff with full jitter (AWS architecture blog's
// "full jitter"): a random wait in [0, min(max, initial * factor^attempt)].
// Full jitter spreads a crowd of clients reconnecting after a gateway restart.
export function backoffDelay(attempt, { initialDelayMs = 500, maxDelayMs = 10000, factor = 2, jitter = true, random = Math.random } = {}) {
  const cap = Math.min(maxDelayMs, initialDelayMs * Math.pow(factor, Math.max(0, attempt)));
  return jitter ? Math.floor(random() * cap) : cap;
}
