#!/usr/bin/env python3
"""Indexing-rate tool: load a corpus into a data directory once, then time index rebuilds.

  python3 bench/search/rebuild.py load    --corpus C.jsonl --data-dir D [--events N]
  python3 bench/search/rebuild.py rebuild --data-dir D [--runs 3] [-- extra serve args]

`load` creates tenant key "bench" (written to D/../bench.key) and appends the corpus over HTTP
(4 client threads, 500 events per request), then waits until the live indexer caught up.
`rebuild` stops nothing it did not start: it starts the server on D, deletes D/index first, waits
for the "search index caught up" log line and prints the rate; repeated --runs times. The server
binary is DS_BIN (default build/durable-sessions). Use with `perf record -p` for profiles.
"""
import argparse
import collections
import json
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
    while c.search({"q": "error"})["indexed_events"] < n:
        time.sleep(0.2)
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
            srv.stop()
        size = sum(f.stat().st_size for f in (data / "index").rglob("*") if f.is_file())
        log(f"index size {size / 1e6:.1f} MB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["load", "rebuild"])
    ap.add_argument("--corpus")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--events", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("serve_args", nargs="*")
    a = ap.parse_args()
    binary = harness.find_binary(log)
    if binary is None:
        return 2
    (load if a.cmd == "load" else rebuild)(a, binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
