#!/usr/bin/env python3
"""Indexing-rate tool: load a corpus into a data directory once, then time index rebuilds.

  python3 bench/search/rebuild.py load    --corpus C.jsonl --data-dir D [--events N]
  python3 bench/search/rebuild.py rebuild --data-dir D [--runs 3] [-- extra serve args]

`load` creates tenant key "bench" (written to D/../bench.key) and appends the corpus over HTTP
(4 client threads, 500 events per request), then waits until the live indexer caught up.
`rebuild` stops nothing it did not start: it starts the server on D, deletes D/index first, waits
for the "search index caught up" log line and prints the rate; repeated --runs times. With
--probe, a client meanwhile searches one random session at a time (`q=error`, 5 per second) and
reports how long those searches took while the indexer was busy with the backlog (a per-session
search waits until its session is indexed; the indexer takes it ahead of the others).
The server binary is DS_BIN (default build/durable-sessions). Use with `perf record -p` for
profiles. `load --no-wait` stops the server right after the load instead of waiting for the
live indexer.
"""
import argparse
import collections
import json
import random
import re
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "system"))
import harness  # noqa: E402
import search_test as st  # noqa: E402

log = harness.make_log("rebuild")


def read_corpus(path, limit):
    sessions = collections.OrderedDict()
    n = 0
    with open(path) as f:
        for line in f:
            if limit and n >= limit:
                break
            r = json.loads(line)
            sessions.setdefault(r["session"], []).append(r["event"])
            n += 1
    return sessions, n


def load(a, binary):
    data = Path(a.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    key = harness.create_key(binary, data, "bench")
    (data.parent / "bench.key").write_text(key + "\n")
    sessions, n = read_corpus(a.corpus, a.events)
    srv = harness.Server(binary, data, data.parent / "server.log", ["--access-log", "false"],
                         log=log)
    srv.start()
    items = list(sessions.items())
    t0 = time.perf_counter()

    def loader(k):
        c = st.Client(srv, key)
        for sid, evs in items[k::4]:
            for i in range(0, len(evs), 500):
                c.append(sid, evs[i:i + 500])

    ts = [threading.Thread(target=loader, args=(k,)) for k in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    load_s = time.perf_counter() - t0
    log(f"loaded {n} events / {len(sessions)} sessions in {load_s:.1f} s ({n / load_s:.0f}/s)")
    c = st.Client(srv, key)
    while not a.no_wait and c.search({"q": "error"})["indexed_events"] < n:
        time.sleep(0.2)
    if not a.no_wait:
        log(f"live index caught up {time.perf_counter() - t0:.1f} s after the load started")
    srv.stop()


def rebuild(a, binary):
    data = Path(a.data_dir)
    logp = data.parent / "server.log"
    for run in range(a.runs):
        shutil.rmtree(data / "index", ignore_errors=True)
        before = logp.read_text() if logp.exists() else ""
        srv = harness.Server(binary, data, logp, ["--access-log", "false", *a.serve_args],
                             log=log)
        srv.start()
        print(f"server pid {srv.proc.pid}", flush=True)
        t0 = time.time()
        stop = threading.Event()
        probes = []

        def probe():
            key = (data.parent / "bench.key").read_text().strip()
            c = st.Client(srv, key)
            rng = random.Random(5)
            sids = [f"bench-{i:05d}" for i in range(a.probe_sessions)]
            while not stop.is_set():
                sid = rng.choice(sids)
                t = time.perf_counter()
                code, h, _ = c.request("GET", f"/v1/sessions/{sid}/events?q=error&limit=10")
                probes.append(((time.perf_counter() - t) * 1000, h.get("x-index-stale") == "true",
                               code))
                stop.wait(0.2)

        pt = threading.Thread(target=probe) if a.probe else None
        if pt:
            pt.start()
        try:
            while True:
                text = logp.read_text()[len(before):]
                m = re.search(r"search index caught up: (\d+) events indexed in ([\d.]+) s.*", text)
                if m:
                    n, secs = int(m.group(1)), float(m.group(2))
                    log(f"run {run + 1}: {n} events in {secs:.2f} s = {n / secs:,.0f} events/s; {m.group(0)}")
                    break
                if time.time() - t0 > 7200:
                    raise RuntimeError("no catch-up within 2 h")
                time.sleep(0.1)
        finally:
            stop.set()
            if pt:
                pt.join()
            srv.stop()
        if probes:
            lat = sorted(x[0] for x in probes)
            log(f"per-session searches during the rebuild: {len(lat)}, p50 {lat[len(lat) // 2]:.1f} "
                f"ms, p99 {lat[min(len(lat) - 1, int(len(lat) * .99))]:.1f} ms, max {lat[-1]:.1f} "
                f"ms, stale {sum(1 for x in probes if x[1])}, non-200 "
                f"{sum(1 for x in probes if x[2] != 200)}")
        size = sum(f.stat().st_size for f in (data / "index").rglob("*") if f.is_file())
        log(f"index size {size / 1e6:.1f} MB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["load", "rebuild"])
    ap.add_argument("--corpus")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--events", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-wait", action="store_true")
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--probe-sessions", type=int, default=200, help="probe bench-00000 .. N-1")
    ap.add_argument("serve_args", nargs="*")
    a = ap.parse_args()
    binary = harness.find_binary(log)
    if binary is None:
        return 2
    (load if a.cmd == "load" else rebuild)(a, binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
