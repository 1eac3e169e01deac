#!/usr/bin/env python3
"""Global rate limits (issue 20): what they cost and how well N proxies hold the rate.

    BIN=/work/target-release-discovery/release/ringway python3 perf/global_rate.py [cost|accuracy]

cost: one ringway (1 worker, CPU 0) answering a fixed 200 route, wrk -t1 -c16 (CPU 1) for
DURATION s after WARMUP s, three variants rotated each round: no limit, a local limit and a
global one through a local redis-server, both at a rate that never refuses (1e9/s), so
every request pays the bucket and none is refused. Reported: CPU ticks of the whole
ringway process (workers, control and Redis threads) per 1,000 requests, and redis-server's.

accuracy: 1, 2 and 4 ringway processes (1 worker each) share one global limit of RATE/s
(burst 10) through one redis-server; a paced client offers 150 req/s to each; the 200s
counted over MEASURE s after 2 s are the observed rate.

Loopback only; takes the perf lock. Prints a markdown report on stdout.
"""

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/ringway"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))
WARMUP = int(os.environ.get("WARMUP", "2"))
MEASURE = int(os.environ.get("MEASURE", "20"))
RATE = 100.0
OFFERED = 150.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ticks(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_port(port):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on :{port}")


class Redis:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def ringway(limit, cpu=None):
    port = free_port()
    toml = (f'workers = 1\n[admin]\naddr = "127.0.0.1:{free_port()}"\n'
            f'[[listener]]\naddr = "127.0.0.1:{port}"\n{limit}\n'
            '[[listener.route]]\nrespond = { status = 200, body = "ok\\n" }\n')
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(toml)
    config.close()
    command = [BIN, "--config", config.name]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu)] + command
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port, config.name


def stop(proc, config):
    proc.terminate()
    proc.wait()
    os.unlink(config)


def wrk(port, seconds):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds}s",
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    raise SystemExit(f"no request count in wrk's output:\n{out}")


def cost():
    redis = Redis()
    limits = {
        "none": "",
        "local": "rate_limit = { rate = 1e9 }",
        "global": f'rate_limit = {{ rate = 1e9, scope = "global", '
                  f'redis = "127.0.0.1:{redis.port}" }}',
    }
    names = list(limits)
    rows = []
    for round_ in range(ROUNDS):
        order = names[round_ % 3:] + names[:round_ % 3]
        for name in order:
            proc, port, config = ringway(limits[name], cpu=0)
            wrk(port, WARMUP)
            before, redis_before = ticks(proc.pid), ticks(redis.proc.pid)
            requests = wrk(port, DURATION)
            spent, redis_spent = ticks(proc.pid) - before, ticks(redis.proc.pid) - redis_before
            stop(proc, config)
            rows.append((round_, name, requests, spent, redis_spent))
            print(f"# {round_} {name}: {requests} requests, {spent} ticks, redis {redis_spent}",
                  file=sys.stderr)
    redis.stop()
    print("| round | variant | requests | ringway CPU ms / 1k req | redis CPU ms / 1k req |")
    print("|---|---|---|---|---|")
    per = {}
    for round_, name, requests, spent, redis_spent in rows:
        ms = spent * 1000 / CLK_TCK / requests * 1000
        redis_ms = redis_spent * 1000 / CLK_TCK / requests * 1000
        per.setdefault(name, []).append(ms)
        print(f"| {round_} | {name} | {requests} | {ms:.3f} | {redis_ms:.3f} |")
    print()
    base = sum(per["none"]) / len(per["none"])
    for name in names:
        mean = sum(per[name]) / len(per[name])
        print(f"- {name}: {mean:.3f} CPU ms per 1k requests, {mean / base:.3f}x no limit")


def offer(port, stop_at, passed):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    period, next_at = 1.0 / OFFERED, time.time()
    while time.time() < stop_at:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            passed.append(time.time())
        elif response.status != 429:
            raise SystemExit(f"status {response.status}")
        next_at += period
        delay = next_at - time.time()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.time()


def accuracy():
    print(f"| proxies | configured | offered | observed ({MEASURE} s) | error |")
    print("|---|---|---|---|---|")
    for count in (1, 2, 4):
        redis = Redis()
        limit = (f'rate_limit = {{ rate = {RATE}, burst = 10, scope = "global", '
                 f'redis = "127.0.0.1:{redis.port}" }}')
        proxies = [ringway(limit) for _ in range(count)]
        start = time.time()
        stop_at = start + 2 + MEASURE + 0.2
        tallies = [[] for _ in proxies]
        threads = [threading.Thread(target=offer, args=(port, stop_at, tally))
                   for (_, port, _), tally in zip(proxies, tallies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for proc, _, config in proxies:
            stop(proc, config)
        redis.stop()
        window = (start + 2, start + 2 + MEASURE)
        passed = sum(1 for tally in tallies for at in tally if window[0] <= at < window[1])
        observed = passed / MEASURE
        shares = "/".join(str(sum(1 for at in t if window[0] <= at < window[1])) for t in tallies)
        print(f"| {count} | {RATE:.0f}/s | {OFFERED * count:.0f}/s | {observed:.1f}/s "
              f"({shares}) | {100 * (observed - RATE) / RATE:+.1f}% |")


def main():
    lock = open(os.path.join(tempfile.gettempdir(), "ringway-perf.lock"), "w")
    import fcntl
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("another perf run holds the lock; waiting", file=sys.stderr)
        fcntl.flock(lock, fcntl.LOCK_EX)
    which = sys.argv[1:] or ["cost", "accuracy"]
    print(f"binary: {BIN}; kernel {os.uname().release}; {os.cpu_count()} CPUs\n")
    if "cost" in which:
        cost()
        print()
    if "accuracy" in which:
        accuracy()


if __name__ == "__main__":
    main()
