#!/usr/bin/env python3
"""Search benchmark: durable-sessions (Xapian BM25, through the HTTP API) vs SQLite FTS5 bm25().

Steps (one run, same corpus, same machine):
 1. Load the corpus into a fresh server over HTTP (POST /v1/sessions/{id}/events, 500 events
    per request, 4 client threads).
 2. Indexing rate of ours: stop the server, delete <data-dir>/index, restart; the indexer rebuilds
    from the logs in the background and logs "search index caught up: N events indexed in S s".
    Index size = du of <data-dir>/index after a clean stop.
 3. SQLite FTS5: one table (text, session UNINDEXED, pos UNINDEXED), tokenize='porter unicode61',
    filled in one transaction with the same extracted text (same rule as src/search/event_text);
    rate = rows / insert+commit time; size = the .db file after VACUUM-free close.
 4. Queries: 1-, 2-, 3-term AND queries of mid-frequency words, across sessions and within one
    session, limit 10. Ours: latency of the whole HTTP request (keep-alive, one client) including
    the read of the 10 events from the log, snippets and JSON. FTS5: in-process latency of
    SELECT … ORDER BY bm25() LIMIT 10 (no HTTP, no snippets) — so ours carries extra overhead.
 5. Top-10 overlap: |ours ∩ fts5| / 10 per cross-session query, averaged.
"""
import argparse
import collections
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "system"))
import search_test as st  # noqa: E402  (server/client helpers)

SERVER_KEYS = {"id", "offset", "type", "created_at", "processed_at"}
B64 = re.compile(r"^[A-Za-z0-9+/=_-]*$")


def opaque(s):
    if len(s) < 100 or any(c in s for c in " \n\t\r"):
        return False
    return sum(1 for c in s if B64.match(c)) * 10 >= len(s) * 9


