#!/usr/bin/env bash
# Forward-proxy load: ringway's forward listener against Squid (apt `squid`, no cache, no
# access log), CPU per forwarded request and throughput, measured side by side in
# interleaved rounds. perf/run.sh runs this for SCENARIOS=forward.
#
#   perf/forward.sh                          # 3 rounds x 10 s of each scenario
#   ROUNDS=1 DURATION=3 perf/forward.sh      # a quick check
#   RINGWAY_BIN=/path/to/ringway perf/forward.sh
#
# Scenarios:
#   forward_get   wrk -c16: GET http://origin/ in absolute form through the proxy, keep-alive
#                 both sides (the origin answers "hello world\n")
#   forward_tls   perf/forward_tls.py -c16: CONNECT, one TLS handshake with the origin
#                 through the tunnel, then GET / over TLS keep-alive on it
#   forward_cached wrk -c16: GET http://origin/cached (max-age=600) through ringway's caching
#                 forward listener and through a second Squid with a 64 MB memory cache:
#                 after the first, every request is a hit
# Layout: CPU 0 runs the proxy under test; CPU 1 the origin (nginx) and the load.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -n ${RINGWAY_BIN:-} && ${RINGWAY_BIN} != /* ]] && RINGWAY_BIN=$PWD/$RINGWAY_BIN
cd "$ROOT"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
RESULTS_DIR=${RESULTS_DIR:-perf/results}
PROXY_CPU=0
LOAD_CPU=1
ORIGIN_PORT=18600
ORIGIN_TLS_PORT=18643
declare -A PORT=([ringway]=18601 [squid]=18602)
# forward_cached: ringway's second (caching) listener, and a second Squid with a memory cache.
declare -A CACHED_PORT=([ringway]=18603 [squid]=18604)
WORK=$ROOT/perf/work-forward
log() { echo "perf/forward: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------- tools
# shellcheck source=perf/lib.sh
source perf/lib.sh
APT_NEED=()
[[ -x /usr/sbin/squid ]] || command -v squid >/dev/null || APT_NEED+=(squid)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || APT_NEED+=(nginx-light)
command -v wrk >/dev/null || APT_NEED+=(wrk)
command -v openssl >/dev/null || APT_NEED+=(openssl)
command -v python3 >/dev/null || APT_NEED+=(python3)
apt_install "${APT_NEED[@]}"
SQUID=$(command -v squid || echo /usr/sbin/squid)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ringway_and_lock

rm -rf "$WORK"
mkdir -p "$WORK/origin/tmp" "$WORK/squid" "$WORK/ringway" "$WORK/load"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$WORK/origin/key.pem" -out "$WORK/origin/cert.pem" 2>/dev/null

cat >"$WORK/origin/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    client_body_temp_path tmp/body;
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        listen 127.0.0.1:$ORIGIN_TLS_PORT ssl backlog=4096;
        ssl_certificate cert.pem;
        ssl_certificate_key key.pem;
        location / { return 200 "hello world\n"; }
        location /cached { add_header Cache-Control "max-age=600" always; return 200 "hello world\n"; }
    }
}
CONF
cat >"$WORK/squid/squid.conf" <<CONF
# Squid as a plain forward proxy: no cache, no access log, one process on CPU $PROXY_CPU.
http_port 127.0.0.1:${PORT[squid]}
acl localnet src 127.0.0.0/8
acl tls_origin port $ORIGIN_TLS_PORT
acl CONNECT method CONNECT
http_access deny CONNECT !tls_origin
http_access allow localnet
http_access deny all
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log $WORK/squid/cache.log
pid_filename $WORK/squid/squid.pid
coredump_dir $WORK/squid
max_filedescriptors 65536
client_persistent_connections on
server_persistent_connections on
forwarded_for on
via on
shutdown_lifetime 1 seconds
CONF
# The same Squid with a memory cache, for forward_cached (Squid's usual memory-only setup).
sed -e "s|^http_port .*|http_port 127.0.0.1:${CACHED_PORT[squid]}|" \
    -e "s|^cache deny all|cache allow all|" -e "s|^cache_mem 0 MB|cache_mem 64 MB|" \
    -e "s|squid\.pid$|squid-cache.pid|" -e "s|/cache\.log$|/cache-cache.log|" \
    "$WORK/squid/squid.conf" >"$WORK/squid/squid-cache.conf"
