#!/usr/bin/env bash
# bench/run.sh: issue 7's comparison in one go. aivo-gw against the Node Socket.IO 4.x server
# it replaces (bench/peers/socketio_server.js) and against the bare libwebsockets-on-libev
# floor it runs on (bench/peers/lws_floor.c), on the same machine, each server pinned to CPU
# $SRV_CPU (0) and the load generator (bench/loadgen.c) to CPU $LG_CPU (1). Prints ONE
# markdown table with ratios and issue 7's targets; docs/benchmarks.md explains it.
#
#   bench/run.sh                       everything (about 4 to 5 minutes)
#   BENCH_SECONDS=10 bench/run.sh      longer measured intervals (default 4 s each)
#
# The echo and fan-out-to-1,000 comparisons run BENCH_REPEAT (3) times, interleaved (gw,
# Node, floor, gw over Socket.IO, gw with a minimal policy, then again), and the table gives
# each figure's median: the machine is shared, and a burst of other work then spoils one
# run, not the comparison.
#
# Gateway runs: policies/default.lua, auth on (every connection presents a token minted
# with a secret made for the run), --set ratelimit.per_minute=0. Each workload gets a fresh
# server. Everything started here is stopped by PID when the script exits.
#
# Environment: BUILD_DIR (default build/); AIVO_GW (another gateway binary to measure);
# BENCH_SECONDS (4); BENCH_REPEAT (3); FANOUT_RATE (publishes/s to 1,000 subscribers, 50);
# BIG_FANOUT_RATE (publishes/s to 10,000, 5); BENCH_CLUSTER=0 (skip the two-servers-and-Redis
# rows, which need redis-server); BENCH_ONLY=cluster (only those rows and the single-gateway
# fan-out they compare with; about a minute); IDLE_MAX (default: the open-file limit minus
# 200, at most 20,000); PEER_IDLE (idle connections held by the peers, 10,000);
# IDLE_SETUP_TIMEOUT (45: seconds to open the idle connections; what is open by then is
# measured and the table says so); SRV_CPU / LG_CPU (0 / 1); BENCH_LOG_DIR (raw results;
# default a temporary folder); BENCH_PERF=0 (skip the perf samples that split out the Lua
# VM's share). docs/benchmarks.md has the table these produced and how to read it.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
SECS=${BENCH_SECONDS:-4}
REPEAT=${BENCH_REPEAT:-3}
IDLE_SETUP=${IDLE_SETUP_TIMEOUT:-45}
FANOUT_RATE=${FANOUT_RATE:-50}
BIG_FANOUT_RATE=${BIG_FANOUT_RATE:-5}
PEER_IDLE=${PEER_IDLE:-10000}
SRV_CPU=${SRV_CPU:-0}
LG_CPU=${LG_CPU:-1}
GW=${AIVO_GW:-$BUILD/aivo-gw}
LG=$BUILD/bench/aivo-loadgen
FLOOR=$BUILD/bench/lws-floor
PEERS=$ROOT/bench/peers
T0=$(date +%s)

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }

for tool in cmake node npm taskset; do
  command -v "$tool" >/dev/null || die "$tool is required (scripts/install-deps.sh --bench installs what bench/ needs)"
done

# ---- build ------------------------------------------------------------------------------
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  say "configuring $BUILD"
  cmake -S "$ROOT" -B "$BUILD" >/dev/null || die "cmake configure failed"
