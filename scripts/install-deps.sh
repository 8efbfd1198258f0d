#!/bin/sh
# Installs the Debian 12 packages aivo-gw needs.
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also what the test suite needs
#   scripts/install-deps.sh --bench  also what bench/ needs (node and npm for the Socket.IO
#                                    peer, jq, perf)
# Keep every list a PKGS="..." line: scripts/check-deps.sh (ctest deps.closure) reads them to
# prove that every header and program the project uses comes from a package installed here.
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS="build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev \
libluajit-5.1-dev luajit libhiredis-dev libssl-dev lua-cjson-dev lua-cjson libjwt-dev uthash-dev openssl"
case "${1:-}" in
  --test) PKGS="$PKGS lua-busted redis-server haproxy valgrind prometheus clang libclang-rt-14-dev chromium" ;;
  --bench) PKGS="$PKGS jq linux-perf" ;;
  "") ;;
  *) echo "usage: $0 [--test | --bench]" >&2; exit 2 ;;
esac
if [ -n "${1:-}" ]; then
  # Node.js: keep an existing install (e.g. NodeSource, which bundles npm and
  # conflicts with Debian's npm package); otherwise take Debian's.
  command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
fi

# Packages whose daemon Debian enables and starts on install. The tests start their own
# redis-server on free ports (and examples/cluster its own haproxy), and prometheus is installed only for promtool: when this script
# installs one of them, its service is neither started (a policy-rc.d answering 101, "action
# forbidden", for the length of the install) nor left enabled (disabled right after).
NOSERVICE="redis-server haproxy prometheus"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -n "$missing" ] || exit 0

quiet=""
for s in $NOSERVICE; do
  case " $missing " in *" $s "*) quiet="$quiet $s" ;; esac
done

POLICY=/usr/sbin/policy-rc.d
restore_policy() {
  $SUDO rm -f "$POLICY"
  if [ -e "$POLICY.aivo-saved" ]; then $SUDO mv "$POLICY.aivo-saved" "$POLICY"; fi
}
if [ -n "$quiet" ]; then
  # invoke-rc.d and deb-systemd-invoke (what postinst scripts call) ask policy-rc.d first;
  # 101 forbids the start. An existing policy-rc.d is set aside and put back afterwards.
  if [ -e "$POLICY" ]; then $SUDO mv "$POLICY" "$POLICY.aivo-saved"; fi
  trap restore_policy EXIT
  trap 'exit 130' INT TERM
  printf '#!/bin/sh\n# scripts/install-deps.sh (aivo-gw): no service starts during this install\nexit 101\n' |
    $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
fi

echo "installing:$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # a list
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing

for s in $quiet; do
  # postinst enabled the unit (multi-user.target.wants symlink) and the SysV links: undo both
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now --quiet "$s.service" 2>/dev/null || true # check-deps: optional
  elif command -v deb-systemd-helper >/dev/null 2>&1; then
    $SUDO deb-systemd-helper disable "$s.service" >/dev/null 2>&1 || true
  fi
  $SUDO rm -f "/etc/systemd/system/multi-user.target.wants/$s.service"
  if [ -x "/etc/init.d/$s" ]; then $SUDO update-rc.d "$s" disable >/dev/null 2>&1 || true; fi
  echo "$s: installed for the tests only, its service disabled and not started" \
       "(to run it as a service: sudo systemctl enable --now $s)"
done
