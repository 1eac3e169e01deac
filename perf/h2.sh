#!/usr/bin/env bash
# HTTP/2 load: TLS h2 from clients (ALPN), HTTP/1.1 to the origin, through ringway, nginx
# (`listen ... ssl http2`) and HAProxy (`alpn h2,http/1.1`), one worker each, measured side
# by side in interleaved rounds with h2load. perf/run.sh runs this for SCENARIOS=h2.
#
#   perf/h2.sh                              # 3 rounds x 10 s
#   ROUNDS=1 DURATION=3 perf/h2.sh          # a quick check
#   RINGWAY_BIN=/path/to/ringway perf/h2.sh
#
# Scenario h2_tls_small: h2load -c10 -m10 (100 streams at once over 10 connections),
# GET / answered "hello world\n" by the origin. Layout: CPU 0 runs the proxy under test;
# CPU 1 the origin (nginx) and h2load.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -n ${RINGWAY_BIN:-} && ${RINGWAY_BIN} != /* ]] && RINGWAY_BIN=$PWD/$RINGWAY_BIN
cd "$ROOT"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-10}
STREAMS=${STREAMS:-10}
RESULTS_DIR=${RESULTS_DIR:-perf/results}
PROXY_CPU=0
LOAD_CPU=1
ORIGIN_PORT=18700
declare -A PORT=([ringway]=18701 [nginx]=18702 [haproxy]=18703)
CONTENDERS=(ringway nginx haproxy)
WORK=$ROOT/perf/work-h2
log() { echo "perf/h2: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------- tools
# shellcheck source=perf/lib.sh
source perf/lib.sh
APT_NEED=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || APT_NEED+=(nginx-light)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || APT_NEED+=(haproxy)
command -v h2load >/dev/null || APT_NEED+=(nghttp2-client)
command -v openssl >/dev/null || APT_NEED+=(openssl)
command -v python3 >/dev/null || APT_NEED+=(python3)
apt_install "${APT_NEED[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
ringway_and_lock

rm -rf "$WORK"
mkdir -p "$WORK/origin/tmp" "$WORK/nginx/tmp" "$WORK/haproxy" "$WORK/ringway" "$WORK/load" "$WORK/tls"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null
cat "$WORK/tls/cert.pem" "$WORK/tls/key.pem" >"$WORK/tls/cert-and-key.pem"

# One nginx process (master_process off, so its CPU is one PID's) with the http block's
# extra lines and its server block.
nginx_conf() { # http_lines server_lines
    cat <<CONF
daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    client_body_temp_path tmp/body;
    $1
    server {
        $2
    }
}
CONF
}
nginx_conf "" "listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        location / { return 200 \"hello world\\n\"; }" >"$WORK/origin/nginx.conf"
# nginx 1.22: HTTP/2 is a listen parameter (\`http2 on\` came in 1.25.1).
nginx_conf "http2_max_requests 1000000000;
    proxy_temp_path tmp/proxy;
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 128; }" \
    "listen 127.0.0.1:${PORT[nginx]} ssl http2 backlog=4096;
        ssl_certificate $WORK/tls/cert.pem;
        ssl_certificate_key $WORK/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }" >"$WORK/nginx/nginx.conf"
cat >"$WORK/haproxy/haproxy.cfg" <<CONF
global
    nbthread 1
    cpu-map 1/1 $PROXY_CPU
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 600s
    timeout server 600s
frontend bench
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $WORK/tls/cert-and-key.pem alpn h2,http/1.1 backlog 4096
    default_backend origin
backend origin
    server origin 127.0.0.1:$ORIGIN_PORT
CONF
cat >"$WORK/ringway/ringway.toml" <<CONF
# ringway: one worker on CPU $PROXY_CPU, TLS with ALPN h2 (the default), no access log.
workers = [$PROXY_CPU]
[admin]
enabled = false
[timeouts]
keep_alive_timeout_ms = 600000
[[listener]]
name = "h2"
addr = "127.0.0.1:${PORT[ringway]}"
backlog = 4096
[listener.tls]
certificates = [{ cert = "$WORK/tls/cert.pem", key = "$WORK/tls/key.pem" }]
[[listener.route]]
cluster = "origin"
[cluster.origin]
backends = ["127.0.0.1:$ORIGIN_PORT"]
# 100 streams at once need 100 upstream connections: keep them all, as nginx's keepalive.
pool_idle_max = 128
CONF

log "origin (nginx) on :$ORIGIN_PORT, CPU $LOAD_CPU"
start origin "$WORK/origin/stdout.log" taskset -c "$LOAD_CPU" "$NGINX" -p "$WORK/origin/" -c nginx.conf
wait_port "$ORIGIN_PORT" "$PID_origin" "$WORK/origin/stdout.log"
start ringway "$WORK/ringway/stdout.log" taskset -c "$PROXY_CPU" "$RINGWAY_BIN" --config "$WORK/ringway/ringway.toml"
wait_port "${PORT[ringway]}" "$PID_ringway" "$WORK/ringway/stdout.log"
start nginx "$WORK/nginx/stdout.log" taskset -c "$PROXY_CPU" "$NGINX" -p "$WORK/nginx/" -c nginx.conf
wait_port "${PORT[nginx]}" "$PID_nginx" "$WORK/nginx/stdout.log"
start haproxy "$WORK/haproxy/stdout.log" taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$WORK/haproxy/haproxy.cfg"
wait_port "${PORT[haproxy]}" "$PID_haproxy" "$WORK/haproxy/stdout.log"
declare -A PID=([ringway]=$PID_ringway [nginx]=$PID_nginx [haproxy]=$PID_haproxy)

