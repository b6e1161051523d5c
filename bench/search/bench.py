#!/usr/bin/env python3
"""Search benchmark: durable-sessions (BM25 over its own text segments, Xapian for filters; through the HTTP API) vs SQLite FTS5 bm25().

Steps (one run, same corpus, same machine):
 1. Load the corpus into a fresh server over HTTP (POST /v1/sessions/{id}/events, 500 events
    per request, 4 client threads); the indexer indexes live meanwhile (how far it got is
    reported; we do not wait for it).
 2. Indexing rate of ours: stop the server, delete <data-dir>/index, restart; the indexer rebuilds
    from the logs in the background and logs "search index caught up: N events indexed in S s"
    (it also logs its CPU time). Index size = du of <data-dir>/index after a clean stop.
 3. SQLite FTS5: one table (text, session UNINDEXED, pos UNINDEXED), tokenize='porter unicode61',
    filled in one transaction with the same extracted text (same rule as src/search/event_text);
    rate = rows / insert+commit time; size = the .db file after VACUUM-free close.
 4. Queries: 1-, 2-, 3-term AND queries of mid-frequency words, across sessions and within one
    session, limit 10. Ours: latency of the whole HTTP request (keep-alive, one client) including
    the read of the 10 events from the log, snippets and JSON. FTS5: in-process latency of
    SELECT … ORDER BY bm25() LIMIT 10 (no HTTP, no snippets) — so ours carries extra overhead.
 5. Top-10 overlap: |ours ∩ fts5| / 10 per cross-session query, averaged.
 6. Freshness while appends run: a background client appends 20-event batches to the corpus
    sessions without pause; meanwhile the probe appends one event with a unique word to its own
    session and, as soon as that append is acknowledged, searches for the word (per session and
    across sessions). Latency = ack to search response containing the event.
"""
import argparse
import collections
import json
import os
import random
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
import harness  # noqa: E402
import search_test as st  # noqa: E402  (client helpers)

