#!/usr/bin/env bash
# End-to-end load: small GETs over keep-alive through ringway and through nginx, with the
# origin hit directly as the ceiling. See perf/README.md.
#
#   perf/run.sh                               # 3 rounds x 10 s, 16 connections
#   ROUNDS=5 DURATION=20 CONNECTIONS=64 perf/run.sh
#   RINGWAY_BIN=/path/to/ringway perf/run.sh  # skip the cargo build
#   SKIP_RINGWAY=1 perf/run.sh                # only direct and nginx
#
# Layout: CPU 0 runs the proxy under test; CPU 1 runs the origin and wrk.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${RINGWAY_BIN:-} && ${RINGWAY_BIN} != /* ]]; then
    RINGWAY_BIN=$PWD/$RINGWAY_BIN
fi
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
WARMUP=${WARMUP:-2}
SKIP_RINGWAY=${SKIP_RINGWAY:-0}
RESULTS_DIR=${RESULTS_DIR:-perf/results}
SCENARIO=${SCENARIO:-small_get_keepalive}

PROXY_CPU=0
LOAD_CPU=1
ORIGIN_PORT=18080
RINGWAY_PORT=18081
NGINX_PORT=18082

WORK=$ROOT/perf/work
ORIGIN_CONF=$ROOT/perf/origin/nginx.conf
NGINX_CONF=$ROOT/perf/origin/nginx-proxy.conf
RINGWAY_SCENARIO=$ROOT/perf/scenarios/$SCENARIO.toml
RINGWAY_CONF=$WORK/ringway.toml

log() { echo "perf: $*" >&2; }
die() { log "error: $*"; exit 1; }

for var in ROUNDS DURATION CONNECTIONS WARMUP; do
    [[ ${!var} =~ ^[0-9]+$ ]] || die "$var must be a whole number, got '${!var}'"
done
((ROUNDS >= 1 && DURATION >= 1 && CONNECTIONS >= 1)) || die "ROUNDS, DURATION, CONNECTIONS must be >= 1"

# ---------------------------------------------------------------------------- processes
# Every process we start is listed here; cleanup stops them on any exit, Ctrl-C included.
STARTED=()

alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        local left=0
        for pid in "${STARTED[@]}"; do alive "$pid" && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for pid in "${STARTED[@]}"; do
        if alive "$pid"; then
            log "pid $pid did not stop on SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
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
SUDO=
[[ $EUID -ne 0 ]] && SUDO=sudo
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [[ ! -x $NGINX ]] || ! command -v wrk >/dev/null; then
    log "installing nginx-light and wrk"
    $SUDO apt-get update
    $SUDO apt-get install -y nginx-light wrk
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
for tool in wrk taskset python3 getconf timeout flock; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
(($(nproc) >= 2)) || die "needs 2 CPUs (proxy on CPU $PROXY_CPU, origin and wrk on CPU $LOAD_CPU)"

if [[ $SKIP_RINGWAY != 1 ]]; then
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
for port in $ORIGIN_PORT $RINGWAY_PORT $NGINX_PORT; do
    port_open "$port" && die "port $port is already in use; is another perf/run.sh running?"
done
# Raise the soft fd limit to the hard one (what the servers inherit); raising the hard
# limit needs CAP_SYS_RESOURCE, which containers often lack.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
rm -rf "$WORK"
mkdir -p "$WORK/origin/tmp" "$WORK/nginx/tmp" "$WORK/wrk"

CLK_TCK=$(getconf CLK_TCK)
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
WRK=(taskset -c "$LOAD_CPU" timeout --kill-after=5 $((DURATION + WARMUP + 30)) wrk -t1 -c"$CONNECTIONS")

log "starting origin (nginx) on :$ORIGIN_PORT, CPU $LOAD_CPU"
ORIGIN_CMD=(taskset -c "$LOAD_CPU" "$NGINX" -p "$WORK/origin/" -c "$ORIGIN_CONF" -e "$WORK/origin/error.log")
"${ORIGIN_CMD[@]}" >"$WORK/origin/stdout.log" 2>&1 &
ORIGIN_PID=$!
STARTED+=("$ORIGIN_PID")
wait_ready origin "$ORIGIN_PORT" "$ORIGIN_PID" "$WORK/origin/error.log"
mapfile -t ORIGIN_WORKERS < <(children_of "$ORIGIN_PID")
STARTED+=("${ORIGIN_WORKERS[@]}")

