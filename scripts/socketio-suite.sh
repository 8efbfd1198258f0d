#!/bin/sh
# Runs the official Socket.IO protocol test suite against aivo-gw.
#
#   scripts/socketio-suite.sh PATH [BINARY]
#
# PATH is a checkout of the public repository socketio/socket.io-protocol (its test-suite/
# folder is used; nothing of it is copied into this repository). BINARY defaults to
# build/aivo-gw. The suite expects a server on localhost:3000 with the handlers of
# tests/policies/socketio_suite.lua; its dependencies (mocha, chai, ...) are installed from
# npm into a temporary folder. Not part of CI: CI has no copy of the suite.
# The gateway it starts is stopped on every exit path (success, failure, Ctrl-C, TERM).
set -eu
SUITE=${1:?usage: scripts/socketio-suite.sh PATH-TO-socket.io-protocol [aivo-gw binary]}
cd "$(dirname "$0")/.."
BIN=${2:-build/aivo-gw}
[ -f "$SUITE/test-suite/test-suite.js" ] || { echo "no test-suite/test-suite.js under $SUITE" >&2; exit 2; }
[ -x "$BIN" ] || { echo "no gateway binary at $BIN (build first: cmake -S . -B build && cmake --build build)" >&2; exit 2; }
WORK=$(mktemp -d)
GW=""
cleanup() {
  if [ -n "$GW" ]; then kill "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
# A signal ends the script through the EXIT trap (dash runs it only on a normal exit).
trap 'exit 130' INT
trap 'exit 143' TERM HUP
cp -R "$SUITE/test-suite/." "$WORK/"
(cd "$WORK" && npm ci --no-audit --no-fund >/dev/null)

# The suite awaits one WebSocket event at a time: `await waitFor(socket, "message")` twice in
# a row. Its pinned ws 8.5.0 emits every frame of one TCP read synchronously, so when the
# gateway's two frames arrive together (Engine.IO open + Socket.IO CONNECT, or a CONNECT and
# an event) the second is emitted before the test has added its next listener, and is lost:
# the same race fails the stock Node Socket.IO server too. This preload delivers each socket's
# events (open, message, close, error) one per macrotask, in order, so a test's continuation
# always runs before the next event. It changes no byte on the wire.
cat >"$WORK/paced-ws.mjs" <<'JS'
import { WebSocket } from "ws";
const emit = WebSocket.prototype.emit;
const paced = new Set(["open", "message", "close", "error"]);
WebSocket.prototype.emit = function (type, ...args) {
  if (!paced.has(type)) return emit.call(this, type, ...args);
  const q = this.__pacedQueue || (this.__pacedQueue = []);
  q.push([type, args]);
  if (q.length === 1) {
    const next = () => {
      const [t, a] = q[0];
      emit.call(this, t, ...a);
      q.shift();
      if (q.length) setImmediate(next);
    };
    setImmediate(next);
  }
  return true;
};
JS

if command -v ss >/dev/null 2>&1 && ss -ltn 'sport = :3000' | grep -q LISTEN; then # check-deps: optional
  echo "port 3000 is taken (the suite's URL is fixed): stop what listens there first" >&2
  exit 1
fi
"$BIN" --policy tests/policies/socketio_suite.lua --listen '[::]:3000' --admin-listen off >"$WORK/gateway.log" 2>&1 &
GW=$!
i=0
until node -e "fetch('http://127.0.0.1:3000/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 50 ] || ! kill -0 "$GW" 2>/dev/null; then
    echo "the gateway did not start:" >&2
    cat "$WORK/gateway.log" >&2
    exit 1
  fi
  sleep 0.1
done
(cd "$WORK" && NODE_OPTIONS="--import=./paced-ws.mjs" npx mocha test-suite.js)
