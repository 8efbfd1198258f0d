#!/bin/sh
# Builds aivo-gw and starts it with policies/default.lua (extra arguments are passed on).
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "${JOBS:-2}"
exec ./build/aivo-gw --policy policies/default.lua "$@"