log "starting nginx proxy on :$NGINX_PORT, CPU $PROXY_CPU"
NGINX_CMD=(taskset -c "$PROXY_CPU" "$NGINX" -p "$WORK/nginx/" -c "$NGINX_CONF" -e "$WORK/nginx/error.log")
"${NGINX_CMD[@]}" >"$WORK/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
STARTED+=("$NGINX_PID")
wait_ready nginx "$NGINX_PORT" "$NGINX_PID" "$WORK/nginx/error.log"
mapfile -t NGINX_WORKERS < <(children_of "$NGINX_PID")
STARTED+=("${NGINX_WORKERS[@]}")

CONTENDERS=(direct nginx)
RINGWAY_VERSION="skipped (SKIP_RINGWAY=1)"
if [[ $SKIP_RINGWAY != 1 ]]; then
    CONTENDERS=(direct ringway nginx)
    cp "$RINGWAY_SCENARIO" "$RINGWAY_CONF"
    RINGWAY_VERSION=$(timeout 5 "$RINGWAY_BIN" --version 2>&1 | head -n1 || true)
    log "starting ringway on :$RINGWAY_PORT, CPU $PROXY_CPU"
    RINGWAY_CMD=(taskset -c "$PROXY_CPU" "$RINGWAY_BIN" --config "$RINGWAY_CONF")
    "${RINGWAY_CMD[@]}" >"$WORK/ringway.log" 2>&1 &
    RINGWAY_PID=$!
    STARTED+=("$RINGWAY_PID")
    wait_ready ringway "$RINGWAY_PORT" "$RINGWAY_PID" "$WORK/ringway.log"
fi

affinity() { taskset -pc "$1" 2>/dev/null | sed 's/.*: //'; }
AFFINITY="origin worker: $(affinity "${ORIGIN_WORKERS[0]}"), nginx worker: $(affinity "${NGINX_WORKERS[0]}")"
[[ $SKIP_RINGWAY != 1 ]] && AFFINITY+=", ringway: $(affinity "$RINGWAY_PID")"
log "CPU affinity: $AFFINITY"

port_of() {
    case $1 in
        direct) echo "$ORIGIN_PORT" ;;
        ringway) echo "$RINGWAY_PORT" ;;
        nginx) echo "$NGINX_PORT" ;;
    esac
}

# The processes whose CPU time counts for a contender: none for direct.
proxy_pids() {
    case $1 in
        ringway) echo "$RINGWAY_PID" ;;
        nginx) echo "$NGINX_PID" && children_of "$NGINX_PID" ;;
    esac
    return 0
}

# ---------------------------------------------------------------------------- load
RUNS_TSV=$WORK/runs.tsv
printf 'round\tcontender\tport\twrk_rc\twall_s\tproxy_ticks\torigin_ticks\tcpu0_busy\tcpu0_steal\tcpu0_total\tproc_note\twrk_out\n' >"$RUNS_TSV"

run_wrk() { # out_file seconds port -> sets WRK_RC
    WRK_RC=0
    "${WRK[@]}" -d"$2"s --latency "http://127.0.0.1:$3/" >"$1" 2>&1 &
    local pid=$!
    STARTED+=("$pid")
    wait "$pid" || WRK_RC=$?
}

if ((WARMUP > 0)); then
    for c in "${CONTENDERS[@]}"; do
        log "warm-up: $c, ${WARMUP}s"
        run_wrk "$WORK/wrk/warmup-$c.txt" "$WARMUP" "$(port_of "$c")"
        sleep 1
    done
fi

