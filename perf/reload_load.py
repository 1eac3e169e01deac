#!/usr/bin/env python3
"""Fixed-rate HTTP/1.1 load for the reload scenario (perf/reload.sh), with a connect probe.

Sends RATE requests per second in total (THREADS threads, each on its own schedule) to
127.0.0.1:PORT for SECONDS, on one keep-alive connection per thread or a new connection
per request, and runs a connect probe (connect and close every millisecond). A request
fails when it gets no complete 200 response (a reset, an early close, a timeout, another
status); a response with `Connection: close` is honoured, as a client does. Prints one
line: `requests=N failed=N refused=N probes=N`.
"""
import http.client
import socket
import sys
import threading
import time


def run(port, rate, seconds, keep_alive, threads=10):
    counts = {"requests": 0, "failed": 0, "refused": 0, "probes": 0}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def add(key):
        with lock:
            counts[key] += 1

    def client(offset):
        interval = threads / rate
        next_at = time.monotonic() + offset * interval / threads
        connection = None
        while True:
            now = time.monotonic()
            if now >= stop:
                break
            if next_at > now:
                time.sleep(next_at - now)
            next_at += interval
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                headers = {} if keep_alive else {"Connection": "close"}
                connection.request("GET", "/", headers=headers)
                response = connection.getresponse()
                response.read()
                add("requests")
                if response.status != 200:
                    add("failed")
                if not keep_alive or response.will_close:
                    connection.close()
                    connection = None
            except ConnectionRefusedError:
                add("refused")
                connection = None
            except (OSError, http.client.HTTPException):
                add("requests")
                add("failed")
                if connection is not None:
                    connection.close()
                connection = None

    def probe():
        while time.monotonic() < stop:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except ConnectionRefusedError:
                add("refused")
            except OSError:
                pass
            add("probes")
            time.sleep(0.001)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    workers.append(threading.Thread(target=probe))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(" ".join(f"{key}={value}" for key, value in counts.items()))


if __name__ == "__main__":
    port, rate, seconds, keep_alive = sys.argv[1:5]
    run(int(port), float(rate), float(seconds), keep_alive == "1")
