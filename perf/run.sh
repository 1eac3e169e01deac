#!/usr/bin/env bash
# End-to-end load through ringway, nginx and HAProxy, with the origin hit directly as the
# ceiling: every scenario of perf/README.md, interleaved rounds, one results file pair.
#
#   perf/run.sh                                   # everything: 3 rounds x 10 s (~25 min)
#   QUICK=1 perf/run.sh                           # 1 round x 3 s: checks the harness (~3 min)
#   SCENARIOS=small_c16,resp_1m ROUNDS=5 perf/run.sh
#   CONTENDERS=direct,ringway,nginx perf/run.sh   # leave HAProxy out
#   RINGWAY_BIN=target/release/ringway perf/run.sh   # use this binary, skip the build
#   SCENARIOS=compress CONTENDERS=ringway,nginx perf/run.sh   # compression (5 scenarios)
#   SCENARIOS=cache,small_c16 CONTENDERS=ringway,nginx,varnish perf/run.sh   # response cache
#   SCENARIOS=forward perf/run.sh                 # forward proxy vs Squid (perf/forward.sh)
#   SCENARIOS=h2 perf/run.sh      # TLS h2, h2load -c10 -m10: ringway, nginx, HAProxy (perf/h2.sh)
#   SCENARIOS=reload perf/run.sh                  # 20 reloads under load vs nginx, HAProxy (perf/reload.sh)
#   SCENARIOS=jwt perf/run.sh     # ES256 JWT route vs the same route without auth (perf/jwt.sh)
#   SCENARIOS=l4 perf/run.sh    # L4 TCP: ringway copy and splice, nginx stream, HAProxy tcp
#
# Layout: CPU 0 runs the proxy under test; CPU 1 runs the origin and the load generator.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${RINGWAY_BIN:-} && ${RINGWAY_BIN} != /* ]]; then
    RINGWAY_BIN=$PWD/$RINGWAY_BIN