cat >"$WORK/ringway/ringway.toml" <<CONF
# ringway as a forward proxy, set up as Squid is above: one worker on CPU $PROXY_CPU.
workers = [$PROXY_CPU]
[admin]
enabled = false
[timeouts]
keep_alive_timeout_ms = 600000
[[listener]]
name = "forward"
addr = "127.0.0.1:${PORT[ringway]}"
backlog = 4096
[listener.forward]
connect_ports = [$ORIGIN_TLS_PORT]
destination_ip_allow = ["127.0.0.0/8"]
anonymity = "transparent"
pool_idle_max = 256
pool_idle_timeout_ms = 600000
pool_requests_max = 1000000000
[[listener]]
name = "cached"
addr = "127.0.0.1:${CACHED_PORT[ringway]}"
backlog = 4096
[listener.forward]
connect_ports = [$ORIGIN_TLS_PORT]
destination_ip_allow = ["127.0.0.0/8"]
anonymity = "transparent"
cache = {}
CONF

log "origin (nginx) on :$ORIGIN_PORT and :$ORIGIN_TLS_PORT (TLS), CPU $LOAD_CPU"
start origin "$WORK/origin/stdout.log" taskset -c "$LOAD_CPU" "$NGINX" -p "$WORK/origin/" -c nginx.conf
wait_port "$ORIGIN_PORT" "$PID_origin" "$WORK/origin/stdout.log"
log "ringway on :${PORT[ringway]}, squid on :${PORT[squid]}, CPU $PROXY_CPU"
start ringway "$WORK/ringway/stdout.log" taskset -c "$PROXY_CPU" "$RINGWAY_BIN" --config "$WORK/ringway/ringway.toml"
wait_port "${PORT[ringway]}" "$PID_ringway" "$WORK/ringway/stdout.log"
"$SQUID" -k parse -f "$WORK/squid/squid.conf" >"$WORK/squid/parse.log" 2>&1 || die "squid -k parse failed"
start squid "$WORK/squid/stdout.log" taskset -c "$PROXY_CPU" "$SQUID" -N -f "$WORK/squid/squid.conf"
wait_port "${PORT[squid]}" "$PID_squid" "$WORK/squid/stdout.log"
"$SQUID" -k parse -f "$WORK/squid/squid-cache.conf" >"$WORK/squid/parse-cache.log" 2>&1 ||
    die "squid -k parse (cache) failed"
start squid_cache "$WORK/squid/stdout-cache.log" taskset -c "$PROXY_CPU" "$SQUID" -N -f "$WORK/squid/squid-cache.conf"
wait_port "${CACHED_PORT[squid]}" "$PID_squid_cache" "$WORK/squid/stdout-cache.log"
declare -A PID=([ringway]=$PID_ringway [squid]=$PID_squid)
declare -A CACHED_PID=([ringway]=$PID_ringway [squid]=$PID_squid_cache)

# Both must answer the same way before anything is measured.
for c in ringway squid; do
    body=$(curl -sS --max-time 5 -x "http://127.0.0.1:${PORT[$c]}" "http://127.0.0.1:$ORIGIN_PORT/")
    [[ $body == "hello world" ]] || die "$c did not forward GET (got: $body)"
    body=$(curl -sSk --max-time 5 -x "http://127.0.0.1:${PORT[$c]}" "https://127.0.0.1:$ORIGIN_TLS_PORT/")
    [[ $body == "hello world" ]] || die "$c did not tunnel CONNECT (got: $body)"
done

# ---------------------------------------------------------------------------- load
RUNS=$WORK/runs.tsv
printf 'scenario\tround\tcontender\trequests\terrors\tseconds\tproxy_ticks\n' >"$RUNS"
run() { # scenario round contender
    local s=$1 round=$2 c=$3 out=$WORK/load/$1-$2-$3.txt before after requests errors seconds
    # forward_cached is forward_get of a cacheable URL, through the caching instances.
    local pid=${PID[$c]} port=${PORT[$c]} path=/
    if [[ $s == forward_cached ]]; then
        pid=${CACHED_PID[$c]} port=${CACHED_PORT[$c]} path=/cached
    fi
    before=$(cpu_ticks "$pid")
    case $s in
        forward_get | forward_cached)
            FORWARD_TARGET="http://127.0.0.1:$ORIGIN_PORT$path" taskset -c "$LOAD_CPU" \
                wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s perf/forward_get.lua \
                "http://127.0.0.1:$port/" >"$out" 2>&1
            requests=$(sed -n 's/^ *\([0-9]*\) requests in \([0-9.]*\)s.*/\1/p' "$out")
            seconds=$(sed -n 's/^ *[0-9]* requests in \([0-9.]*\)s.*/\1/p' "$out")
            errors=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")
            ;;
        forward_tls)
            taskset -c "$LOAD_CPU" python3 perf/forward_tls.py --proxy-port "${PORT[$c]}" \
                --origin-port "$ORIGIN_TLS_PORT" --connections "$CONNECTIONS" \
                --duration "$DURATION" >"$out" 2>&1
            read -r requests errors seconds < <(python3 -c \
                'import json,sys; d=json.load(open(sys.argv[1])); print(d["requests"], d["errors"], d["seconds"])' "$out")
            ;;
    esac
    after=$(cpu_ticks "$pid")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$round" "$c" "$requests" "${errors:-0}" \
        "$seconds" $((after - before)) >>"$RUNS"
    log "  $s round $round $c: $requests requests in ${seconds}s, ${errors:-0} errors, $((after - before)) ticks"
}

