#!/bin/sh
# Installs the Debian 12 packages aivo-gw needs.
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also what the test suite needs
#   scripts/install-deps.sh --bench  also what bench/ needs (node and npm for the Socket.IO
#                                    peer, jq, perf)
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS="build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev \
libluajit-5.1-dev luajit libhiredis-dev libssl-dev lua-cjson-dev lua-cjson libjwt-dev uthash-dev openssl"
case "${1:-}" in
  --test) PKGS="$PKGS lua-busted redis-server valgrind prometheus chromium" ;;
  --bench) PKGS="$PKGS jq linux-perf" ;;
  "") ;;
  *) echo "usage: $0 [--test | --bench]" >&2; exit 2 ;;
esac
if [ -n "${1:-}" ]; then
  # Node.js: keep an existing install (e.g. NodeSource, which bundles npm and
  # conflicts with Debian's npm package); otherwise take Debian's.
  command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
fi
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