fi
if [[ -n ${RINGWAY_CONF:-} && ${RINGWAY_CONF} != /* ]]; then
    RINGWAY_CONF=$PWD/$RINGWAY_CONF
fi
cd "$ROOT"

# The forward proxy's scenarios have contenders of their own (Squid): their own script.
if [[ ${SCENARIOS:-} == forward ]]; then
    exec perf/forward.sh
fi
# HTTP/2 over TLS (h2load against ringway, nginx and HAProxy): its own script.
if [[ ${SCENARIOS:-} == h2 ]]; then
    exec perf/h2.sh
fi
# The added cost of JWT authentication: one ringway, its own variants, and callgrind.
if [[ ${SCENARIOS:-} == jwt ]]; then
    exec perf/jwt.sh
fi
# Reload under load counts failures, not speed, and drives reloads itself: its own script.
if [[ ${SCENARIOS:-} == reload ]]; then
    exec perf/reload.sh
fi

COMPRESS_SCENARIOS=compress_gzip1,compress_gzip2,compress_gzip6,compress_br,compress_zstd
CACHE_SCENARIOS=cache_small,cache_100k
L4_SCENARIOS=l4_1m,l4_conn
ALL_SCENARIOS=small_c16,small_c256,resp_16k,resp_1m,upload_1m,conn_close,fixed_rate,idle_10k,tls_handshake,tls_keepalive,$COMPRESS_SCENARIOS,$L4_SCENARIOS,$CACHE_SCENARIOS
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-3}
    WARMUP=${WARMUP:-1}
    CALLGRIND=${CALLGRIND:-0}
fi
CALLGRIND=${CALLGRIND:-1}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
[[ ,$SCENARIOS, == *,compress,* ]] && SCENARIOS=$(sed "s/\(^\|,\)compress\(,\|$\)/\1$COMPRESS_SCENARIOS\2/" <<<"$SCENARIOS")
[[ ,$SCENARIOS, == *,cache,* ]] && SCENARIOS=$(sed "s/\(^\|,\)cache\(,\|$\)/\1$CACHE_SCENARIOS\2/" <<<"$SCENARIOS")
[[ ,$SCENARIOS, == *,l4,* ]] && SCENARIOS=$(sed "s/\(^\|,\)l4\(,\|$\)/\1$L4_SCENARIOS\2/" <<<"$SCENARIOS")
# ringway_splice: a second ringway whose L4 listener splices; it runs the L4 scenarios only.
if [[ ,$SCENARIOS, == *,l4_* ]]; then
    CONTENDERS=${CONTENDERS:-direct,ringway,ringway_splice,nginx,haproxy}
else
    CONTENDERS=${CONTENDERS:-direct,ringway,nginx,haproxy}
fi
IDLE_CONNS=${IDLE_CONNS:-10000}
RATE=${RATE:-5000}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-64}
RESULTS_DIR=${RESULTS_DIR:-perf/results}
RINGWAY_CONF=${RINGWAY_CONF:-$ROOT/perf/contenders/ringway.toml}

PROXY_CPU=0
LOAD_CPU=1
ORIGIN_PORT=18080
# contender -> plain port, TLS port; the idle_10k scenario starts a fresh instance of
# each proxy on port + 10.
declare -A PORT=([direct]=18080 [ringway]=18081 [nginx]=18082 [haproxy]=18083 [ringway_splice]=18084 [varnish]=18085)
declare -A TLS_PORT=([ringway]=18441 [nginx]=18442 [haproxy]=18443)
IDLE_OFFSET=10
# The compress scenarios go to a second listener (ringway) or server (nginx) on port + 20,
# whose routes compress: the other scenarios' listeners stay as they were.
COMPRESS_OFFSET=20
# The L4 scenarios go to each proxy's TCP listener on port + 30 (direct: the origin itself).
L4_OFFSET=30
# The cache scenarios go to a listener (ringway), server (nginx, proxy_cache in memory on
# tmpfs) or address (Varnish, malloc storage) on port + 40 that caches.
CACHE_OFFSET=40
# nginx's proxy_cache_path: memory-backed, so that no contender pays for a disk.
NGINX_CACHE_DIR=/dev/shm/ringway-perf-nginx-cache

WORK=$ROOT/perf/work
log() { echo "perf: $*" >&2; }
die() { log "error: $*"; exit 1; }

for var in ROUNDS DURATION WARMUP CALLGRIND IDLE_CONNS RATE RATE_CONNECTIONS; do
    [[ ${!var} =~ ^[0-9]+$ ]] || die "$var must be a whole number, got '${!var}'"
done
((ROUNDS >= 1 && DURATION >= 1 && IDLE_CONNS >= 1)) || die "ROUNDS, DURATION, IDLE_CONNS must be >= 1"
IFS=, read -r -a SCENARIO_LIST <<<"$SCENARIOS"
IFS=, read -r -a CONTENDER_LIST <<<"$CONTENDERS"
for s in "${SCENARIO_LIST[@]}"; do
    [[ ,$ALL_SCENARIOS, == *,$s,* ]] || die "unknown scenario '$s' (known: $ALL_SCENARIOS)"
done
for c in "${CONTENDER_LIST[@]}"; do
    [[ -n ${PORT[$c]:-} ]] || die "unknown contender '$c' (known: direct,ringway,ringway_splice,nginx,haproxy,varnish)"
done
has_contender() { [[ ,$CONTENDERS, == *,$1,* ]]; }
has_scenario() { [[ ,$SCENARIOS, == *,$1,* ]]; }
has_l4() { [[ ,$SCENARIOS, == *,l4_* ]]; }
# The port an L4 scenario connects to: the contender's TCP listener, or the origin.
l4_port() { if [[ $1 == direct ]]; then echo "$ORIGIN_PORT"; else echo $((${PORT[$1]} + L4_OFFSET)); fi; }

# ---------------------------------------------------------------------------- scenarios
# What each scenario runs. LOAD is the tool; the rest are its arguments. The load always
# runs on CPU 1 for DURATION seconds, except idle_10k (see perf/idle_conns.py).
scenario_tool() {
    case $1 in
        fixed_rate) echo oha ;;
        idle_10k) echo idle ;;
        tls_handshake) echo tls_handshakes ;;
        *) echo wrk ;;
    esac
}

# compress_gzip1 -> "gzip 1": the Accept-Encoding and the level of a compress scenario.
compress_coding() {
    case $1 in
        compress_gzip1) echo "gzip 1" ;;
        compress_gzip2) echo "gzip 2" ;;
        compress_gzip6) echo "gzip 6" ;;
        compress_br) echo "br 4" ;;
        compress_zstd) echo "zstd 3" ;;
    esac
}

# The contenders that take part: direct has no TLS and nothing to hold connections for.
scenario_contenders() {
    local c
    for c in "${CONTENDER_LIST[@]}"; do
        case $1:$c in
            idle_10k:direct | tls_*:direct) continue ;;
            tls_*:ringway) ((RINGWAY_TLS)) || continue ;;
            compress_*:direct | compress_*:haproxy) continue ;;
            compress_br:nginx | compress_zstd:nginx) continue ;; # nginx has no br or zstd here
            cache_*:direct | cache_*:haproxy) continue ;;        # nothing to cache with
            cache_*:varnish) ;;
            *:varnish) continue ;;                               # Varnish runs the cache ones only
            l4_*:*) ;;
            *:ringway_splice) continue ;; # splice is an L4 relay: nothing else to measure
        esac
        echo "$c"
    done
}

# The load command for one run, as words, printed one per line (so that quoting survives).
load_command() { # scenario contender
    local s=$1 c=$2 url=http://127.0.0.1:${PORT[$2]}
    case $s in
        small_c16) printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency "$url/" ;;
        small_c256) printf '%s\n' wrk -t1 -c256 -d"${DURATION}"s --latency "$url/" ;;
        resp_16k) printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency "$url/16k" ;;
        resp_1m) printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency "$url/1m" ;;
        upload_1m) printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency -s perf/upload.lua "$url/upload" ;;
        conn_close) printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency -H "Connection: close" "$url/" ;;
        fixed_rate) printf '%s\n' oha -z "${DURATION}"s -q "$RATE" -c "$RATE_CONNECTIONS" \
            --latency-correction --no-tui --output-format json "$url/" ;;
        tls_keepalive) printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency "https://127.0.0.1:${TLS_PORT[$c]}/" ;;
        tls_handshake) printf '%s\n' perf/tls-client/target/release/tls-handshakes \
            --port "${TLS_PORT[$c]}" --connections 16 --duration "$DURATION" ;;
        compress_*)
            local coding level
            read -r coding level < <(compress_coding "$s")
            printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency -H "Accept-Encoding: $coding" \
                "http://127.0.0.1:$((${PORT[$c]} + COMPRESS_OFFSET))/z/$coding$level/data.json" ;;
        cache_small) printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency \
            "http://127.0.0.1:$((${PORT[$c]} + CACHE_OFFSET))/c/small" ;;
        cache_100k) printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency \
            "http://127.0.0.1:$((${PORT[$c]} + CACHE_OFFSET))/c/100k" ;;
        # HTTP is only the payload here: the proxies relay TCP and never parse it.
        l4_1m) printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency "http://127.0.0.1:$(l4_port "$c")/1m" ;;
        l4_conn) printf '%s\n' wrk -t1 -c16 -d"${DURATION}"s --latency -H "Connection: close" \
            "http://127.0.0.1:$(l4_port "$c")/" ;;
        idle_10k) printf '%s\n' python3 perf/idle_conns.py --port $((${PORT[$c]} + IDLE_OFFSET)) \
            --connections "$IDLE_CONNS" --ready READY --go GO --result RESULT ;;
    esac
}

# ---------------------------------------------------------------------------- processes
# Every process we start is listed here; cleanup stops them on any exit, Ctrl-C included.
STARTED=()

alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

stop_pids() { # pid...: SIGTERM, then SIGKILL after 5 s; forgets them
    local pid i left
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "$@"; do alive "$pid" && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for pid in "$@"; do
        if alive "$pid"; then
            log "pid $pid did not stop on SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for pid in "$@"; do forget "$pid"; done
}

forget() { # pid: no longer ours to stop
    local keep=() p
    for p in "${STARTED[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    STARTED=("${keep[@]}")
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    ((${#STARTED[@]})) && stop_pids "${STARTED[@]}"
    wait 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

children_of() {
    local parent=$1 f stat fields
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        read -r -a fields <<<"${stat##*) }"
        [[ ${fields[1]} == "$parent" ]] && echo "${f//[^0-9]/}"
    done
    return 0
}

# utime + stime (fields 14 and 15 of /proc/PID/stat, clock ticks) summed over the pids;
# fails when one of them is gone.
cpu_ticks() {
    local total=0 pid stat fields
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
        read -r -a fields <<<"${stat##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# VmRSS (KiB) summed over the pids; fails when one of them is gone.
rss_kib() {
    local total=0 pid kib
    for pid in "$@"; do
        kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
        [[ -n $kib ]] || return 1
        total=$((total + kib))
    done
    echo "$total"
}

# "busy steal total" clock ticks of one CPU since boot, from /proc/stat. Busy counts user,
# nice, system, irq and softirq; steal is time the hypervisor ran someone else.
cpu_stat() {
    local name user nice system idle iowait irq softirq steal
    read -r name user nice system idle iowait irq softirq steal _ < <(grep "^cpu$1 " /proc/stat)
    echo "$((user + nice + system + irq + softirq)) $steal $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# The status code of GET / on the port, or nothing.
http_status() {
    timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3
        IFS=" " read -r _ code _ <&3 && echo "$code"' _ "$1" 2>/dev/null || true
}

port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# Waits (bounded) until GET / on the port answers 200; fails early if pid dies.
wait_ready() {
    local name=$1 port=$2 pid=$3 logfile=$4 i
    for ((i = 0; i < 150; i++)); do
        [[ $(http_status "$port") == 200 ]] && return 0
        if ! alive "$pid"; then
            tail -n 20 "$logfile" >&2 || true
            die "$name exited before it answered on :$port (log: ${logfile#"$ROOT"/})"
        fi
        sleep 0.2
    done
    tail -n 20 "$logfile" >&2 || true
    die "$name did not answer 200 on :$port within 30 s (log: ${logfile#"$ROOT"/})"
}

# ---------------------------------------------------------------------------- tools
# The one setup step: everything missing is installed (apt; oha with cargo).
SUDO=
[[ $EUID -ne 0 ]] && SUDO=sudo
APT_NEED=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || APT_NEED+=(nginx-light)
[[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ]] || APT_NEED+=(libnginx-mod-http-echo)
[[ -f /usr/lib/nginx/modules/ngx_stream_module.so ]] || APT_NEED+=(libnginx-mod-stream) # l4_*
command -v wrk >/dev/null || APT_NEED+=(wrk)
command -v h2load >/dev/null || APT_NEED+=(nghttp2-client) # h2_* scenarios
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || APT_NEED+=(haproxy)
command -v openssl >/dev/null || APT_NEED+=(openssl)
command -v python3 >/dev/null || APT_NEED+=(python3)
command -v redis-server >/dev/null || APT_NEED+=(redis-server) # perf/global_rate.py
if has_contender varnish; then
    command -v varnishd >/dev/null || [[ -x /usr/sbin/varnishd ]] || APT_NEED+=(varnish)
fi
if ((${#APT_NEED[@]})); then
    log "installing ${APT_NEED[*]} (apt)"
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${APT_NEED[@]}"
fi
PATH=$PATH:$HOME/.cargo/bin
if ! command -v oha >/dev/null; then
    log "installing oha (cargo install --locked oha)"
    cargo install --locked oha
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
VARNISHD=$(command -v varnishd || echo /usr/sbin/varnishd)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
for tool in wrk oha taskset python3 openssl getconf timeout flock "$NGINX" "$HAPROXY"; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
(($(nproc) >= 2)) || die "needs 2 CPUs (proxy on CPU $PROXY_CPU, origin and load on CPU $LOAD_CPU)"

if has_scenario tls_handshake; then
    log "cargo build --release --locked (perf/tls-client: the full-handshake client)"
    cargo build --release --locked --quiet --manifest-path perf/tls-client/Cargo.toml ||
        die "could not build perf/tls-client"
fi
if has_contender ringway || has_contender ringway_splice; then
    if [[ -z ${RINGWAY_BIN:-} ]]; then
        log "cargo build --release"
        cargo build --release
        RINGWAY_BIN=$ROOT/target/release/ringway
    fi
    [[ -x $RINGWAY_BIN ]] || die "ringway binary not found at $RINGWAY_BIN"
fi

# ---------------------------------------------------------------------------- setup
exec 9>"${TMPDIR:-/tmp}/ringway-perf.lock"
flock -n 9 || die "another perf/run.sh is running (lock ${TMPDIR:-/tmp}/ringway-perf.lock)"
for c in "${!PORT[@]}"; do
    for port in ${PORT[$c]} $((${PORT[$c]} + IDLE_OFFSET)) ${TLS_PORT[$c]:-} \
        $((${TLS_PORT[$c]:-0} + IDLE_OFFSET)); do
        ((port > IDLE_OFFSET)) || continue
        port_open "$port" && die "port $port is already in use; is another perf/run.sh running?"
    done
    if has_l4 && [[ $c != direct ]] && port_open $((${PORT[$c]} + L4_OFFSET)); then
        die "port $((${PORT[$c]} + L4_OFFSET)) is already in use; is another perf/run.sh running?"
    fi
done
# The servers and the idle client inherit this: 10,000 idle connections need 10,000 fds
# in the client and as many again in the proxy. Raising the hard limit needs
# CAP_SYS_RESOURCE, which containers often lack, so the hard limit is the ceiling.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if has_scenario idle_10k && ((FD_LIMIT < IDLE_CONNS + 1000)); then
    die "ulimit -n is $FD_LIMIT; idle_10k needs more than IDLE_CONNS + 1000 = $((IDLE_CONNS + 1000))"
fi
rm -rf "$WORK"
mkdir -p "$WORK/origin/tmp" "$WORK/origin/html" "$WORK/load" "$WORK/tls"
CLK_TCK=$(getconf CLK_TCK)
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)

# Response bodies for /16k and /1m, and the ECDSA P-256 certificate for the TLS listeners.
head -c 16384 /dev/zero | tr '\0' 'a' >"$WORK/origin/html/16k"
head -c 1048576 /dev/zero | tr '\0' 'b' >"$WORK/origin/html/1m"
mkdir -p "$WORK/origin/html/c" # cache_100k: a 100 KiB body the origin marks fresh for a day
head -c 102400 /dev/zero | tr '\0' 'c' >"$WORK/origin/html/c/100k"
rm -rf "$NGINX_CACHE_DIR"
python3 perf/compress_json.py "$WORK/origin/html/data.json" 102400 # compress: ~100 KiB JSON
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>"$WORK/tls/openssl.log" ||
    die "openssl could not make the certificate (see perf/work/tls/openssl.log)"
cat "$WORK/tls/cert.pem" "$WORK/tls/key.pem" >"$WORK/tls/cert-and-key.pem" # HAProxy's crt

render() { # template out port tls_port [relay]
    sed -e "s|@PORT@|$3|g" -e "s|@TLS_PORT@|$4|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" \
        -e "s|@L4_PORT@|$(($3 + L4_OFFSET))|g" -e "s|@RELAY@|${5:-copy}|g" \
        -e "s|@COMPRESS_PORT@|$(($3 + COMPRESS_OFFSET))|g" \
        -e "s|@CACHE_PORT@|$(($3 + CACHE_OFFSET))|g" -e "s|@NGINX_CACHE_DIR@|$NGINX_CACHE_DIR|g" \
        -e "s|@TLS_PROVIDER@|${TLS_PROVIDER:-aws-lc-rs}|g" \
        -e "s|@WORK@|$WORK|g" "$1" >"$2"
}

# Ringway gets its TLS listener only if this build knows [listener.tls].
RINGWAY_TLS=0
RINGWAY_TLS_NOTE=
if has_contender ringway; then
    mkdir -p "$WORK/ringway"
    render "$RINGWAY_CONF" "$WORK/ringway/candidate.toml" "${PORT[ringway]}" "${TLS_PORT[ringway]}"
    render perf/contenders/ringway-tls.toml "$WORK/ringway/tls.toml" "${PORT[ringway]}" "${TLS_PORT[ringway]}"
    cat "$WORK/ringway/tls.toml" >>"$WORK/ringway/candidate.toml"
    if "$RINGWAY_BIN" check "$WORK/ringway/candidate.toml" >"$WORK/ringway/check.log" 2>&1; then
        RINGWAY_TLS=1
    else
        if grep -q 'unknown field `tls`' "$WORK/ringway/check.log"; then
            RINGWAY_TLS_NOTE="ringway has no TLS yet (ringway check rejects [listener.tls]: unknown field tls)"
        else
            RINGWAY_TLS_NOTE="ringway check rejects perf/contenders/ringway-tls.toml: $(grep -v '^ *$' "$WORK/ringway/check.log" | tail -n1 | sed 's/^ *//' | cut -c1-160) (perf/work/ringway/check.log)"
        fi
        if has_scenario tls_handshake || has_scenario tls_keepalive; then
            log "$RINGWAY_TLS_NOTE; the TLS scenarios run without it"
        fi
    fi
fi

declare -A PIDS       # "contender/instance" -> the pids whose CPU and memory count
declare -A CMDLINE    # "contender/instance" -> how it was started
start_server() { # contender instance(main|idle)
    local c=$1 inst=$2 off=0 dir port tls pid
    [[ $inst == idle ]] && off=$IDLE_OFFSET
    port=$((${PORT[$c]} + off))
    tls=$((${TLS_PORT[$c]:-0} + off))
    dir=$WORK/$c-$inst
    [[ $c == direct ]] && dir=$WORK/origin
    mkdir -p "$dir/tmp"
    local cmd
    case $c in
        direct)
            render perf/origin/nginx.conf "$dir/nginx.conf" "$port" 0
            cmd=(taskset -c "$LOAD_CPU" "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log")
            ;;
        nginx)
            render perf/contenders/nginx.conf "$dir/nginx.conf" "$port" "$tls"
            if has_l4; then
                # load_module must come before every block.
                render perf/contenders/nginx-l4.conf "$dir/stream.conf" "$port" "$tls"
                { echo "load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
                  cat "$dir/nginx.conf" "$dir/stream.conf"; } >"$dir/nginx-l4.conf"
                mv "$dir/nginx-l4.conf" "$dir/nginx.conf"
            fi
            cmd=(taskset -c "$PROXY_CPU" "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log")
            ;;
        haproxy)
            render perf/contenders/haproxy.cfg "$dir/haproxy.cfg" "$port" "$tls"
            if has_l4; then
                render perf/contenders/haproxy-l4.cfg "$dir/l4.cfg" "$port" "$tls"
                cat "$dir/l4.cfg" >>"$dir/haproxy.cfg"
            fi
            cmd=(taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$dir/haproxy.cfg")
            ;;
        varnish)
            render perf/contenders/varnish.vcl "$dir/varnish.vcl" "$port" "$tls"
            # -F: in the foreground; -n: its own work folder; the cache process is a child.
            cmd=(taskset -c "$PROXY_CPU" "$VARNISHD" -F -n "$dir/varnishd" -f "$dir/varnish.vcl"
                -a "127.0.0.1:$port" -a "127.0.0.1:$((port + CACHE_OFFSET))" -s malloc,256m)
            ;;
        ringway | ringway_splice)
            render "$RINGWAY_CONF" "$dir/ringway.toml" "$port" "$tls"
            if ((RINGWAY_TLS)) && [[ $c == ringway ]]; then
                render perf/contenders/ringway-tls.toml "$dir/tls.toml" "$port" "$tls"
                cat "$dir/tls.toml" >>"$dir/ringway.toml"
            fi
            if has_l4; then
                local relay=copy
                [[ $c == ringway_splice ]] && relay=splice
                render perf/contenders/ringway-l4.toml "$dir/l4.toml" "$port" "$tls" "$relay"
                cat "$dir/l4.toml" >>"$dir/ringway.toml"
            fi
            cmd=(taskset -c "$PROXY_CPU" "$RINGWAY_BIN" --config "$dir/ringway.toml")
            ;;
    esac
    "${cmd[@]}" >"$dir/stdout.log" 2>&1 &
    pid=$!
    STARTED+=("$pid")
    local logfile=$dir/stdout.log
    [[ $c == nginx || $c == direct ]] && logfile=$dir/error.log
    wait_ready "$c" "$port" "$pid" "$logfile"
    local kids watched=() kid
    mapfile -t kids < <(children_of "$pid")
    STARTED+=("${kids[@]}")
    # nginx's proxy_cache loader exits once it has read the cache folder (a minute after
    # start): its end is no failure, and its CPU is not the hit path's.
    for kid in "${kids[@]}"; do
        grep -q "cache loader" "/proc/$kid/cmdline" 2>/dev/null || watched+=("$kid")
    done
    PIDS[$c/$inst]="$pid ${watched[*]}"
    CMDLINE[$c/$inst]="${cmd[*]}"
}

