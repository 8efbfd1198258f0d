#!/bin/sh
# Builds aivo-gw and starts it with the shipped default policy (extra arguments are passed on).
#   AIVO_GW_BIN=path  run that binary instead of building ./build/aivo-gw (the tests use it)
set -eu
cd "$(dirname "$0")/.."
BIN=${AIVO_GW_BIN:-}
if [ -z "$BIN" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j "${JOBS:-2}"
  BIN=./build/aivo-gw
fi
# The default policy requires a token. Without JWT_SECRET / NEXTAUTH_SECRET the gateway uses
# a development secret (made once, announced loudly in the log): mint a token for it with
# ./build/aivo-gw token --sub alice. Never in production: set JWT_SECRET there.
# A development secret sits in a file anyone with the home folder can read: the gateway then
# listens on loopback only (port $PORT, default 4003) unless an argument says --listen.
DEV=""
[ -n "${JWT_SECRET:-}${NEXTAUTH_SECRET:-}" ] || DEV="--dev-secret"
LISTEN=""
if [ -n "$DEV" ]; then
  LISTEN="--listen 127.0.0.1:${PORT:-4003}"
  for a in "$@"; do
    case "$a" in --listen | --listen=*) LISTEN="" ;; esac
  done
fi
# shellcheck disable=SC2086 # DEV and LISTEN are empty or flag lists
exec "$BIN" $DEV $LISTEN "$@"
