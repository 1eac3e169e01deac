#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: the same binary
# and input give the same count on a busy machine, so two commits can be compared
# without wall-clock noise.
#
#   perf/callgrind.sh [RINGWAY_BIN]        (default: target/release/ringway)
#   BALANCE=least_response_time perf/callgrind.sh   (the cluster's policy)
#   ACCESS_LOG=json perf/callgrind.sh      (the listener's access log: off, combined, json)
#   CACHE=1 perf/callgrind.sh              (the route caches; GET /c/small: every request but
#                                           the first is a cache hit)
#   ROUTE_EXTRA='[listener.route.auth.jwt] ...' HEADER='Authorization: Bearer ...'
#                                           perf/callgrind.sh   (TOML after the route's keys,
#                                           and a header every request carries: perf/jwt.sh)
#   RATE_LIMIT='{ rate = 1e9 }' perf/callgrind.sh   (the listener's rate_limit table; with
#                                           scope = "global", start the Redis it names first)
#
# It runs ringway (1 worker, epoll driver) under callgrind in front of the perf origin twice, with
# N1 and N2 keep-alive requests from curl, and reports (Ir(N2) - Ir(N1)) / (N2 - N1):
# startup and shutdown cancel out. Needs valgrind, nginx and curl (apt).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/ringway}
N1=${N1:-500}
N2=${N2:-2500}
WORK=perf/work/callgrind
mkdir -p "$WORK/origin/tmp"
for tool in valgrind nginx curl; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind nginx-light curl; break; }
done
[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || apt-get install -y -qq libnginx-mod-http-echo
[ -x "$BIN" ] || cargo build --release
# The perf origin (perf/origin/nginx.conf); only GET / is used, so html/ stays empty.
sed -e "s|@ORIGIN_PORT@|18080|g" perf/origin/nginx.conf > "$WORK/origin/nginx.conf"
nginx -p "$PWD/$WORK/origin/" -c "$PWD/$WORK/origin/nginx.conf" -e "$PWD/$WORK/origin/error.log" &
origin=$!
trap 'kill $origin 2>/dev/null || true' EXIT
# valgrind does not model io_uring completions (the proxy hangs under it), so the count
# is of the epoll driver; the code above the driver is the same.
cat > "$WORK/ringway.toml" <<TOML
workers = 1
[io]
driver = "epoll"
[admin]
enabled = false
[access_log]
path = "$PWD/$WORK/access.log"
[[listener]]
addr = "127.0.0.1:18091"
access_log = "${ACCESS_LOG:-off}"
$( [[ -n ${RATE_LIMIT:-} ]] && echo "rate_limit = $RATE_LIMIT" )
[[listener.route]]
cluster = "origin"
$( [[ ${CACHE:-0} == 1 ]] && echo 'cache = {}' )
${ROUTE_EXTRA:-}
[cluster.origin]
backends = ["127.0.0.1:18080"]
balance = "${BALANCE:-round_robin}"
TOML

count() {  # count N: total instructions of a run serving N requests
    local n=$1 out="$WORK/callgrind.out.$1"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" --config "$WORK/ringway.toml" \
        > "$WORK/valgrind.$n.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 200); do
        curl -s -o /dev/null "http://127.0.0.1:18091/$( [[ ${CACHE:-0} == 1 ]] && echo c/small )" 2>/dev/null && break
        sleep 0.1
    done
    if [[ ${CACHE:-0} == 1 ]]; then
        # One URL, n - 1 times: a query per request would make each a new key.
        for _ in $(seq 2 "$n"); do echo 'url = "http://127.0.0.1:18091/c/small"'; echo 'output = "/dev/null"'; done \
            > "$WORK/curl-urls.txt"
        curl -s --config "$WORK/curl-urls.txt"
    else
        curl -s -o /dev/null ${HEADER:+-H "$HEADER"} "http://127.0.0.1:18091/?[2-$n]"
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
}
ir1=$(count "$N1")
ir2=$(count "$N2")
python3 - "$ir1" "$ir2" "$N1" "$N2" <<'PY'
import sys
ir1, ir2, n1, n2 = map(int, sys.argv[1:])
print(f"instructions: {ir1} for {n1} requests, {ir2} for {n2} requests")
print(f"instructions per request: {(ir2 - ir1) / (n2 - n1):.0f}")
PY
