#!/usr/bin/env bash
# Reload under load (issue 13): 20 reloads at 1 s intervals under 500 req/s, keep-alive and
# one request per connection, for ringway (SIGHUP), nginx (`nginx -s reload`) and HAProxy
# (master-worker, SIGUSR2 to the master). Each reload switches the route to the other of
# two origins. Reports failed requests and refused connects (a connect probe runs every
# millisecond alongside). perf/run.sh runs this for SCENARIOS=reload.
#
#   perf/reload.sh                          # all three, both modes (~2.5 min)
#   RINGWAY_BIN=target/debug/ringway CONTENDERS=ringway perf/reload.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -n ${RINGWAY_BIN:-} && ${RINGWAY_BIN} != /* ]] && RINGWAY_BIN=$PWD/$RINGWAY_BIN
cd "$ROOT"
RINGWAY_BIN=${RINGWAY_BIN:-$ROOT/target/release/ringway}
CONTENDERS=${CONTENDERS:-ringway,nginx,haproxy}
RELOADS=${RELOADS:-20}
RATE=${RATE:-500}
RESULTS_DIR=${RESULTS_DIR:-perf/results}
ORIGIN_A=18701
ORIGIN_B=18702
PORT=18703
ADMIN=18704
WORK=$(mktemp -d /tmp/ringway-perf-reload.XXXXXX)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
log() { echo "perf/reload: $*" >&2; }
# One load benchmark at a time on this machine (perf/run.sh takes the same lock).
exec 9>/tmp/ringway-perf.lock
flock 9
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -f $WORK/nginx.pid ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
[[ -x $RINGWAY_BIN ]] || { log "building $RINGWAY_BIN"; cargo build --release --locked; }

python3 perf/reload_origin.py "$ORIGIN_A" "$ORIGIN_B" & PIDS+=($!)

# config NAME ORIGIN_PORT: writes the contender's config sending everything to the origin.
config() {
    case $1 in
        ringway) cat >"$WORK/ringway.toml" <<TOML
workers = 2
[admin]
addr = "127.0.0.1:$ADMIN"
[[listener]]
name = "public"
addr = "127.0.0.1:$PORT"
[[listener.route]]
cluster = "app"
[cluster.app]
backends = ["127.0.0.1:$2"]
TOML
        ;;
        nginx) cat >"$WORK/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx.error.log;
events { worker_connections 4096; }
http {
    access_log off;
    upstream app { server 127.0.0.1:$2; keepalive 32; }
    server {
        listen 127.0.0.1:$PORT reuseport;
        location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
CONF
        ;;
        haproxy) cat >"$WORK/haproxy.cfg" <<CFG
global
    nbthread 2
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend public
    bind 127.0.0.1:$PORT
    default_backend app
backend app
    server one 127.0.0.1:$2
CFG
        ;;
    esac
}

# start NAME: starts the contender; PID is the process to signal for a reload.
start() {
    case $1 in
        ringway)
            "$RINGWAY_BIN" --config "$WORK/ringway.toml" >/dev/null 2>"$WORK/ringway.log" &
            PID=$!
            ;;
        nginx) "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" 2>/dev/null; sleep 0.5; PID=$(cat "$WORK/nginx.pid") ;;
        haproxy)
            "$HAPROXY" -W -f "$WORK/haproxy.cfg" -p "$WORK/haproxy.pid" >/dev/null 2>"$WORK/haproxy.log" &
            PID=$!
            ;;
    esac
}

reload() {
    case $1 in
        ringway) kill -HUP "$2" ;;
        nginx) "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -s reload 2>/dev/null ;;
        haproxy) kill -USR2 "$2" ;;
    esac
}

stop() {
    case $1 in
        nginx) "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -s quit 2>/dev/null || true ;;
        *) kill "$2" 2>/dev/null || true ;;
    esac
    sleep 1
}

declare -A RESULT
IFS=, read -ra NAMES <<<"$CONTENDERS"
for name in "${NAMES[@]}"; do
    for keep_alive in 1 0; do
        config "$name" "$ORIGIN_A"
        start "$name"
        pid=$PID
        sleep 1
        seconds=$((RELOADS + 2))
        python3 perf/reload_load.py "$PORT" "$RATE" "$seconds" "$keep_alive" >"$WORK/out" &
        load=$!
        sleep 1
        for round in $(seq 1 "$RELOADS"); do
            if ((round % 2)); then config "$name" "$ORIGIN_B"; else config "$name" "$ORIGIN_A"; fi
            reload "$name" "$pid"
            sleep 1
        done
        wait "$load"
        RESULT[$name,$keep_alive]=$(cat "$WORK/out")
        log "$name keep_alive=$keep_alive: ${RESULT[$name,$keep_alive]}"
        stop "$name" "$pid"
    done
done

commit=$(git rev-parse --short HEAD)
out="$RESULTS_DIR/$(date -u +%F)-$commit-reload.md"
{
    echo "# reload: $RELOADS reloads at 1 s intervals under $RATE req/s"
    echo
    echo "Machine: $(nproc) CPUs, $(uname -r); ringway binary: $RINGWAY_BIN; load: perf/reload_load.py"
    echo "(10 threads at a fixed rate, plus a connect probe every 1 ms); each reload switches"
    echo "the route to the other origin. Command: CONTENDERS=$CONTENDERS perf/reload.sh"
    echo
    echo "| proxy | mode | requests | failed | refused connects | probes |"
    echo "|---|---|---|---|---|---|"
    for name in "${NAMES[@]}"; do
        for keep_alive in 1 0; do
            mode=$([[ $keep_alive == 1 ]] && echo keep-alive || echo "new connection")
            read -r requests failed refused probes <<<"$(sed 's/[a-z]*=//g' <<<"${RESULT[$name,$keep_alive]}")"
            echo "| $name | $mode | $requests | $failed | $refused | $probes |"
        done
    done
} >"$out"
log "wrote $out"
cat "$out"
