#!/bin/sh
# Builds aivo-gw and starts it with policies/default.lua (extra arguments are passed on).
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "${JOBS:-2}"
# The default policy requires a token. Without JWT_SECRET / NEXTAUTH_SECRET the gateway uses
# a development secret (made once, announced loudly in the log): mint a token for it with
# ./build/aivo-gw token --sub alice. Never in production: set JWT_SECRET there.
DEV=""
[ -n "${JWT_SECRET:-}${NEXTAUTH_SECRET:-}" ] || DEV="--dev-secret"
exec ./build/aivo-gw --policy policies/default.lua $DEV "$@"