log "warm-up"
for c in ringway squid; do
    FORWARD_TARGET="http://127.0.0.1:$ORIGIN_PORT/" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" \
        -d2s -s perf/forward_get.lua "http://127.0.0.1:${PORT[$c]}/" >/dev/null 2>&1
done
for ((round = 1; round <= ROUNDS; round++)); do
    for s in forward_get forward_tls forward_cached; do
        # The order alternates each round, so neither is always first.
        if ((round % 2)); then order=(ringway squid); else order=(squid ringway); fi
        for c in "${order[@]}"; do
            run "$s" "$round" "$c"
            sleep 1
        done
    done
done

# ---------------------------------------------------------------------------- report
mkdir -p "$RESULTS_DIR"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo nocommit)
[[ -n $(git status --porcelain --untracked-files=no -- . ':!perf/results' 2>/dev/null) ]] && COMMIT+=-dirty
OUT=$RESULTS_DIR/$(date +%F)-$COMMIT-forward.md
PERF_RUNS=$RUNS PERF_OUT=$OUT PERF_CLK_TCK=$(getconf CLK_TCK) PERF_ROUNDS=$ROUNDS \
PERF_DURATION=$DURATION PERF_CONNECTIONS=$CONNECTIONS \
PERF_SQUID="$("$SQUID" -v | head -n1)" PERF_RINGWAY="$("$RINGWAY_BIN" --version 2>&1 | head -n1)" \
PERF_MACHINE="$(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs, $(uname -r)" \
PERF_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)" \
    python3 - <<'PY'
import csv, os, statistics
rows = list(csv.DictReader(open(os.environ["PERF_RUNS"]), delimiter="\t"))
tck = int(os.environ["PERF_CLK_TCK"])
lines = [
    "# Forward proxy: ringway vs Squid",
    "",
    f"{os.environ['PERF_RINGWAY']} vs {os.environ['PERF_SQUID']}; {os.environ['PERF_MACHINE']};",
    f"load average at the end {os.environ['PERF_LOADAVG']}. {os.environ['PERF_ROUNDS']} interleaved"
    f" rounds of {os.environ['PERF_DURATION']} s per scenario and proxy, {os.environ['PERF_CONNECTIONS']}"
    " connections; proxy on CPU 0, origin (nginx) and load on CPU 1. Made by perf/forward.sh.",
    "",
    "CPU per request: the proxy process's utime + stime (/proc/PID/stat) over the run, divided by",
    "the requests the load tool completed. forward_cached: ringway's caching listener vs a second",
    "Squid with `cache_mem 64 MB` (every request after the first is a hit). Otherwise Squid: no cache (`cache deny all`, `cache_mem 0`), no",
    "access log, `-N` (one process). ringway: one worker, `anonymity = \"transparent\"` (as Squid's",
    "`forwarded_for on` + `via on`), no access log.",
    "",
    "| scenario | round | proxy | requests/s | CPU µs/request | errors |",
    "|---|---|---|---|---|---|",
]
per = {}
for r in rows:
    req, sec, ticks = int(r["requests"] or 0), float(r["seconds"] or 0), int(r["proxy_ticks"])
    rate = req / sec if sec else 0
    cpu_us = ticks * 1e6 / tck / req if req else float("nan")
    per.setdefault((r["scenario"], r["contender"]), []).append((rate, cpu_us))
    lines.append(f"| {r['scenario']} | {r['round']} | {r['contender']} | {rate:,.0f} | {cpu_us:.1f} | {r['errors']} |")
lines += ["", "Medians, and ringway ÷ Squid (goal: CPU ≤ 0.3×, throughput ≥ 1×):", "",
          "| scenario | ringway req/s | Squid req/s | req/s ratio | ringway µs/req | Squid µs/req | CPU ratio |",
          "|---|---|---|---|---|---|---|"]
for s in ["forward_get", "forward_tls", "forward_cached"]:
    rw, sq = per.get((s, "ringway")), per.get((s, "squid"))
    if not rw or not sq:
        continue
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    lines.append(f"| {s} | {med(rw,0):,.0f} | {med(sq,0):,.0f} | {med(rw,0)/med(sq,0):.2f} | "
                 f"{med(rw,1):.1f} | {med(sq,1):.1f} | {med(rw,1)/med(sq,1):.2f} |")
open(os.environ["PERF_OUT"], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
log "wrote $OUT"
