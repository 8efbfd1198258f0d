#!/usr/bin/env bash
# The three workloads of docs DESIGN.md section 2, run against aivo-gw itself:
#   1. echo on 100 connections (closed loop, one request in flight each)
#   2. fan-out to 1,000 subscribers of one room
#   3. echo at 5,000 msg/s on 100 active connections while 10,000 idle ones are held
# and, as the baseline of 3, echo at 5,000 msg/s with nothing idle.
# Each workload gets a fresh gateway pinned to CPU $GW_CPU (default 0); the load
# generator is pinned to CPU $LG_CPU (default 1). Prints a markdown table.
#
# SERVER=floor runs the same workloads on bench/peers/lws_floor.c (bare lws on libev, the
# floor of DESIGN.md section 2's table) instead of the gateway.
#
# Environment: AIVO_GW, AIVO_LOADGEN, AIVO_FLOOR (binaries), SERVER (gw or floor), BENCH_SECONDS (measured seconds per
# workload, default 10), FANOUT_RATE (publishes/s, default 50), IDLE_CONNS (10000),
# IDLE_RATE (5000), GW_POLICY (default policies/default.lua), GW_ARGS (gateway flags;
# default "--set ratelimit.per_minute=0"), GW_LOG_LEVEL (info: the "listening on"
# line is logged at info), BENCH_LOG_DIR (gateway logs and JSON results; default a
# temporary folder).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GW=${AIVO_GW:-$ROOT/build/aivo-gw}
LG=${AIVO_LOADGEN:-$ROOT/build/bench/aivo-loadgen}
FLOOR=${AIVO_FLOOR:-$ROOT/build/bench/lws-floor}
SERVER=${SERVER:-gw}
SECS=${BENCH_SECONDS:-10}
FANOUT_RATE=${FANOUT_RATE:-50}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_RATE=${IDLE_RATE:-5000}
GW_CPU=${GW_CPU:-0}
LG_CPU=${LG_CPU:-1}
GW_LOG_LEVEL=${GW_LOG_LEVEL:-info}
GW_POLICY=${GW_POLICY:-$ROOT/policies/default.lua}
# The benchmark measures the gateway, not the per-connection limit refusing it.
read -r -a GW_EXTRA <<<"${GW_ARGS---set ratelimit.per_minute=0}"

for bin in "$GW" "$LG" $([[ $SERVER == floor ]] && echo "$FLOOR"); do
  [[ -x $bin ]] || { echo "loop-workloads: $bin not found: build first (cmake -S . -B build && cmake --build build -j2)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "loop-workloads: jq is required (scripts/install-deps.sh --bench)" >&2; exit 1; }

# The default policy requires a token (docs/security.md): one secret for the run, and one
# token every load-generator connection presents (they all share its identity).
# A gateway without the `token` command (before JWT auth) is used without one.
export JWT_SECRET=${JWT_SECRET:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}
QUERY=""
if TOKEN=$("$GW" token --sub bench --ttl 7d 2>/dev/null); then
  QUERY="?token=$TOKEN"
else
  echo "loop-workloads: '$GW token' failed: connecting without a token" >&2
fi

LOGDIR=${BENCH_LOG_DIR:-$(mktemp -d /tmp/aivo-bench.XXXXXX)}
mkdir -p "$LOGDIR"

# Pin only when the machine has both CPUs.
PIN_GW=() PIN_LG=()
if (( $(nproc) > GW_CPU && $(nproc) > LG_CPU )); then
  PIN_GW=(taskset -c "$GW_CPU") PIN_LG=(taskset -c "$LG_CPU")
else
  echo "loop-workloads: fewer than 2 CPUs: running unpinned" >&2
fi

GW_PID="" LG_PID="" PORT=""

# Other work on the machine skews every figure: say so.
read -r load1 _ </proc/loadavg
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
  echo "loop-workloads: load average is $load1 before starting: other processes compete for the CPUs" >&2
fi

stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL after 10 s
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && { echo "loop-workloads: pid $pid ignored SIGTERM: killing it" >&2; kill -KILL "$pid" 2>/dev/null; }
  wait "$pid" 2>/dev/null
  return 0
}

