#!/usr/bin/env bash
# A three-gateway aivo-gw cluster on loopback: one redis-server, three gateways sharing it,
# HAProxy in front. Everything runs as your user, in the foreground of its own process, with
# its pid and log in the state folder; nothing is installed or left running after `stop`.
#
#   examples/cluster/cluster.sh start     # redis, gw1..gw3, haproxy; waits until each answers
#   examples/cluster/cluster.sh status    # pid, alive, health of each
#   examples/cluster/cluster.sh token SUB # a JWT for user SUB, valid on every gateway
#   examples/cluster/cluster.sh stop      # SIGTERM each by its pid (SIGKILL after 10 s)
#
# Settings (environment), defaults in brackets:
#   LB_PORT [8000]   GW1_PORT GW2_PORT GW3_PORT [8101 8102 8103]
#   ADMIN1_PORT ADMIN2_PORT ADMIN3_PORT [9101 9102 9103]   REDIS_PORT [6390]
#   AIVO_GW [build/aivo-gw]  HAPROXY [haproxy]  REDIS_SERVER [redis-server]  REDIS_CLI [redis-cli]
#   CLUSTER_STATE [examples/cluster/run]: pids, logs, haproxy.cfg, the demo secrets
#   JWT_SECRET: the gateways' shared HMAC secret [a random one, kept in $CLUSTER_STATE/jwt_secret]
#   AIVO_ADMIN_TOKEN: the admin API's bearer token [random, in $CLUSTER_STATE/admin_token]
# README.md beside this script walks through it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

LB_PORT=${LB_PORT:-8000}
GW_PORTS=("${GW1_PORT:-8101}" "${GW2_PORT:-8102}" "${GW3_PORT:-8103}")
ADMIN_PORTS=("${ADMIN1_PORT:-9101}" "${ADMIN2_PORT:-9102}" "${ADMIN3_PORT:-9103}")
REDIS_PORT=${REDIS_PORT:-6390}
AIVO_GW=${AIVO_GW:-$ROOT/build/aivo-gw}
HAPROXY=${HAPROXY:-haproxy}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
STATE=${CLUSTER_STATE:-$HERE/run}
POLICY=$ROOT/policies/default.lua
WAIT_SECONDS=${CLUSTER_WAIT_SECONDS:-15}

say() { printf 'cluster: %s\n' "$*"; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

# A relative AIVO_GW is relative to where the command was run, like any path argument.
case $AIVO_GW in /*) ;; */*) AIVO_GW=$PWD/$AIVO_GW ;; esac
case $STATE in /*) ;; *) STATE=$PWD/$STATE ;; esac

need_bin() { # name-or-path, hint
  if [[ $1 == */* ]]; then
    [[ -x $1 ]] || die "$1 not found or not executable. $2"
  else
    command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed (not on PATH). $2"
  fi
}