def extract(ev):
    parts = [ev.get("type", "")]

    def walk(v, in_source=False):
        if isinstance(v, str):
            if v and not opaque(v):
                parts.append(v)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            b64 = v.get("type") == "base64"
            for k, x in v.items():
                if k == "type" or (k == "data" and (b64 or in_source)):
                    continue
                walk(x, k == "source")

    for k, v in ev.items():
        if k not in SERVER_KEYS:
            walk(v, k == "source")
    return "\n".join(p for p in parts if p)[: 64 * 1024]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def du(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--queries", type=int, default=200, help="per kind")
    ap.add_argument("--out", required=True, help="results prefix (writes .md and .json)")
    a = ap.parse_args()

    rows = [json.loads(l) for l in open(a.corpus)]
    sessions = collections.OrderedDict()
    for r in rows:
        sessions.setdefault(r["session"], []).append(r["event"])
    n_events = len(rows)
    print(f"corpus: {n_events} events, {len(sessions)} sessions", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="ds-search-bench-"))
    data = tmp / "data"
    data.mkdir()
    srv = st.Server(st.resolve_bin(), data)
    srv.start()

    # 1. load
    t0 = time.perf_counter()
    items = list(sessions.items())
    def loader(k):
        c = st.Client(srv, "x")
        for sid, evs in items[k::4]:
            for i in range(0, len(evs), 500):
                c.append(sid, evs[i:i + 500])
    ts = [threading.Thread(target=loader, args=(k,)) for k in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    load_s = time.perf_counter() - t0
    print(f"loaded over HTTP in {load_s:.1f} s ({n_events / load_s:.0f} events/s, indexing live)",
          flush=True)
    c = st.Client(srv, "x")
    while c.search({"q": "error"})["indexed_events"] < n_events:  # live indexer catching up
        time.sleep(0.1)
    live_caught_s = time.perf_counter() - t0

    # 2. rebuild
    srv.stop()
    shutil.rmtree(data / "index")
    log_before = srv.log_path.read_text() if srv.log_path.exists() else ""
    srv.start()
    rate = secs = None
    deadline = time.time() + 3600
    while time.time() < deadline:
        text = srv.log_path.read_text()[len(log_before):]
        m = re.search(r"search index caught up: (\d+) events indexed in ([\d.]+) s", text)
        if m:
            secs = float(m.group(2))
            rate = int(m.group(1)) / secs
            break
        time.sleep(0.2)
    print(f"rebuild: {secs:.1f} s, {rate:.0f} events/s", flush=True)
    srv.stop()
    our_size = du(data / "index")
    srv.start()

    # 3. FTS5
    dbp = tmp / "fts.db"
    db = sqlite3.connect(dbp)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE VIRTUAL TABLE ev USING fts5(body, sid UNINDEXED, pos UNINDEXED, "
               "tokenize='porter unicode61')")
    t0 = time.perf_counter()
    texts = [(extract(e), sid, i) for sid, evs in sessions.items() for i, e in enumerate(evs)]
    t_extract = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db:
        db.executemany("INSERT INTO ev(body, sid, pos) VALUES (?,?,?)", texts)
    fts_secs = time.perf_counter() - t0
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    fts_size = du(tmp) - du(data) - (0)
    fts_size = os.path.getsize(dbp)
    print(f"fts5: {fts_secs:.1f} s insert ({n_events / fts_secs:.0f} events/s; extraction "
          f"{t_extract:.1f} s not counted), {fts_size / 1e6:.1f} MB", flush=True)

    # 4. queries: words of mid document frequency (from a sample)
    df = collections.Counter()
    for text, _, _ in texts[:20000]:
        df.update(set(w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3))
    ranked = [w for w, _ in df.most_common()]
    mid = ranked[30:600]
    import random
    rng = random.Random(7)
    sids = list(sessions)
    results = {}
    overlaps = []
    for nterms in (1, 2, 3):
        for scope in ("cross", "session"):
            ours, fts = [], []
            for qi in range(a.queries):
                words = rng.sample(mid[: 60 if nterms > 1 else 600], nterms)
                q = " ".join(words)
                sid = rng.choice(sids)
                params = {"q": q, "limit": 10}
                t = time.perf_counter()
                if scope == "cross":
                    r = c.search(params)
                else:
                    r = c.session_search(sid, params)
                ours.append((time.perf_counter() - t) * 1000)
                fq = " AND ".join(f'"{w}"' for w in words)
                t = time.perf_counter()
                if scope == "cross":
                    fr = db.execute("SELECT sid, pos FROM ev WHERE ev MATCH ? ORDER BY bm25(ev) "
                                    "LIMIT 10", (fq,)).fetchall()
                else:
                    fr = db.execute("SELECT sid, pos FROM ev WHERE ev MATCH ? AND sid = ? ORDER BY "
                                    "bm25(ev) LIMIT 10", (fq, sid)).fetchall()
                fts.append((time.perf_counter() - t) * 1000)
                if scope == "cross" and fr:
                    mine = {(h["session_id"], int(h["event"]["offset"])) for h in r["data"]}
                    theirs = {(s, int(p)) for s, p in fr}
                    overlaps.append(len(mine & theirs) / max(1, min(10, len(theirs))))
            key = f"{nterms}-term {scope}"
            results[key] = {"ours_p50_ms": pct(ours, .5), "ours_p99_ms": pct(ours, .99),
                            "fts5_p50_ms": pct(fts, .5), "fts5_p99_ms": pct(fts, .99)}
            print(key, results[key], flush=True)
    srv.stop()

    # freshness while appending
    srv.start()
    fresh = []
    sid = "fresh-bench"
    for i in range(200):
        w = f"freshword{i}x"
        c.append(sid, [{"type": "user.message", "content": [{"type": "text", "text": w}]}])
        t = time.perf_counter()
        r = c.session_search(sid, {"q": w})
        fresh.append((time.perf_counter() - t) * 1000)
        assert len(r["data"]) == 1
    srv.stop()

    out = {
        "date": time.strftime("%Y-%m-%d"),
        "events": n_events, "sessions": len(sessions),
        "load_http_events_per_s": n_events / load_s,
        "live_index_caught_up_s": live_caught_s,
        "ours_rebuild_events_per_s": rate, "ours_rebuild_s": secs,
        "ours_index_bytes": our_size,
        "fts5_insert_events_per_s": n_events / fts_secs, "fts5_bytes": fts_size,
        "queries": results,
        "top10_overlap_cross": statistics.mean(overlaps) if overlaps else None,
        "freshness_search_after_ack_ms": {"p50": pct(fresh, .5), "p99": pct(fresh, .99),
                                          "max": max(fresh)},
        "cpu": open("/proc/cpuinfo").read().count("processor\t:"),
        "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
    }
    Path(a.out + ".json").write_text(json.dumps(out, indent=2) + "\n")
    md = [f"# Search benchmark — {out['date']}", "",
          f"Corpus: {n_events:,} synthetic agent events over {len(sessions):,} sessions "
          f"(bench/search/gen_corpus.py, Zipfian vocabulary). Machine: {out['cpu']} cores, load "
          f"average {' '.join(out['loadavg_at_end'])} at the end of the run.", "",
          "| metric | durable-sessions (Xapian BM25) | SQLite FTS5 bm25() |", "|---|---|---|",
          f"| indexing rate | {rate:,.0f} events/s (rebuild from the logs, incl. reading + "
          f"extraction) | {n_events / fts_secs:,.0f} events/s (INSERT of pre-extracted text) |",
          f"| index size | {our_size / 1e6:.1f} MB | {fts_size / 1e6:.1f} MB |"]
    for k, v in results.items():
        md.append(f"| {k} p50 / p99 | {v['ours_p50_ms']:.2f} / {v['ours_p99_ms']:.2f} ms (HTTP) "
                  f"| {v['fts5_p50_ms']:.2f} / {v['fts5_p99_ms']:.2f} ms (in-process) |")
    md += [f"| top-10 overlap (cross-session) | {out['top10_overlap_cross']:.2f} | — |",
           f"| search right after an acked append | p50 {out['freshness_search_after_ack_ms']['p50']:.1f}"
           f" ms, p99 {out['freshness_search_after_ack_ms']['p99']:.1f} ms | — |", "",
           f"Loading over HTTP ran at {out['load_http_events_per_s']:,.0f} events/s with live "
           f"indexing; the index had caught up {live_caught_s:.1f} s after the load started.", "",
           "Notes: our latencies are whole HTTP requests (one keep-alive client) including reading "
           "the 10 events from the log and building snippets; FTS5 latencies are the bare SQL "
           "query in-process, and its per-session query post-filters an UNINDEXED session column. "
           "FTS5 uses the porter tokenizer (Porter 1) against Xapian's English (Porter 2) stemmer, "
           "and our ranking adds a small exact-form bonus, so top-10 sets need not be identical."]
    Path(a.out + ".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
