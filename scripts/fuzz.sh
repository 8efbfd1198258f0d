#!/bin/sh
# Runs every libFuzzer target (tests/fuzz/) for a bounded time, with AddressSanitizer and
# UndefinedBehaviorSanitizer, and prints executions per second per target.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s, every target
# Builds into build-fuzz/ with clang (Debian: clang, libclang-rt-14-dev; scripts/install-deps.sh
# --test). Starts from the seed corpus tests/fuzz/corpus/<target>/ and keeps what it learns in
# build-fuzz/fuzz-work/<target>/ (never in the repository). A crash, leak, UB or timeout is
# saved as build-fuzz/fuzz-artifacts/<target>/crash-* (replay: build-fuzz/tests/fuzz/fuzz_<target>
# FILE) and makes the script exit 1 after the remaining targets ran.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-native engineio socketio jwt json}
JOBS=${JOBS:-2}
DIR=build-fuzz
CC=${CC:-clang}
command -v "$CC" >/dev/null || { echo "fuzz.sh: $CC not found (scripts/install-deps.sh --test)" >&2; exit 2; }

echo "== $DIR: configure and build ($CC, libFuzzer + ASan + UBSan)"
CC=$CC cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAIVO_SANITIZE=ON -DAIVO_FUZZ=ON >/dev/null
bins=""
for t in $TARGETS; do bins="$bins fuzz_$t"; done
# shellcheck disable=SC2086
cmake --build "$DIR" -j "$JOBS" --target $bins

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=""
failed=""
for t in $TARGETS; do
  work="$DIR/fuzz-work/$t"
  art="$DIR/fuzz-artifacts/$t"
  mkdir -p "$work" "$art"
  log="$DIR/fuzz-$t.log"
  echo "== fuzz_$t: $SECS s (log: $log)"
  rc=0
  "$DIR/tests/fuzz/fuzz_$t" -max_total_time="$SECS" -print_final_stats=1 -max_len=16384 \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$art/" "$work" "tests/fuzz/corpus/$t" \
    >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
  units=$(ls "$work" | wc -l)
  if [ "$rc" -ne 0 ]; then
    failed="$failed $t"
    status="FAILED (exit $rc): $(ls "$art" | tr '\n' ' ')"
    grep -E "^(==[0-9]+==ERROR|SUMMARY|fuzz:)|runtime error" "$log" | head -5
  else
    status=ok
  fi
  line=$(printf '%-9s %12s execs %8s exec/s  cov %6s  corpus %5s  peak RSS %5s MB  %s' \
    "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" "$units" "${rss:-?}" "$status")
  echo "$line"
  summary="$summary$line
"
done
echo "== summary ($SECS s per target)"
printf '%s' "$summary"
if [ -n "$failed" ]; then
  echo "fuzz.sh: failures in:$failed (inputs in $DIR/fuzz-artifacts/)" >&2
  exit 1
fi
