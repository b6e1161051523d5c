#!/usr/bin/env python3
"""Pull-wake subscription latency: durable-sessions vs the upstream reference server.

Each server gets a JSON wake stream, a pull-wake subscription on `events/*` and 20 streams
`events/s<i>`. One cycle, timed on the client (one keep-alive connection per role):

  append one event to a stream -> the wake event is readable (a long-poll on the wake stream
  returns it) -> claim (POST .../claim) -> ack the stream's tail with done (POST .../ack)

and the report gives p50/p99 of each step and of the whole cycle, and ours / reference. Both
servers run on this machine in the same run, one after the other, ROUNDS times interleaved.
The reference server is @durable-streams/server (file-backed, as in bench/append.sh) started by
bench/reference-server.mjs; it keeps subscriptions in memory, ours in the catalog (every claim
and ack is an fsynced SQLite commit) and its wake events in the durable log.

  python3 bench/subscriptions.py [--cycles 300] [--rounds 2] [--out bench/results/NAME.md]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STREAMS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    def __init__(self, port: int):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def req(self, method: str, path: str, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        self.c.request(method, path, body=data, headers=h)
        r = self.c.getresponse()
        raw = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, raw


def start(kind: str, tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    data = tmp / f"{kind}-data"
    log = open(tmp / f"{kind}.log", "wb")
    if kind == "ours":
        binary = os.environ.get("DS_BIN", str(ROOT / "build" / "durable-sessions"))
        cmd = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
               "--access-log", "false"]
    else:
        cmd = ["node", str(ROOT / "bench" / "reference-server.mjs"), "--port", str(port),
               "--data-dir", str(data)]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            c = Conn(port)
            st, _, _ = c.req("HEAD", "/v1/stream/__probe")
            if st in (200, 404):
                return p, port
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError(f"{kind} did not start; see {tmp / (kind + '.log')}")


def stop(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()


def run_cycles(port: int, cycles: int, warmup: int) -> dict[str, list[float]]:
    w = Conn(port)   # writer
    r = Conn(port)   # wake stream reader
    ctl = Conn(port)  # claim / ack
    st, h, _ = w.req("PUT", "/v1/stream/wake", b"[]")
    assert st in (200, 201), f"PUT wake: {st}"
    for i in range(STREAMS):
        st, _, _ = w.req("PUT", f"/v1/stream/events/s{i}", b"[]")
        assert st in (200, 201), st
    st, _, raw = ctl.req("PUT", "/v1/stream/__ds/subscriptions/bench",
                         {"type": "pull-wake", "pattern": "events/*", "wake_stream": "wake",
                          "lease_ttl_ms": 60000})
    assert st == 201, f"PUT subscription: {st} {raw[:300]!r}"
    st, h, _ = r.req("GET", "/v1/stream/wake?offset=-1")
    wake_next = h["stream-next-offset"]
    times: dict[str, list[float]] = {"wake": [], "claim": [], "ack": [], "cycle": []}
    for n in range(warmup + cycles):
        stream = f"events/s{n % STREAMS}"
        t0 = time.perf_counter()
        st, _, raw = w.req("POST", f"/v1/stream/{stream}", {"n": n})
        assert st in (200, 204), f"append: {st} {raw[:200]!r}"
        while True:  # the next wake event of this subscription
            st, h, raw = r.req("GET", f"/v1/stream/wake?offset={wake_next}&live=long-poll")
            assert st in (200, 204), f"wake long-poll: {st}"
            wake_next = h.get("stream-next-offset", wake_next)
            if st == 200 and any(e.get("subscription_id") == "bench" for e in json.loads(raw)):
                break
        t1 = time.perf_counter()
        st, _, raw = ctl.req("POST", "/v1/stream/__ds/subscriptions/bench/claim", {"worker": "w"})
        assert st == 200, f"claim: {st} {raw[:300]!r}"
        c = json.loads(raw)
        t2 = time.perf_counter()
        tail = next(x["tail_offset"] for x in c["streams"] if x["path"] == stream)
        st, _, raw = ctl.req("POST", "/v1/stream/__ds/subscriptions/bench/ack",
                             {"wake_id": c["wake_id"], "generation": c["generation"],
                              "acks": [{"stream": stream, "offset": tail}], "done": True},
                             {"Authorization": f"Bearer {c['token']}"})
        assert st == 200, f"ack: {st} {raw[:300]!r}"
        t3 = time.perf_counter()
        if n >= warmup:
            times["wake"].append((t1 - t0) * 1000)
            times["claim"].append((t2 - t1) * 1000)
            times["ack"].append((t3 - t2) * 1000)
            times["cycle"].append((t3 - t0) * 1000)
    return times


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ds-bench-subs."))
    results: dict[str, dict[str, list[float]]] = {"ours": {}, "reference": {}}
    try:
        for rnd in range(a.rounds):
            for kind in ("ours", "reference"):
                shutil.rmtree(tmp / f"{kind}-data", ignore_errors=True)
                p, port = start(kind, tmp)
                try:
                    t = run_cycles(port, a.cycles, a.warmup)
                finally:
                    stop(p)
                for k, v in t.items():
                    results[kind].setdefault(k, []).extend(v)
                print(f"round {rnd + 1} {kind}: cycle p50 {statistics.median(t['cycle']):.2f} ms", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        f"# Pull-wake subscription latency, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"`python3 bench/subscriptions.py --cycles {a.cycles} --rounds {a.rounds}`: {a.cycles} timed cycles "
        f"per server per round (after {a.warmup} warm-up), {a.rounds} rounds interleaved, one client, "
        f"{os.cpu_count()} CPUs. Times in ms, measured by the client; ratio = reference / ours "
        "(higher: ours faster).",
        "",
        "| step | ours p50 | ours p99 | reference p50 | reference p99 | p50 ratio | p99 ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {"wake": "append -> wake event readable", "claim": "claim", "ack": "ack (done)",
              "cycle": "whole cycle"}
    for k in ("wake", "claim", "ack", "cycle"):
        o, rf = results["ours"][k], results["reference"][k]
        lines.append(f"| {labels[k]} | {pct(o, .5):.2f} | {pct(o, .99):.2f} | {pct(rf, .5):.2f} | "
                     f"{pct(rf, .99):.2f} | {pct(rf, .5) / pct(o, .5):.2f}x | {pct(rf, .99) / pct(o, .99):.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
