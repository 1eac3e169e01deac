#!/usr/bin/env bash
# The cost of JWT authentication: keep-alive GETs carrying an ES256 token through a route
# that verifies it, against the same route without auth, on one ringway worker. perf/run.sh
# runs this for SCENARIOS=jwt.
#
#   perf/jwt.sh                              # 5 rounds x 10 s, then callgrind
#   ROUNDS=1 DURATION=3 CALLGRIND=0 perf/jwt.sh   # a quick check
#   RINGWAY_BIN=/path/to/ringway perf/jwt.sh
#
# One ringway process (one worker on CPU 0) has three listeners with the same route to the
# same origin: `plain` (no auth), `jwt` (ES256 with the verified-token cache, the default)
# and `jwt_nocache` (cache_entries_max = 0: every request verifies the signature). wrk
# -t1 -c16 on CPU 1 sends the same token on every request. The three run interleaved, the
# order rotating each round; CPU per request is the process's utime + stime over the run
# divided by the requests wrk completed. Then perf/callgrind.sh counts instructions per
# request for each (epoll driver), which a busy machine does not disturb.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -n ${RINGWAY_BIN:-} && ${RINGWAY_BIN} != /* ]] && RINGWAY_BIN=$PWD/$RINGWAY_BIN
cd "$ROOT"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
CALLGRIND=${CALLGRIND:-1}
RESULTS_DIR=${RESULTS_DIR:-perf/results}
PROXY_CPU=0
LOAD_CPU=1
ORIGIN_PORT=18750
declare -A PORT=([plain]=18751 [jwt]=18752 [jwt_nocache]=18753)
VARIANTS=(plain jwt jwt_nocache)
WORK=$ROOT/perf/work-jwt
log() { echo "perf/jwt: $*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=perf/lib.sh
source perf/lib.sh
APT_NEED=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || APT_NEED+=(nginx-light)
command -v wrk >/dev/null || APT_NEED+=(wrk)
command -v openssl >/dev/null || APT_NEED+=(openssl)
command -v python3 >/dev/null || APT_NEED+=(python3)
((CALLGRIND)) && { command -v valgrind >/dev/null || APT_NEED+=(valgrind); }
apt_install "${APT_NEED[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ringway_and_lock

rm -rf "$WORK"
mkdir -p "$WORK/origin/tmp" "$WORK/ringway" "$WORK/load"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------------------- the token
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ec.pem"
openssl ec -in "$WORK/ec.pem" -pubout -out "$WORK/ec.pub.pem" 2>/dev/null
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
HEADER_B64=$(printf '{"alg":"ES256","typ":"JWT","kid":"bench"}' | b64url)
PAYLOAD_B64=$(printf '{"sub":"bench","iss":"https://issuer.bench","aud":"api","exp":%s,"scope":"orders:read"}' \
    $(($(date +%s) + 86400)) | b64url)
# openssl signs in DER (SEQUENCE of r and s); JWS wants r || s, 32 bytes each.
SIGNATURE=$(printf '%s.%s' "$HEADER_B64" "$PAYLOAD_B64" | openssl dgst -sha256 -sign "$WORK/ec.pem" |
    python3 -c '
import base64, sys
der = sys.stdin.buffer.read()
i = 2 + (der[1] & 0x7f if der[1] & 0x80 else 0)
out = b""
for _ in range(2):
    n = der[i + 1]
    out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
    i += 2 + n
print(base64.urlsafe_b64encode(out).decode().rstrip("="))')
TOKEN=$HEADER_B64.$PAYLOAD_B64.$SIGNATURE

# ---------------------------------------------------------------------------- servers
cat >"$WORK/origin/nginx.conf" <<CONF
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
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        location / { return 200 "hello world\\n"; }
    }
}
CONF
# The route's auth table of each JWT variant (also given to perf/callgrind.sh).
jwt_auth() { # prefix extra_line
    printf '[%s.auth.jwt]\nalgorithms = ["ES256"]\nkeys = [{ file = "%s", kid = "bench" }]\n' \
        "$1" "$WORK/ec.pub.pem"
    printf 'issuers = ["https://issuer.bench"]\naudiences = ["api"]\n%s\n' "$2"
}
{
    printf '# ringway: one worker on CPU %s, no access log.\nworkers = [%s]\n' "$PROXY_CPU" "$PROXY_CPU"
    printf '[admin]\nenabled = false\n[timeouts]\nkeep_alive_timeout_ms = 600000\n'
    for v in "${VARIANTS[@]}"; do
        printf '[[listener]]\nname = "%s"\naddr = "127.0.0.1:%s"\nbacklog = 4096\n' "$v" "${PORT[$v]}"
        printf '[[listener.route]]\ncluster = "origin"\n'
        case $v in
            jwt) jwt_auth listener.route "" ;;
            jwt_nocache) jwt_auth listener.route "cache_entries_max = 0" ;;
        esac
    done
    printf '[cluster.origin]\nbackends = ["127.0.0.1:%s"]\n' "$ORIGIN_PORT"
} >"$WORK/ringway/ringway.toml"