log "starting origin (nginx) on :$ORIGIN_PORT, CPU $LOAD_CPU"
start_server direct main
ORIGIN_PIDS=(${PIDS[direct/main]})
for c in "${CONTENDER_LIST[@]}"; do
    [[ $c == direct ]] && continue
    log "starting $c on :${PORT[$c]}, CPU $PROXY_CPU"
    start_server "$c" main
done
[[ -n ${PIDS[ringway/main]:-} ]] && RINGWAY_VERSION=$(timeout 5 "$RINGWAY_BIN" --version 2>&1 | head -n1 || true)

affinity() { taskset -pc "$1" 2>/dev/null | sed 's/.*: //'; }
AFFINITY=
for key in "${!PIDS[@]}"; do
    for pid in ${PIDS[$key]}; do AFFINITY+="${key%/main} $pid: CPU $(affinity "$pid"); "; done
done
log "CPU affinity: $AFFINITY"

# Which proxy pids count for a run: none for direct (its CPU is the origin's, on CPU 1).
proxy_pids() { # contender instance
    [[ $1 == direct ]] && return 0
    echo "${PIDS[$1/$2]}"
}

# ---------------------------------------------------------------------------- load
RUNS_TSV=$WORK/runs.tsv
printf 'scenario\tround\tcontender\ttool\trc\twall_s\tproxy_ticks\torigin_ticks\tcpu0_busy\tcpu0_steal\tcpu0_total\trss_before_kib\trss_after_kib\tnote\tout\n' >"$RUNS_TSV"

