#!/usr/bin/env python3
"""Two tiny keep-alive HTTP/1.1 origins for perf/reload.sh: PORT_A answers "a", PORT_B "b"."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading


def serve(port, body):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


threading.Thread(target=serve, args=(int(sys.argv[1]), b"a\n"), daemon=True).start()
serve(int(sys.argv[2]), b"b\n")