log "origin (nginx) on :$ORIGIN_PORT, CPU $LOAD_CPU"
start origin "$WORK/origin/stdout.log" taskset -c "$LOAD_CPU" "$NGINX" -p "$WORK/origin/" -c nginx.conf
wait_port "$ORIGIN_PORT" "$PID_origin" "$WORK/origin/stdout.log"
start ringway "$WORK/ringway/stdout.log" taskset -c "$PROXY_CPU" "$RINGWAY_BIN" --config "$WORK/ringway/ringway.toml"
for v in "${VARIANTS[@]}"; do wait_port "${PORT[$v]}" "$PID_ringway" "$WORK/ringway/stdout.log"; done

# Each variant answers the token with 200, and the JWT ones refuse a request without it.
for v in "${VARIANTS[@]}"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${PORT[$v]}/")
    [[ $status == 200 ]] || die "$v answered $status to the token"
done
for v in jwt jwt_nocache; do
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$v]}/")
    [[ $status == 401 ]] || die "$v answered $status without a token"
done

# ---------------------------------------------------------------------------- load
RUNS=$WORK/runs.tsv
printf 'round\tvariant\trequests\tnon2xx\tseconds\tproxy_ticks\n' >"$RUNS"
run() { # round variant
    local round=$1 v=$2 out=$WORK/load/$1-$2.txt before after requests non2xx seconds
    before=$(cpu_ticks "$PID_ringway")
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION"s \
        -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${PORT[$v]}/" >"$out" 2>&1
    after=$(cpu_ticks "$PID_ringway")
    requests=$(sed -n 's/^ *\([0-9]*\) requests in \([0-9.]*\)s.*/\1/p' "$out")
    seconds=$(sed -n 's/^ *[0-9]* requests in \([0-9.]*\)s.*/\1/p' "$out")
    non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$v" "${requests:-0}" "${non2xx:-0}" \
        "${seconds:-0}" $((after - before)) >>"$RUNS"
    log "  round $round $v: ${requests:-0} requests in ${seconds:-?}s, ${non2xx:-0} non-2xx, $((after - before)) ticks"
}
log "warm-up"
for v in "${VARIANTS[@]}"; do
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:${PORT[$v]}/" >/dev/null 2>&1
done
for ((round = 1; round <= ROUNDS; round++)); do
    order=("${VARIANTS[@]:round%3}" "${VARIANTS[@]:0:round%3}")
    for v in "${order[@]}"; do
        run "$round" "$v"
        sleep 1
    done
done
kill -TERM "$PID_ringway" "$PID_origin" 2>/dev/null || true
sleep 0.5

# ---------------------------------------------------------------------------- callgrind
IR=$WORK/instructions.tsv
printf 'variant\tinstructions_per_request\n' >"$IR"
if ((CALLGRIND)); then
    for v in "${VARIANTS[@]}"; do
        case $v in
            plain) extra="" ;;
            jwt) extra=$(jwt_auth listener.route "") ;;
            jwt_nocache) extra=$(jwt_auth listener.route "cache_entries_max = 0") ;;
        esac
        ir=$(ROUTE_EXTRA=$extra HEADER="Authorization: Bearer $TOKEN" N1=${N1:-300} N2=${N2:-1300} \
            perf/callgrind.sh "$RINGWAY_BIN" | sed -n 's/^instructions per request: //p')
        log "  callgrind $v: ${ir:-?} instructions per request"
        printf '%s\t%s\n' "$v" "${ir:-nan}" >>"$IR"
    done
fi

