#!/usr/bin/env python3
"""Turn bench/perf/run.sh measurements into bench/results/<date>-<family>.{json,md}.

Input: concatenated JSON objects {"label","server","load","result"} (one per measurement).
The Markdown puts durable-sessions and the reference server side by side with their ratio.
"""
import argparse, datetime, json, os, platform, statistics, subprocess

TARGETS = {
    "read": "Catch-up reads >= 1 GB/s from page cache (issue 6)",
    "live": "Append-to-SSE p99 < 2 ms with 1 subscriber; 10,000 SSE subscribers on one session all "
            "receive an event within 50 ms p99 (issue 6)",
    "sessions": "Side by side: session appends/s (32 clients, 1 event/request) and append-to-SSE "
                "p50/p99 over 10,000 events, 1 subscriber (issue 3); append >= 20x reference (issue 6)",
    "capacity": "Idle SSE connection < 16 KiB; 100,000 idle sessions < 1 GiB RSS; restart-to-ready "
                "< 2 s with 10 GB (issue 6)",
}


def load_records(path):
    text = open(path).read()
    dec = json.JSONDecoder()
    i, out = 0, []
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


def key_metrics(fam, label, r):
    """(display string, primary number, higher_is_better) for one measurement."""
    if "error" in r:
        return ("ERROR: " + str(r["error"]), None, True)
    m = r.get("mode")
    if m == "catchup":
        runs = r["runs"]
        mb = statistics.median(x["mb_per_s"] for x in runs)
        ev = statistics.median(x["events_per_s"] for x in runs)
        best = max(x["mb_per_s"] for x in runs)
        return (f"{mb:,.0f} MB/s median of {len(runs)} (best {best:,.0f}), {ev:,.0f} events/s, "
                f"{runs[0]['requests']} responses, {runs[0]['bytes']/1e6:,.0f} MB", mb, True)
    if m == "random":
        return (f"{r['req_per_s']:,.0f} req/s, {r['mb_per_s']:,.0f} MB/s, {r['avg_response_bytes']/1e6:.2f} MB/response, "
                f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms", r["mb_per_s"], True)
    if m == "post" and label.startswith("session creation"):
        return (f"{r['req_per_s']:,.0f} sessions/s ({r['requests']:,} in {r['seconds']:.1f} s), errors {r['errors']}",
                r["req_per_s"], True)
    if m == "post":
        return (f"{r['events']:,} events in {r['seconds']:.1f} s ({r['req_per_s']:,.0f} req/s), errors {r['errors']}",
                r["seconds"], False)
    if m == "live":
        s = (f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, p99.9 {r['p999_ms']:.2f} ms "
             f"({r['deliveries']:,}/{r['expected_deliveries']:,} deliveries of {r['events']} events")
        if r["subscribers"] > 1 and not r["own_sessions"]:
            s += f"; all-subscribers-received p50 {r['all_subscribers_p50_ms']:.2f} / p99 {r['all_subscribers_p99_ms']:.2f} ms"
        s += f"; append p50 {r['append_p50_ms']:.2f} ms"
        if r["subscribers_ready"] < r["subscribers"]:
            s += f"; ONLY {r['subscribers_ready']} of {r['subscribers']} subscribers attached"
        if r["reconnects"] or r["sub_errors"] or r["append_errors"]:
            s += f"; reconnects {r['reconnects']}, errors {r['sub_errors']}+{r['append_errors']}"
        s += f"; connect {r['connect_seconds']:.1f} s)"
        return (s, r["p99_ms"], False)
    if m == "idle":
        return (f"{r['bytes_per_connection']/1024:.1f} KiB/connection ({r['ready']}/{r['connections']} attached, "
                f"RSS {r['rss_before_kb']/1024:.0f} -> {r['rss_after_kb']/1024:.0f} MiB, after close "
                f"{r['rss_after_close_kb']/1024:.0f} MiB)", r["bytes_per_connection"], False)
    if "requests_per_s" in r:  # ds_loadgen
        lat = r["latency_us"]
        return (f"{r['requests_per_s']:,.0f} appends/s, p50 {lat['p50']/1000:.2f} ms, p99 {lat['p99']/1000:.2f} ms, "
                f"errors {r['errors']}, server CPU {r.get('server_cpu_cores')} cores",
                r["requests_per_s"], True)
    if "bytes_per_session" in r:
        c = r["create"]
        ok = c["requests"] - c["errors"]
        per = (r["rss_after_kb"] - r["rss_before_kb"]) * 1024 / max(ok, 1)
        made = (f"{ok:,} sessions created in {c['seconds']:.1f} s ({c['req_per_s']:,.0f}/s), none failed"
                if c["errors"] == 0 else
                f"{ok:,} sessions actually created ({c['requests']:,} attempted in {c['seconds']:.1f} s, "
                f"{c['errors']:,} failed)")
        return (f"RSS {r['rss_before_kb']/1024:.0f} -> {r['rss_after_kb']/1024:.0f} MiB = "
                f"{per:,.0f} B/session; {made}", r["rss_after_kb"], False)
    if "ms" in r:
        return (f"{r['ms']:,} ms to /readyz 200 ({r['data_bytes']/1e9:.2f} GB data dir, RSS {r['rss_kb']/1024:.0f} MiB)",
                r["ms"], False)
    if "rss_kb" in r:
        return (f"RSS {r['rss_kb']/1024:.0f} MiB", r["rss_kb"], False)
    return (json.dumps(r)[:200], None, True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True)
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", default="0")
    a = ap.parse_args()
    recs = load_records(a.inp) if os.path.exists(a.inp) else []
    if len(recs) == 1 and "measurements" in recs[0]:  # re-render a results .json
        recs = recs[0]["measurements"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except Exception:
        commit = ""
    meta = {
        "family": a.family, "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "quick": a.quick == "1", "commit": commit, "host": platform.node(), "ncpu": os.cpu_count(),
        "loadavg_at_report": open("/proc/loadavg").read().split()[:3],
        "target": TARGETS.get(a.family, ""),
    }
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out + ".json", "w") as f:
        json.dump({"meta": meta, "measurements": recs}, f, indent=1)

    labels = []
    for r in recs:
        if r["label"] not in labels:
            labels.append(r["label"])
    md = [f"# {a.family} benchmark — {meta['date']}", "",
          f"Target: {meta['target']}", "",
          f"Commit {commit}, {meta['ncpu']} cores, {'QUICK' if meta['quick'] else 'full'} run. "
          f"Shared machine: the 1/5/15-min load average is given per row (other jobs were running). "
          f"Reproduce: `FAMILIES={a.family} bash bench/perf/run.sh`.", "",
          "Ratio on each row's primary metric: MB/s for catch-up and random-offset reads (the "
          "reference answers a read with the whole rest of the stream while we page at 4 MiB; for live rows: reference p99 / ours p99; for "
          "memory and time rows: reference/ours).", "",
          "| workload | durable-sessions | reference (@durable-streams/server) | ratio | load |",
          "|---|---|---|---|---|"]
    for lab in labels:
        rows = {r["server"]: r for r in recs if r["label"] == lab}
        o, ref = rows.get("ours"), rows.get("reference")
        os_, on, ohb = key_metrics(a.family, lab, o["result"]) if o else ("—", None, True)
        rs_, rn, _ = key_metrics(a.family, lab, ref["result"]) if ref else ("—", None, True)
        ratio = "—"
        if on and rn and "setup" not in lab:
            x = on / rn if ohb else rn / on
            ratio = f"**{x:,.1f}x** {'better' if x >= 1 else 'worse'}"
        load = (o or ref)["load"]
        md.append(f"| {lab} | {os_} | {rs_} | {ratio} | {load} |")
    md.append("")
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
