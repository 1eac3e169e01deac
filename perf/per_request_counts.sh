#!/usr/bin/env bash
# Per-request counts for GET / or a POST with a body, like perf/callgrind.sh (whose method
# it copies: runs with N1 and N2 keep-alive requests from curl, (X(N2) - X(N1)) / (N2 - N1),
# so startup and shutdown cancel), with two additions:
#
#   TOOL=callgrind   user-space instructions per request (valgrind; epoll driver, since
#                    valgrind does not model io_uring). The default.
#   TOOL=strace      system calls per request, by name (strace -f -c). DRIVER=epoll (the
#                    default) or io_uring.
#   BODY=16384       POST /upload with a body of this many bytes (the origin reads it all
#                    before it answers); 0 (the default): GET /.
# Runs of one binary still differ by up to about 3%: whether a read finds its bytes there
# or has to wait (a timer, one more turn of the event loop) depends on timing. Compare two
# binaries in interleaved runs (a, b, a, b, ...) and take medians.
#
#   QUIET_TICKS=1    (the default) stats.interval_ms and the cluster's load_sync_interval_ms
#                    at 60 s: the worker's periodic work (a stats snapshot costs ~160k
#                    instructions each second) then adds nothing that scales with how long
#                    the run took, which under valgrind on a busy machine varies by seconds.
#                    0: the defaults, as perf/callgrind.sh has them.
#   REQUEST_BUFFERING=true|false   sets request_buffering on the route (builds that know
#                    it); unset: the build's default.
#   PARALLEL=16      the requests go over this many client connections at once (curl
#                    --parallel): a proxy that interleaves them shows it in the cache counts.
#   CACHE_SIM=1      (callgrind) also simulate the caches, with a 2 MiB last level like this
#                    machine's L2, and print last-level misses per request: work that fits
#                    one stream's cache but not sixteen interleaved shows here, not in Ir.
#   IDLE_BUFFERS_MAX=0  sets io.idle_buffers_max: 0 makes every connection wait for its
#                    next request the way a worker with many connections does (parked,
#                    holding no buffer and no serving task).
#   CODING="gzip 2"  GET /z/data.json, perf/compress_json.py's ~100 KiB JSON, with
#                    `Accept-Encoding: gzip` through a route that compresses it at that level
#                    (the compress scenarios of perf/run.sh); also prints the coded bytes of
#                    each response (they must all be the same size).
#
#   perf/per_request_counts.sh /work/bins/ringway-f9aa5fa
#   BODY=16384 REQUEST_BUFFERING=false perf/per_request_counts.sh /work/bins/ringway-f9aa5fa
#   TOOL=strace DRIVER=io_uring perf/per_request_counts.sh /work/bins/ringway-f0aa103
#   CODING="gzip 2" N1=100 N2=300 perf/per_request_counts.sh /work/bins/ringway-f0aa103
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?ringway binary}
N1=${N1:-500}
N2=${N2:-2500}
TOOL=${TOOL:-callgrind}
DRIVER=${DRIVER:-epoll}
BODY=${BODY:-0}
CODING=${CODING:-}
PARALLEL=${PARALLEL:-1}
CACHE_SIM=${CACHE_SIM:-0}
WORK=perf/work/per-request-counts
rm -rf "$WORK"
mkdir -p "$WORK/origin/tmp" "$WORK/origin/html"
[[ -n $CODING ]] && python3 perf/compress_json.py "$WORK/origin/html/data.json" 102400
sed -e "s|@ORIGIN_PORT@|18080|g" perf/origin/nginx.conf >"$WORK/origin/nginx.conf"
nginx -p "$PWD/$WORK/origin/" -c "$PWD/$WORK/origin/nginx.conf" -e "$PWD/$WORK/origin/error.log" &
origin=$!
trap 'kill $origin 2>/dev/null || true' EXIT
{
    printf 'workers = 1\n[io]\ndriver = "%s"\n' "$DRIVER"
    [[ -n ${IDLE_BUFFERS_MAX:-} ]] && printf 'idle_buffers_max = %s\n' "$IDLE_BUFFERS_MAX"
    printf '[admin]\nenabled = false\n'
    if [[ ${QUIET_TICKS:-1} == 1 ]]; then printf '[stats]\ninterval_ms = 60000\n'; fi
    printf '[access_log]\npath = "%s"\n' "$PWD/$WORK/access.log"
    printf '[[listener]]\naddr = "127.0.0.1:18091"\naccess_log = "off"\n[[listener.route]]\ncluster = "origin"\n'
    [[ -n ${REQUEST_BUFFERING:-} ]] && printf 'request_buffering = %s\n' "$REQUEST_BUFFERING"
    if [[ -n $CODING ]]; then
        read -r encoding level <<<"$CODING"
        printf 'compression = { encodings = ["%s"], %s_level = %s, types = ["application/json"] }\n' \
            "$encoding" "$encoding" "$level"
    fi
    printf '[cluster.origin]\nbackends = ["127.0.0.1:18080"]\nbalance = "round_robin"\n'
    if [[ ${QUIET_TICKS:-1} == 1 ]]; then printf 'load_sync_interval_ms = 60000\n'; fi
} >"$WORK/ringway.toml"
"$BIN" check "$WORK/ringway.toml" >/dev/null
head -c "$BODY" /dev/zero | tr '\0' 'x' >"$WORK/body"
request=(curl -s -o /dev/null -w '%{http_code}\n')
if [[ -n $CODING ]]; then
    # Coded bytes as they came (no --compressed): the size column is the encoder's output.
    request=(curl -s -o /dev/null -w '%{http_code} %{size_download}\n' -H "Accept-Encoding: ${CODING%% *}")
    path=/z/data.json
