#!/usr/bin/env bash
# bench/profile.sh: where the gateway's CPU goes per message. Runs the gateway (default
# policy, auth on, --set ratelimit.per_minute=0, pinned to CPU $SRV_CPU) under
# `perf record` during the echo workload (100 connections) and during fan-out to 1,000
# subscribers, on /ws and over Socket.IO (PROFILE_SOCKETIO=0: /ws only), and prints for
# each: the split by library (kernel vs user), the top symbols (self time), and the callers
# of a few hot user-space symbols. docs/benchmarks.md holds a summary of what it printed.
#
#   bench/profile.sh                  (build/ must hold aivo-gw and bench/aivo-loadgen:
#                                      bench/run.sh builds them)
#
# Environment: BUILD_DIR (build/), PROFILE_SECONDS (8), FANOUT_RATE (50), PERF_FREQ (999),
# PERF_CALLGRAPH (dwarf: the Debian libraries have no frame pointers; "fp" is cheaper),
# PROFILE_DIR (perf.data files and reports; default a temporary folder), GW_ARGS (more
# gateway flags, e.g. "--set lua.jit=true").
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
SECS=${PROFILE_SECONDS:-8}
FANOUT_RATE=${FANOUT_RATE:-50}
FREQ=${PERF_FREQ:-999}
CG=${PERF_CALLGRAPH:-dwarf}
SRV_CPU=${SRV_CPU:-0}
LG_CPU=${LG_CPU:-1}
GW=$BUILD/aivo-gw
LG=$BUILD/bench/aivo-loadgen
OUT=${PROFILE_DIR:-$(mktemp -d /tmp/aivo-profile.XXXXXX)}
mkdir -p "$OUT"
read -r -a GW_EXTRA <<<"${GW_ARGS:-}"

command -v perf >/dev/null || { echo "profile: perf is required (scripts/install-deps.sh --bench)" >&2; exit 1; }
for bin in "$GW" "$LG"; do
  [[ -x $bin ]] || { echo "profile: $bin not found: run bench/run.sh or build first" >&2; exit 1; }
done
[[ $CG == dwarf ]] && CG=dwarf,16384

export JWT_SECRET=${JWT_SECRET:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}
TOKEN=$("$GW" token --sub bench --ttl 1d) || exit 1

GW_PID="" LG_PID="" PERF_PID=""
stop_pid() {
  local pid=$1 sig=${2:-TERM} i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -"$sig" "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() {
  stop_pid "$PERF_PID" INT
  stop_pid "$LG_PID"
  stop_pid "$GW_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

profile() { # profile NAME PROTO LOADGEN-ARGS...  (PROTO: native or socketio)
  local name=$1 proto=$2 log=$OUT/$1.gw.log port="" i path=/ws
  shift 2
  [[ $proto == socketio ]] && path=/socket.io/
  (cd "$ROOT" && exec taskset -c "$SRV_CPU" "$GW" --policy "$ROOT/policies/default.lua" --listen 127.0.0.1:0 \
    --admin-listen off --log-level info --set ratelimit.per_minute=0 "${GW_EXTRA[@]}") 2>"$log" &
  GW_PID=$!
  for ((i = 0; i < 100; i++)); do
    port=$(sed -nE 's/.*listening on [^ ]+:([0-9]+).*/\1/p' "$log" | head -1)
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n $port ]] || { cat "$log" >&2; exit 1; }
  # warm-up 2 s (connections, joins), then SECS s sampled
  taskset -c "$LG_CPU" "$LG" "$@" --proto "$proto" --warmup 2 --seconds "$((SECS + 2))" --token "$TOKEN" \
    --url "ws://127.0.0.1:$port$path" --gw-pid "$GW_PID" >"$OUT/$name.loadgen" 2>&1 &
  LG_PID=$!
  sleep 3
  perf record -q -F "$FREQ" --call-graph "$CG" -p "$GW_PID" -o "$OUT/$name.perf.data" -- sleep "$SECS" \
    >/dev/null 2>&1 &
  PERF_PID=$!
  wait "$PERF_PID"
  PERF_PID=""
  wait "$LG_PID"
  LG_PID=""
  stop_pid "$GW_PID"
  GW_PID=""

  local data=$OUT/$name.perf.data
  {
    echo "### $name: $(grep -v 'fds available' "$OUT/$name.loadgen" | head -1)"
    echo
    echo "By library (self time; [kernel.kallsyms] is the kernel's share):"
    perf report -i "$data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -12
    echo
    echo "Top symbols (self time):"
    perf report -i "$data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9.]+%' | head -40
    for sym in malloc _int_malloc __memmove_avx_unaligned_erms __vfprintf_internal __poll lws_dll2_add_sorted; do
      if perf report -i "$data" --no-children --sort sym --stdio -g none --symbols "$sym" 2>/dev/null | grep -qE '^ +[0-9.]+%'; then
        echo
        echo "Callers of $sym:"
        perf report -i "$data" --no-children --sort sym --stdio -G --symbols "$sym" --percent-limit 0.3 2>/dev/null |
          grep -vE '^#|^$' | head -40
      fi
    done
    echo
  } >"$OUT/$name.txt"
  cat "$OUT/$name.txt"
}

profile echo native echo --conns 100 --depth 1
profile fanout native fanout --subs 1000 --rate "$FANOUT_RATE"
[[ ${PROFILE_SOCKETIO:-1} == 0 ]] || {
  profile echo_socketio socketio echo --conns 100 --depth 1
  profile fanout_socketio socketio fanout --subs 1000 --rate "$FANOUT_RATE"
}
echo "perf data and reports: $OUT" >&2
