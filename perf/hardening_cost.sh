#!/usr/bin/env bash
# CPU per request of two ringway binaries side by side: a 16 KiB POST (request buffering
# on and off) and a plain GET, each at wrk -t1 -c16. Same layout as perf/run.sh: the proxy
# (1 worker) on CPU 0, the perf origin (1 nginx worker) and wrk on CPU 1, loopback only.
#
#   BASE_BIN=/work/bins/ringway-f0aa103 HARD_BIN=/work/bins/ringway-f9aa5fa perf/hardening_cost.sh
#
# Variants (rotated by one each round, as perf/run.sh rotates contenders):
#   post:base        BASE_BIN, perf/contenders/ringway.toml           POST /upload 16 KiB
#   post:hard        HARD_BIN, the same config (request buffering on)  POST /upload 16 KiB
#   post:hard_nobuf  HARD_BIN, plus `request_buffering = false` on the route
#   get:base, get:hard  GET /, like perf/run.sh's small_c16
# VARIANTS="get:base get:hard" runs a subset.
# Each run: a fresh ringway, WARMUP s of unrecorded load, then DURATION s recorded.
# Output: one TSV line per run on stdout and in $WORK/runs.tsv (ticks are clock ticks).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE_BIN=${BASE_BIN:?set BASE_BIN}
HARD_BIN=${HARD_BIN:?set HARD_BIN}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ORIGIN_PORT=18080
PORT=18081
WORK=$ROOT/perf/work/hardening
CLK_TCK=$(getconf CLK_TCK)

exec 9>"${TMPDIR:-/tmp}/ringway-perf.lock"
flock -n 9 || { echo "another perf run holds the lock" >&2; exit 1; }
for p in $ORIGIN_PORT $PORT; do
    if timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$p" 2>/dev/null; then
        echo "port $p is in use" >&2; exit 1
    fi
done
rm -rf "$WORK"
mkdir -p "$WORK/origin/tmp" "$WORK/origin/html" "$WORK/load"

STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in "${STARTED[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

ticks() { # utime + stime of one pid (includes all its threads, dead ones too)
    local s f
    s=$(cat "/proc/$1/stat") || return 1
    read -r -a f <<<"${s##*) }"
    echo $((f[11] + f[12]))
}
cpu_stat() { # busy steal total of one CPU
    local name user nice system idle iowait irq softirq steal
    read -r name user nice system idle iowait irq softirq steal _ < <(grep "^cpu$1 " /proc/stat)
    echo "$((user + nice + system + irq + softirq)) $steal $((user + nice + system + idle + iowait + irq + softirq + steal))"
}
status_of() { # HTTP status of GET / on a port
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3
        IFS=" " read -r _ c _ <&3 && echo "$c"' _ "$1" 2>/dev/null || true
}
wait_ready() { # port pid
    local i
    for ((i = 0; i < 150; i++)); do
        [[ $(status_of "$1") == 200 ]] && return 0
        kill -0 "$2" 2>/dev/null || { echo "pid $2 exited" >&2; return 1; }
        sleep 0.2
    done
    echo "port $1 not ready" >&2; return 1
}

# The origin: perf/origin/nginx.conf, one worker on CPU 1.
sed -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" perf/origin/nginx.conf >"$WORK/origin/nginx.conf"
taskset -c 1 nginx -p "$WORK/origin/" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" \
    >"$WORK/origin/stdout.log" 2>&1 &
origin=$!
STARTED+=("$origin")
wait_ready $ORIGIN_PORT $origin

sed -e "s|@PORT@|$PORT|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" -e "s|@WORK@|$WORK|g" \
    perf/contenders/ringway.toml >"$WORK/ringway.toml"
# The same config with request buffering off on the (only) route.
sed -e 's|^cluster = "origin"$|cluster = "origin"\nrequest_buffering = false|' \
    "$WORK/ringway.toml" >"$WORK/ringway-nobuf.toml"
grep -q '^request_buffering = false$' "$WORK/ringway-nobuf.toml"
"$HARD_BIN" check "$WORK/ringway-nobuf.toml" >"$WORK/check-nobuf.log" 2>&1 ||
    { cat "$WORK/check-nobuf.log" >&2; exit 1; }