fi
TARGETS=(aivo-loadgen lws-floor)
[[ -n ${AIVO_GW:-} ]] || TARGETS+=(aivo-gw)
say "building ${TARGETS[*]} in $BUILD"
cmake --build "$BUILD" --target "${TARGETS[@]}" -j"$(nproc)" >/dev/null || die "build failed"
if [[ ! -f $PEERS/node_modules/.package-lock.json || $PEERS/package-lock.json -nt $PEERS/node_modules/.package-lock.json ]]; then
  say "installing the Socket.IO server's packages (npm ci in bench/peers)"
  (cd "$PEERS" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed in bench/peers"
fi
SIO_VERSION=$(sed -nE 's/^  "version": "([^"]+)".*/\1/p' "$PEERS/node_modules/socket.io/package.json" | head -1)

LOGDIR=${BENCH_LOG_DIR:-$(mktemp -d /tmp/aivo-bench.XXXXXX)}
mkdir -p "$LOGDIR"

# The default policy requires a token: one secret for the run, one token for every connection
# (they all share the identity "bench"); the Node server checks the same HS256 token.
export JWT_SECRET=${JWT_SECRET:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}
TOKEN=$("$GW" token --sub bench --ttl 1d) || die "'aivo-gw token' failed"

# Pin only when the machine has both CPUs.
PIN_SRV=() PIN_LG=()
if (($(nproc) > SRV_CPU && $(nproc) > LG_CPU)); then
  PIN_SRV=(taskset -c "$SRV_CPU") PIN_LG=(taskset -c "$LG_CPU")
else
  say "fewer than 2 CPUs: running unpinned"
fi

# Open files: every connection is one on both ends, and neither process raises its hard limit.
NOFILE=$(ulimit -Hn)
[[ $NOFILE == unlimited ]] && NOFILE=1000000
IDLE_MAX=${IDLE_MAX:-$((NOFILE - 200 < 20000 ? NOFILE - 200 : 20000))}
ulimit -n "$NOFILE" 2>/dev/null
((PEER_IDLE > IDLE_MAX)) && PEER_IDLE=$IDLE_MAX
SOURCES=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4 # IP_BIND_ADDRESS_NO_PORT: ~28k ports each

PERF=0
if [[ ${BENCH_PERF:-1} != 0 ]] && command -v perf >/dev/null && perf record -q -o /dev/null -- true 2>/dev/null; then
  PERF=1
fi

# ---- processes --------------------------------------------------------------------------
SRV_PID="" LG_PID="" PERF_PID="" PORT=""

stop_pid() { # stop_pid PID [SIGNAL]: the signal (TERM), then KILL after 10 s (a drain takes 5)
  local pid=$1 sig=${2:-TERM} i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -"$sig" "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && { say "pid $pid ignored SIG$sig: killing it"; kill -KILL "$pid" 2>/dev/null; }
  wait "$pid" 2>/dev/null
  return 0
}

cleanup() {
  local p
  stop_pid "$PERF_PID" INT
  stop_pid "$LG_PID"
  stop_pid "$SRV_PID"
  for p in "${CL_PIDS[@]}"; do stop_pid "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() { # start_server KIND NAME [EXTRA GATEWAY ARGS...]: KIND gw|node|floor; sets SRV_PID, PORT
  local kind=$1 name=$2 log=$LOGDIR/$2.srv.log i
  shift 2
  case $kind in
  gw)
    local policy=${POLICY:-$ROOT/policies/default.lua}
    (cd "$ROOT" && exec "${PIN_SRV[@]}" "$GW" --policy "$policy" --listen 127.0.0.1:0 --admin-listen off \
      --log-level info --set ratelimit.per_minute=0 "$@") 2>"$log" &
    ;;
  node) (exec "${PIN_SRV[@]}" node "$PEERS/socketio_server.js" 0) 2>"$log" & ;;
  floor) (exec "${PIN_SRV[@]}" "$FLOOR" --port 0) 2>"$log" & ;;
  esac
  SRV_PID=$!
  PORT=""
  for ((i = 0; i < 100; i++)); do
    PORT=$(sed -nE 's/.*listening on [^ ]+:([0-9]+).*/\1/p' "$log" | head -1)
    [[ -n $PORT ]] && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $PORT ]] || { cat "$log" >&2; die "$kind did not say 'listening on' (log: $log)"; }
  sleep 0.5 # settle before the RSS baseline
}

stop_server() { # stop_server NAME
  kill -0 "$SRV_PID" 2>/dev/null || { say "the server of '$1' died:"; tail -5 "$LOGDIR/$1.srv.log" >&2; }
  stop_pid "$SRV_PID"
  SRV_PID=""
}

