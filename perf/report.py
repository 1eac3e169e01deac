#!/usr/bin/env python3
"""Turn the raw runs recorded by perf/run.sh into the results file pair (.md, .json).

Input: perf/work/runs.tsv, one line per measured run (written by run.sh), each pointing at
that run's raw output (wrk text, oha JSON, perf/tls-client JSON, perf/idle_conns.py
JSON); the run's setup arrives in PERF_* environment variables.
Output: the Markdown results file, the same data as JSON next to it, and the target table
on stdout.
"""

import json
import os
import re
import statistics
import sys

CONTENDERS = ["direct", "ringway", "ringway_splice", "nginx", "haproxy", "varnish"]
PROXIES = ["ringway", "ringway_splice", "nginx", "haproxy", "varnish"]
NOISY_PCT = 5
UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}

SCENARIOS = {
    "small_c16": "GET / (12-byte body), keep-alive, 16 connections",
    "small_c256": "GET / (12-byte body), keep-alive, 256 connections",
    "resp_16k": "GET /16k (16 KiB body), keep-alive, 16 connections",
    "resp_1m": "GET /1m (1 MiB body), keep-alive, 16 connections",
    "upload_1m": "POST /upload with a 1 MiB body, keep-alive, 16 connections",
    "conn_close": "GET / with `Connection: close`: a new client connection per request, 16 at a time",
    "fixed_rate": "oha at a fixed rate with latency correction, 64 connections",
    "idle_10k": "idle keep-alive client connections held open, fresh proxy instance",
    "tls_handshake": "TLS: full handshake (ECDSA P-256, no resumption) + GET / per connection, 16 at a time",
    "tls_keepalive": "TLS: GET / over keep-alive TLS, 16 connections",
    "compress_gzip1": "GET ~100 KiB JSON with `Accept-Encoding: gzip`, gzip level 1, keep-alive, 16 connections",
    "compress_gzip2": "GET ~100 KiB JSON with `Accept-Encoding: gzip`, gzip level 2, keep-alive, 16 connections",
    "compress_gzip6": "GET ~100 KiB JSON with `Accept-Encoding: gzip`, gzip level 6, keep-alive, 16 connections",
    "compress_br": "GET ~100 KiB JSON with `Accept-Encoding: br`, brotli quality 4 (ringway only), 16 connections",
    "compress_zstd": "GET ~100 KiB JSON with `Accept-Encoding: zstd`, zstd level 3 (ringway only), 16 connections",
    "l4_1m": "L4 TCP: GET /1m (1 MiB) over keep-alive through a TCP listener (copy, splice, nginx stream, HAProxy mode tcp), 16 connections: CPU per request is CPU per MiB",
    "l4_conn": "L4 TCP: GET / with `Connection: close` through a TCP listener: a new client and backend connection per request, 16 at a time: CPU per request is CPU per connection",
    "cache_small": "GET /c/small (12-byte body, max-age=86400) from each proxy's cache: every request but the first a hit, keep-alive, 16 connections",
    "cache_100k": "GET /c/100k (100 KiB body, max-age=86400) from each proxy's cache: every request but the first a hit, keep-alive, 16 connections",
}

