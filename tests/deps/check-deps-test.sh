#!/usr/bin/env bash
# ctest deps.guard: scripts/check-deps.sh really fails on what it guards against. Each case is a
# fake project root (an install-deps.sh with its PKGS lists, and a few files using headers and
# programs) checked against this machine's dpkg and apt cache:
#   1. a header and a program from packages no list installs -> fails, naming file and package;
#      a program on a "check-deps: optional" line is not reported; one in the --test list is ok
#   2. the same files with those packages listed -> passes (so 1 failed for the right reason)
#   3. a core/ header whose package is only in the --test list -> fails "(plain mode)"
#   4. a package name apt does not know -> fails and says so
#   5. an empty apt cache -> fails and says to run apt-get update
# Needs uthash.h (uthash-dev) and valgrind on this machine (scripts/install-deps.sh --test).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
check=${CHECK_DEPS:-$here/../../scripts/check-deps.sh}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
pass() { echo "ok   $*"; }
bad() { echo "FAIL $*"; failures=$((failures + 1)); }

if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then echo "skip: not Debian"; exit 77; fi
[[ -e /usr/include/uthash.h ]] || { echo "skip: uthash.h is not installed (scripts/install-deps.sh)"; exit 77; }
command -v valgrind >/dev/null || { echo "skip: valgrind is not installed (scripts/install-deps.sh --test)"; exit 77; }

# root NAME BASE_PKGS TEST_PKGS: a fake project with the files below
root() {
  local r=$tmp/$1
  mkdir -p "$r/scripts" "$r/core" "$r/tests" "$r/bench"
  cat >"$r/scripts/install-deps.sh" <<EOF
#!/bin/sh
PKGS="build-essential $2"
case "\${1:-}" in
  --test) PKGS="\$PKGS $3" ;;
esac
EOF
  printf '#include <stdio.h>\n#include <uthash.h>\n' >"$r/core/table.c"
  cat >"$r/tests/run.test.js" <<'EOF'
const { spawnSync } = require('node:child_process');
spawnSync('valgrind', ['--version']);
spawnSync('promtool', ['--version']); // check-deps: optional
EOF
  # shellcheck disable=SC2016 # the script's own text
  printf '#!/bin/sh\nset -e\nout=$(ls /)\nsort -u "$1" | head -1\n' >"$r/bench/b.sh"
  echo "$r"
}

# run CASE ROOT: the guard's exit code and output in $rc and $out
run() {
  out=$("$check" "$2" 2>&1)
  rc=$?
  printf '%s\n' "$out" | sed "s/^/    [$1] /"
}

r=$(root missing "" "")
run 1 "$r"
if [[ $rc -eq 1 ]] && grep -q 'header <uthash.h> .*package uthash-dev.* core/table.c' <<<"$out" &&
   grep -q 'program valgrind .*package valgrind.* tests/run.test.js' <<<"$out"; then
  pass "1: a header and a program from packages install-deps.sh does not install fail the guard"
else
  bad "1: expected exit 1 naming uthash-dev (core/table.c) and valgrind (tests/run.test.js); got $rc"
fi
if grep -q promtool <<<"$out"; then bad "1: a 'check-deps: optional' line was reported"; else pass "1: optional lines are not reported"; fi

r=$(root listed "uthash-dev" "valgrind")
run 2 "$r"
if [[ $rc -eq 0 ]] && grep -q 'check-deps: OK' <<<"$out"; then
  pass "2: with the packages listed (valgrind in --test only) the same files pass"
else
  bad "2: expected exit 0 with uthash-dev and valgrind listed; got $rc"
fi

r=$(root plain "" "uthash-dev valgrind")
run 3 "$r"
if [[ $rc -eq 1 ]] && grep -q 'header <uthash.h> .*core/table.c, but scripts/install-deps.sh (plain mode)' <<<"$out" &&
   ! grep -q valgrind <<<"$out"; then
  pass "3: a core/ header must come from the plain mode (the README's first command)"
else
  bad "3: expected exit 1 for <uthash.h> in plain mode only; got $rc"
fi

r=$(root typo "uthash-dev no-such-package-aivo" "valgrind")
run 4 "$r"
if [[ $rc -eq 1 ]] && grep -q 'names packages apt does not know: no-such-package-aivo' <<<"$out"; then
  pass "4: an unknown package name fails the guard"
else
  bad "4: expected exit 1 naming no-such-package-aivo; got $rc"
fi

mkdir -p "$tmp/empty-lists"
out=$(CHECK_DEPS_APT_LISTS=$tmp/empty-lists "$check" "$r" 2>&1)
rc=$?
printf '%s\n' "$out" | sed "s/^/    [5] /"
if [[ $rc -eq 1 ]] && grep -q 'the apt cache is empty.*apt-get update' <<<"$out"; then
  pass "5: an empty apt cache fails with what to do"
else
  bad "5: expected exit 1 saying the apt cache is empty; got $rc"
fi

[[ $failures -eq 0 ]] && echo "all check-deps cases passed"
exit $((failures > 0))
