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
set -eu
SUITE=${1:?usage: scripts/socketio-suite.sh PATH-TO-socket.io-protocol [aivo-gw binary]}
cd "$(dirname "$0")/.."
BIN=${2:-build/aivo-gw}
[ -f "$SUITE/test-suite/test-suite.js" ] || { echo "no test-suite/test-suite.js under $SUITE" >&2; exit 2; }
WORK=$(mktemp -d)
cp -R "$SUITE/test-suite/." "$WORK/"
(cd "$WORK" && npm ci --no-audit --no-fund >/dev/null)
"$BIN" --policy tests/policies/socketio_suite.lua --listen '[::]:3000' --admin-listen off >"$WORK/gateway.log" 2>&1 &
GW=$!
trap 'kill $GW 2>/dev/null; wait $GW 2>/dev/null; rm -rf "$WORK"' EXIT
sleep 1
kill -0 $GW || { cat "$WORK/gateway.log" >&2; exit 1; }
(cd "$WORK" && npx mocha test-suite.js)