# run NAME KIND PROTO LOADGEN-ARGS...: a fresh server of KIND, one load-generator run, stop.
# With PERF_SAMPLE=1 in the environment the server is sampled (perf record, no call graphs)
# for the whole run and NAME.dso holds perf's split by library.
run() {
  local name=$1 kind=$2 proto=$3 url rc
  shift 3
  say "== $name"
  start_server "$kind" "$name" "${GW_EXTRA[@]}"
  if [[ $proto == socketio ]]; then url="ws://127.0.0.1:$PORT/socket.io/"; else url="ws://127.0.0.1:$PORT/ws"; fi
  if [[ ${PERF_SAMPLE:-0} == 1 && $PERF == 1 ]]; then
    perf record -q -F 499 -p "$SRV_PID" -o "$LOGDIR/$name.perf" 2>/dev/null &
    PERF_PID=$!
  fi
  "${PIN_LG[@]}" "$LG" "$@" --proto "$proto" --token "$TOKEN" --url "$url" --gw-pid "$SRV_PID" --json \
    >"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err" &
  LG_PID=$!
  wait "$LG_PID"
  rc=$?
  LG_PID=""
  if [[ -n $PERF_PID ]]; then
    stop_pid "$PERF_PID" INT
    PERF_PID=""
    perf report -i "$LOGDIR/$name.perf" --sort dso --stdio 2>/dev/null | grep '%' >"$LOGDIR/$name.dso"
  fi
  stop_server "$name"
  head -1 "$LOGDIR/$name.out" | sed 's/^/   /' >&2
  grep -v 'fds available' "$LOGDIR/$name.err" | sed 's/^/   /' >&2
  grep '^{' "$LOGDIR/$name.out" >"$LOGDIR/$name.json"
  ((rc == 0)) || say "'$name': load generator exit code $rc"
}

# run_cluster NAME KIND PROTO SUBS: one redis-server and two servers of KIND (gw: --redis;
# node: @socket.io/redis-adapter through REDIS_URL), all pinned like a single server;
# fan-out with every other subscriber on the second server (the publisher on the first);
# CPU of both servers and of Redis per delivery.
CL_PIDS=()
free_port() { # a free loopback port from 26379 up
  local p
  for ((p = 26379; p < 26479; p++)); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return; }; done
  die "no free port for redis-server in 26379..26478"
}
run_cluster() {
  local name=$1 kind=$2 proto=$3 subs=$4 rport rpid p1 p2 s1 s2 path i rc
  say "== $name"
  command -v redis-server >/dev/null || { say "$name: redis-server not installed (scripts/install-deps.sh --test): skipped"; return; }
  rport=$(free_port)
  "${PIN_SRV[@]}" redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
    >"$LOGDIR/$name.redis.log" 2>&1 &
  rpid=$!
  CL_PIDS=("$rpid")
  for ((i = 0; i < 50; i++)); do (exec 3<>/dev/tcp/127.0.0.1/$rport) 2>/dev/null && break; sleep 0.1; done
  local spid=() sport=() side
  for side in a b; do
    if [[ $kind == gw ]]; then
      start_server gw "$name.$side" --redis "redis://127.0.0.1:$rport"
    else
      REDIS_URL="redis://127.0.0.1:$rport" start_server node "$name.$side"
    fi
    spid+=("$SRV_PID") sport+=("$PORT")
    CL_PIDS+=("$SRV_PID")
  done
  s1=${spid[0]} p1=${sport[0]} s2=${spid[1]} p2=${sport[1]}
  SRV_PID=""
  if [[ $proto == socketio ]]; then path=/socket.io/; else path=/ws; fi
  "${PIN_LG[@]}" "$LG" fanout --subs "$subs" --rate "$FANOUT_RATE" --seconds "$SECS" --proto "$proto" --token "$TOKEN" \
    --url "ws://127.0.0.1:$p1$path" --url2 "ws://127.0.0.1:$p2$path" --gw-pid "$s1" --pid "b=$s2" --pid "redis=$rpid" \
    --json >"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err" &
  LG_PID=$!
  wait "$LG_PID"
  rc=$?
  LG_PID=""
  # Redis's own time per PUBLISH (microseconds, measured inside Redis: its process CPU is
  # counted in 10 ms ticks, too coarse for 1 % of a core)
  redis-cli -p "$rport" INFO commandstats >"$LOGDIR/$name.redis.stats" 2>/dev/null
  for i in "${CL_PIDS[@]}"; do stop_pid "$i"; done
  CL_PIDS=()
  head -1 "$LOGDIR/$name.out" | sed 's/^/   /' >&2
  grep -v 'fds available' "$LOGDIR/$name.err" | sed 's/^/   /' >&2
  grep '^{' "$LOGDIR/$name.out" >"$LOGDIR/$name.json"
  ((rc == 0)) || say "'$name': load generator exit code $rc"
}

