#!/usr/bin/env python3
"""Joins the append runs of one `make bench` into one table: bench/results/<date>-append-matrix.md.

  python3 bench/append_matrix.py RESULTS_DIR DATE NAME...

Each NAME is one bench/append.sh run (RESULTS_DIR/DATE-NAME.json, written by report.py) with its
own connections / events per request / event size. Every row is one workload of one run: the
three servers' events/s and latency, measured in that run one after the other, and the ratios
ours / reference and ours / null. Runs that are missing (a workload that failed) are listed as
such, never filled in.
"""
import json
import os
import sys


def fmt_rate(v):
    return "—" if v is None else f"{v:,.0f}"


def fmt_ms(us):
    return "—" if us is None else f"{us / 1000:.2f}"


def ratio(a, b):
    return "—" if not a or not b else f"{a / b:.2f}×"


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    results_dir, date, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    lines = [f"# Append matrix — {date}", "",
             "One `bench/append.sh` run per line group (`bench/run_all.sh` full mode): closed-loop "
             "keep-alive clients, fsync on, the three servers one after the other on loopback in "
             "the same run. Events/s = acknowledged events per second (a request with 100 events "
             "counts 100). Latency is per request. Each run's own file has CPU use, all rounds "
             "and anomalies.", "",
             "| run | connections | events / request | event bytes | workload | ours events/s | "
             "ours p50 / p99 / p99.9 ms | reference events/s | null req/s | ours / reference | "
             "ours / null (req/s) | errors (ours) |",
             "|---|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|"]
    missing = []
    for name in names:
        path = os.path.join(results_dir, f"{date}-{name}.json")
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError):
            missing.append(name)
            continue
        c = d.get("config", {})
        for wname, w in d.get("workloads", {}).items():
            s = w.get("servers", {})
            ours, ref, null = s.get("ours", {}), s.get("reference", {}), s.get("null", {})
            lat = ours.get("latency_us", {})
            ours_rps = ours.get("requests_per_s")
            lines.append(
                f"| `{name}` | {c.get('connections')} | {c.get('events_per_request')} | "
                f"{c.get('event_bytes')} | {wname} | {fmt_rate(ours.get('events_per_s'))} | "
                f"{fmt_ms(lat.get('p50'))} / {fmt_ms(lat.get('p99'))} / {fmt_ms(lat.get('p999'))} | "
                f"{fmt_rate(ref.get('events_per_s'))} | {fmt_rate(null.get('requests_per_s'))} | "
                f"{ratio(ours.get('events_per_s'), ref.get('events_per_s'))} | "
                f"{ratio(ours_rps, null.get('requests_per_s'))} | {ours.get('errors_all_rounds', ours.get('errors', '—'))} |")
    lines.append("")
    if missing:
        lines.append("Missing runs (their append.sh failed; see the run log): " +
                     ", ".join(f"`{m}`" for m in missing))
        lines.append("")
    out = os.path.join(results_dir, f"{date}-append-matrix.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {out}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
