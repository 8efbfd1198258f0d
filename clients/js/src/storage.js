// Storage for the offline queue: anything with getItem/setItem/removeItem
// (the Web Storage API). Browsers get localStorage; Node (or a browser that
// refuses localStorage: private mode, quota, disabled) gets memory.
export function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => { m.set(k, String(v)); },
    removeItem: (k) => { m.delete(k); },
  };
}

export function defaultStorage() {
  try {
    const ls = globalThis.localStorage;
    if (ls) {
      const probe = '__aivo_probe__';
      ls.setItem(probe, '1');
      ls.removeItem(probe);
      return ls;
    }
  } catch { /* unavailable: fall back to memory */ }
  return memoryStorage();
}