elif ((BODY > 0)); then
    # No Expect: 100-continue: wrk does not send it either.
    request+=(-H 'Expect:' -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/body")
    path=/upload
else
    path=/
fi
((PARALLEL > 1)) && request+=(--parallel --parallel-immediate --parallel-max "$PARALLEL")
cache_sim=()
((CACHE_SIM)) && cache_sim=(--cache-sim=yes --LL=2097152,16,64)

run() { # n: the tool's output file for a run serving n requests (plus one GET / probe)
    local n=$1 out="$WORK/$TOOL.out.$1"
    case $TOOL in
        callgrind) valgrind --tool=callgrind --callgrind-out-file="$out" "${cache_sim[@]}" \
            "$BIN" --config "$WORK/ringway.toml" >"$WORK/tool.$n.log" 2>&1 & ;;
        strace) strace -f -c -o "$out" "$BIN" --config "$WORK/ringway.toml" >"$WORK/tool.$n.log" 2>&1 & ;;
    esac
    local pid=$!
    for _ in $(seq 1 200); do
        curl -s -o /dev/null http://127.0.0.1:18091/ 2>/dev/null && break
        sleep 0.1
    done
    # One curl, one client connection (PARALLEL of them): requests 2..n, all keep-alive.
    local t0 t1
    t0=$(date +%s.%N)
    "${request[@]}" "http://127.0.0.1:18091$path?[2-$n]" >"$WORK/codes.$n" || true
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{printf "%.1f\n", $2 - $1}' >"$WORK/seconds.$n"
    # Stop ringway itself: strace's child, or valgrind (which runs it in its own process).
    local target=$pid
    [[ $TOOL == strace ]] && target=$(cat "/proc/$pid/task/$pid/children")
    kill -TERM "$target"
    wait "$pid" || true
    local ok
    ok=$(grep -c '^200\( \|$\)' "$WORK/codes.$n" || true)
    ((ok == n - 1)) || { echo "only $ok of $((n - 1)) requests got 200" >&2; exit 1; }
    if [[ -n $CODING ]]; then
        sort "$WORK/codes.$n" | uniq -c | sed 's/^/response sizes (count, status, bytes): /' >&2
    fi
    echo "$out"
}
o1=$(run "$N1")
o2=$(run "$N2")
python3 - "$TOOL" "$o1" "$o2" "$N1" "$N2" "$(cat "$WORK/seconds.$N1")" "$(cat "$WORK/seconds.$N2")" <<'PY'
import re, sys
tool, o1, o2 = sys.argv[1:4]
n1, n2 = int(sys.argv[4]), int(sys.argv[5])
print(f"curl batch seconds: {sys.argv[6]} for {n1} requests, {sys.argv[7]} for {n2} requests")
if tool == "callgrind":
    def totals(path):
        for line in open(path):
            if line.startswith("events:"):
                events = line.split()[1:]
            if line.startswith(("summary:", "totals:")):
                return dict(zip(events, map(int, line.split()[1:])))
    a, b = totals(o1), totals(o2)
    print(f"instructions: {a['Ir']} for {n1} requests, {b['Ir']} for {n2} requests")
    print(f"instructions per request: {(b['Ir'] - a['Ir']) / (n2 - n1):.0f}")
    if "DLmr" in a:
        misses = {k: (b[k] - a[k]) / (n2 - n1) for k in ("DLmr", "DLmw")}
        print(f"last-level data misses per request: {misses['DLmr']:.0f} reads, {misses['DLmw']:.0f} writes")
else:
    def calls(path):
        out = {}
        for line in open(path):
            f = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(f) >= 5 and re.fullmatch(r"[\d.]+", f[0]) and f[-1] != "total":
                out[f[-1]] = int(f[3])
        return out
    a, b = calls(o1), calls(o2)
    per = {k: (b.get(k, 0) - a.get(k, 0)) / (n2 - n1) for k in set(a) | set(b)}
    for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
        if abs(v) >= 0.005:
            print(f"{k:24s} {v:7.3f}")
    print(f"{'syscalls per request':24s} {sum(per.values()):7.3f}")
PY