# The targets of the issue. kind "ratio": the median of the paired (same round) ratio
# a/b of a metric, compared with the bound; kind "value": the medians themselves.
TARGETS = [
    ("small_c16", "CPU per request ÷ nginx", "ratio", "cpu", "ringway", "nginx", "<=", 0.6),
    ("small_c16", "CPU per request ÷ HAProxy", "ratio", "cpu", "ringway", "haproxy", "<", 1.0),
    ("small_c16", "req/s ÷ direct", "ratio", "rps", "ringway", "direct", ">=", 0.95),
    ("small_c256", "CPU per request ÷ nginx", "ratio", "cpu", "ringway", "nginx", "<=", 0.6),
    ("small_c256", "CPU per request ÷ HAProxy", "ratio", "cpu", "ringway", "haproxy", "<", 1.0),
    ("small_c256", "req/s ÷ direct", "ratio", "rps", "ringway", "direct", ">=", 0.95),
    ("resp_16k", "CPU per request ÷ nginx", "ratio", "cpu", "ringway", "nginx", "<=", 0.7),
    ("resp_1m", "CPU per request ÷ nginx", "ratio", "cpu", "ringway", "nginx", "<=", 0.5),
    ("upload_1m", "CPU per request ÷ nginx", "ratio", "cpu", "ringway", "nginx", "<=", 0.5),
    ("conn_close", "CPU per request ÷ nginx", "ratio", "cpu", "ringway", "nginx", "<=", 1.0),
    ("idle_10k", "RSS KiB per connection, ringway vs nginx", "value", "kib_per_conn",
     "ringway", "nginx", "<=", None),
    ("fixed_rate", "p50 ÷ direct", "ratio", "p50_us", "ringway", "direct", "<=", 1.1),
    ("fixed_rate", "p99 ÷ nginx", "ratio", "p99_us", "ringway", "nginx", "<=", 1.0),
    ("tls_handshake", "handshakes/s ÷ nginx", "ratio", "rps", "ringway", "nginx", ">=", 1.0),
    ("tls_keepalive", "req/s ÷ nginx", "ratio", "rps", "ringway", "nginx", ">=", 1.0),
    ("compress_gzip1", "CPU per request ÷ nginx", "ratio", "cpu", "ringway", "nginx", "<=", 0.8),
    ("compress_gzip2", "CPU per request ÷ nginx", "ratio", "cpu", "ringway", "nginx", "<=", 0.8),
    ("compress_gzip6", "CPU per request ÷ nginx", "ratio", "cpu", "ringway", "nginx", "<=", 0.8),
    # Issue 16: CPU per MiB at most 0.8x the better of HAProxy and nginx, connections per
    # second at least theirs; one row per contender pair (both must hold).
    ("l4_1m", "CPU per MiB ÷ nginx stream", "ratio", "cpu", "ringway", "nginx", "<=", 0.8),
    ("l4_1m", "CPU per MiB ÷ HAProxy tcp", "ratio", "cpu", "ringway", "haproxy", "<=", 0.8),
    ("l4_1m", "splice: CPU per MiB ÷ nginx stream", "ratio", "cpu", "ringway_splice", "nginx",
     "<=", 0.8),
    ("l4_1m", "splice: CPU per MiB ÷ HAProxy tcp", "ratio", "cpu", "ringway_splice", "haproxy",
     "<=", 0.8),
    ("l4_conn", "connections/s ÷ nginx stream", "ratio", "rps", "ringway", "nginx", ">=", 1.0),
    ("l4_conn", "connections/s ÷ HAProxy tcp", "ratio", "rps", "ringway", "haproxy", ">=", 1.0),
    ("l4_conn", "CPU per connection ÷ nginx stream", "ratio", "cpu", "ringway", "nginx", "<=", 1.0),
    ("l4_conn", "CPU per connection ÷ HAProxy tcp", "ratio", "cpu", "ringway", "haproxy", "<=",
     1.0),
    ("cache_small", "CPU per hit ÷ nginx proxy_cache", "ratio", "cpu", "ringway", "nginx", "<=", 0.5),
    ("cache_100k", "CPU per hit ÷ nginx proxy_cache", "ratio", "cpu", "ringway", "nginx", "<=", 0.5),
    ("cache_small", "CPU per hit ÷ Varnish (no goal; 1 = same)", "ratio", "cpu", "ringway", "varnish", "<=", 1.0),
    ("cache_100k", "CPU per hit ÷ Varnish (no goal; 1 = same)", "ratio", "cpu", "ringway", "varnish", "<=", 1.0),
]


