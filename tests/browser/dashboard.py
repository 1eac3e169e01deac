#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (on a pipe, no extra packages)
against ringway's live dashboard, and prints one JSON verdict line for
tests/it/dashboard.rs.

usage: dashboard.py ADMIN_URL CLUSTER BACKEND SCREENSHOT_PNG

It loads the dashboard, waits for it to go live, compares what the page shows (total
requests, requests per worker, the worker count, the backend's health and state) with
/stats fetched at the same time, drains the backend through the admin API and times how
long the page takes to show it, saves a screenshot, then prints STOP on stdout and waits
for a line on stdin (the test stops the proxy), checks the page says the admin API is
unreachable, prints START, waits for a line (the test starts the proxy again on the same
port) and times the page's return to live. Console errors and uncaught exceptions are
collected, apart from the failed fetches while the proxy is down.
"""
import base64
import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.request

ADMIN, CLUSTER, BACKEND, SCREENSHOT = sys.argv[1:5]


def high(fd):
    """`fd` moved to a descriptor number of 10 or more."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    def __init__(self):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Above 4, so that placing them on 3 and 4 in the child clobbers neither.
        to_chrome_r, from_chrome_w = (high(to_chrome_r), high(from_chrome_w))

        def fds():  # Chromium reads commands on fd 3 and writes answers on fd 4.
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.process = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-pipe", "--window-size=1400,1300", "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4, to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.session = None
        self.events = []

    def send(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def read(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    def close(self):
        self.process.kill()
        self.process.wait()


def stats():
    with urllib.request.urlopen(ADMIN + "/stats", timeout=5) as response:
        return json.load(response)


def wait_for(browser, expression, want, seconds):
    """Polls `expression` until `want(value)`; returns the seconds it took, or None."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if want(browser.evaluate(expression)):
            return time.monotonic() - started
        time.sleep(0.05)
    return None


STATUS = "document.getElementById('status').textContent"
BACKEND_ROW = ("Array.from(document.querySelectorAll('#backends tr'))"
               f".map(r => r.innerText).find(t => t.includes({json.dumps(BACKEND)})) || ''")
WORKER_REQUESTS = ("Array.from(document.querySelectorAll('#workers tbody tr'))"
                   ".map(r => r.innerText.split('\\t'))")


def errors_in(events):
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            found.append("console.error: " + json.dumps(params.get("args")))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(params["entry"]["text"])
    return found


def main():
    verdict = {}
    browser = Browser()
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = browser.send("Target.attachToTarget",
                                {"targetId": target["targetId"], "flatten": True}, session=False)
        browser.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(domain + ".enable")
        browser.send("Page.navigate", {"url": ADMIN + "/"})
        verdict["live_after_s"] = wait_for(browser, STATUS, lambda s: s == "live", 10)
        # Two polls, so rates exist and the page holds the latest counts.
        time.sleep(2.2)
        now = stats()
        verdict["stats_requests"] = now["requests"]
        verdict["page_total"] = browser.evaluate("document.getElementById('c-total').textContent")
        verdict["page_workers"] = browser.evaluate(
            "document.getElementById('worker-count').textContent")
        verdict["stats_workers"] = now["worker_count"]
        verdict["page_worker_rows"] = browser.evaluate(WORKER_REQUESTS)
        verdict["stats_worker_requests"] = [w["requests"] for w in now["workers"]]
        verdict["backend_row"] = browser.evaluate(BACKEND_ROW)
        # Each feature's panel, as rows of text: the test names what must be there.
        verdict["panels"] = browser.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('table[id]'))"
            ".map(t => [t.id, Array.from(t.querySelectorAll('tbody tr')).map(r => r.innerText)]))")
        request = urllib.request.Request(
            f"{ADMIN}/backends/{CLUSTER}/{BACKEND}", data=b"draining", method="PUT")
        urllib.request.urlopen(request, timeout=5).close()
        verdict["drain_shown_after_s"] = wait_for(
            browser, BACKEND_ROW, lambda row: "draining" in (row or ""), 5)
        verdict["drained_row"] = browser.evaluate(BACKEND_ROW)
        shot = browser.send("Page.captureScreenshot", {"format": "png"})
        with open(SCREENSHOT, "wb") as file:
            file.write(base64.b64decode(shot["data"]))
        verdict["errors_while_up"] = errors_in(browser.events)
        browser.events.clear()
        print("STOP", flush=True)
        sys.stdin.readline()
        verdict["down_shown_after_s"] = wait_for(
            browser, STATUS, lambda s: s == "admin unreachable", 5)
        print("START", flush=True)
        sys.stdin.readline()
        verdict["live_again_after_s"] = wait_for(browser, STATUS, lambda s: s == "live", 5)
        # Refused fetches while the proxy was down are expected; nothing else is.
        verdict["errors_across_restart"] = [
            error for error in errors_in(browser.events)
            if "ERR_CONNECTION_REFUSED" not in error and "Failed to fetch" not in error]
    finally:
        browser.close()
    print("VERDICT " + json.dumps(verdict), flush=True)


if __name__ == "__main__":
    main()