port_number() { # name value
  if ! [[ $2 =~ ^[0-9]{1,5}$ ]] || ((10#$2 < 1 || 10#$2 > 65535)); then
    die "$1='$2' is not a port number (1..65535)"
  fi
}

port_busy() { # port: 0 when something listens on 127.0.0.1:port (or anywhere, per ss)
  if command -v ss >/dev/null 2>&1; then
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]] && return 0
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A process's start time (clock ticks since boot, /proc/PID/stat field 22): with the pid it
# names one process, so a pid reused after a reboot or a crash is never signalled.
start_time() { [[ -r /proc/$1/stat ]] && sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f20; }

pid_alive() { # pid: running (a child of ours that exited stays a zombie until we exit: not alive)
  [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
  [[ $(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) != Z ]]
}

read_pid() { # name: the recorded pid, if that process is still the one we started
  local pid
  [[ -f $STATE/$1.pid ]] || return 0
  pid=$(cat "$STATE/$1.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  if [[ -f $STATE/$1.start ]] && pid_alive "$pid" && [[ $(start_time "$pid") != "$(cat "$STATE/$1.start")" ]]; then
    return 0 # the pid now belongs to another process
  fi
  echo "$pid"
}

# The components in start order: name, then how to see that it answers.
NAMES=(redis gw1 gw2 gw3 haproxy)

log_tail() { [[ -f $STATE/$1.log ]] && { echo "--- last lines of $STATE/$1.log:"; tail -n 15 "$STATE/$1.log"; } >&2 || true; }

wait_until() { # name pid probe...: run probe until it succeeds, the process dies or time runs out
  local name=$1 pid=$2; shift 2
  local deadline=$((SECONDS + WAIT_SECONDS))
  while ((SECONDS < deadline)); do
    if ! pid_alive "$pid"; then
      log_tail "$name"
      return 1
    fi
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log_tail "$name"
  say "$name (pid $pid) did not answer within ${WAIT_SECONDS}s" >&2
  return 1
}

spawn() { # name command...: run in the background, log and pid in the state folder
  local name=$1; shift
  nohup "$@" >"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
  start_time $! >"$STATE/$name.start" || true
}

stop_group() { # name...: SIGTERM all of them, wait up to 10 s for all, SIGKILL what is left
  local name pid i names=() pids=()
  for name in "$@"; do
    pid=$(read_pid "$name")
    if [[ -n $pid ]] && pid_alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      names+=("$name")
      pids+=("$pid")
    fi
    rm -f "$STATE/$name.pid" "$STATE/$name.start"
  done
  for ((i = 0; i < 100; i++)); do
    local left=0
    for pid in "${pids[@]}"; do pid_alive "$pid" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    if pid_alive "${pids[$i]}"; then
      say "${names[$i]} (pid ${pids[$i]}) still running 10 s after SIGTERM: SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
    say "stopped ${names[$i]} (pid ${pids[$i]})"
  done
}

# HAProxy first (no new connections), then the gateways together (each drains: close 1001 to
# its clients, up to server.drain_timeout), Redis last.
cmd_stop() {
  stop_group haproxy
  stop_group gw1 gw2 gw3
  stop_group redis
}

# A secret kept in the state folder (mode 0600), made on first use.
secret_file() { # file
  if [[ ! -s $1 ]]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$1")
  fi
  cat "$1"
}

load_secrets() {
  mkdir -p "$STATE"
  if [[ -n ${JWT_SECRET:-} ]]; then
    CL_JWT_SECRET=$JWT_SECRET
  else
    CL_JWT_SECRET=$(secret_file "$STATE/jwt_secret")
  fi
  if [[ -n ${AIVO_ADMIN_TOKEN:-} ]]; then
    CL_ADMIN_TOKEN=$AIVO_ADMIN_TOKEN
  else
    CL_ADMIN_TOKEN=$(secret_file "$STATE/admin_token")
  fi
}

abort_start() { # message: stop what was started, then fail
  say "$1; stopping what was started" >&2
  cmd_stop >&2
  die "start failed: $1"
}

gw_has_redis_flag() { "$AIVO_GW" --help 2>&1 | grep -q -- '--redis'; }

cmd_start() {
  local i
  port_number LB_PORT "$LB_PORT"
  port_number REDIS_PORT "$REDIS_PORT"
  for i in 0 1 2; do
    port_number "GW$((i + 1))_PORT" "${GW_PORTS[$i]}"
    port_number "ADMIN$((i + 1))_PORT" "${ADMIN_PORTS[$i]}"
  done
  local all=("$LB_PORT" "$REDIS_PORT" "${GW_PORTS[@]}" "${ADMIN_PORTS[@]}")
  [[ $(printf '%s\n' "${all[@]}" | sort -u | wc -l) -eq ${#all[@]} ]] || die "two settings use the same port: ${all[*]}"

  need_bin "$AIVO_GW" "Build it first: cmake -S . -B build && cmake --build build -j2 (or set AIVO_GW)"
  need_bin "$HAPROXY" "Debian: apt-get install haproxy (or set HAPROXY)"
  need_bin "$REDIS_SERVER" "Debian: apt-get install redis-server (scripts/install-deps.sh --test), or set REDIS_SERVER"
  need_bin "$REDIS_CLI" "Debian: apt-get install redis-tools (comes with redis-server), or set REDIS_CLI"
  need_bin curl "Debian: apt-get install curl"
  gw_has_redis_flag || die "$AIVO_GW has no --redis flag (see '$AIVO_GW --help'): build a newer aivo-gw"

  mkdir -p "$STATE"
  local name pid
  for name in "${NAMES[@]}"; do
    pid=$(read_pid "$name")
    if pid_alive "$pid"; then die "$name is already running (pid $pid): run '$0 stop' first"; fi
    rm -f "$STATE/$name.pid" "$STATE/$name.start"
  done
  local p
  for p in "${all[@]}"; do
    port_busy "$p" && die "port $p on 127.0.0.1 is already in use (by another program or an earlier cluster); pick another with the variables in '$0 help'"
  done
  load_secrets

  # From here on, a failure stops what was started.
  spawn redis "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$STATE"
  wait_until redis "$(read_pid redis)" sh -c '[ "$("$0" -h 127.0.0.1 -p "$1" ping)" = PONG ]' "$REDIS_CLI" "$REDIS_PORT" ||
    abort_start "redis-server did not come up"
  say "redis   pid $(read_pid redis)  redis://127.0.0.1:$REDIS_PORT"

  for i in 0 1 2; do
    name=gw$((i + 1))
    JWT_SECRET=$CL_JWT_SECRET AIVO_ADMIN_TOKEN=$CL_ADMIN_TOKEN \
      spawn "$name" "$AIVO_GW" --policy "$POLICY" --listen "127.0.0.1:${GW_PORTS[$i]}" \
      --admin-listen "127.0.0.1:${ADMIN_PORTS[$i]}" --redis "redis://127.0.0.1:$REDIS_PORT"
  done
  for i in 0 1 2; do
    name=gw$((i + 1))
    wait_until "$name" "$(read_pid "$name")" curl -fsS --max-time 2 "http://127.0.0.1:${GW_PORTS[$i]}/healthz" ||
      abort_start "$name did not come up (GET /healthz on 127.0.0.1:${GW_PORTS[$i]})"
    say "$name     pid $(read_pid "$name")  ws://127.0.0.1:${GW_PORTS[$i]}/ws  admin http://127.0.0.1:${ADMIN_PORTS[$i]}"
  done

  sed -e "s/@LB_PORT@/$LB_PORT/" -e "s/@GW1_PORT@/${GW_PORTS[0]}/" -e "s/@GW2_PORT@/${GW_PORTS[1]}/" \
    -e "s/@GW3_PORT@/${GW_PORTS[2]}/" "$HERE/haproxy.cfg.in" >"$STATE/haproxy.cfg"
  "$HAPROXY" -c -q -f "$STATE/haproxy.cfg" >"$STATE/haproxy.log" 2>&1 || {
    log_tail haproxy
    abort_start "haproxy refused $STATE/haproxy.cfg"
  }
  spawn haproxy "$HAPROXY" -f "$STATE/haproxy.cfg" -db
  wait_until haproxy "$(read_pid haproxy)" curl -fsS --max-time 2 "http://127.0.0.1:$LB_PORT/healthz" ||
    abort_start "haproxy did not come up (GET /healthz on 127.0.0.1:$LB_PORT)"
  say "haproxy pid $(read_pid haproxy)  ws://127.0.0.1:$LB_PORT/ws  http://127.0.0.1:$LB_PORT/socket.io/"
  say "up; logs and pids in $STATE. A token: $0 token alice"
}

cmd_status() {
  local name pid probe ok=0 i
  for name in "${NAMES[@]}"; do
    pid=$(read_pid "$name")
    if ! pid_alive "$pid"; then
      printf '%-8s %s\n' "$name" "not running"
      ok=1
      continue
    fi
    case $name in
    redis) probe=$("$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>&1 || true) ;;
    haproxy) probe=$(curl -sS --max-time 2 -o /dev/null -w 'healthz %{http_code}' "http://127.0.0.1:$LB_PORT/healthz" 2>&1 || true) ;;
    gw*)
      i=$((${name#gw} - 1))
      probe=$(curl -sS --max-time 2 -o /dev/null -w 'healthz %{http_code}' "http://127.0.0.1:${GW_PORTS[$i]}/healthz" 2>&1 || true)
      ;;
    esac
    printf '%-8s pid %-8s %s\n' "$name" "$pid" "$probe"
  done
  return $ok
}

cmd_token() { # sub [token options]
  [[ $# -ge 1 ]] || die "usage: $0 token SUB [aivo-gw token options, e.g. --ttl 15m]"
  need_bin "$AIVO_GW" "Build it first: cmake -S . -B build && cmake --build build -j2 (or set AIVO_GW)"
  load_secrets
  JWT_SECRET=$CL_JWT_SECRET "$AIVO_GW" token --sub "$@"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
token) shift; cmd_token "$@" ;;
-h | --help | help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
*) die "usage: $0 start|stop|status|token SUB|help" ;;
esac