def hit_vs_proxied(summary):
    """ringway's CPU per cache hit (cache_small) over its CPU per proxied request of the same
    12-byte body (small_c16), medians of runs in the same rounds; None without both."""
    hit = summary.get("cache_small", {}).get("ringway", {}).get("proxy_cpu_us_per_req")
    proxied = summary.get("small_c16", {}).get("ringway", {}).get("proxy_cpu_us_per_req")
    if not hit or not proxied or not proxied["median"]:
        return None
    return {"hit_us": hit["median"], "proxied_us": proxied["median"],
            "ratio": hit["median"] / proxied["median"]}
OPS = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b}


def compress_sizes(path):
    """The output size table of the compress scenarios, from run.sh's TSV; None if none."""
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    if not rows:
        return None
    nginx = {r[0]: int(r[3]) for r in rows if r[1] == "nginx"}
    table = []
    for s, c, encoding, size, identity in rows:
        vs = f"{int(size) / nginx[s]:.3f}" if c != "nginx" and s in nginx else "–"
        table.append([s, c, encoding, size, f"{int(size) / int(identity):.3f}", vs])
    return md_table(["scenario", "contender", "Content-Encoding", "bytes", "÷ identity",
                     "÷ nginx"], table)


# ---------------------------------------------------------------------------- parsing
def parse_duration_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(m.group(1)) * UNIT_US[m.group(2)]