origin_pids=("$ORIGIN_PID" "${ORIGIN_WORKERS[@]}")
for ((round = 1; round <= ROUNDS; round++)); do
    for c in "${CONTENDERS[@]}"; do
        port=$(port_of "$c")
        out=$WORK/wrk/round$round-$c.txt
        log "round $round/$ROUNDS: $c (:$port), ${DURATION}s"
        mapfile -t pids < <(proxy_pids "$c")
        note=
        proxy_before=$(cpu_ticks "${pids[@]}") || note="proxy process gone before the run"
        origin_before=$(cpu_ticks "${origin_pids[@]}") || note="origin process gone before the run"
        read -r busy0 steal0 total0 < <(cpu_stat "$PROXY_CPU")
        t0=$(date +%s.%N)
        run_wrk "$out" "$DURATION" "$port"
        t1=$(date +%s.%N)
        read -r busy1 steal1 total1 < <(cpu_stat "$PROXY_CPU")
        proxy_after=$(cpu_ticks "${pids[@]}") || note="proxy process exited during the run"
        origin_after=$(cpu_ticks "${origin_pids[@]}") || note="origin process exited during the run"
        mapfile -t pids_after < <(proxy_pids "$c")
        [[ "${pids[*]}" == "${pids_after[*]}" ]] || note="proxy processes changed during the run (respawn?)"
        proxy_ticks=
        origin_ticks=
        if [[ -z $note ]]; then
            ((${#pids[@]})) && proxy_ticks=$((proxy_after - proxy_before))
            origin_ticks=$((origin_after - origin_before))
        fi
        wall=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$c" "$port" "$WRK_RC" \
            "$wall" "$proxy_ticks" "$origin_ticks" $((busy1 - busy0)) $((steal1 - steal0)) \
            $((total1 - total0)) "$note" "$out" >>"$RUNS_TSV"
        grep -E 'Requests/sec|requests in|errors|Non-2xx' "$out" | sed 's/^ */    /' >&2 || true
        [[ -n $note ]] && log "  $note"
        for pid in "${origin_pids[@]}" "${pids[@]}"; do
            alive "$pid" && continue
            for f in "$WORK/origin/error.log" "$WORK/nginx/error.log" "$WORK/ringway.log"; do
                [[ -s $f ]] && log "tail of ${f#"$ROOT"/}:" && tail -n 20 "$f" >&2
            done
            die "a server process ($pid) exited during round $round ($c); stopping"
        done
        sleep 1
    done
done

for f in "$WORK/origin/error.log" "$WORK/nginx/error.log"; do
    if grep -qE '\[(alert|crit|emerg|error)\]' "$f" 2>/dev/null; then
        log "warning: ${f#"$ROOT"/} has errors:"
        grep -E '\[(alert|crit|emerg|error)\]' "$f" | tail -n 5 >&2
    fi
done

# ---------------------------------------------------------------------------- report
DATE=$(date +%F)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo nocommit)
if [[ -n $(git status --porcelain --untracked-files=no -- . ':!perf/results' 2>/dev/null) ]]; then
    COMMIT+=-dirty
fi
mkdir -p "$RESULTS_DIR"
base=$RESULTS_DIR/$DATE-$COMMIT-$SCENARIO
n=1
while [[ -e $base.md || -e $base.json ]]; do
    n=$((n + 1))
    base=$RESULTS_DIR/$DATE-$COMMIT-$SCENARIO-$n
done

rel() { sed "s|$ROOT/||g"; }
COMMANDS=$(
    {
        echo "# origin"
        echo "${ORIGIN_CMD[*]}"
        echo "# contender nginx"
        echo "${NGINX_CMD[*]}"
        [[ $SKIP_RINGWAY != 1 ]] && echo "# contender ringway" && echo "${RINGWAY_CMD[*]}"
        echo "# load, one per contender: :$ORIGIN_PORT direct, :$RINGWAY_PORT ringway, :$NGINX_PORT nginx"
        echo "taskset -c $LOAD_CPU wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency http://127.0.0.1:PORT/"
        echo "# CPU: utime+stime (/proc/PID/stat fields 14+15, CLK_TCK=$CLK_TCK) of the proxy's"
        echo "# processes (nginx: master + worker; ringway: its process) before and after each load"
    } | rel
)
CONFIGS="perf/origin/nginx.conf perf/origin/nginx-proxy.conf"
[[ $SKIP_RINGWAY != 1 ]] && CONFIGS+=" perf/scenarios/$SCENARIO.toml"

PERF_CLK_TCK=$CLK_TCK \
PERF_RUNS_TSV=$RUNS_TSV \
PERF_OUT_MD=$base.md \
PERF_OUT_JSON=$base.json \
PERF_CONFIGS=$CONFIGS \
PERF_META_SCENARIO=$SCENARIO \
PERF_META_DATE=$DATE \
PERF_META_COMMIT=$COMMIT \
PERF_META_MACHINE="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)" \
PERF_META_NPROC="$(nproc)" \
PERF_META_KERNEL="$(uname -r)" \
PERF_META_LOADAVG="$LOADAVG_START" \
PERF_META_NGINX_VERSION="$("$NGINX" -v 2>&1 | head -n1)" \
PERF_META_WRK_VERSION="$(wrk -v 2>&1 | head -n1 | sed 's/ Copyright.*//' || true)" \
PERF_META_RINGWAY_VERSION="${RINGWAY_VERSION:-unknown (--version printed nothing)}" \
PERF_META_ROUNDS=$ROUNDS \
PERF_META_DURATION_S=$DURATION \
PERF_META_CONNECTIONS=$CONNECTIONS \
PERF_META_AFFINITY="$AFFINITY" \
PERF_META_COMMANDS="$COMMANDS" \
    python3 "$ROOT/perf/report.py"