# ---- the workloads ----------------------------------------------------------------------
read -r LOAD_START _ </proc/loadavg
say "load average $LOAD_START at the start; results in $LOGDIR"
GW_EXTRA=()
ONLY=${BENCH_ONLY:-}
[[ -z $ONLY || $ONLY == cluster ]] || die "BENCH_ONLY is empty or 'cluster', got '$ONLY'"
E=(echo --conns 100 --depth 1 --seconds "$SECS")
F=(fanout --subs 1000 --rate "$FANOUT_RATE" --seconds "$SECS")

# Each comparison's runs follow one another, so a change in the machine's load hits them alike.
if [[ $ONLY != cluster ]]; then
for ((r = 1; r <= REPEAT; r++)); do
  run echo_gw.$r gw native "${E[@]}"
  run echo_node.$r node socketio "${E[@]}"
  run echo_floor.$r floor native "${E[@]}"
  run echo_gw_sio.$r gw socketio "${E[@]}"
  POLICY=$ROOT/bench/policies/minimal.lua run echo_min_gw.$r gw native "${E[@]}"
done
# large messages: lws hands them over in 1 KiB pieces (RX_CHUNK), which every server assembles
B=(echo --conns 10 --depth 1 --size 65536 --seconds "$SECS")
run big_gw gw native "${B[@]}"
run big_node node socketio "${B[@]}"
run big_floor floor native "${B[@]}"
fi
for ((r = 1; r <= REPEAT; r++)); do
  run fan_gw.$r gw native "${F[@]}"
  [[ $ONLY == cluster ]] || run fan_node.$r node socketio "${F[@]}"
  [[ $ONLY == cluster ]] || run fan_floor.$r floor native "${F[@]}"
  [[ $ONLY == cluster ]] || run fan_gw_sio.$r gw socketio "${F[@]}"
done

# several servers as one through Redis (issue 14): two gateways against two Node servers with
# the Redis adapter; the gateway pair again with 100 subscribers, to see whether Redis's cost
# per published message depends on the number of subscribers (it should not)
if [[ ${BENCH_CLUSTER:-1} != 0 ]]; then
  for ((r = 1; r <= REPEAT; r++)); do
    run_cluster cl_gw.$r gw native 1000
    run_cluster cl_node.$r node socketio 1000
  done
  run_cluster cl_gw_100 gw native 100
fi

if [[ $ONLY != cluster ]]; then
run fan10k_gw gw native fanout --subs 10000 --rate "$BIG_FANOUT_RATE" --seconds "$SECS" --sources "$SOURCES" \
  --setup-timeout 120
run fan10k_floor floor native fanout --subs 10000 --rate "$BIG_FANOUT_RATE" --seconds "$SECS" --sources "$SOURCES" \
  --setup-timeout 120

run idle_gw gw native idle --conns "$IDLE_MAX" --sources "$SOURCES" --setup-timeout "$IDLE_SETUP"
run idle_node node socketio idle --conns "$PEER_IDLE" --sources "$SOURCES" --setup-timeout "$IDLE_SETUP"
run idle_floor floor native idle --conns "$PEER_IDLE" --sources "$SOURCES" --setup-timeout "$IDLE_SETUP"
# echo with 10,000 idle held, and just before it the same echo without them (its baseline);
# the floor does the same, so what idle connections cost lws and the kernel shows apart
for ((r = 1; r <= REPEAT; r++)); do
  for kind in gw floor; do
    run idle_base_$kind.$r $kind native "${E[@]}"
    run idle_echo_$kind.$r $kind native idle --conns 10000 --active 100 --depth 1 --seconds "$SECS" \
      --sources "$SOURCES" --setup-timeout 120
  done
done

# The Lua policy's cost: perf's share of the Lua VM (libluajit, and JIT-compiled traces)
# in the echo path, with the JIT off (the default) and on. (The echo runs above also
# measure a minimal policy, bench/policies/minimal.lua, against the default one.)
PERF_SAMPLE=1 run lua_off_gw gw native "${E[@]}"
GW_EXTRA=(--set lua.jit=true)
PERF_SAMPLE=1 run lua_on_gw gw native "${E[@]}"
GW_EXTRA=()
fi
read -r LOAD_END _ </proc/loadavg