# Each must answer over h2 before anything is measured.
for c in "${CONTENDERS[@]}"; do
    answer=$(curl -sSk --http2 --max-time 5 -w ' %{http_version}' "https://127.0.0.1:${PORT[$c]}/")
    [[ $answer == "hello world"*" 2" ]] || die "$c did not answer over h2 (got: $answer)"
done

# ---------------------------------------------------------------------------- load
RUNS=$WORK/runs.tsv
printf 'scenario\tround\tcontender\trequests\terrors\tseconds\tproxy_ticks\n' >"$RUNS"
run() { # round contender
    local round=$1 c=$2 out=$WORK/load/$1-$2.txt before after requests errors seconds
    before=$(cpu_ticks "${PID[$c]}")
    taskset -c "$LOAD_CPU" h2load -c"$CONNECTIONS" -m"$STREAMS" -D"$DURATION" \
        "https://127.0.0.1:${PORT[$c]}/" >"$out" 2>&1
    after=$(cpu_ticks "${PID[$c]}")
    requests=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$out")
    errors=$(sed -n 's/^requests: .* \([0-9]*\) failed.*/\1/p' "$out")
    seconds=$(sed -n 's/^finished in \([0-9.]*\)s.*/\1/p' "$out")
    printf 'h2_tls_small\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$c" "${requests:-0}" \
        "${errors:-0}" "${seconds:-0}" $((after - before)) >>"$RUNS"
    log "  round $round $c: ${requests:-0} requests in ${seconds:-?}s, ${errors:-0} failed, $((after - before)) ticks"
}

log "warm-up"
for c in "${CONTENDERS[@]}"; do
    taskset -c "$LOAD_CPU" h2load -c"$CONNECTIONS" -m"$STREAMS" -D2 "https://127.0.0.1:${PORT[$c]}/" >/dev/null 2>&1
done
for ((round = 1; round <= ROUNDS; round++)); do
    # The order rotates each round, so none is always first.
    order=("${CONTENDERS[@]:round%3}" "${CONTENDERS[@]:0:round%3}")
    for c in "${order[@]}"; do
        run "$round" "$c"
        sleep 1
    done
done

# ---------------------------------------------------------------------------- report
mkdir -p "$RESULTS_DIR"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo nocommit)
[[ -n $(git status --porcelain --untracked-files=no -- . ':!perf/results' 2>/dev/null) ]] && COMMIT+=-dirty
OUT=$RESULTS_DIR/$(date +%F)-$COMMIT-h2.md
PERF_RUNS=$RUNS PERF_OUT=$OUT PERF_CLK_TCK=$(getconf CLK_TCK) PERF_ROUNDS=$ROUNDS \
PERF_DURATION=$DURATION PERF_CONNECTIONS=$CONNECTIONS PERF_STREAMS=$STREAMS \
PERF_VERSIONS="$("$RINGWAY_BIN" --version 2>&1 | head -n1), $("$NGINX" -v 2>&1), $("$HAPROXY" -v | head -n1 | cut -d' ' -f1-3), $(h2load --version | head -n1)" \
PERF_MACHINE="$(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs, $(uname -r)" \
PERF_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)" \
    python3 - <<'PY'
import csv, os, statistics
rows = list(csv.DictReader(open(os.environ["PERF_RUNS"]), delimiter="\t"))
tck = int(os.environ["PERF_CLK_TCK"])
lines = [
    "# HTTP/2 over TLS: ringway vs nginx vs HAProxy",
    "",
    f"{os.environ['PERF_VERSIONS']}; {os.environ['PERF_MACHINE']}; load average at the end"
    f" {os.environ['PERF_LOADAVG']}. {os.environ['PERF_ROUNDS']} interleaved rounds of"
    f" {os.environ['PERF_DURATION']} s per proxy: h2load -c{os.environ['PERF_CONNECTIONS']}"
    f" -m{os.environ['PERF_STREAMS']} (streams at once per connection) GET / over TLS h2, a"
    " 12-byte answer from an nginx origin over HTTP/1.1 keep-alive. Proxy on CPU 0, origin and"
    " h2load on CPU 1. Made by perf/h2.sh.",
    "",
    "CPU per request: the proxy process's utime + stime (/proc/PID/stat) over the run, divided by",
    "the requests h2load completed (nginx runs with master_process off: one process).",
    "",
    "| round | proxy | requests/s | CPU µs/request | failed |",
    "|---|---|---|---|---|",
]
per = {}
for r in rows:
    req, sec, ticks = int(r["requests"] or 0), float(r["seconds"] or 0), int(r["proxy_ticks"])
    rate = req / sec if sec else 0
    cpu_us = ticks * 1e6 / tck / req if req else float("nan")
    per.setdefault(r["contender"], []).append((rate, cpu_us))
    lines.append(f"| {r['round']} | {r['contender']} | {rate:,.0f} | {cpu_us:.1f} | {r['errors']} |")
lines += ["", "Medians, and ringway ÷ each (goal: requests/s ≥ 1× nginx's, CPU ≤ 0.8× nginx's):", "",
          "| proxy | requests/s | CPU µs/request | ringway req/s ratio | ringway CPU ratio |",
          "|---|---|---|---|---|"]
med = lambda xs, i: statistics.median(x[i] for x in xs)
rw = per.get("ringway")
for c in ["ringway", "nginx", "haproxy"]:
    xs = per.get(c)
    if not xs or not rw:
        continue
    lines.append(f"| {c} | {med(xs,0):,.0f} | {med(xs,1):.1f} | {med(rw,0)/med(xs,0):.2f} |"
                 f" {med(rw,1)/med(xs,1):.2f} |")
open(os.environ["PERF_OUT"], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
log "wrote $OUT"
