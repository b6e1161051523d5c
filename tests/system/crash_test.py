#!/usr/bin/env python3
"""kill -9 durability test for durable-sessions (Python 3.11 stdlib only).

For each of CYCLES cycles, on one data dir that accumulates across cycles:

  1. start `$DS_BIN serve` on a free port (--long-poll-timeout 3), wait for /readyz;
  2. run WRITERS concurrent writer threads; writer i uses its own keep-alive
     http.client connection, PUTs the JSON stream /v1/stream/crash-w{i}, then
     POSTs {"w": i, "n": k} with k increasing; k counts as acknowledged only
     when the POST returned 204 (or 200);
  3. after ~LOAD_SECONDS of load, SIGKILL the server (writers see connection
     errors and stop; the request each writer had outstanding is "in flight");
  4. restart the server on the same data dir, wait for /readyz, read every
     stream from offset -1 (following Stream-Next-Offset until
     Stream-Up-To-Date: true) and check, per writer (one assertion group per
     writer per cycle):
       - every acknowledged n (from this and earlier cycles) is present,
       - n values are strictly increasing (in order, no duplicates),
       - values seen after an earlier restart are still present,
       - the only other value allowed is this cycle's in-flight append
         (written but not acknowledged: may or may not be present).

Every even cycle also simulates a power loss rather than a process crash: after the SIGKILL,
every segment file is cut back to the size it had when the server last became ready (the bytes
written since then were never fsynced to the segment files; only the shared journal was synced).
The server runs with checkpoints effectively off (--journal-checkpoint-interval 3600,
--journal-file-bytes 1 GiB), so on restart the journal replay alone must bring back every
acknowledged append.

Prints a summary and a final line `N passed, M failed`; exit status 1 on any
failure (2 on setup errors such as a missing binary).

Environment:
  DS_BIN                 server binary (default build/durable-sessions, relative to repo root)
  DS_CRASH_CYCLES        kill/restart cycles (default 3)
  DS_CRASH_WRITERS       concurrent writers (default 8)
  DS_CRASH_LOAD_SECONDS  seconds of load before SIGKILL (default 2)
  DS_READY_TIMEOUT       seconds to wait for /readyz (default 30)
  DS_KEEP_DATA           1 = keep the temp dir (always kept on failure)
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

CYCLES = int(os.environ.get("DS_CRASH_CYCLES", "3"))
WRITERS = int(os.environ.get("DS_CRASH_WRITERS", "8"))
LOAD_SECONDS = float(os.environ.get("DS_CRASH_LOAD_SECONDS", "2"))
HTTP_TIMEOUT = 10.0
ACK_STATUSES = (200, 204)
CREATE_STATUSES = (200, 201, 204)

log = harness.make_log("crash_test")


# --------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------


@dataclass
class Writer:
    idx: int
    next_n: int = 0                               # next n to send (global across cycles)
    acked: list[int] = field(default_factory=list)  # all acknowledged n, all cycles
    # per-cycle state
    cycle_acked: int = 0
    in_flight: int | None = None                  # n sent but not acknowledged when we stopped
    stop_reason: str = ""
    error: str = ""                               # unexpected HTTP status (a failure)

    @property
    def path(self) -> str:
        return f"/v1/stream/crash-w{self.idx}"

    def run(self, port: int, created: threading.Barrier, stop: threading.Event) -> None:
        self.cycle_acked = 0
        self.in_flight = None
        self.stop_reason = ""
        self.error = ""
        conn = harness.Connection(port, HTTP_TIMEOUT)
        try:
            try:
                status, _, _ = conn.request("PUT", self.path, body=b"",
                                            headers={"Content-Type": "application/json"})
                if status not in CREATE_STATUSES:
                    self.error = f"PUT {self.path} returned {status}"
            except (OSError, http.client.HTTPException) as e:
                self.error = f"PUT {self.path} failed: {e!r}"
            try:
                created.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass
            if self.error:
                return
            while not stop.is_set():
                n = self.next_n
                body = json.dumps({"w": self.idx, "n": n}).encode()
                self.in_flight = n
                self.next_n = n + 1  # never reuse n, even if this append is lost
                try:
                    status, _, _ = conn.request("POST", self.path, body=body,
                                                headers={"Content-Type": "application/json"})
                except (OSError, http.client.HTTPException) as e:
                    self.stop_reason = type(e).__name__
                    return
                if status in ACK_STATUSES:
                    self.acked.append(n)
                    self.cycle_acked += 1
                    self.in_flight = None
                else:
                    # Unexpected answer while the server was alive: a server bug.
                    # The append may still have been applied, so keep it in flight.
                    self.error = f"POST n={n} returned {status}"
                    self.stop_reason = "http-error"
                    return
            self.stop_reason = "stopped"
        finally:
            conn.close()


# --------------------------------------------------------------------------
# Reading and checking
# --------------------------------------------------------------------------


def read_stream(port: int, path: str) -> list:
    """Read a whole JSON stream from offset -1, following Stream-Next-Offset."""
    conn = harness.Connection(port, HTTP_TIMEOUT)
    items: list = []
    offset = "-1"
    try:
        for _ in range(100_000):
            status, headers, body = conn.request(
                "GET", f"{path}?offset={urllib.parse.quote(offset, safe='')}")
            if status != 200:
                raise AssertionError(f"GET {path}?offset={offset} returned {status}: {body[:200]!r}")
            try:
                page = json.loads(body) if body.strip() else []
            except json.JSONDecodeError as e:
                raise AssertionError(f"GET {path} returned invalid JSON ({e}): {body[:200]!r}")
            if not isinstance(page, list):
                raise AssertionError(f"GET {path} did not return a JSON array: {body[:200]!r}")
            items.extend(page)
            up_to_date = (headers.get("stream-up-to-date") or "").strip().lower() == "true"
            if up_to_date:
                return items
            nxt = headers.get("stream-next-offset")
            if not nxt:
                raise AssertionError(f"GET {path}: no Stream-Next-Offset and not up to date")
            if nxt == offset and not page:
                raise AssertionError(f"GET {path}: no progress at offset {offset} and not up to date")
            offset = nxt
        raise AssertionError(f"GET {path}: gave up after 100000 pages")
    finally:
        conn.close()


def check_writer(w: Writer, items: list, previously_seen: list[int]) -> list[str]:
    """Return a list of problems (empty = pass)."""
    problems: list[str] = []
    ns: list[int] = []
    for pos, it in enumerate(items):
        if not (isinstance(it, dict) and it.get("w") == w.idx and isinstance(it.get("n"), int)):
            problems.append(f"unexpected message at position {pos}: {it!r}")
            continue
        ns.append(it["n"])
    for a, b in zip(ns, ns[1:]):
        if b <= a:
            problems.append(f"n not strictly increasing: {a} followed by {b}")
            break
    present = set(ns)
    acked = set(w.acked)
    missing = sorted(acked - present)
    if missing:
        problems.append(f"{len(missing)} acknowledged append(s) missing, e.g. {missing[:10]}")
    lost_seen = sorted(set(previously_seen) - acked - present)
    if lost_seen:
        problems.append(f"value(s) visible after an earlier restart are gone: {lost_seen[:10]}")
    allowed = acked | set(previously_seen) | ({w.in_flight} if w.in_flight is not None else set())
    extra = sorted(present - allowed)
    if extra:
        problems.append(f"unexpected value(s) (never acknowledged, not in flight): {extra[:10]}"
                        f" (in flight: {w.in_flight})")
    if w.error:
        problems.append(f"writer error during load: {w.error}")
    if w.cycle_acked == 0 and not w.error:
        problems.append("no append was acknowledged during the load phase")
    return problems


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def segment_sizes(data_dir: Path) -> dict[Path, int]:
    """Sizes of every segment file; right after /readyz they are all durable (the journal
    replay synced every file it covers, earlier files were synced by earlier replays)."""
    return {p: p.stat().st_size for p in (data_dir / "streams").rglob("*.seg")}


def lose_unsynced_segment_bytes(data_dir: Path, durable: dict[Path, int]) -> int:
    """Cuts every segment file back to its durable size (0 for files created since)."""
    cut = 0
    for p, size in segment_sizes(data_dir).items():
        keep = durable.get(p, 0)
        if size > keep:
            os.truncate(p, keep)
            cut += size - keep
    return cut


def main() -> int:
    binary = harness.find_binary(log)
    if binary is None:
        return harness.setup_failed()

    tmp = Path(tempfile.mkdtemp(prefix="ds-crash-test."))
    data_dir = tmp / "data"
    data_dir.mkdir()
    server = harness.Server(binary, data_dir, tmp / "server.log",
                            ["--long-poll-timeout", "3", "--journal-checkpoint-interval", "3600",
                             "--journal-file-bytes", str(1 << 30)],
                            log=log, announce=True)
    writers = [Writer(i) for i in range(WRITERS)]
    seen: dict[int, list[int]] = {i: [] for i in range(WRITERS)}  # n visible after last restart
    passed = failed = 0
    results: list[str] = []
    log(f"binary {binary}; data dir {data_dir}; {WRITERS} writers, {CYCLES} cycles, "
        f"{LOAD_SECONDS:g}s load per cycle")

    try:
        server.start()
        durable_sizes = segment_sizes(data_dir)
        for cycle in range(1, CYCLES + 1):
            # ---- load ----
            stop = threading.Event()
            created = threading.Barrier(WRITERS + 1)
            threads = [threading.Thread(target=w.run, args=(server.port, created, stop),
                                        name=f"writer-{w.idx}", daemon=True) for w in writers]
            for t in threads:
                t.start()
            try:
                created.wait(timeout=30)
            except threading.BrokenBarrierError:
                log("WARNING: not all writers created their stream within 30s")
            time.sleep(LOAD_SECONDS)

            # ---- crash ----
            log(f"cycle {cycle}: SIGKILL server pid {server.proc.pid}")
            server.kill()
            stop.set()
            for t in threads:
                t.join(HTTP_TIMEOUT + 5)
            stuck = [t.name for t in threads if t.is_alive()]
            if stuck:
                log(f"WARNING: writers still running after kill: {stuck}")
            log(f"cycle {cycle}: acknowledged this cycle: "
                + ", ".join(f"w{w.idx}={w.cycle_acked}" for w in writers)
                + f" (total {sum(w.cycle_acked for w in writers)})")

            if cycle % 2 == 0:
                cut = lose_unsynced_segment_bytes(data_dir, durable_sizes)
                log(f"cycle {cycle}: power loss: dropped {cut} unsynced byte(s) from segment files")

            # ---- restart + verify ----
            try:
                server.start()
                durable_sizes = segment_sizes(data_dir)
            except RuntimeError as e:
                log(f"cycle {cycle}: ERROR restarting server: {e}")
                remaining = (CYCLES - cycle + 1) * WRITERS
                failed += remaining
                results.append(f"cycle {cycle}: server failed to restart; {remaining} group(s) failed")
                break
            for w in writers:
                name = f"cycle {cycle} writer {w.idx}"
                try:
                    items = read_stream(server.port, w.path)
                except (AssertionError, OSError, http.client.HTTPException) as e:
                    items, problems = None, [f"read failed: {e}"]
                else:
                    problems = check_writer(w, items, seen[w.idx])
                    seen[w.idx] = [it["n"] for it in items
                                   if isinstance(it, dict) and isinstance(it.get("n"), int)]
                if problems:
                    failed += 1
                    results.append(f"FAIL {name}: " + "; ".join(problems))
                else:
                    passed += 1
                    if w.in_flight is None:
                        in_flight = "none"
                    else:
                        state = "present" if w.in_flight in seen[w.idx] else "absent"
                        in_flight = f"n={w.in_flight} ({state})"
                    results.append(f"ok   {name}: {len(items)} message(s), "
                                   f"{len(w.acked)} acknowledged, in flight: {in_flight}")
        rc = server.stop()
        if rc not in (0, None):
            log(f"WARNING: server exited with status {rc} after SIGTERM (expected 0)")
    except Exception as e:  # setup/harness failure: report, count as failure
        log(f"ERROR: {type(e).__name__}: {e}")
        failed += 1
        results.append(f"FAIL harness: {type(e).__name__}: {e}")
    finally:
        server.kill()

    print()
    print("==== crash test summary ====")
    for line in results:
        print(line)
    if failed:
        print("\n---- server log tail ----")
        print(server.log_tail(80))
        print("---- end of server log ----")
    harness.keep_or_remove(tmp, bool(failed))
    return harness.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
