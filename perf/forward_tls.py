#!/usr/bin/env python3
"""CONNECT + TLS keep-alive load through a forward proxy, for perf/forward.sh.

Each of --connections connections sends CONNECT to the proxy, makes one TLS handshake with
the origin through the tunnel, then sends GET / on it, one after another, until
--duration seconds have passed. Prints {"requests", "errors", "seconds"} as JSON.
"""
import argparse
import asyncio
import json
import re
import ssl
import time

LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


async def tunnel(args, context, deadline, counts):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.proxy_port)
        target = f"127.0.0.1:{args.origin_port}"
        writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not re.match(rb"HTTP/1\.[01] 200", head):
            counts["errors"] += 1
            return
        await writer.start_tls(context, server_hostname="localhost")
        request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
        while time.monotonic() < deadline:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            found = LENGTH.search(head)
            await reader.readexactly(int(found.group(1)) if found else 0)
            counts["requests"] += 1
        writer.close()
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.LimitOverrunError):
        counts["errors"] += 1


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy-port", type=int, required=True)
    parser.add_argument("--origin-port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10)
    args = parser.parse_args()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    counts = {"requests": 0, "errors": 0}
    started = time.monotonic()
    deadline = started + args.duration
    await asyncio.gather(*(tunnel(args, context, deadline, counts) for _ in range(args.connections)))
    counts["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(counts))


asyncio.run(main())
