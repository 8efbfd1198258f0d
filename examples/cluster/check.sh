#!/usr/bin/env bash
# The README walkthrough as a check: starts a cluster of its own (cluster.sh, on other ports,
# in a temporary state folder), runs it, asserts, and always stops it. Exit 0 when every
# step passed.
#
#   examples/cluster/check.sh
#
# Steps: /ws clients on three different gateways get a room message and an admin publish;
# /ws clients through HAProxy land on all three gateways and get a publish; 30 Socket.IO
# long-polling sessions through HAProxy keep their gateway (no 400 "Session ID unknown");
# when socket.io-client is installed (tests/integration/node_modules, from
# `npm ci --prefix tests/integration`; or SOCKET_IO_CLIENT=its folder), six real Socket.IO clients through HAProxy, polling
# and polling upgraded to WebSocket, exchange a room message.
# Ports: CHECK_PORT_BASE (default 18000): LB BASE, gateways BASE+101.., admin BASE+201..,
# redis BASE+390. AIVO_GW as for cluster.sh.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
B=${CHECK_PORT_BASE:-18000}
[[ $B =~ ^[0-9]+$ ]] && ((B >= 1024 && B <= 65000)) || { echo "check: CHECK_PORT_BASE must be 1024..65000" >&2; exit 2; }
export LB_PORT=$B GW1_PORT=$((B + 101)) GW2_PORT=$((B + 102)) GW3_PORT=$((B + 103))
export ADMIN1_PORT=$((B + 201)) ADMIN2_PORT=$((B + 202)) ADMIN3_PORT=$((B + 203)) REDIS_PORT=$((B + 390))
CLUSTER_STATE=$(mktemp -d "${TMPDIR:-/tmp}/aivo-cluster-check.XXXXXX")
export CLUSTER_STATE
unset JWT_SECRET AIVO_ADMIN_TOKEN # the cluster's own demo secrets
CL=$HERE/cluster.sh
CLIENT=$HERE/room-client.js
OUT=$CLUSTER_STATE/out
mkdir -p "$OUT"

failed=0
pass() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; failed=1; }

finish() {
  "$CL" stop >/dev/null 2>&1 || true
  if ((failed)); then
    echo "check: FAILED; logs kept in $CLUSTER_STATE"
  else
    rm -rf "$CLUSTER_STATE"
  fi
}
trap finish EXIT

"$CL" start
ADMIN=$(cat "$CLUSTER_STATE/admin_token")
tok() { "$CL" token "$1"; }
publish() { # admin-port text
  curl -sS --max-time 5 -XPOST -H "Authorization: Bearer $ADMIN" \
    -d "{\"room\":\"lobby\",\"event\":\"notice\",\"data\":{\"text\":\"$2\"}}" "127.0.0.1:$1/admin/publish"
}

# 1. one room across three gateways
node "$CLIENT" "ws://127.0.0.1:$GW1_PORT/ws" "$(tok alice)" lobby --count 2 --timeout 15 >"$OUT/alice" 2>&1 &
a=$!
node "$CLIENT" "ws://127.0.0.1:$GW3_PORT/ws" "$(tok carol)" lobby --count 2 --timeout 15 >"$OUT/carol" 2>&1 &
c=$!
sleep 1.5
node "$CLIENT" "ws://127.0.0.1:$GW2_PORT/ws" "$(tok bob)" lobby --say "hello from gw2" --timeout 2 >"$OUT/bob" 2>&1 ||
  fail "bob on gw2: $(cat "$OUT/bob")"
publish "$ADMIN2_PORT" "maintenance at 18:00" >/dev/null || fail "POST /admin/publish on gw2"
for who in alice:$a carol:$c; do
  name=${who%%:*}
  if wait "${who#*:}" && grep -q '^event   room:message .*"hello from gw2"' "$OUT/$name" &&
    grep -q '^event   notice {"text":"maintenance at 18:00"}' "$OUT/$name"; then
    pass "$name got bob's room message (gw2) and the admin publish (gw2)"
  else
    fail "$name: $(cat "$OUT/$name")"
  fi
done

