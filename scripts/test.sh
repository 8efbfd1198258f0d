#!/bin/sh
# Builds aivo-gw twice (plain, and with AddressSanitizer + UndefinedBehaviorSanitizer) and
# runs every test in both: C unit tests, busted specs, integration tests against the real
# binary. Assumes scripts/install-deps.sh --test has run.
set -eu
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}

run() {
  dir=$1
  shift
  echo "== $dir: configure and build"
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
  echo "== $dir: ctest"
  (cd "$dir" && ctest --output-on-failure -j "$JOBS")
}

run build -DCMAKE_BUILD_TYPE=RelWithDebInfo
# leaks and UB fail the run; the gateway must also exit cleanly after a drain
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  run build-asan -DCMAKE_BUILD_TYPE=Debug -DAIVO_SANITIZE=ON
echo "== all tests passed (plain and sanitizer builds)"
