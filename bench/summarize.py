#!/usr/bin/env python3
"""The short summary of one `make bench` run: every issue-6 / issue-4 target, the number measured
in this run, the peer's number and the ratio where there is a peer, and met / missed (by how much).

  python3 bench/summarize.py RESULTS_DIR DATE      # writes RESULTS_DIR/DATE-targets.md

It reads only the JSON files of that run (DATE-append.json, DATE-read.json, DATE-live.json,
DATE-capacity.json, DATE-search.json, DATE-s3.json). A file or a row that is missing is reported
as "not measured", never guessed. Why a target is missed, and what would close it, is written by
hand in the run's notes (bench/README.md links them); this file only states the numbers.
"""
import json
import os
import statistics
import sys


def load(results_dir, date, name):
    try:
        with open(os.path.join(results_dir, f"{date}-{name}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def measurement(doc, label, server="ours"):
    if not doc:
        return None
    for m in doc.get("measurements", []):
        if m.get("label") == label and m.get("server") == server:
            r = m.get("result")
            return r if isinstance(r, dict) and "error" not in r else None
    return None


def measurements_prefix(doc, prefix, server="ours"):
    if not doc:
        return []
    return [m["result"] for m in doc.get("measurements", [])
            if m.get("label", "").startswith(prefix) and m.get("server") == server
            and isinstance(m.get("result"), dict) and "error" not in m["result"]]


class Table:
    def __init__(self):
        self.rows = []
        self.met = 0
        self.missed = 0
        self.unmeasured = 0

    def add(self, target, ours, peer, ratio, ok, gap=""):
        """ok: True / False / None (not measured)."""
        if ok is None:
            verdict = "not measured"
            self.unmeasured += 1
        elif ok:
            verdict = "**met**"
            self.met += 1
        else:
            verdict = f"**missed**{' — ' + gap if gap else ''}"
            self.missed += 1
        self.rows.append(f"| {target} | {ours} | {peer} | {ratio} | {verdict} |")


def x(v):
    return f"{v:.1f}×"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results_dir, date = sys.argv[1], sys.argv[2]
    t = Table()

    # --- append (issue 2 / issue 6 item 1) ---
    ap = load(results_dir, date, "append")
    for wname, label in (("per-stream", "32 streams"), ("hot", "1 hot stream")):
        w = (ap or {}).get("workloads", {}).get(wname, {}).get("servers", {})
        ours = w.get("ours", {}).get("events_per_s")
        ref = w.get("reference", {}).get("events_per_s")
        null = w.get("null", {}).get("requests_per_s")
        if ours and ref:
            r = ours / ref
            t.add(f"Append ≥ 20× the reference, {label}, 32 conn × 200 B, fsync on",
                  f"{ours:,.0f}/s", f"{ref:,.0f}/s", x(r), r >= 20,
                  f"{20 / r:.2f}× short" if r < 20 else "")
        else:
            t.add(f"Append ≥ 20× the reference, {label}", "—", "—", "—", None)
        if ours and null:
            r = ours / null
            t.add(f"Append ≥ 40 % of the null server, {label}", f"{ours:,.0f}/s",
                  f"null {null:,.0f}/s", f"{r:.3f}", r >= 0.40, f"{0.40 / r:.2f}× short" if r < 0.4 else "")
        else:
            t.add(f"Append ≥ 40 % of the null server, {label}", "—", "—", "—", None)

    # --- catch-up reads ---
    rd = load(results_dir, date, "read")
    for label, name in (("catch-up from -1", "stream"),
                        ("session catch-up from -1, limit=10000", "session events endpoint")):
        ours = measurement(rd, label)
        ref = measurement(rd, label, "reference")
        if ours and ours.get("runs"):
            med = statistics.median(r["mb_per_s"] for r in ours["runs"])
            best = max(r["mb_per_s"] for r in ours["runs"])
            peer = "—"
            ratio = "—"
            if ref and ref.get("runs"):
                rmed = statistics.median(r["mb_per_s"] for r in ref["runs"])
                peer, ratio = f"{rmed:,.0f} MB/s", x(med / rmed)
            t.add(f"Catch-up ≥ 1 GB/s from page cache ({name}, 1M × 200 B)",
                  f"{med:,.0f} MB/s median of {len(ours['runs'])} (best {best:,.0f})", peer, ratio,
                  med >= 1000, f"{1000 / med:.2f}× short" if med < 1000 else "")
        else:
            t.add(f"Catch-up ≥ 1 GB/s ({name})", "—", "—", "—", None)

    # --- live delivery ---
    lv = load(results_dir, date, "live")
    ours = measurement(lv, "sse, 1 subscriber")
    ref = measurement(lv, "sse, 1 subscriber", "reference")
    if ours:
        p99 = ours["p99_ms"]
        t.add("Append-to-SSE p99 < 2 ms, 1 subscriber", f"p50 {ours['p50_ms']:.2f} / p99 {p99:.2f} ms",
              f"p99 {ref['p99_ms']:.1f} ms" if ref else "—",
              x(ref["p99_ms"] / p99) if ref and p99 else "—", p99 < 2, f"{p99 / 2:.1f}× over" if p99 >= 2 else "")
    else:
        t.add("Append-to-SSE p99 < 2 ms, 1 subscriber", "—", "—", "—", None)
    ours = measurement(lv, "sse, 10000 subscribers on one session")
    if ours and ours.get("deliveries") is not None:
        p99 = ours["all_subscribers_p99_ms"]
        complete = ours["deliveries"] == ours["expected_deliveries"]
        t.add("10,000 SSE subscribers on one session all receive an event within 50 ms p99",
              f"all-received p99 {p99:.0f} ms (per delivery p50 {ours['p50_ms']:.0f} / p99 "
              f"{ours['p99_ms']:.0f} ms; {ours['deliveries']:,} of {ours['expected_deliveries']:,} delivered)",
              "— (reference not run at 10,000)", "—", complete and p99 < 50,
              f"{p99 / 50:.1f}× over" if p99 >= 50 else "deliveries missing")
    else:
        t.add("10,000 SSE subscribers on one session, 50 ms p99", "—", "—", "—", None)

    # --- capacity ---
    cp = load(results_dir, date, "capacity")
    idle = [m for m in (cp or {}).get("measurements", []) if m.get("label", "").startswith("idle SSE connections")]
    for m in idle:
        if m.get("server") != "ours" or not isinstance(m.get("result"), dict) or "error" in m["result"]:
            continue
        r = m["result"]
        ref = measurement(cp, m["label"], "reference")
        b = r["bytes_per_connection"]
        t.add(f"Idle SSE connection < 16 KiB {m['label'][len('idle SSE connections '):]}",
              f"{b / 1024:.1f} KiB ({r['ready']:,} connections)",
              f"{ref['bytes_per_connection'] / 1024:.1f} KiB ({ref['ready']:,} attached)" if ref else "—",
              "—", b < 16 * 1024, f"{b / 16384:.2f}× over" if b >= 16384 else "")
    if not idle:
        t.add("Idle SSE connection < 16 KiB", "—", "—", "—", None)
    sess = [m for m in (cp or {}).get("measurements", [])
            if "sessions, one event each" in m.get("label", "") and m.get("server") == "ours"]
    if sess and isinstance(sess[0].get("result"), dict) and "rss_after_kb" in sess[0]["result"]:
        r = sess[0]["result"]
        gib = r["rss_after_kb"] / 1024 / 1024
        t.add(f"{r['sessions_created']:,} idle sessions < 1 GiB RSS", f"{r['rss_after_kb'] / 1024:,.0f} MiB "
              f"({r['bytes_per_session']:,} B/session)", "—", "—",
              gib < 1 and r["sessions_created"] >= 100000,
              "fewer than 100,000 sessions created" if r["sessions_created"] < 100000 else f"{gib:.2f} GiB")
    else:
        t.add("100,000 idle sessions < 1 GiB RSS", "—", "—", "—", None)
    restarts = measurements_prefix(cp, "restart-to-ready, 10 GB data")
    if restarts:
        ms = [r["ms"] for r in restarts]
        gb = max(r.get("data_bytes", 0) for r in restarts) / 1e9
        worst = max(ms)
        t.add(f"Restart-to-ready < 2 s with 10 GB of data ({gb:.1f} GB here)",
              f"{min(ms):,.0f}–{worst:,.0f} ms ({len(ms)} restarts)", "—", "—",
              worst < 2000 and gb >= 10, f"{worst / 2000:.1f}× over" if worst >= 2000 else "less than 10 GB")
    else:
        t.add("Restart-to-ready < 2 s with 10 GB", "—", "—", "—", None)

    # --- search (issue 4) ---
    se = load(results_dir, date, "search")
    if se:
        rate = se.get("ours_rebuild_events_per_s")
        fts = se.get("fts5_insert_events_per_s")
        per_cpu = se.get("ours_rebuild_events_per_cpu_s")
        t.add(f"Indexing ≥ 20,000 events/s ({se.get('events', 0):,} events)",
              f"{rate:,.0f}/s ({per_cpu:,.0f} per indexer CPU-second)" if rate else "—",
              f"FTS5 {fts:,.0f}/s" if fts else "—", x(rate / fts) if rate and fts else "—",
              bool(rate) and rate >= 20000, f"{20000 / rate:.1f}× short" if rate else "")
        q = se.get("queries", {})
        for n in (1, 2, 3):
            r = q.get(f"{n}-term cross")
            if not r:
                continue
            p50, p99 = r["ours_p50_ms"], r["ours_p99_ms"]
            ok = p50 < 5 and p99 < 50
            gap = []
            if p50 >= 5:
                gap.append(f"p50 {p50 / 5:.1f}× over")
            if p99 >= 50:
                gap.append(f"p99 {p99 / 50:.1f}× over")
            t.add(f"Cross-session search, {n} term{'s' if n > 1 else ''}: p50 < 5 ms, p99 < 50 ms",
                  f"{p50:.1f} / {p99:.1f} ms (HTTP)", f"FTS5 {r['fts5_p50_ms']:.1f} / {r['fts5_p99_ms']:.1f} ms (in-process)",
                  x(r["fts5_p50_ms"] / p50) + " on p50", ok, ", ".join(gap))
        fr = se.get("freshness_search_after_ack_ms", {})
        if fr:
            t.add("Search freshness < 100 ms p99 while appends run",
                  f"p50 {fr['p50']:.1f} / p99 {fr['p99']:.1f} ms, {fr.get('stale_answers', '?')} stale of {fr.get('probes', '?')}",
                  "—", "—", fr["p99"] < 100 and not fr.get("stale_answers"), f"{fr['p99'] / 100:.1f}× over")
    else:
        t.add("Search targets (issue 4)", "—", "—", "—", None)

    s3 = load(results_dir, date, "s3")
    s3_line = ""
    if s3 and s3.get("local") and s3.get("s3"):
        s3_line = (f"S3 tier (no target): {s3['s3'].get('events_per_s', 0):,.0f} appends/s acknowledged in the "
                   f"bucket vs {s3['local'].get('events_per_s', 0):,.0f}/s on local disk, same run "
                   f"(`{date}-s3.md`).")

    loads = []
    for name in ("append", "read", "live", "capacity", "search"):
        d = load(results_dir, date, name)
        if d and d.get("meta", {}).get("loadavg_at_report"):
            loads.append(f"{name} {' '.join(str(v) for v in d['meta']['loadavg_at_report'])}")
    commit = ((ap or {}).get("git") or {}).get("commit", "")[:12]
    out = [f"# Targets — `make bench` run of {date}", "",
           f"Generated by `bench/summarize.py` from this run's JSON files"
           f"{f' (commit `{commit}`)' if commit else ''}. Ratios are ours / peer, measured in the same run on the "
           "same machine; the per-workload files have every row, all rounds, CPU use and load.", "",
           "| target | ours | peer | ratio | verdict |", "|---|---|---|---|---|", *t.rows, "",
           f"**{t.met} met, {t.missed} missed, {t.unmeasured} not measured.**", ""]
    if s3_line:
        out += [s3_line, ""]
    if loads:
        out += ["Load average when each family's report was written: " + "; ".join(loads) + ".", ""]
    path = os.path.join(results_dir, f"{date}-targets.md")
    with open(path, "w") as f:
        f.write("\n".join(out))
    print("\n".join(out))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