# 2. /ws through HAProxy: three connections, three gateways, one publish reaches all
pids=()
for u in dave erin frank; do
  node "$CLIENT" "ws://127.0.0.1:$LB_PORT/ws" "$(tok $u)" lobby --count 1 --timeout 15 >"$OUT/$u" 2>&1 &
  pids+=($!)
done
sleep 1.5
publish "$ADMIN1_PORT" "via gw1" >/dev/null || fail "POST /admin/publish on gw1"
n=0
for i in 0 1 2; do wait "${pids[$i]}" && n=$((n + 1)); done
servers=$(grep 'GET /ws' "$CLUSTER_STATE/haproxy.log" | grep -o 'aivo_gateways/gw[0-9]' | sort -u | wc -l)
if ((n == 3 && servers == 3)); then
  pass "3 /ws clients through HAProxy, on $servers gateways, got the publish"
else
  fail "/ws through HAProxy: $n of 3 got the publish, on $servers gateways"
fi

# 3. Socket.IO long-polling stickiness at the HTTP level
bad=0
for i in $(seq 1 30); do
  body=$(curl -sS --max-time 5 "127.0.0.1:$LB_PORT/socket.io/?EIO=4&transport=polling")
  sid=$(printf '%s' "$body" | sed -n 's/^0{"sid":"\([^"]*\)".*/\1/p')
  [[ -n $sid ]] || { bad=$((bad + 1)); continue; }
  code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -XPOST -H 'Content-Type: text/plain' \
    -d '40{"token":"x"}' "127.0.0.1:$LB_PORT/socket.io/?EIO=4&transport=polling&sid=$sid")
  [[ $code == 200 ]] || bad=$((bad + 1))
done
if ((bad == 0)); then pass "30 polling sessions through HAProxy kept their gateway"; else fail "$bad of 30 polling sessions lost their gateway"; fi

# 4. real Socket.IO clients, if socket.io-client is installed
SIO=${SOCKET_IO_CLIENT:-$ROOT/tests/integration/node_modules/socket.io-client}
if [[ -d $SIO ]]; then
  toks=()
  for u in s1 s2 s3 s4 s5 s6; do toks+=("$(tok $u)"); done
  for transports in polling polling,websocket; do
    if out=$(SIO="$SIO" node - "http://127.0.0.1:$LB_PORT" "$transports" "${toks[@]}" 2>&1 <<'EOF'
const { io } = require(process.env.SIO);
const [url, tr, ...tokens] = process.argv.slice(2);
const clients = tokens.map((t) => io(url, { transports: tr.split(','), auth: { token: t }, reconnection: false, forceNew: true }));
const need = clients.length - 1;
let got = 0;
const done = (code, msg) => { console.log(msg); clients.forEach((c) => c.close()); process.exit(code); };
setTimeout(() => done(1, `${got} of ${need} got the message within 15 s`), 15000);
clients.forEach((c, i) => {
  c.on('connect_error', (e) => done(1, `client ${i}: ${e.message}`));
  c.on('disconnect', (r) => { if (r !== 'io client disconnect') done(1, `client ${i} lost: ${r}`); });
  c.on('room:message', () => { if (++got === need) setTimeout(() => done(0, `transports: ${clients.map((x) => x.io.engine.transport.name)}`), 1000); });
});
Promise.all(clients.map((c) => new Promise((res) => c.on('connect', () => c.emit('join', { room: 'sio' }, res)))))
  .then(() => clients[0].emit('room:send', { room: 'sio', msg: 'hi' }));
EOF
    ); then
      pass "6 Socket.IO clients ($transports) through HAProxy exchanged a room message ($out)"
    else
      fail "Socket.IO ($transports): $out"
    fi
  done
  if grep 'socket.io.*sid=' "$CLUSTER_STATE/haproxy.log" | awk '$6 == 400' | grep -q .; then
    fail "HAProxy log shows a 400 on a Socket.IO request with a sid"
  fi
else
  echo "skip Socket.IO clients: no $SIO (npm ci --prefix tests/integration)"
fi

((failed == 0)) && echo "check: all passed"
exit "$failed"