cleanup() {
  stop_pid "$LG_PID"
  stop_pid "$GW_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_gw() { # start_gw NAME: a fresh gateway; sets GW_PID and PORT
  local log=$LOGDIR/$1.gw.log i
  if [[ $SERVER == floor ]]; then
    (exec "${PIN_GW[@]}" "$FLOOR" --port 0) 2>"$log" &
  else
    (cd "$ROOT" && exec "${PIN_GW[@]}" "$GW" --policy "$GW_POLICY" --listen 127.0.0.1:0 \
      --log-level "$GW_LOG_LEVEL" "${GW_EXTRA[@]}") 2>"$log" &
  fi
  GW_PID=$!
  PORT=""
  for ((i = 0; i < 100; i++)); do
    PORT=$(sed -nE 's/.*listening on [^ ]+:([0-9]+).*/\1/p' "$log" | head -1)
    [[ -n $PORT ]] && return 0
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "loop-workloads: the gateway did not report 'listening on' (log: $log):" >&2
  cat "$log" >&2
  exit 1
}

stop_gw() { # stop_gw NAME: stop it and show what it logged at warn or above
  local log=$LOGDIR/$1.gw.log
  if ! kill -0 "$GW_PID" 2>/dev/null; then
    echo "loop-workloads: the gateway died during '$1':" >&2
    tail -20 "$log" >&2
  fi
  stop_pid "$GW_PID"
  GW_PID=""
  if grep -E ' (warn|error) ' "$log" >/dev/null; then
    echo "loop-workloads: gateway log during '$1' (warn/error lines):" >&2
    grep -E ' (warn|error) ' "$log" | head -10 >&2
  fi
}

run_lg() { # run_lg NAME ARGS...: the load generator against the current gateway
  local name=$1
  shift
  "${PIN_LG[@]}" "$LG" "$@" --url "ws://127.0.0.1:$PORT/ws$QUERY" --gw-pid "$GW_PID" --json \
    >"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err" &
  LG_PID=$!
  wait "$LG_PID"
  local rc=$?
  LG_PID=""
  head -1 "$LOGDIR/$name.out" >&2
  grep -v 'fds available' "$LOGDIR/$name.err" >&2
  grep '^{' "$LOGDIR/$name.out" >"$LOGDIR/$name.json"
  (( rc == 0 )) || echo "loop-workloads: '$name': load generator exit code $rc" >&2
}

workload() { # workload NAME ARGS...
  local name=$1
  shift
  echo "== $name" >&2
  start_gw "$name"
  sleep 0.5 # let it settle before the RSS baseline
  run_lg "$name" "$@"
  stop_gw "$name"
}

workload echo echo --conns 100 --depth 1 --seconds "$SECS"
workload fanout fanout --subs 1000 --rate "$FANOUT_RATE" --seconds "$SECS"
workload idle idle --conns "$IDLE_CONNS" --sources 127.0.0.1,127.0.0.2 \
  --active 100 --depth 1 --rate "$IDLE_RATE" --seconds "$SECS"
# the same rate with nothing idle: the difference is what the idle connections cost
workload paced echo --conns 100 --depth 1 --rate "$IDLE_RATE" --seconds "$SECS"

row() { # row NAME LABEL: one markdown row from NAME.json
  local f=$LOGDIR/$1.json
  if [[ ! -s $f ]]; then
    echo "| $2 | (no result) | | | | | |"
    return
  fi
  jq -r --arg name "$2" '
    def n(d): if . == null then "n/a" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
    def mib: if . == null or . == 0 then "n/a" else (. / 1024 * 10 | round / 10 | tostring) + " MiB" end;
    "| \($name) | \(.per_second | n(0)) | \(.gw_cpu_us_per_msg | n(2)) | \(.lat_p50_us | n(0)) / \(.lat_p99_us | n(0)) | \(.gw_rss_kib | mib) | \(if .mode == "idle" then (.kib_per_idle_conn | n(2)) else "" end) | \(.loadgen_cpu_pct | n(0))% / \(.other_cpu_pct | n(0))% |"
    + (if (.lost + .failed + .errors) > 0 then
         " lost \(.lost), failed \(.failed), errors \(.errors)" else "" end)' "$f"
}

echo
WHO=gateway
[[ $SERVER == floor ]] && WHO="lws floor"
echo "| workload | messages/s | $WHO CPU µs/msg | latency p50 / p99 (µs) | $WHO RSS | KiB per idle conn | CPU: generator / others |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
row echo "echo, 100 connections"
row fanout "fan-out to 1,000 subscribers ($FANOUT_RATE publishes/s), per delivery"
row idle "echo at ${IDLE_RATE} msg/s on 100 connections, $IDLE_CONNS idle held"
row paced "echo at ${IDLE_RATE} msg/s on 100 connections, none idle"
echo
echo "Raw results (JSON lines) and gateway logs: $LOGDIR" >&2