# ---------------------------------------------------------------------------- report
mkdir -p "$RESULTS_DIR"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo nocommit)
[[ -n $(git status --porcelain --untracked-files=no -- . ':!perf/results' 2>/dev/null) ]] && COMMIT+=-dirty
OUT=$RESULTS_DIR/$(date +%F)-$COMMIT-jwt.md
PERF_RUNS=$RUNS PERF_IR=$IR PERF_OUT=$OUT PERF_CLK_TCK=$(getconf CLK_TCK) PERF_ROUNDS=$ROUNDS \
PERF_DURATION=$DURATION PERF_CONNECTIONS=$CONNECTIONS \
PERF_VERSIONS="$("$RINGWAY_BIN" --version 2>&1 | head -n1), $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2)" \
PERF_MACHINE="$(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs, $(uname -r)" \
PERF_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)" \
    python3 - <<'PY'
import csv, os, statistics
rows = list(csv.DictReader(open(os.environ["PERF_RUNS"]), delimiter="\t"))
tck = int(os.environ["PERF_CLK_TCK"])
lines = [
    "# JWT authentication: the added cost per request",
    "",
    f"{os.environ['PERF_VERSIONS']}; {os.environ['PERF_MACHINE']}; load average at the end"
    f" {os.environ['PERF_LOADAVG']}. {os.environ['PERF_ROUNDS']} interleaved rounds of"
    f" {os.environ['PERF_DURATION']} s per variant, wrk -t1 -c{os.environ['PERF_CONNECTIONS']}"
    " keep-alive GET / with `Authorization: Bearer <ES256 token>` (iss, aud, exp checked),"
    " through one ringway worker (CPU 0) to an nginx origin (CPU 1, with wrk). Variants, all in"
    " one process: `plain` (the route has no auth), `jwt` (ES256, the verified-token cache on:"
    " the default), `jwt_nocache` (cache_entries_max = 0: a signature check per request)."
    " Made by perf/jwt.sh.",
    "",
    "CPU per request: the ringway process's utime + stime (/proc/PID/stat) over the run,"
    " divided by the requests wrk completed.",
    "",
    "| round | variant | requests/s | CPU µs/request | non-2xx |",
    "|---|---|---|---|---|",
]
per = {}
for r in rows:
    req, sec, ticks = int(r["requests"] or 0), float(r["seconds"] or 0), int(r["proxy_ticks"])
    rate = req / sec if sec else 0
    cpu_us = ticks * 1e6 / tck / req if req else float("nan")
    per.setdefault(r["variant"], []).append((rate, cpu_us, int(r["round"])))
    lines.append(f"| {r['round']} | {r['variant']} | {rate:,.0f} | {cpu_us:.2f} | {r['non2xx']} |")
med = lambda xs, i: statistics.median(x[i] for x in xs)
plain = per.get("plain", [])
# The ratio of each round's pair (the same round, minutes apart at most), then its median.
def paired(v):
    by_round = {x[2]: x[1] for x in plain}
    ratios = [x[1] / by_round[x[2]] for x in per.get(v, []) if by_round.get(x[2])]
    return statistics.median(ratios) if ratios else float("nan")
lines += ["", "Medians; the CPU ratio is the median of each round's variant ÷ plain"
          " (goal for `jwt`: under 1.15):", "",
          "| variant | requests/s | CPU µs/request | CPU ÷ plain |", "|---|---|---|---|"]
for v in ["plain", "jwt", "jwt_nocache"]:
    xs = per.get(v)
    if xs:
        lines.append(f"| {v} | {med(xs,0):,.0f} | {med(xs,1):.2f} | {paired(v):.3f} |")
ir = {r["variant"]: r["instructions_per_request"]
      for r in csv.DictReader(open(os.environ["PERF_IR"]), delimiter="\t")}
if ir:
    lines += ["", "Instructions per request (perf/callgrind.sh, valgrind callgrind, epoll driver,"
              " curl keep-alive; (Ir(N2) - Ir(N1)) / (N2 - N1)):", "",
              "| variant | instructions/request | ÷ plain |", "|---|---|---|"]
    base = float(ir.get("plain", "nan"))
    for v, n in ir.items():
        lines.append(f"| {v} | {float(n):,.0f} | {float(n) / base:.3f} |")
open(os.environ["PERF_OUT"], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
log "wrote $OUT"