# Before each run, wait (at most QUIET_WAIT s) until both CPUs were under QUIET_PCT % busy
# over one second; the run goes ahead either way and its other-load column tells.
QUIET_PCT=${QUIET_PCT:-15}
QUIET_WAIT=${QUIET_WAIT:-120}
busy_total() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
wait_quiet() {
    local i b0 t0 b1 t1
    for ((i = 0; i < QUIET_WAIT; i++)); do
        read -r b0 t0 < <(busy_total)
        sleep 1
        read -r b1 t1 < <(busy_total)
        (((b1 - b0) * 100 < QUIET_PCT * (t1 - t0))) && return 0
    done
    echo "still busy after ${QUIET_WAIT} s; running anyway" >&2
}

load() { # seconds: wrk on CPU 1, bounded by timeout
    taskset -c 1 timeout $(($1 + 20)) wrk -t1 -c16 -d"$1"s --latency "${target[@]}"
}

read -r -a VARIANTS <<<"${VARIANTS:-post:base post:hard post:hard_nobuf get:base get:hard}"
printf 'round\tvariant\trequests\treq_s\tproxy_ticks\tcpu_us_per_req\tcpu0_other_pct\tcpu1_busy_pct\twall_s\terrors\n' |
    tee "$WORK/runs.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
    n=${#VARIANTS[@]}
    for ((k = 0; k < n; k++)); do
        v=${VARIANTS[$(((k + r - 1) % n))]}
        kind=${v%%:*} which=${v#*:}
        bin=$BASE_BIN conf=$WORK/ringway.toml
        [[ $which == hard* ]] && bin=$HARD_BIN
        [[ $which == hard_nobuf ]] && conf=$WORK/ringway-nobuf.toml
        target=("http://127.0.0.1:$PORT/")
        [[ $kind == post ]] && target=(-s perf/post_16k.lua "http://127.0.0.1:$PORT/upload")
        wait_quiet
        taskset -c 0 "$bin" --config "$conf" >"$WORK/ringway.$r.$v.log" 2>&1 &
        pid=$!
        STARTED+=("$pid")
        wait_ready $PORT $pid
        if ((WARMUP > 0)); then load "$WARMUP" >/dev/null; fi
        t0=$(ticks "$pid")
        read -r b0 s0 tot0 < <(cpu_stat 0)
        read -r c1b0 _ c1t0 < <(cpu_stat 1)
        w0=$(date +%s.%N)
        out=$WORK/load/$r.${v/:/_}.txt
        load "$DURATION" >"$out" 2>&1 || echo "wrk rc=$?" >>"$out"
        w1=$(date +%s.%N)
        t1=$(ticks "$pid")
        read -r b1 s1 tot1 < <(cpu_stat 0)
        read -r c1b1 _ c1t1 < <(cpu_stat 1)
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
        reqs=$(awk '/requests in/ {print $1}' "$out")
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
        errs=$(grep -E 'Socket errors|Non-2xx|wrk rc=' "$out" | tr '\n' ' ' || true)
        python3 - "$r" "$v" "$reqs" "$rps" $((t1 - t0)) "$CLK_TCK" $((b1 - b0)) $((s1 - s0)) \
            $((tot1 - tot0)) $((c1b1 - c1b0)) $((c1t1 - c1t0)) "$w0" "$w1" "${errs:--}" <<'PY' |
import sys
r, v, reqs, rps, pt, hz, b, s, tot, c1b, c1t, w0, w1, errs = sys.argv[1:]
reqs, pt, hz, b, s, tot, c1b, c1t = map(int, (reqs, pt, hz, b, s, tot, c1b, c1t))
us = pt / hz * 1e6 / reqs
other = 100.0 * ((b + s) - pt) / tot if tot else 0.0   # CPU 0 busy+steal not the proxy's
print(f"{r}\t{v}\t{reqs}\t{float(rps):.0f}\t{pt}\t{us:.2f}\t{other:.1f}\t{100.0 * c1b / c1t:.1f}\t{float(w1) - float(w0):.1f}\t{errs.strip()}")
PY
            tee -a "$WORK/runs.tsv"
    done
done
