#!/usr/bin/env python3
"""Turn the raw runs recorded by perf/run.sh into a results table (.md, .json, stdout).

Input: perf/work/runs.tsv, one line per measured run (written by run.sh), each pointing at
that run's raw wrk output; the run's setup arrives in PERF_* environment variables.
Output: the Markdown results file, the same data as JSON next to it, and the tables on stdout.
"""

import json
import os
import re
import statistics
import sys

CONTENDERS = ["direct", "ringway", "nginx"]
PROXIES = ["ringway", "nginx"]
NOISY_PCT = 5
UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_duration_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(m.group(1)) * UNIT_US[m.group(2)]


def parse_wrk(text):
    """The numbers we use from `wrk --latency` output; None where wrk did not print them."""
    out = {"requests": None, "rps": None, "p50_us": None, "p99_us": None,
           "socket_errors": 0, "non_2xx_3xx": 0}
    m = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_us"), ("99", "p99_us")):
        m = re.search(rf"^\s*{pct}%\s+(\S+)", text, re.M)
        if m:
            out[key] = parse_duration_us(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(g) for g in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non_2xx_3xx"] = int(m.group(1))
    return out


def load_runs(tsv_path, clk_tck):
    runs = []
    with open(tsv_path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(header, line.rstrip("\n").split("\t")))
            with open(row["wrk_out"]) as w:
                raw = w.read()
            run = {"round": int(row["round"]), "contender": row["contender"],
                   "port": int(row["port"]), "wrk_rc": int(row["wrk_rc"]),
                   "wall_s": float(row["wall_s"])}
            run.update(parse_wrk(raw))
            problems = []
            if run["wrk_rc"] != 0:
                problems.append(f"wrk exited {run['wrk_rc']}")
            if run["requests"] is None or run["rps"] is None or run["p99_us"] is None:
                problems.append("wrk output incomplete")
            if run["socket_errors"]:
                problems.append(f"{run['socket_errors']} socket errors")
            if run["non_2xx_3xx"]:
                problems.append(f"{run['non_2xx_3xx']} non-2xx/3xx")
            if row["proc_note"]:
                problems.append(row["proc_note"])
            for who in ("proxy", "origin"):
                ticks = row[f"{who}_ticks"]
                cpu_s = int(ticks) / clk_tck if ticks != "" else None
                run[f"{who}_cpu_s"] = cpu_s
                run[f"{who}_cpu_pct"] = (100.0 * cpu_s / run["wall_s"]
                                         if cpu_s is not None and run["wall_s"] > 0 else None)
                run[f"{who}_cpu_us_per_req"] = (cpu_s * 1e6 / run["requests"]
                                                if cpu_s is not None and run["requests"] else None)
            # Everything else that ran on the proxy's CPU during the run: other processes,
            # interrupts, and (as steal) other VMs. The proxy is pinned there, so its own
            # ticks come off the CPU's busy ticks.
            total = int(row["cpu0_total"])
            proxy_ticks = int(row["proxy_ticks"]) if row["proxy_ticks"] else 0
            other = max(0, int(row["cpu0_busy"]) - proxy_ticks) + int(row["cpu0_steal"])
            run["proxy_core_other_pct"] = 100.0 * other / total if total > 0 else None
            run["errors"] = "; ".join(problems)
            run["valid"] = not problems
            run["wrk_output"] = raw
            runs.append(run)
    return runs


def spread(values):
    """median, min and max of the values that exist; None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def summarize(runs):
    summary = {}
    for c in CONTENDERS:
        valid = [r for r in runs if r["contender"] == c and r["valid"]]
        if not any(r["contender"] == c for r in runs):
            continue
        summary[c] = {k: spread([r[k] for r in valid])
                      for k in ("rps", "p50_us", "p99_us", "proxy_cpu_us_per_req",
                                "proxy_cpu_pct", "origin_cpu_us_per_req")}
        summary[c]["invalid_runs"] = sum(1 for r in runs if r["contender"] == c and not r["valid"])
    return summary


def paired_ratios(runs):
    """Per-round ratios between contenders of the same round; a round with an invalid run
    contributes no ratio that needs that run."""
    by_round = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["contender"]] = r if r["valid"] else None

    def ratio(a, b, key):
        if a is None or b is None or a.get(key) in (None, 0) or b.get(key) in (None, 0):
            return None
        return a[key] / b[key]

    rows = []
    for rnd in sorted(by_round):
        g = by_round[rnd]
        rw, ng, d = g.get("ringway"), g.get("nginx"), g.get("direct")
        rows.append({
            "round": rnd,
            "ringway_vs_nginx_cpu_per_req": ratio(rw, ng, "proxy_cpu_us_per_req"),
            "ringway_vs_nginx_rps": ratio(rw, ng, "rps"),
            "ringway_vs_direct_rps": ratio(rw, d, "rps"),
            "nginx_vs_direct_rps": ratio(ng, d, "rps"),
        })
    keys = [k for k in rows[0] if k != "round"] if rows else []
    return rows, {k: spread([row[k] for row in rows]) for k in keys}


RATIO_LABELS = {
    "ringway_vs_nginx_cpu_per_req": "ringway/nginx CPU per request (lower is better)",
    "ringway_vs_nginx_rps": "ringway/nginx req/s",
    "ringway_vs_direct_rps": "ringway req/s ÷ direct req/s",
    "nginx_vs_direct_rps": "nginx req/s ÷ direct req/s",
}


def f_num(v, fmt="{:.0f}"):
    return "—" if v is None else fmt.format(v)


def f_us(v):
    if v is None:
        return "—"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def f_spread(s, fmt):
    if s is None:
        return "—"
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def tables(runs, summary, ratio_rows, ratio_summary):
    """The three tables, in Markdown (also what stdout shows)."""
    per_round = md_table(
        ["round", "contender", "req/s", "p50", "p99", "proxy CPU µs/req", "proxy CPU %",
         "origin CPU µs/req", "other load on proxy core %", "errors"],
        [[str(r["round"]), r["contender"], f_num(r["rps"]), f_us(r["p50_us"]),
          f_us(r["p99_us"]), f_num(r["proxy_cpu_us_per_req"], "{:.2f}"),
          f_num(r["proxy_cpu_pct"], "{:.0f}"), f_num(r["origin_cpu_us_per_req"], "{:.2f}"),
          f_num(r["proxy_core_other_pct"], "{:.0f}"),
          "INVALID: " + r["errors"] if not r["valid"] else "0"] for r in runs])
    medians = md_table(
        ["contender", "valid runs", "req/s", "p50", "p99", "proxy CPU µs/req",
         "origin CPU µs/req"],
        [[c, f"{s['rps']['n'] if s['rps'] else 0} (+{s['invalid_runs']} INVALID)"
          if s["invalid_runs"] else str(s["rps"]["n"] if s["rps"] else 0),
          f_spread(s["rps"], lambda v: f"{v:.0f}"), f_spread(s["p50_us"], f_us),
          f_spread(s["p99_us"], f_us),
          f_spread(s["proxy_cpu_us_per_req"], lambda v: f"{v:.2f}"),
          f_spread(s["origin_cpu_us_per_req"], lambda v: f"{v:.2f}")]
         for c, s in summary.items()])
    keys = list(RATIO_LABELS)
    ratios = md_table(
        ["ratio"] + [f"round {row['round']}" for row in ratio_rows] + ["median (min–max)"],
        [[RATIO_LABELS[k]] + [f_num(row[k], "{:.3f}") for row in ratio_rows]
         + [f_spread(ratio_summary.get(k), lambda v: f"{v:.3f}")] for k in keys])
    return per_round, medians, ratios


def main():
    env = os.environ
    clk_tck = int(env["PERF_CLK_TCK"])
    runs = load_runs(env["PERF_RUNS_TSV"], clk_tck)
    summary = summarize(runs)
    ratio_rows, ratio_summary = paired_ratios(runs)
    per_round, medians, ratios = tables(runs, summary, ratio_rows, ratio_summary)

    meta = {k[len("PERF_META_"):].lower(): v for k, v in sorted(env.items())
            if k.startswith("PERF_META_")}
    configs = {}
    for path in env.get("PERF_CONFIGS", "").split():
        with open(path) as f:
            configs[path] = f.read()

    doc = {"meta": meta, "configs": configs,
           "runs": [{k: v for k, v in r.items()} for r in runs],
           "summary": summary, "ratios_per_round": ratio_rows, "ratios_summary": ratio_summary}
    with open(env["PERF_OUT_JSON"], "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")

    invalid = [r for r in runs if not r["valid"]]
    md = [f"# perf: {meta.get('scenario', '?')} at {meta.get('commit', '?')} ({meta.get('date', '?')})",
          "",
          "Generated by `perf/run.sh`; see perf/README.md for how to read it. "
          "Raw wrk output of every run is in the `.json` next to this file.",
          "",
          "## Setup", ""]
    for key, label in (("machine", "machine"), ("nproc", "nproc"), ("kernel", "kernel"),
                       ("loadavg", "load average at start"), ("nginx_version", "nginx"),
                       ("wrk_version", "wrk"), ("ringway_version", "ringway"),
                       ("commit", "commit"), ("rounds", "rounds"), ("duration_s", "duration (s)"),
                       ("connections", "connections"), ("affinity", "affinity check")):
        if key in meta:
            md.append(f"- {label}: `{meta[key]}`")
    md += ["", "Commands (each round runs the three loads in this order):", "", "```sh",
           meta.get("commands", ""), "```", ""]
    for path, text in configs.items():
        lang = "toml" if path.endswith(".toml") else "nginx"
        md += [f"`{path}`:", "", f"```{lang}", text.rstrip("\n"), "```", ""]
    md += ["## Per round", "", per_round, "",
           "## Medians (min–max) over valid runs", "", medians, "",
           "## Paired ratios (same round)", "", ratios, ""]
    noisy = [r for r in runs if (r["proxy_core_other_pct"] or 0) > NOISY_PCT]
    if noisy:
        md += [f"**{len(noisy)} run(s) shared the proxy core** (other load above {NOISY_PCT}%: "
               "another process, interrupts or hypervisor steal); their numbers are kept "
               "but are suspect. Rerun on a quiet machine.", ""]
    if invalid:
        md += [f"**{len(invalid)} run(s) INVALID** (errors during the run); they are left out "
               "of the medians and ratios.", ""]
    with open(env["PERF_OUT_MD"], "w") as f:
        f.write("\n".join(md))

    print("\nPer round\n" + per_round)
    print("\nMedians (min–max) over valid runs\n" + medians)
    print("\nPaired ratios (same round)\n" + ratios)
    if noisy:
        print(f"\n{len(noisy)} run(s) had more than {NOISY_PCT}% other load on the proxy core; "
              "see that column. Rerun on a quiet machine.")
    if invalid:
        print(f"\n{len(invalid)} run(s) INVALID; see the errors column.")
    print(f"\nwrote {env['PERF_OUT_MD']}\nwrote {env['PERF_OUT_JSON']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
