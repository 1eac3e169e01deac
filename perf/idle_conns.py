#!/usr/bin/env python3
"""Hold many idle keep-alive connections open through a proxy (the idle_10k scenario).

    perf/idle_conns.py --port 18091 --connections 10000 --ready FILE --result FILE

1. Opens --connections connections (at most --parallel in progress at a time) and sends
   one `GET /` on each, reading the whole response, so that every connection has been
   through the proxy's HTTP state machine and now sits idle between requests.
2. Writes the phase-1 counts as JSON to --ready and then waits, holding all of them open,
   until the file --go exists (perf/run.sh samples the proxy's memory in between).
3. Sends a second `GET /` on every connection, to show that the proxy really kept them
   (a proxy that dropped idle connections would look cheap), closes them all, and writes
   the final JSON to --result.

A connection that fails to connect, is closed, or does not answer 200 counts as an error.
Source addresses are spread over 127.0.0.1..127.0.0.N (--sources) so that ephemeral ports
never run short. Standard library only (non-blocking sockets and epoll, which costs a
fraction of asyncio's CPU per connection); needs `ulimit -n` above --connections.
"""

import argparse
import errno
import json
import os
import select
import socket
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class Counts:
    def __init__(self):
        self.ok = 0
        self.statuses = {}
        self.errors = 0
        self.samples = []

    def status(self, code):
        self.statuses[code] = self.statuses.get(code, 0) + 1
        if code == "200":
            self.ok += 1
        else:
            self.errors += 1

    def error(self, text):
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(text)

    def json(self):
        return {"ok": self.ok, "statuses": self.statuses, "errors": self.errors,
                "error_samples": self.samples}


def response_done(buf):
    """None while the response is incomplete; else its status code (as text)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if len(buf) < end + 4 + length:
        return None
    parts = lines[0].split()
    return parts[1].decode(errors="replace") if len(parts) > 1 else "?"


def exchange(socks, counts, parallel, timeout_s, connect_to=None, sources=1):
    """One request/response on each socket (connect_to: open new ones first). Returns the
    sockets that got a complete response; closes the rest."""
    ep = select.epoll()
    pending = list(range(len(socks)))
    pending.reverse()
    state = {}  # fd -> [index, phase ("connect" | "read"), buffer, started]
    done = []
    deadline = time.monotonic() + timeout_s

    def start(i):
        if connect_to is not None:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((f"127.0.0.{1 + i % sources}", 0))
            err = s.connect_ex(connect_to)
            if err not in (0, errno.EINPROGRESS):
                counts.error(f"connect: {errno.errorcode.get(err, err)}")
                s.close()
                return
            socks[i] = s
            state[s.fileno()] = [i, "connect", b""]
            ep.register(s.fileno(), select.EPOLLOUT)
        else:
            s = socks[i]
            try:
                s.send(REQUEST)
            except OSError as e:
                counts.error(f"send: {e}")
                s.close()
                return
            state[s.fileno()] = [i, "read", b""]
            ep.register(s.fileno(), select.EPOLLIN)

    def fail(fd, text):
        i = state.pop(fd)[0]
        ep.unregister(fd)
        counts.error(text)
        socks[i].close()

    while pending or state:
        while pending and len(state) < parallel:
            start(pending.pop())
        if time.monotonic() > deadline:
            for fd in list(state):
                fail(fd, "timeout")
            for i in pending:
                counts.error("not started before the timeout")
            break
        for fd, ev in ep.poll(0.5):
            st = state[fd]
            s = socks[st[0]]
            if st[1] == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(fd, f"connect: {errno.errorcode.get(err, err)}")
                    continue
                try:
                    s.send(REQUEST)
                except OSError as e:
                    fail(fd, f"send: {e}")
                    continue
                st[1] = "read"
                ep.modify(fd, select.EPOLLIN)
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                fail(fd, f"recv: {e}")
                continue
            if not data:
                fail(fd, "closed by the proxy")
                continue
            st[2] += data
            code = response_done(st[2])
            if code is None:
                continue
            state.pop(fd)
            ep.unregister(fd)
            counts.status(code)
            if code == "200":
                done.append(s)
            else:
                s.close()
    ep.close()
    return done


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--parallel", type=int, default=256)
    p.add_argument("--sources", type=int, default=4, help="source addresses 127.0.0.1..N")
    p.add_argument("--ready", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--go", required=True, help="hold the connections until this file exists")
    p.add_argument("--hold-max", type=float, default=120, help="give up waiting for --go")
    args = p.parse_args()

    first, second = Counts(), Counts()
    t0 = time.monotonic()
    socks = exchange([None] * args.connections, first, args.parallel, 120,
                     connect_to=("127.0.0.1", args.port), sources=args.sources)
    opened_s = time.monotonic() - t0
    with open(args.ready + ".tmp", "w") as f:
        json.dump({"connections": args.connections, "open": len(socks),
                   "open_s": round(opened_s, 3), "first": first.json()}, f)
    os.rename(args.ready + ".tmp", args.ready)

    t1 = time.monotonic()
    got = False
    while not got and time.monotonic() - t1 < args.hold_max:
        time.sleep(0.05)
        got = os.path.exists(args.go)
    held_s = time.monotonic() - t1
    again = exchange(list(socks), second, args.parallel, 120)
    for s in socks:
        s.close()
    out = {"tool": "idle_conns.py", "connections": args.connections, "open": len(socks),
           "open_s": round(opened_s, 3), "held_s": round(held_s, 3), "told_to_finish": got,
           "second_ok": len(again), "first": first.json(), "second": second.json()}
    out["errors"] = first.errors + second.errors + (0 if got else 1)
    with open(args.result, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