run_load() { # out_file timeout_s word... -> sets LOAD_RC
    local out=$1 limit=$2
    shift 2
    LOAD_RC=0
    taskset -c "$LOAD_CPU" timeout --kill-after=5 "$limit" "$@" >"$out" 2>&1 &
    local pid=$!
    STARTED+=("$pid")
    wait "$pid" || LOAD_RC=$?
    forget "$pid"
}

check_alive() { # what pid...
    local what=$1 pid f
    shift
    for pid in "$@"; do
        alive "$pid" && continue
        for f in "$WORK"/*/error.log "$WORK"/*/stdout.log; do
            [[ -s $f ]] && log "tail of ${f#"$ROOT"/}:" && tail -n 10 "$f" >&2
        done
        die "a server process ($pid) exited during $what; stopping"
    done
}

# One timed run of a load tool against a running contender; appends a row to runs.tsv.
measure() { # scenario round contender
    local s=$1 round=$2 c=$3 out words pids note= t0 t1
    out=$WORK/load/$s-round$round-$c.txt
    mapfile -t words < <(load_command "$s" "$c")
    read -r -a pids <<<"$(proxy_pids "$c" main)"
    local proxy_before= origin_before busy0 steal0 total0 busy1 steal1 total1
    ((${#pids[@]})) && { proxy_before=$(cpu_ticks "${pids[@]}") || note="proxy process gone before the run"; }
    origin_before=$(cpu_ticks "${ORIGIN_PIDS[@]}") || note="origin process gone before the run"
    read -r busy0 steal0 total0 < <(cpu_stat "$PROXY_CPU")
    t0=$(date +%s.%N)
    run_load "$out" $((DURATION + 30)) "${words[@]}"
    t1=$(date +%s.%N)
    read -r busy1 steal1 total1 < <(cpu_stat "$PROXY_CPU")
    local proxy_ticks= origin_ticks= proxy_after origin_after
    if ((${#pids[@]})); then
        proxy_after=$(cpu_ticks "${pids[@]}") || note="proxy process exited during the run"
    fi
    origin_after=$(cpu_ticks "${ORIGIN_PIDS[@]}") || note="origin process exited during the run"
    if [[ -z $note ]]; then
        ((${#pids[@]})) && proxy_ticks=$((proxy_after - proxy_before))
        origin_ticks=$((origin_after - origin_before))
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t\t%s\t%s\n' "$s" "$round" "$c" \
        "$(scenario_tool "$s")" "$LOAD_RC" "$(python3 -c "print(f'{$t1 - $t0:.3f}')")" \
        "$proxy_ticks" "$origin_ticks" $((busy1 - busy0)) $((steal1 - steal0)) \
        $((total1 - total0)) "$note" "$out" >>"$RUNS_TSV"
    grep -hE 'Requests/sec|errors|Non-2xx' "$out" | sed 's/^ */    /' >&2 || true
    check_alive "$s round $round ($c)" "${ORIGIN_PIDS[@]}" "${pids[@]}"
}

# idle_10k: a fresh instance of the proxy, warmed up, then RSS before and after
# IDLE_CONNS idle keep-alive connections (perf/idle_conns.py), all pids summed.
measure_idle() { # round contender
    local round=$1 c=$2 s=idle_10k out ready go port pids note= client i
    out=$WORK/load/$s-round$round-$c.json
    ready=$WORK/load/$s-round$round-$c.ready.json
    go=$WORK/load/$s-round$round-$c.go
    port=$((${PORT[$c]} + IDLE_OFFSET))
    start_server "$c" idle
    read -r -a pids <<<"$(proxy_pids "$c" idle)"
    run_load "$WORK/load/$s-round$round-$c.warmup.txt" 30 wrk -t1 -c16 -d1s "http://127.0.0.1:$port/"
    sleep 1
    local before after= t0 t1
    before=$(rss_kib "${pids[@]}") || note="proxy process gone before the run"
    t0=$(date +%s.%N)
    taskset -c "$LOAD_CPU" timeout --kill-after=5 180 python3 perf/idle_conns.py --port "$port" \
        --connections "$IDLE_CONNS" --ready "$ready" --go "$go" --result "$out" \
        >"$WORK/load/$s-round$round-$c.log" 2>&1 &
    client=$!
    STARTED+=("$client")
    for ((i = 0; i < 1200; i++)); do
        [[ -s $ready ]] && break
        alive "$client" || break
        sleep 0.1
    done
    if [[ -s $ready ]]; then
        sleep 2 # let the proxy finish whatever it does after the last response
        after=$(rss_kib "${pids[@]}") || note="proxy process exited during the run"
        touch "$go"
    else
        note="idle client did not get its connections open"
    fi
    LOAD_RC=0
    wait "$client" || LOAD_RC=$?
    forget "$client"
    t1=$(date +%s.%N)
    [[ -s $out ]] || echo '{}' >"$out"
    check_alive "$s round $round ($c)" "${ORIGIN_PIDS[@]}" "${pids[@]}"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t\t\t%s\t%s\t%s\t%s\n' "$s" "$round" "$c" idle "$LOAD_RC" \
        "$(python3 -c "print(f'{$t1 - $t0:.3f}')")" "$before" "$after" "$note" "$out" >>"$RUNS_TSV"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('    open', d.get('open'), 'errors', d.get('errors'), 'RSS KiB', sys.argv[2], '->', sys.argv[3])" \
        "$out" "$before" "${after:-?}" >&2 || true
    stop_pids "${pids[@]}"
}

# Each round runs every scenario, and inside a scenario every contender back to back;
# the contender order rotates by one each round, so none is always first or last.
rotate() { # round word... -> the words rotated left by round-1
    local n=$(($# - 1)) r=$1
    shift
    local words=("$@") i
    for ((i = 0; i < n; i++)); do echo "${words[$(((i + r - 1) % n))]}"; done
}

RUNS_PER_ROUND=0
for s in "${SCENARIO_LIST[@]}"; do
    RUNS_PER_ROUND=$((RUNS_PER_ROUND + $(scenario_contenders "$s" | wc -l)))
done
log "$ROUNDS round(s) of ${SCENARIO_LIST[*]}: $RUNS_PER_ROUND runs a round, about" \
    "$(((ROUNDS * RUNS_PER_ROUND * (DURATION + 3) + 59) / 60)) min"

if ((WARMUP > 0)); then
    for c in "${CONTENDER_LIST[@]}"; do
        log "warm-up: $c, ${WARMUP}s of GET / and 1 s of GET /1m"
        run_load "$WORK/load/warmup-$c.txt" 60 wrk -t1 -c16 -d"$WARMUP"s "http://127.0.0.1:${PORT[$c]}/"
        run_load "$WORK/load/warmup-1m-$c.txt" 60 wrk -t1 -c16 -d1s "http://127.0.0.1:${PORT[$c]}/1m"
    done
fi

for ((round = 1; round <= ROUNDS; round++)); do
    for s in "${SCENARIO_LIST[@]}"; do
        mapfile -t cs < <(scenario_contenders "$s")
        ((${#cs[@]})) || continue
        mapfile -t cs < <(rotate "$round" "${cs[@]}")
        for c in "${cs[@]}"; do
            log "round $round/$ROUNDS: $s, $c"
            if [[ $s == idle_10k ]]; then
                measure_idle "$round" "$c"
            else
                measure "$s" "$round" "$c"
            fi
            sleep 1
        done
    done
done

for f in "$WORK"/*/error.log; do
    if grep -qE '\[(alert|crit|emerg|error)\]' "$f" 2>/dev/null; then
        log "warning: ${f#"$ROOT"/} has errors:"
        grep -E '\[(alert|crit|emerg|error)\]' "$f" | tail -n 5 >&2
    fi
done

# compress: the coded size of the one response, per contender and scenario, as curl
# receives it (--compressed decodes it, so a response that does not decode fails here).
COMPRESS_SIZES=$WORK/compress_sizes.tsv
printf 'scenario\tcontender\tcontent_encoding\tbytes\tidentity_bytes\n' >"$COMPRESS_SIZES"
for s in "${SCENARIO_LIST[@]}"; do
    [[ $s == compress_* ]] || continue
    read -r coding level < <(compress_coding "$s")
    for c in $(scenario_contenders "$s"); do
        url=http://127.0.0.1:$((${PORT[$c]} + COMPRESS_OFFSET))/z/$coding$level/data.json
        size=$(curl -sS --compressed -H "Accept-Encoding: $coding" -o /dev/null \
            -w '%{size_download}' "$url") || die "curl $url failed"
        encoding=$(curl -sS -H "Accept-Encoding: $coding" -o /dev/null -D - "$url" |
            tr -d '\r' | sed -n 's/^[Cc]ontent-[Ee]ncoding: *//p')
        [[ $encoding == "$coding" ]] || die "$c sent Content-Encoding '$encoding' for $s"
        printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$c" "$encoding" "$size" \
            "$(stat -c %s "$WORK/origin/html/data.json")" >>"$COMPRESS_SIZES"
        log "  $s $c: $size bytes ($encoding)"
    done
done

# Instructions per request: perf/callgrind.sh runs its own origin on :18080, so the
# servers stop first.
CALLGRIND_IR="not run (CALLGRIND=0, QUICK=1 or no ringway)"
if [[ $CALLGRIND == 1 ]] && has_contender ringway; then
    ((${#STARTED[@]})) && stop_pids "${STARTED[@]}"
    log "perf/callgrind.sh: instructions per request"
    if timeout 900 perf/callgrind.sh "$RINGWAY_BIN" >"$WORK/callgrind.txt" 2>&1; then
        CALLGRIND_IR=$(sed -n 's/^instructions per request: //p' "$WORK/callgrind.txt")
        log "  $CALLGRIND_IR instructions per request"
    else
        CALLGRIND_IR="failed (see perf/work/callgrind.txt)"
        log "  callgrind.sh failed; see perf/work/callgrind.txt"
    fi
fi

# ---------------------------------------------------------------------------- report
DATE=$(date +%F)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo nocommit)
if [[ -n $(git status --porcelain --untracked-files=no -- . ':!perf/results' 2>/dev/null) ]]; then
    COMMIT+=-dirty
fi
mkdir -p "$RESULTS_DIR"
base=$RESULTS_DIR/$DATE-$COMMIT
n=1
while [[ -e $base.md || -e $base.json ]]; do
    n=$((n + 1))
    base=$RESULTS_DIR/$DATE-$COMMIT-$n
done

rel() { sed "s|$ROOT/||g"; }
COMMANDS=$(
    {
        echo "# servers (CPU $PROXY_CPU: the proxy under test; CPU $LOAD_CPU: origin and load)"
        for key in direct/main ringway/main ringway_splice/main nginx/main haproxy/main varnish/main; do
            [[ -n ${CMDLINE[$key]:-} ]] && echo "${CMDLINE[$key]}   # ${key%/main}"
        done
        echo "# idle_10k starts a fresh instance of each proxy the same way on port + $IDLE_OFFSET"
        echo "# load, all under: taskset -c $LOAD_CPU timeout ...   (shown for nginx)"
        for s in "${SCENARIO_LIST[@]}"; do
            printf '%-14s' "$s"
            load_command "$s" nginx | while IFS= read -r w; do
                [[ $w == *' '* ]] && w="'$w'"
                printf ' %s' "$w"
            done
            echo
        done
        echo "# CPU: utime+stime (/proc/PID/stat fields 14+15, CLK_TCK=$CLK_TCK) of the proxy's"
        echo "# processes (nginx: master + worker; ringway, haproxy: the process) before and after"
        echo "# memory (idle_10k): VmRSS from /proc/PID/status, summed over the same processes"
        [[ $CALLGRIND == 1 ]] && has_contender ringway && echo "perf/callgrind.sh $RINGWAY_BIN   # instructions per request"
        true
    } | rel
)
CONFIGS="perf/origin/nginx.conf"
for c in "${CONTENDER_LIST[@]}"; do
    case $c in
        ringway) CONFIGS+=" ${RINGWAY_CONF#"$ROOT"/}" && ((RINGWAY_TLS)) && CONFIGS+=" perf/contenders/ringway-tls.toml" ;;
        nginx) CONFIGS+=" perf/contenders/nginx.conf" ;;
        haproxy) CONFIGS+=" perf/contenders/haproxy.cfg" ;;
        varnish) CONFIGS+=" perf/contenders/varnish.vcl" ;;
    esac
    if has_l4; then
        case $c in
            ringway) CONFIGS+=" perf/contenders/ringway-l4.toml" ;;
            nginx) CONFIGS+=" perf/contenders/nginx-l4.conf" ;;
            haproxy) CONFIGS+=" perf/contenders/haproxy-l4.cfg" ;;
        esac
    fi
done

version() { "$@" 2>&1 | head -n1 || true; }
PERF_CLK_TCK=$CLK_TCK \
PERF_RUNS_TSV=$RUNS_TSV \
PERF_COMPRESS_SIZES_TSV=$COMPRESS_SIZES \
PERF_ROOT=$ROOT \
PERF_OUT_MD=$base.md \
PERF_OUT_JSON=$base.json \
PERF_CONFIGS=$CONFIGS \
PERF_RINGWAY_TLS_NOTE=$RINGWAY_TLS_NOTE \
PERF_META_SCENARIOS=$SCENARIOS \
PERF_META_CONTENDERS=$CONTENDERS \
PERF_META_DATE=$DATE \
PERF_META_COMMIT=$COMMIT \
PERF_META_MACHINE="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)" \
PERF_META_NPROC="$(nproc)" \
PERF_META_MEMORY="$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
PERF_META_KERNEL="$(uname -r)" \
PERF_META_OS="$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")" \
PERF_META_LOADAVG="$LOADAVG_START" \
PERF_META_LOADAVG_END="$(cut -d' ' -f1-3 /proc/loadavg)" \
PERF_META_NGINX_VERSION="$(version "$NGINX" -v)" \
PERF_META_HAPROXY_VERSION="$(version "$HAPROXY" -v)" \
PERF_META_VARNISH_VERSION="$(has_contender varnish && version "$VARNISHD" -V)" \
PERF_META_WRK_VERSION="$(version wrk -v | sed 's/ Copyright.*//')" \
PERF_META_OHA_VERSION="$(version oha --version)" \
PERF_META_PYTHON_VERSION="$(version python3 --version)" \
PERF_META_OPENSSL_VERSION="$(version openssl version)" \
PERF_META_RINGWAY_VERSION="${RINGWAY_VERSION:-not run}" \
PERF_META_ROUNDS=$ROUNDS \
PERF_META_DURATION_S=$DURATION \
PERF_META_QUICK=$QUICK \
PERF_META_IDLE_CONNS=$IDLE_CONNS \
PERF_META_RATE=$RATE \
PERF_META_FD_LIMIT=$FD_LIMIT \
PERF_META_AFFINITY="$AFFINITY" \
PERF_META_CALLGRIND_IR_PER_REQUEST="$CALLGRIND_IR" \
PERF_META_COMMANDS="$COMMANDS" \
    python3 "$ROOT/perf/report.py"