def parse_wrk(text):
    """The numbers we use from `wrk --latency` output; None where wrk did not print them."""
    out = {"requests": None, "rps": None, "p50_us": None, "p99_us": None, "errors_n": 0,
           "error_notes": []}
    m = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_us"), ("99", "p99_us")):
        m = re.search(rf"^\s*{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        if m:
            out[key] = parse_duration_us(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        n = sum(int(g) for g in m.groups())
        out["errors_n"] += n
        out["error_notes"].append(f"socket errors: connect {m.group(1)}, read {m.group(2)}, "
                                  f"write {m.group(3)}, timeout {m.group(4)}")
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["errors_n"] += int(m.group(1))
        out["error_notes"].append(f"{m.group(1)} non-2xx/3xx")
    if out["requests"] is None or out["rps"] is None or out["p99_us"] is None:
        out["error_notes"].append("wrk output incomplete")
    return out


def parse_oha(text):
    out = {"requests": None, "rps": None, "p50_us": None, "p99_us": None, "errors_n": 0,
           "error_notes": []}
    try:
        doc = json.loads(text[text.index("{"):])
    except ValueError:
        out["error_notes"].append("oha output is not JSON")
        return out
    summary = doc.get("summary", {})
    statuses = {str(k): int(v) for k, v in (doc.get("statusCodeDistribution") or {}).items()}
    errors = {str(k): int(v) for k, v in (doc.get("errorDistribution") or {}).items()}
    out["requests"] = sum(statuses.values())
    out["rps"] = summary.get("requestsPerSec")
    pct = doc.get("latencyPercentiles") or {}
    for key, name in (("p50_us", "p50"), ("p99_us", "p99")):
        if pct.get(name) is not None:
            out[key] = pct[name] * 1e6
    bad = {k: v for k, v in statuses.items() if not ("200" <= k < "400")}
    if bad:
        out["errors_n"] += sum(bad.values())
        out["error_notes"].append("statuses " + ", ".join(f"{k}: {v}" for k, v in bad.items()))
    if errors:
        # oha ends the run by cancelling requests in flight; those are not failures.
        real = {k: v for k, v in errors.items() if "aborted due to deadline" not in k}
        if real:
            out["errors_n"] += sum(real.values())
            out["error_notes"].append("errors " + "; ".join(f"{k}: {v}" for k, v in real.items()))
    if not out["requests"] or out["p99_us"] is None:
        out["error_notes"].append("oha output incomplete")
    out["status_codes"] = statuses
    out["oha_errors"] = errors
    return out


def parse_handshakes(text):
    out = {"requests": None, "rps": None, "p50_us": None, "p99_us": None, "errors_n": 0,
           "error_notes": []}
    try:
        doc = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out["error_notes"].append("tls-handshakes output is not JSON")
        return out
    out["requests"] = doc["requests"]
    out["rps"] = doc["rps"]
    out["mean_latency_us"] = doc.get("mean_latency_us")
    bad = {k: v for k, v in doc["statuses"].items() if not ("200" <= k < "400")}
    if bad:
        out["errors_n"] += sum(bad.values())
        out["error_notes"].append("statuses " + ", ".join(f"{k}: {v}" for k, v in bad.items()))
    if doc["errors"]:
        out["errors_n"] += doc["errors"]
        out["error_notes"].append(f"{doc['errors']} connection errors ({'; '.join(doc['error_samples'][:2])})")
    if doc.get("resumed"):
        out["errors_n"] += doc["resumed"]
        out["error_notes"].append(f"{doc['resumed']} resumed sessions (not full handshakes)")
    out["tls"] = f"{doc.get('protocol')} {doc.get('cipher')}"
    if not out["requests"]:
        out["error_notes"].append("no completed handshakes")
    return out


def parse_idle(text, rss_before, rss_after):
    out = {"requests": None, "rps": None, "p50_us": None, "p99_us": None, "errors_n": 0,
           "error_notes": [], "rss_before_kib": rss_before, "rss_after_kib": rss_after,
           "kib_per_conn": None}
    try:
        doc = json.loads(text)
    except ValueError:
        doc = {}
    if not doc.get("connections"):
        out["error_notes"].append("idle_conns.py wrote no result")
        return out
    out["connections"] = doc["connections"]
    out["open"] = doc["open"]
    out["requests"] = doc["first"]["ok"] + doc["second"]["ok"]
    if doc["errors"]:
        out["errors_n"] += doc["errors"]
        samples = doc["first"]["error_samples"] + doc["second"]["error_samples"]
        out["error_notes"].append(
            f"{doc['first']['errors']} failed on the first request, {doc['second']['errors']} "
            f"on the second after the idle period" + (f" ({samples[0]})" if samples else "")
            + ("" if doc.get("told_to_finish") else "; never told to finish"))
    if rss_before is not None and rss_after is not None and doc["open"]:
        out["kib_per_conn"] = (rss_after - rss_before) / doc["open"]
    else:
        out["error_notes"].append("RSS not sampled")
    return out


def load_runs(tsv_path, clk_tck):
    runs = []
    with open(tsv_path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(header, line.rstrip("\n").split("\t")))
            try:
                with open(row["out"], errors="replace") as o:
                    raw = o.read()
            except OSError:
                raw = ""
            tool = row["tool"]
            run = {"scenario": row["scenario"], "round": int(row["round"]),
                   "contender": row["contender"], "tool": tool, "rc": int(row["rc"] or 0),
                   "wall_s": float(row["wall_s"])}
            if tool == "wrk":
                run.update(parse_wrk(raw))
            elif tool == "oha":
                run.update(parse_oha(raw))
            elif tool == "tls_handshakes":
                run.update(parse_handshakes(raw))
            elif tool == "idle":
                num = lambda v: int(v) if v not in ("", None) else None
                run.update(parse_idle(raw, num(row["rss_before_kib"]), num(row["rss_after_kib"])))
            problems = list(run.pop("error_notes"))
            if run["rc"] != 0:
                problems.insert(0, f"{tool} exited {run['rc']}")
            if row["note"]:
                problems.append(row["note"])
            for who in ("proxy", "origin"):
                ticks = row[f"{who}_ticks"]
                cpu_s = int(ticks) / clk_tck if ticks not in ("", None) else None
                run[f"{who}_cpu_s"] = cpu_s
                run[f"{who}_cpu_pct"] = (100.0 * cpu_s / run["wall_s"]
                                         if cpu_s is not None and run["wall_s"] > 0 else None)
                run[f"{who}_cpu_us_per_req"] = (cpu_s * 1e6 / run["requests"]
                                                if cpu_s is not None and run["requests"] else None)
            # Everything else that ran on the proxy's CPU during the run: other processes,
            # interrupts, and (as steal) other VMs. The proxy is pinned there, so its own
            # ticks come off the CPU's busy ticks.
            if row["cpu0_total"]:
                total = int(row["cpu0_total"])
                proxy_ticks = int(row["proxy_ticks"]) if row["proxy_ticks"] else 0
                other = max(0, int(row["cpu0_busy"]) - proxy_ticks) + int(row["cpu0_steal"])
                run["proxy_core_other_pct"] = 100.0 * other / total if total > 0 else None
            else:
                run["proxy_core_other_pct"] = None
            run["errors"] = "; ".join(problems)
            run["valid"] = not problems
            run["raw_output"] = raw
            runs.append(run)
    return runs


# ---------------------------------------------------------------------------- numbers
METRICS = {"rps": "rps", "cpu": "proxy_cpu_us_per_req", "p50_us": "p50_us", "p99_us": "p99_us",
           "kib_per_conn": "kib_per_conn"}


def spread(values):
    """median, min and max of the values that exist; None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def summarize(runs):
    out = {}
    for s in SCENARIOS:
        for c in CONTENDERS:
            mine = [r for r in runs if r["scenario"] == s and r["contender"] == c]
            if not mine:
                continue
            valid = [r for r in mine if r["valid"]]
            d = {k: spread([r.get(k) for r in valid])
                 for k in ("rps", "p50_us", "p99_us", "proxy_cpu_us_per_req", "proxy_cpu_pct",
                           "origin_cpu_us_per_req", "proxy_core_other_pct", "kib_per_conn",
                           "rss_before_kib", "rss_after_kib", "mean_latency_us")}
            d["runs"] = len(mine)
            d["invalid_runs"] = len(mine) - len(valid)
            out.setdefault(s, {})[c] = d
    return out


def paired(runs):
    """Per scenario: every ratio a/b of every metric, per round between runs of the same
    round, then median (min–max) over rounds. A round with an invalid run contributes no
    ratio that needs that run."""
    by = {}
    for r in runs:
        by.setdefault(r["scenario"], {}).setdefault(r["round"], {})[r["contender"]] = (
            r if r["valid"] else None)
    out = {}
    for s, rounds in by.items():
        ratios = {}
        for metric, key in METRICS.items():
            for a in CONTENDERS:
                for b in CONTENDERS:
                    if a == b:
                        continue
                    per_round = {}
                    for rnd, g in sorted(rounds.items()):
                        ra, rb = g.get(a), g.get(b)
                        if ra is None or rb is None:
                            continue
                        va, vb = ra.get(key), rb.get(key)
                        if va is None or vb in (None, 0):
                            continue
                        per_round[rnd] = va / vb
                    if per_round:
                        ratios[f"{metric}:{a}/{b}"] = {"per_round": per_round,
                                                       **spread(list(per_round.values()))}
        out[s] = ratios
    return out


def evaluate_targets(summary, ratios, tls_note):
    rows = []
    for s, label, kind, metric, a, b, op, bound in TARGETS:
        row = {"scenario": s, "metric": label, "kind": kind, "a": a, "b": b, "op": op,
               "bound": bound, "median": None, "min": None, "max": None, "met": None,
               "all_rounds": None, "note": ""}
        if s not in summary:
            row["note"] = "not run"
        elif kind == "ratio":
            r = ratios.get(s, {}).get(f"{metric}:{a}/{b}")
            if r is None:
                row["note"] = (tls_note if s.startswith("tls_") and a == "ringway" and tls_note
                               and "ringway" not in summary[s] else "no valid paired runs")
            else:
                row.update(median=r["median"], min=r["min"], max=r["max"])
                row["met"] = OPS[op](r["median"], bound)
                row["all_rounds"] = all(OPS[op](v, bound) for v in r["per_round"].values())
        else:
            sa = (summary[s].get(a) or {}).get(METRICS[metric])
            sb = (summary[s].get(b) or {}).get(METRICS[metric])
            if sa is None or sb is None:
                row["note"] = "no valid runs"
            else:
                row.update(median=sa["median"], min=sa["min"], max=sa["max"],
                           bound=sb["median"])
                row["met"] = OPS[op](sa["median"], sb["median"])
                row["all_rounds"] = sa["max"] <= sb["min"] if op == "<=" else None
                r = ratios.get(s, {}).get(f"{metric}:{a}/{b}")
                if r is not None:
                    row["ratio"] = {k: r[k] for k in ("median", "min", "max")}
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------- format
def f_num(v, fmt="{:.0f}"):
    return "—" if v is None else fmt.format(v)


def f_us(v):
    if v is None:
        return "—"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def f_spread(s, fmt, key=None):
    if s is None:
        return "—"
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def f_ratio(ratios, s, metric, a, b):
    r = ratios.get(s, {}).get(f"{metric}:{a}/{b}")
    return f_spread(r, lambda v: f"{v:.2f}")


def f_rps(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def valid_label(d):
    ok = d["runs"] - d["invalid_runs"]
    return f"{ok}/{d['runs']}" + (" **INVALID**" if d["invalid_runs"] else "")


def scenario_table(s, summary, ratios, runs):
    rows = []
    cs = summary[s]
    for c in CONTENDERS:
        if c not in cs:
            continue
        d = cs[c]
        errs = "; ".join(sorted({r["errors"] for r in runs
                                 if r["scenario"] == s and r["contender"] == c and r["errors"]}))
        if s == "idle_10k":
            rows.append([c, valid_label(d),
                         f_spread(d["rss_before_kib"], lambda v: f"{v / 1024:.1f}"),
                         f_spread(d["rss_after_kib"], lambda v: f"{v / 1024:.1f}"),
                         f_spread(d["kib_per_conn"], lambda v: f"{v:.2f}"),
                         f_ratio(ratios, s, "kib_per_conn", c, "nginx") if c != "nginx" else "1",
                         errs or "0"])
            continue
        cpu = lambda v: f"{v:.2f}" if v < 100 else f"{v:.0f}"
        row = [c, valid_label(d), f_spread(d["rps"], f_rps),
               f_spread(d["proxy_cpu_us_per_req"], cpu) if c != "direct" else "—",
               f_ratio(ratios, s, "cpu", c, "nginx") if c not in ("direct", "nginx") else "—",
               f_ratio(ratios, s, "cpu", c, "haproxy") if c not in ("direct", "haproxy") else "—"]
        if s.startswith("tls_"):
            row.append(f_ratio(ratios, s, "rps", c, "nginx") if c != "nginx" else "1")
        else:
            row.append(f_ratio(ratios, s, "rps", c, "direct") if c != "direct" else "1")
        row += [f_spread(d["p50_us"], f_us), f_spread(d["p99_us"], f_us)]
        if s == "fixed_rate":
            row += [f_ratio(ratios, s, "p50_us", c, "direct") if c != "direct" else "1",
                    f_ratio(ratios, s, "p99_us", c, "nginx") if c != "nginx" else "1"]
        row += [f_spread(d["proxy_core_other_pct"], lambda v: f"{v:.0f}") if c != "direct" else "—",
                errs or "0"]
        rows.append(row)
    if s == "idle_10k":
        header = ["contender", "valid runs", "RSS before (MiB)", "RSS with conns (MiB)",
                  "KiB per connection", "÷ nginx", "errors"]
    else:
        rate = "handshakes/s" if s == "tls_handshake" else "req/s"
        header = ["contender", "valid runs", rate, "CPU µs/req", "CPU ÷ nginx", "CPU ÷ haproxy",
                  f"{rate} ÷ nginx" if s.startswith("tls_") else "req/s ÷ direct", "p50", "p99"]
        if s == "fixed_rate":
            header += ["p50 ÷ direct", "p99 ÷ nginx"]
        header += ["other load on CPU 0 %", "errors"]
    return md_table(header, rows)


def target_table(targets):
    rows = []
    for t in targets:
        if t["note"] == "not run":
            continue
        if t["kind"] == "ratio":
            want = f"{t['op']} {t['bound']:g}"
            got = "—" if t["median"] is None else (
                f"{t['median']:.2f}" + (f" ({t['min']:.2f}–{t['max']:.2f})"
                                        if t["min"] != t["max"] else ""))
        else:
            want = f"{t['op']} nginx ({t['bound']:.2f})" if t["bound"] is not None else f"{t['op']} nginx"
            got = "—" if t["median"] is None else (
                f"{t['median']:.2f}" + (f" ({t['min']:.2f}–{t['max']:.2f})"
                                        if t["min"] != t["max"] else ""))
        if t["met"] is None:
            met = t["note"] or "—"
        elif t["met"]:
            met = "yes" + ("" if t["all_rounds"] else " (median only)")
        else:
            met = "**no**"
        rows.append([t["scenario"], t["metric"], want, got, met])
    return md_table(["scenario", "ringway metric", "target", "measured median (min–max)", "met"],
                    rows)


def runs_table(runs):
    rows = []
    for r in runs:
        main = (f"{r['kib_per_conn']:.2f} KiB/conn" if r["scenario"] == "idle_10k"
                and r.get("kib_per_conn") is not None else f_num(r["rps"]))
        rows.append([r["scenario"], str(r["round"]), r["contender"], main,
                     f_num(r["proxy_cpu_us_per_req"], "{:.2f}"),
                     f_num(r["proxy_cpu_pct"]), f_num(r["origin_cpu_us_per_req"], "{:.2f}"),
                     f_us(r["p50_us"]), f_us(r["p99_us"]),
                     f_num(r["proxy_core_other_pct"]),
                     "INVALID: " + r["errors"] if not r["valid"] else "0"])
    return md_table(["scenario", "round", "contender", "req/s (idle: KiB/conn)",
                     "proxy CPU µs/req", "proxy CPU %", "origin CPU µs/req", "p50", "p99",
                     "other load on CPU 0 %", "errors"], rows)


def main():
    env = os.environ
    root = env.get("PERF_ROOT", "")
    runs = load_runs(env["PERF_RUNS_TSV"], int(env["PERF_CLK_TCK"]))
    summary = summarize(runs)
    ratios = paired(runs)
    tls_note = env.get("PERF_RINGWAY_TLS_NOTE", "")
    targets = evaluate_targets(summary, ratios, tls_note)

    meta = {k[len("PERF_META_"):].lower(): v for k, v in sorted(env.items())
            if k.startswith("PERF_META_")}
    meta["ringway_tls"] = tls_note or "yes"
    configs = {}
    for path in env.get("PERF_CONFIGS", "").split():
        with open(path) as f:
            configs[path] = f.read()
    for r in runs:
        r["raw_output"] = r["raw_output"].replace(root + "/", "") if root else r["raw_output"]

    doc = {"meta": meta, "configs": configs, "targets": targets, "summary": summary,
           "ratios": ratios, "runs": runs}
    with open(env["PERF_OUT_JSON"], "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")

    invalid = [r for r in runs if not r["valid"]]
    noisy = [r for r in runs if (r["proxy_core_other_pct"] or 0) > NOISY_PCT]
    md = [f"# perf: ringway vs nginx vs HAProxy at {meta.get('commit', '?')} ({meta.get('date', '?')})",
          "",
          "Generated by `perf/run.sh`; perf/README.md says how to read it. The `.json` next to "
          "this file has the same numbers, the per-round ratios and every raw tool output.", ""]
    if meta.get("quick") == "1":
        md += ["**QUICK=1 run**: one short round, for checking the harness; not for comparing.", ""]
    md += ["## Targets", "",
           "Each ratio is taken inside one round (paired), then the median over rounds; "
           "\"median only\" means at least one round missed. Lower CPU is better.", "",
           target_table(targets), ""]
    if tls_note:
        md += [f"TLS: {tls_note}.", ""]
    md += [f"Instructions per proxied `GET /` (perf/callgrind.sh, epoll driver): "
           f"{meta.get('callgrind_ir_per_request', 'not run')}.", ""]
    if invalid:
        md += [f"**{len(invalid)} run(s) INVALID** (errors during the run); they are left out "
               "of the medians and ratios. See the errors columns.", ""]
    if noisy:
        md += [f"{len(noisy)} of {len(runs)} runs had more than {NOISY_PCT}% other load on the "
               "proxy core (another process, interrupts or hypervisor steal); their numbers are "
               "kept but are suspect.", ""]
    md += ["## Scenarios", "",
           "Medians over valid runs with (min–max); ratios are paired per round. CPU µs/req is "
           "the proxy's utime+stime per request (on CPU 0).", ""]
    for s in SCENARIOS:
        if s not in summary:
            continue
        md += [f"### {s}", "", SCENARIOS[s] + ".", "", scenario_table(s, summary, ratios, runs), ""]
        if s.startswith("tls_") and tls_note and "ringway" not in summary[s]:
            md += [f"ringway: not run ({tls_note}).", ""]
    hit = hit_vs_proxied(summary)
    if hit:
        doc["hit_vs_proxied"] = hit
        with open(env["PERF_OUT_JSON"], "w") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
        met = "met" if hit["ratio"] <= 0.6 else "NOT met"
        md += ["## Cache hit vs proxied request", "",
               f"ringway's CPU per cache hit (cache_small) {hit['hit_us']:.1f} µs, per proxied "
               f"request of the same body (small_c16) {hit['proxied_us']:.1f} µs: "
               f"{hit['ratio']:.3f}x (target: at least 40% less, <= 0.6; {met}). Medians of "
               "runs interleaved in the same rounds.", ""]
    sizes = compress_sizes(env.get("PERF_COMPRESS_SIZES_TSV"))
    if sizes:
        md += ["## Compressed output size", "",
               "One response of each compress scenario as curl receives it (`--compressed`, "
               "which also checks that it decodes); the ratio to nginx is the issue's "
               "\"within 1%\".", "", sizes, ""]
    md += ["## Setup", ""]
    for key, label in (("machine", "machine"), ("nproc", "CPUs"), ("memory", "memory"),
                       ("os", "OS"), ("kernel", "kernel"), ("loadavg", "load average at start"),
                       ("loadavg_end", "load average at end"), ("ringway_version", "ringway"),
                       ("ringway_tls", "ringway TLS"), ("nginx_version", "nginx"),
                       ("haproxy_version", "HAProxy"), ("varnish_version", "Varnish"),
                       ("wrk_version", "wrk"),
                       ("oha_version", "oha"), ("python_version", "python"),
                       ("openssl_version", "openssl"), ("commit", "commit"),
                       ("rounds", "rounds"), ("duration_s", "duration per run (s)"),
                       ("scenarios", "scenarios"), ("contenders", "contenders"),
                       ("idle_conns", "idle connections"), ("rate", "fixed rate (req/s)"),
                       ("fd_limit", "ulimit -n"), ("affinity", "CPU affinity check")):
        if key in meta:
            md.append(f"- {label}: `{meta[key]}`")
    md += ["", "Commands:", "", "```sh", meta.get("commands", ""), "```", ""]
    for path, text in configs.items():
        lang = {"toml": "toml", "cfg": "haproxy"}.get(path.rsplit(".", 1)[-1], "nginx")
        md += [f"<details><summary><code>{path}</code></summary>", "", f"```{lang}",
               text.rstrip("\n"), "```", "", "</details>", ""]
    md += ["## Every run", "", runs_table(runs), ""]
    with open(env["PERF_OUT_MD"], "w") as f:
        f.write("\n".join(md))

    print("\nTargets\n" + target_table(targets))
    if invalid:
        print(f"\n{len(invalid)} run(s) INVALID:")
        for r in invalid:
            print(f"  {r['scenario']} round {r['round']} {r['contender']}: {r['errors']}")
    if noisy:
        print(f"\n{len(noisy)} run(s) had more than {NOISY_PCT}% other load on the proxy core.")
    print(f"\nwrote {env['PERF_OUT_MD']}\nwrote {env['PERF_OUT_JSON']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