log = harness.make_log("search-bench")

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
    ap.add_argument("--fresh-append-rate", type=float, default=500,
                    help="events/s the background client appends during the freshness probe")
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
    binary = harness.find_binary(log)
    if binary is None:
        return 2
    binary = harness.private_copy(binary, tmp)
    api_key = harness.create_key(binary, data, "bench")
    srv = harness.Server(binary, data, tmp / "server.log", ["--access-log", "false"], log=log)
    srv.start()

    # 1. load
    t0 = time.perf_counter()
    items = list(sessions.items())
    def loader(k):
        c = st.Client(srv, api_key)
        for sid, evs in items[k::4]:
            for i in range(0, len(evs), 500):
                c.append(sid, evs[i:i + 500])
    ts = [threading.Thread(target=loader, args=(k,)) for k in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    load_s = time.perf_counter() - t0
    c = st.Client(srv, api_key)
    metrics = harness.request(srv.port, "GET", "/metrics",
                              headers={"authorization": f"Bearer {api_key}"})[2].decode()
    live_indexed = int(re.search(r"^ds_indexed_events_total (\d+)", metrics, re.M).group(1))
    print(f"loaded over HTTP in {load_s:.1f} s ({n_events / load_s:.0f} events/s); the live "
          f"indexer had indexed {live_indexed} of them by then", flush=True)

    # 2. rebuild
    srv.stop()
    shutil.rmtree(data / "index")
    log_before = srv.log_path.read_text() if srv.log_path.exists() else ""
    srv.start()
    rate = secs = cpu_s = None
    deadline = time.time() + 3600
    while time.time() < deadline:
        text = srv.log_path.read_text()[len(log_before):]
        m = re.search(r"search index caught up: (\d+) events indexed in ([\d.]+) s", text)
        if m:
            secs = float(m.group(2))
            rate = int(m.group(1)) / secs
            cm = re.search(r"search index caught up: .*?([\d.]+) s CPU", text)
            cpu_s = float(cm.group(1)) if cm else None
            break
        time.sleep(0.2)
    print(f"rebuild: {secs:.1f} s, {rate:.0f} events/s (indexer CPU {cpu_s} s)", flush=True)
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

    # 6. freshness while appends run
    srv.start()
    stop = threading.Event()
    bg_events = [0]

    def background():
        bc = st.Client(srv, api_key)
        brng = random.Random(11)
        t_next = time.perf_counter()
        while not stop.is_set():
            sid_, evs = items[brng.randrange(len(items))]
            j = brng.randrange(max(1, len(evs) - 20))
            bc.append(sid_, evs[j:j + 20])
            bg_events[0] += len(evs[j:j + 20])
            t_next += len(evs[j:j + 20]) / a.fresh_append_rate  # paced: 20-event batches
            time.sleep(max(0.0, t_next - time.perf_counter()))

    # The restarted server has loaded no session yet: the first search across sessions loads
    # every session's log (their tails). Timed on its own, not part of the freshness numbers.
    t = time.perf_counter()
    c.search({"q": "error", "limit": 1})
    cold_cross_ms = (time.perf_counter() - t) * 1000
    bt = threading.Thread(target=background)
    bt.start()
    fresh = {"session": [], "cross": []}
    waits = []
    stale = 0
    t_fresh = time.perf_counter()
    try:
        for i in range(200):
            scope = "session" if i % 2 == 0 else "cross"
            w = f"freshword{i}x"
            sid = f"fresh-bench-{i % 4}"
            c.append(sid, [{"type": "user.message", "content": [{"type": "text", "text": w}]}])
            t = time.perf_counter()
            path = (f"/v1/sessions/{sid}/events?q={w}" if scope == "session"
                    else f"/v1/search?q={w}")
            code, h, raw = c.request("GET", path)
            fresh[scope].append((time.perf_counter() - t) * 1000)
            assert code == 200, raw[:200]
            r = json.loads(raw)
            if h.get("x-index-stale") == "true":
                stale += 1  # the wait hit --search-wait: the indexer is behind the appends
            else:
                assert len(r["data"]) == 1, (scope, r, h)
            waits.append(float(h.get("x-index-wait-ms", "0")))
    finally:
        stop.set()
        bt.join()
    bg_rate = bg_events[0] / (time.perf_counter() - t_fresh)
    srv.stop()
    allf = fresh["session"] + fresh["cross"]

    out = {
        "date": time.strftime("%Y-%m-%d"),
        "events": n_events, "sessions": len(sessions),
        "load_http_events_per_s": n_events / load_s,
        "ours_rebuild_events_per_s": rate, "ours_rebuild_s": secs,
        "ours_index_bytes": our_size,
        "fts5_insert_events_per_s": n_events / fts_secs, "fts5_bytes": fts_size,
        "queries": results,
        "top10_overlap_cross": statistics.mean(overlaps) if overlaps else None,
        "freshness_search_after_ack_ms": {
            "p50": pct(allf, .5), "p99": pct(allf, .99), "max": max(allf),
            "session_p50": pct(fresh["session"], .5), "session_p99": pct(fresh["session"], .99),
            "cross_p50": pct(fresh["cross"], .5), "cross_p99": pct(fresh["cross"], .99),
            "index_wait_p50_ms": pct(waits, .5), "index_wait_p99_ms": pct(waits, .99),
            "background_appends_events_per_s": bg_rate, "stale_answers": stale,
            "probes": 200, "first_cross_search_after_restart_ms": cold_cross_ms},
        "live_indexed_at_end_of_load": live_indexed,
        "ours_rebuild_cpu_s": cpu_s,
        "ours_rebuild_events_per_cpu_s": (n_events / cpu_s) if cpu_s else None,
        "cpu": open("/proc/cpuinfo").read().count("processor\t:"),
        "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
    }
    Path(a.out + ".json").write_text(json.dumps(out, indent=2) + "\n")
    fr = out["freshness_search_after_ack_ms"]
    md = [f"# Search benchmark — {out['date']}", "",
          f"Corpus: {n_events:,} synthetic agent events over {len(sessions):,} sessions "
          f"(bench/search/gen_corpus.py, Zipfian vocabulary). Machine: {out['cpu']} cores, load "
          f"average {' '.join(out['loadavg_at_end'])} at the end of the run.", "",
          "| metric | durable-sessions (BM25) | SQLite FTS5 bm25() | ratio (ours better when > 1) |",
          "|---|---|---|---|",
          f"| indexing rate | {rate:,.0f} events/s (rebuild from the logs, incl. reading + "
          f"extraction; {out['ours_rebuild_events_per_cpu_s'] or 0:,.0f} per indexer CPU-second) "
          f"| {n_events / fts_secs:,.0f} events/s (INSERT of pre-extracted text) "
          f"| {rate / (n_events / fts_secs):.2f}× |",
          f"| index size | {our_size / 1e6:.1f} MB | {fts_size / 1e6:.1f} MB "
          f"| {fts_size / our_size:.2f}× smaller |"]
    for k, v in results.items():
        md.append(f"| {k} p50 / p99 | {v['ours_p50_ms']:.2f} / {v['ours_p99_ms']:.2f} ms (HTTP) "
                  f"| {v['fts5_p50_ms']:.2f} / {v['fts5_p99_ms']:.2f} ms (in-process) "
                  f"| {v['fts5_p50_ms'] / v['ours_p50_ms']:.2f}× / "
                  f"{v['fts5_p99_ms'] / v['ours_p99_ms']:.2f}× faster |")
    md += [f"| top-10 overlap (cross-session) | {out['top10_overlap_cross']:.2f} | — | — |",
           f"| search right after an acked append, appends running | p50 "
           f"{fr['p50']:.1f} ms, p99 {fr['p99']:.1f} ms (per session {fr['session_p50']:.1f} / "
           f"{fr['session_p99']:.1f}, across sessions {fr['cross_p50']:.1f} / "
           f"{fr['cross_p99']:.1f}; indexer wait p99 {fr['index_wait_p99_ms']:.0f} ms; background "
           f"appends {fr['background_appends_events_per_s']:,.0f} events/s; {fr['stale_answers']} of "
           f"{fr['probes']} answers stale) | — | — |",
           f"| first search across sessions after a restart (loads every session) | "
           f"{fr['first_cross_search_after_restart_ms']:.0f} ms | — | — |", "",
           f"Loading over HTTP ran at {out['load_http_events_per_s']:,.0f} events/s; the live "
           f"indexer had indexed {live_indexed:,} events when the load finished (not waited for: "
           f"the rebuild below measures indexing).", "",
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
