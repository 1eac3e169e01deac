#!/usr/bin/env bash
# io.ring_taskrun compared: rescheduling interrupts (RES in /proc/interrupts) and function
# call interrupts (CAL) on the worker's CPU 0 per request, the worker's voluntary context
# switches per request, and its CPU time per request, for each mode, at 16 and 256
# keep-alive connections, 3 interleaved rounds. The interrupt counts are counts, not
# times: they hold on a machine busy with other work, where CPU time does not.
#
#   RINGWAY_BIN=target/release/ringway perf/ring_taskrun.sh
#   CONNS=16 ROUNDS=5 perf/ring_taskrun.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${RINGWAY_BIN:-$ROOT/target/release/ringway}
[[ -x $BIN ]] || { echo "build first: cargo build --release (or set RINGWAY_BIN)" >&2; exit 1; }
WORK=$ROOT/perf/work/taskrun
mkdir -p "$WORK/origin/html" "$WORK/origin/tmp"/{body,proxy,fastcgi,uwsgi,scgi}
sed -e "s|@ORIGIN_PORT@|28080|g" "$ROOT/perf/origin/nginx.conf" >"$WORK/origin/nginx.conf"
cd "$WORK"
exec 9>/tmp/ringway-perf.lock
flock 9
taskset -c 1 nginx -p "$PWD/origin/" -c "$PWD/origin/nginx.conf" &
NGX=$!
trap 'kill $NGX 2>/dev/null || true' EXIT
sleep 1
res0() { awk '/^ *RES:/{print $2}' /proc/interrupts; }
cal0() { awk '/^ *CAL:/{print $2}' /proc/interrupts; }
echo "round mode connections requests RES/request CAL/request voluntary-switches/request cpu-us/request"
for round in $(seq 1 "${ROUNDS:-3}"); do
for mode in interrupt coop defer; do
  for conns in ${CONNS:-16 256}; do
  cat > rw-$mode.toml <<T
workers = [0]
[io]
driver = "io_uring"
ring_taskrun = "$mode"
[admin]
enabled = false
[timeouts]
keep_alive_timeout_ms = 600000
[[listener]]
addr = "127.0.0.1:28081"
backlog = 4096
[[listener.route]]
cluster = "origin"
[cluster.origin]
backends = [{ addr = "127.0.0.1:28080" }]
pool_idle_max = 256
pool_idle_timeout_ms = 600000
pool_requests_max = 1000000000
T
  RINGWAY_LOG=warn taskset -c 0 "$BIN" --config rw-$mode.toml &
  RW=$!
  sleep 0.5
  taskset -c 1 wrk -t1 -c$conns -d1s http://127.0.0.1:28081/ >/dev/null
  r0=$(res0); c0=$(cal0)
  s0=$(awk '{print $14+$15}' /proc/$RW/stat)
  v0=$(awk '/^voluntary_ctxt/{print $2}' /proc/$RW/task/*/status | paste -sd+ | bc)
  out=$(taskset -c 1 wrk -t1 -c$conns -d4s http://127.0.0.1:28081/)
  r1=$(res0); c1=$(cal0)
  s1=$(awk '{print $14+$15}' /proc/$RW/stat)
  v1=$(awk '/^voluntary_ctxt/{print $2}' /proc/$RW/task/*/status | paste -sd+ | bc)
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  echo "$round $mode $conns $reqs $(echo "scale=4; ($r1-$r0)/$reqs" | bc)" \
    "$(echo "scale=4; ($c1-$c0)/$reqs" | bc) $(echo "scale=4; ($v1-$v0)/$reqs" | bc)" \
    "$(echo "scale=2; ($s1-$s0)*1000000/$(getconf CLK_TCK)/$reqs" | bc)"
  kill $RW; wait $RW 2>/dev/null
  done
done
done