# ---- the table --------------------------------------------------------------------------
# The load generator's JSON line is flat: a field is "key":value. A repeated run NAME.1,
# NAME.2, ... gives the median of its values.
get() { # get NAME KEY -> the value (the median over repeats), or empty
  local f files=()
  if [[ -s $LOGDIR/$1.json ]]; then files=("$LOGDIR/$1.json"); else
    for f in "$LOGDIR/$1".[0-9]*.json; do [[ -s $f ]] && files+=("$f"); done
  fi
  ((${#files[@]})) || return 0
  for f in "${files[@]}"; do sed -nE "s/.*\"$2\":\"?([^,\"}]*).*/\1/p" "$f" | head -1; done |
    grep -vx 'null' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
runs_of() { # runs_of NAME -> the result files of NAME (one, or its repeats)
  if [[ -s $LOGDIR/$1.json ]]; then echo "$LOGDIR/$1.json"; else ls "$LOGDIR/$1".[0-9]*.json 2>/dev/null; fi
}
num() { [[ -n $1 && $1 != null ]] && awk -v v="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, v }' || echo "n/a"; }
ratio() { # ratio A B -> A/B as 0.00x
  [[ -n $1 && -n $2 && $1 != null && $2 != null ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "n/a" }' || echo "n/a"
}
le() { # le A B: A <= B (numbers)
  [[ -n $1 && -n $2 && $1 != null && $2 != null && $1 != n/a ]] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'
}
mark() { if "$@"; then echo "yes"; else echo "**no**"; fi }
cpu() { get "$1" gw_cpu_us_per_msg; }
others() { # others NAME... -> "a / b / c %": the most the other processes used in any run of each
  local out="" n v
  for n in "$@"; do
    v=$(for f in $(runs_of "$n"); do sed -nE 's/.*"other_cpu_pct":([-0-9.]+).*/\1/p' "$f"; done | sort -g | tail -1)
    [[ -n $v && $v != -* ]] && v=$(num "$v" 0) || v="n/a"
    out+="${out:+ / }$v"
  done
  echo "$out %"
}
problems() { # problems NAME...: lost/failed/errors/undelivered in any run, to append to a cell
  local n out="" f l x e d t
  for n in "$@"; do
    [[ -n $(runs_of "$n") ]] || { out+=" ($n: no result)"; continue; }
    for f in $(runs_of "$n"); do
      t=${f##*/}
      t=${t%.json}
      l=$(sed -nE 's/.*"lost":([0-9]+).*/\1/p' "$f") x=$(sed -nE 's/.*"failed":([0-9]+).*/\1/p' "$f")
      e=$(sed -nE 's/.*"errors":([0-9]+).*/\1/p' "$f")
      if ((${l:-0} + ${x:-0} + ${e:-0} > 0)); then out+=" ($t: lost $l, failed $x, errors $e)"; fi
      d=$(sed -nE 's/.*"delivered_total":([0-9]+).*/\1/p' "$f") x=$(sed -nE 's/.*"expected_total":([0-9]+).*/\1/p' "$f")
      if [[ -n $d && -n $x && $d != "$x" ]]; then out+=" ($t: delivered $d of $x)"; fi
    done
  done
  echo "$out"
}
mps() { num "$(get "$1" per_second)" 0; }
p99ms() { awk -v v="$(get "$1" lat_p99_us)" 'BEGIN { printf "%.1f", v / 1000 }'; }
lua_share() { # lua_share NAME -> % of the server's samples in the Lua VM (libluajit + JIT traces)
  [[ -s $LOGDIR/$1.dso ]] || { echo ""; return; }
  awk '/libluajit|perf-[0-9]+\.map|\[JIT\]|\[unknown\]|anon/ { gsub("%", "", $1); s += $1 } END { printf "%.1f", s }' "$LOGDIR/$1.dso"
}
kib() { get "$1" kib_per_idle_conn; }
reach() { awk -v a="$(get "$1" reach_all_p50_us)" -v b="$(get "$1" reach_all_max_us)" 'BEGIN { if (a != "") printf "%.0f / %.0f ms wall", a / 1000, b / 1000; else printf "n/a" }'; }

E_GW=$(cpu echo_gw) E_NODE=$(cpu echo_node) E_FLOOR=$(cpu echo_floor) E_SIO=$(cpu echo_gw_sio)
BIG_GW=$(cpu big_gw) BIG_NODE=$(cpu big_node) BIG_FLOOR=$(cpu big_floor)
F_GW=$(cpu fan_gw) F_NODE=$(cpu fan_node) F_FLOOR=$(cpu fan_floor) F_SIO=$(cpu fan_gw_sio)
F10=$(cpu fan10k_gw) F10_FLOOR=$(cpu fan10k_floor)
# the cluster: both servers' CPU per delivery, Redis's per delivery and per published message
cl_pair() { awk -v a="$(get "$1" gw_cpu_us_per_msg)" -v b="$(get "$1" proc_b_cpu_us_per_msg)" 'BEGIN { if (a != "" && b != "") printf "%.3f", a + b }'; }
cl_redis_per_pub() { # Redis's µs per PUBLISH (INFO commandstats; the median over repeats)
  local f
  for f in "$LOGDIR/$1".redis.stats "$LOGDIR/$1".[0-9]*.redis.stats; do
    [[ -s $f ]] && sed -nE 's/^cmdstat_publish:.*usec_per_call=([0-9.]+).*/\1/p' "$f"
  done | sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.2f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
CL_GW=$(cl_pair cl_gw) CL_NODE=$(cl_pair cl_node)
CL_GW_R=$(get cl_gw proc_redis_cpu_us_per_msg) CL_NODE_R=$(get cl_node proc_redis_cpu_us_per_msg)
CL_GW_PUB=$(cl_redis_per_pub cl_gw) CL_NODE_PUB=$(cl_redis_per_pub cl_node) CL_GW100_PUB=$(cl_redis_per_pub cl_gw_100)
F10_CPU_MS=$(awk -v v="$F10" 'BEGIN { if (v != "") printf "%.0f", v * 10000 / 1000 }')
I_GW=$(kib idle_gw) I_NODE=$(kib idle_node) I_FLOOR=$(kib idle_floor)
I_OPEN=$(get idle_gw idle_open) I_BASE=$(get idle_gw gw_rss_base_kib) I_SETUP=$(get idle_gw idle_setup_s)
I_CUT=""
[[ $(get idle_gw idle_setup_cut) == true ]] && I_CUT=" (**only these opened within ${IDLE_SETUP} s**)"
I_100K=$(awk -v b="$I_BASE" -v k="$I_GW" 'BEGIN { if (k != "") printf "%.0f", (b + 100000 * k) / 1024 }')
IE=$(cpu idle_echo_gw) IB=$(cpu idle_base_gw) IE_FLOOR=$(cpu idle_echo_floor) IB_FLOOR=$(cpu idle_base_floor)
pair_ratio() { # pair_ratio BASE WITH -> the median over repeats of WITH.r / BASE.r: each pair
  # ran back to back, so a change of the machine's speed between pairs cancels out
  local r a b
  for ((r = 1; r <= REPEAT; r++)); do
    a=$(get "$1.$r" gw_cpu_us_per_msg) b=$(get "$2.$r" gw_cpu_us_per_msg)
    [[ -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0) printf "%.4f\n", b / a }'
  done | sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.2fx", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
IR=$(pair_ratio idle_base_gw idle_echo_gw) IR_FLOOR=$(pair_ratio idle_base_floor idle_echo_floor)
IR=${IR:-n/a} IR_FLOOR=${IR_FLOOR:-n/a}
user() { get "$1" gw_user_us_per_msg; }
U_GW=$(user echo_gw) U_NODE=$(user echo_node) U_FLOOR=$(user echo_floor)
L_OFF=$(cpu lua_off_gw) L_ON=$(cpu lua_on_gw) E_MIN=$(cpu echo_min_gw)
S_OFF=$(lua_share lua_off_gw) S_ON=$(lua_share lua_on_gw)
lua_us() { [[ -n $2 && -n $1 ]] && awk -v c="$1" -v s="$2" 'BEGIN { printf "%.1f", c * s / 100 }' || echo "n/a"; }

cat <<EOF

aivo-gw vs Socket.IO $SIO_VERSION (Node $(node --version)) vs bare lws $(pkg-config --modversion libwebsockets 2>/dev/null || echo 4.1) on libev.
$(nproc) CPUs ($(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)), kernel $(uname -r); servers on CPU $SRV_CPU, load generator on CPU $LG_CPU; ${SECS} s measured per run; the echo (all rows with "echo, 100 connections") and fan-out-to-1,000 figures are medians of $REPEAT interleaved runs; open-file limit $NOFILE.
Load average $LOAD_START at the start, $LOAD_END at the end. CPU figures are the server's own (utime+stime from /proc/PID/stat) per message; "others" is the most CPU the rest of the machine used during a run of that cell (100 % = one core): above ~10 % the machine was busy and every figure is noisier.

| workload | aivo-gw | Socket.IO (Node) | lws floor | gw / Socket.IO | gw / floor | issue 7 target | met | others' CPU, max per column (gw / SIO / floor) |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
| echo, 100 connections: CPU µs per message (gw and floor on /ws, Node over Socket.IO) | $(num "$E_GW" 2) | $(num "$E_NODE" 2) | $(num "$E_FLOOR" 2) | $(ratio "$E_GW" "$E_NODE") | $(ratio "$E_GW" "$E_FLOOR") | ≤ 0.35x Socket.IO, ≤ 1.2x floor | $(mark le "$(ratio "$E_GW" "$E_NODE" | tr -d x)" 0.35) / $(mark le "$(ratio "$E_GW" "$E_FLOOR" | tr -d x)" 1.2) | $(others echo_gw echo_node echo_floor)$(problems echo_gw echo_node echo_floor) |
| echo, 100 connections: user-space CPU µs per message (the same runs, the kernel's share left out) | $(num "$U_GW" 2) | $(num "$U_NODE" 2) | $(num "$U_FLOOR" 2) | $(ratio "$U_GW" "$U_NODE") | $(ratio "$U_GW" "$U_FLOOR") | reported | | |
| echo, 100 connections: messages/s, p99 ms | $(mps echo_gw), $(p99ms echo_gw) | $(mps echo_node), $(p99ms echo_node) | $(mps echo_floor), $(p99ms echo_floor) | | | (closed loop, one request in flight per connection) | | |
| echo over Socket.IO (websocket), 100 connections: CPU µs per message | $(num "$E_SIO" 2) | $(num "$E_NODE" 2) | | $(ratio "$E_SIO" "$E_NODE") | | ≤ 0.35x Socket.IO | $(mark le "$(ratio "$E_SIO" "$E_NODE" | tr -d x)" 0.35) | $(others echo_gw_sio)$(problems echo_gw_sio) |
| echo of 64 KiB messages, 10 connections: CPU µs per message (messages/s) | $(num "$BIG_GW" 1) ($(mps big_gw)) | $(num "$BIG_NODE" 1) ($(mps big_node)) | $(num "$BIG_FLOOR" 1) ($(mps big_floor)) | $(ratio "$BIG_GW" "$BIG_NODE") | $(ratio "$BIG_GW" "$BIG_FLOOR") | reported | | $(others big_gw big_node big_floor)$(problems big_gw big_node big_floor) |
| fan-out to 1,000 subscribers ($FANOUT_RATE publishes/s): CPU µs per delivery | $(num "$F_GW" 2) | $(num "$F_NODE" 2) | $(num "$F_FLOOR" 2) | $(ratio "$F_GW" "$F_NODE") | $(ratio "$F_GW" "$F_FLOOR") | ≤ 3.5 µs | $(mark le "$F_GW" 3.5) | $(others fan_gw fan_node fan_floor)$(problems fan_gw fan_node fan_floor) |
| fan-out to 1,000 over Socket.IO: CPU µs per delivery | $(num "$F_SIO" 2) | $(num "$F_NODE" 2) | | $(ratio "$F_SIO" "$F_NODE") | | ≤ 3.5 µs | $(mark le "$F_SIO" 3.5) | $(others fan_gw_sio)$(problems fan_gw_sio) |
| two gateways + one Redis, fan-out to 1,000 subscribers (half on each; $FANOUT_RATE publishes/s): CPU µs per delivery, both servers together (Redis apart) | $(num "$CL_GW" 2) (Redis $(num "$CL_GW_R" 2)) | $(num "$CL_NODE" 2) (Redis $(num "$CL_NODE_R" 2)); two Node servers, @socket.io/redis-adapter | | $(ratio "$CL_GW" "$CL_NODE") | | issue 14: ≤ 1.3x one gateway's fan-out ($(num "$F_GW" 2)): $(ratio "$CL_GW" "$F_GW") | $(mark le "$(awk -v a="$CL_GW" -v b="$F_GW" 'BEGIN { if (b > 0 && a != "") printf "%.3f", a / b; else print "n/a" }')" 1.3) | $(others cl_gw cl_node)$(problems cl_gw cl_node) |
| two servers + Redis: Redis's µs per PUBLISH (INFO commandstats), 1,000 subscribers (100 subscribers) | $(num "$CL_GW_PUB" 2) ($(num "$CL_GW100_PUB" 2)) | $(num "$CL_NODE_PUB" 2) | | | | issue 14: independent of the number of subscribers | reported | $(others cl_gw_100)$(problems cl_gw_100) |
| two servers + Redis: publish → delivery latency p50 / p99 ms; reaching all subscribers p50 / max | $(awk -v a="$(get cl_gw lat_p50_us)" -v b="$(get cl_gw lat_p99_us)" 'BEGIN { printf "%.1f / %.1f", a / 1000, b / 1000 }'); $(reach cl_gw) | $(awk -v a="$(get cl_node lat_p50_us)" -v b="$(get cl_node lat_p99_us)" 'BEGIN { printf "%.1f / %.1f", a / 1000, b / 1000 }'); $(reach cl_node) | | | | reported | | |
| fan-out to 10,000 subscribers ($BIG_FANOUT_RATE publishes/s): CPU µs per delivery | $(num "$F10" 2) | | $(num "$F10_FLOOR" 2) | | $(ratio "$F10" "$F10_FLOOR") | ≤ 3.5 µs, as at 1,000 | $(mark le "$F10" 3.5) | $(others fan10k_gw fan10k_floor)$(problems fan10k_gw fan10k_floor) |
| fan-out to 10,000: one message reaching all: ms of server CPU (µs/delivery x 10,000); wall time publish → last delivery, p50 / max | ${F10_CPU_MS:-n/a} ms CPU; $(reach fan10k_gw) | | $(awk -v v="$F10_FLOOR" 'BEGIN { if (v != "") printf "%.0f", v * 10 }') ms CPU; $(reach fan10k_floor) | | | about 35 ms of one core | $(mark le "${F10_CPU_MS:-n/a}" 35) | |
| idle: $(num "$I_OPEN" 0) of $IDLE_MAX connections held$I_CUT, opened in $(num "$I_SETUP" 1) s (open-file limit $NOFILE; peers: $PEER_IDLE): KiB RSS per connection above the base | $(num "$I_GW" 2) | $(num "$I_NODE" 2) | $(num "$I_FLOOR" 2) | $(ratio "$I_GW" "$I_NODE") | $(ratio "$I_GW" "$I_FLOOR") | ≤ 4 KiB; extrapolated to 100,000: ${I_100K:-n/a} MiB | $(mark le "$I_GW" 4)$([[ -n $I_CUT ]] && echo " / **not all held**") | $(others idle_gw idle_node idle_floor)$(problems idle_gw idle_node idle_floor) |
| echo on 100 active connections with 10,000 idle held: CPU µs per message (messages/s, p99 ms); the same echo run just before without them; the median of the $REPEAT pairs' ratios | $(num "$IE" 2) ($(mps idle_echo_gw), $(p99ms idle_echo_gw)); without: $(num "$IB" 2) ($(mps idle_base_gw), $(p99ms idle_base_gw)); pairs: $IR | | $(num "$IE_FLOOR" 2); without: $(num "$IB_FLOOR" 2); pairs: $IR_FLOOR | | | no slower than without idle: $IR (≤ 1.1x) | $(mark le "$(echo "$IR" | tr -d x)" 1.1) | $(others idle_echo_gw idle_base_gw) / $(others idle_echo_floor idle_base_floor)$(problems idle_base_gw idle_echo_gw idle_base_floor idle_echo_floor) |
| Lua policy per echo message, JIT off (default): µs in the Lua VM (share of the gateway's CPU) | $(lua_us "$L_OFF" "$S_OFF") ($(num "$S_OFF" 1) % of $(num "$L_OFF" 2) µs) | | | | | reported | | $(others lua_off_gw)$(problems lua_off_gw) |
| Lua policy per echo message, JIT on (--set lua.jit=true) | $(lua_us "$L_ON" "$S_ON") ($(num "$S_ON" 1) % of $(num "$L_ON" 2) µs) | | | | | reported | | $(others lua_on_gw)$(problems lua_on_gw) |
| echo, 100 connections, with bench/policies/minimal.lua (no limit hook, no agent plugin): CPU µs per message | $(num "$E_MIN" 2) (the default policy: $(num "$E_GW" 2), $(ratio "$E_GW" "$E_MIN") of it) | | | | $(ratio "$E_MIN" "$E_FLOOR") | reported | | $(others echo_min_gw)$(problems echo_min_gw) |
EOF
[[ $PERF == 1 ]] || echo "(perf is not available: the Lua VM's share was not sampled)"
say "done in $(($(date +%s) - T0)) s; raw results (JSON lines, server logs, perf data) in $LOGDIR"
