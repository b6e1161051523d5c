#!/usr/bin/env python3
"""Crash-loop test for durable-sessions: SIGKILL at random points, check invariants.

Python 3.11, standard library only. Starts its own server on a free loopback port with a
temporary data dir that is reused across all iterations.

Each iteration (default 100; DS_CRASH_LOOP_ITERATIONS overrides):

  1. start `$DS_BIN serve` on the same data dir, wait for GET /readyz == 200;
  2. run WORKERS (4) threads, each on its own keep-alive connection, doing a random
     mix of operations for a random 50-500 ms:
       - appends of 1-3 messages (one JSON array = one atomic batch) to JSON streams,
       - appends of 1-3 events to sessions (implicit creation for new ids),
       - append-and-close (body + `Stream-Closed: true`) and close-only requests,
       - deletes of streams and sessions,
       - creation of new JSON streams, and forks (`Stream-Forked-From`, at the tail or at
         a `Stream-Fork-Offset` returned by one of our own acknowledged appends);
  3. SIGKILL the server while requests are in flight, restart it, and check every
     object against a model of what was ACKNOWLEDGED (a 2xx response was received):
       - every acknowledged append is present exactly once; each writer's messages
         appear in the order it sent them; content verified after an earlier restart is
         still there, unchanged, as a prefix;
       - no partial record: every message is valid JSON, one of ours, and every batch is
         either entirely present (contiguous, in order) or entirely absent;
       - rejected appends (409 on a closed stream) are absent;
       - a stream or session acknowledged closed is still closed (HEAD shows
         `Stream-Closed: true`) and rejects appends with 409; an append-and-close batch
         that is present is the last data of a closed stream;
       - an acknowledged delete stays deleted (404, or 410 Gone for a soft-deleted
         stream that still has live forks, per the Durable Streams protocol);
       - an acknowledged fork exists and reads back its inherited prefix: a prefix of
         the source's content containing every source append acknowledged before the
         fork was requested (tail forks), or ending exactly at the fork offset;
       - catalog and log agree: GET /v1/sessions/{id} reports `event_count` equal to
         the number of events read and `closed` equal to HEAD's `Stream-Closed`;
       - operations whose response never arrived (in flight at the kill) may or may not
         have taken effect, but only entirely. Whatever is visible after a restart is
         then treated as durable: it must still be there after every later restart.
     Deleted objects are re-checked (a sample per iteration) in later iterations.

The live object count is capped (30 streams, 12 sessions) so verification stays cheap:
about 0.4 s per iteration on a 2-core machine (100 iterations in ~40 s), so the default
100 iterations fit the ~3 minute CI budget. The server binary is copied into the temp dir
first, so a concurrent rebuild of build/ cannot break a run.

Prints one `ok`/`FAIL` line per failed check group (and a summary), then a final line
`N passed, M failed`; exit status 1 on any failure, 2 on setup errors. A check group is
one object verified after one restart, plus one "load" group per iteration (no
unexpected HTTP status while the server was alive).

Environment:
  DS_BIN                     server binary (default build/durable-sessions, relative to repo root)
  DS_CRASH_LOOP_ITERATIONS   kill/restart iterations (default 100)
  DS_CRASH_LOOP_SEED         random seed (default: time-based; printed at start)
  DS_READY_TIMEOUT           seconds to wait for /readyz (default 30)
  DS_KEEP_DATA               1 = keep the temp dir (always kept on failure)
"""

from __future__ import annotations

import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

ITERATIONS = int(os.environ.get("DS_CRASH_LOOP_ITERATIONS", "100"))
SEED = int(os.environ.get("DS_CRASH_LOOP_SEED", str(int(time.time() * 1000) % 1_000_000_007)))
HTTP_TIMEOUT = 10.0
WORKERS = 4
MAX_LIVE_STREAMS = 30
MAX_LIVE_SESSIONS = 12
DELETED_SAMPLE = 10          # deleted objects re-checked per iteration
MAX_FAIL_LINES = 200

ACK = "ack"
UNKNOWN = "unknown"          # sent, response never received (or unexpected status)
REJECTED = "rejected"        # the server answered that it did not apply it

log = harness.make_log("crash_loop")


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


@dataclass
class Batch:
    bid: int
    target: str
    keys: list                   # [(w, s), ...] in order
    closes: bool = False         # append-and-close
    status: str = UNKNOWN
    ack_seq: int = 0             # global ack counter value when acknowledged
    next_offset: str | None = None


@dataclass
class Obj:
    name: str
    kind: str                    # "stream" | "session"
    order: int                   # creation order (fork sources come first)
    created: str = UNKNOWN
    busy: int = 0                # operations in flight on it (deletes wait for 0)
    # verified (after a restart) state
    content: list = field(default_factory=list)     # keys, in order
    inherited: list | None = None                   # forks: verified inherited prefix
    closed: bool = False
    deleted: bool = False                           # verified gone (or never created)
    # this iteration
    close_status: str | None = None                 # strongest close outcome this iteration
    close_attempted: bool = False                   # ever (makes 409 on append plausible)
    delete_status: str | None = None
    # forks
    fork_source: str | None = None
    fork_ack_floor: int = -1      # tail fork: source appends acked at or before this counter
    fork_must_end: tuple | None = None  # offset fork: last inherited key


class Model:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objs: dict[str, Obj] = {}
        self.batches: dict[int, Batch] = {}
        self.key_batch: dict[tuple, int] = {}
        self.by_target: dict[str, list[int]] = {}
        self.next_seq = [0] * WORKERS
        self.ack_counter = 0
        self.n_objs = 0
        self.n_batches = 0
        self.load_errors: list[str] = []
        self.op_counts: dict[str, int] = {}

    def new_obj(self, name: str, kind: str) -> Obj:
        self.n_objs += 1
        o = Obj(name=name, kind=kind, order=self.n_objs)
        self.objs[name] = o
        return o

    def new_batch(self, wid: int, target: str, n: int, closes: bool = False) -> Batch:
        self.n_batches += 1
        keys = []
        for _ in range(n):
            keys.append((wid, self.next_seq[wid]))
            self.next_seq[wid] += 1
        b = Batch(bid=self.n_batches, target=target, keys=keys, closes=closes)
        self.batches[b.bid] = b
        self.by_target.setdefault(target, []).append(b.bid)
        for k in keys:
            self.key_batch[k] = b.bid
        return b

    def live(self, kind: str) -> list[Obj]:
        return [o for o in self.objs.values()
                if o.kind == kind and o.created == ACK and not o.deleted and o.delete_status is None]


def stream_path(name: str) -> str:
    return f"/v1/stream/{name}"


def session_events_path(name: str) -> str:
    return f"/v1/sessions/{name}/events"


def message(b: Batch, i: int, kind: str, rng: random.Random) -> dict:
    w, s = b.keys[i]
    m = {"w": w, "s": s, "t": b.target, "b": b.bid, "i": i, "n": len(b.keys),
         "pad": "x" * rng.randrange(0, 300)}
    if kind == "session":
        m = {"type": "crash.loop", **m}
    return m


# --------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------


class Worker:
    def __init__(self, wid: int, model: Model, port: int, iteration: int,
                 stop: threading.Event, rng: random.Random):
        self.wid = wid
        self.m = model
        self.client = harness.Connection(port, HTTP_TIMEOUT)
        self.it = iteration
        self.stop = stop
        self.rng = rng
        self.made = 0

    def error(self, msg: str) -> None:
        with self.m.lock:
            self.m.load_errors.append(f"worker {self.wid}: {msg}")

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self.step()
                except (OSError, http.client.HTTPException):
                    # Server killed (or the connection dropped): the op stays UNKNOWN.
                    if self.stop.is_set():
                        return
                    time.sleep(0.01)
                except Exception as e:  # a harness bug: report it, stop this worker
                    self.error(f"harness exception {type(e).__name__}: {e}")
                    return
        finally:
            self.client.close()

    # Picks an operation and its target under the model lock, runs it, records the outcome.
    def step(self) -> None:
        rng, m = self.rng, self.m
        with m.lock:
            streams = m.live("stream")
            sessions = m.live("session")
            choices = [("append_stream", 34), ("append_session", 26), ("close", 5),
                       ("append_close", 3), ("delete", 5)]
            if len(streams) < MAX_LIVE_STREAMS:
                choices += [("create_stream", 6), ("fork", 7)]
            if len(sessions) < MAX_LIVE_SESSIONS:
                choices += [("new_session", 5)]
            op = rng.choices([c[0] for c in choices], [c[1] for c in choices])[0]
            target: Obj | None = None
            if op in ("append_stream", "append_close", "fork"):
                pool = [o for o in streams if not o.closed] or streams
                if rng.random() < 0.05:
                    pool = streams          # now and then, aim at a closed one (expect 409)
                target = rng.choice(pool) if pool else None
            elif op == "append_session":
                pool = [o for o in sessions if not o.closed] or sessions
                target = rng.choice(pool) if pool else None
            elif op == "close":
                pool = [o for o in streams + sessions if not o.closed]
                target = rng.choice(pool) if pool else None
            elif op == "delete":
                pool = [o for o in streams + sessions if o.busy == 0]
                target = rng.choice(pool) if pool else None
                if target is not None:
                    target.delete_status = UNKNOWN  # out of the pool from now on
            if op not in ("create_stream", "new_session") and target is None:
                op = "create_stream" if len(streams) < MAX_LIVE_STREAMS else "new_session"
            if target is not None:
                target.busy += 1
            m.op_counts[op] = m.op_counts.get(op, 0) + 1
        try:
            getattr(self, "op_" + op)(target)
        finally:
            if target is not None:
                with m.lock:
                    target.busy -= 1

    def fresh_name(self, prefix: str) -> str:
        self.made += 1
        return f"{prefix}-{self.it}-{self.wid}-{self.made}"

    def send_append(self, o: Obj, n: int, closes: bool = False) -> tuple[Batch, int, dict]:
        with self.m.lock:
            b = self.m.new_batch(self.wid, o.name, n, closes)
            if closes:
                o.close_attempted = True
        msgs = [message(b, i, o.kind, self.rng) for i in range(n)]
        headers = {"Content-Type": "application/json"}
        if closes:
            headers["Stream-Closed"] = "true"
        if o.kind == "stream":
            path, body = stream_path(o.name), json.dumps(msgs)
        else:
            path, body = session_events_path(o.name), json.dumps({"events": msgs})
        st, h, data = self.client.request("POST", path, body.encode(), headers)
        with self.m.lock:
            if st in (200, 204):
                self.m.ack_counter += 1
                b.status, b.ack_seq, b.next_offset = ACK, self.m.ack_counter, h.get("stream-next-offset")
                if o.created != ACK:
                    o.created = ACK
                if closes and o.close_status != ACK:
                    o.close_status = ACK
            elif st == 409 and (o.close_attempted or o.closed):
                b.status = REJECTED
                if (h.get("stream-closed") or "").lower() != "true":
                    self.m.load_errors.append(
                        f"POST {path} on a closed {o.kind} answered 409 without Stream-Closed: true")
            else:
                self.m.load_errors.append(f"POST {path} ({n} message(s)) answered {st}: {data[:200]!r}")
        return b, st, h

    def op_append_stream(self, o: Obj) -> None:
        self.send_append(o, self.rng.randint(1, 3))

    def op_append_session(self, o: Obj) -> None:
        self.send_append(o, self.rng.randint(1, 3))

    def op_append_close(self, o: Obj) -> None:
        self.send_append(o, self.rng.randint(1, 2), closes=True)

    def op_new_session(self, _o: Obj | None) -> None:
        with self.m.lock:
            o = self.m.new_obj(self.fresh_name("cl-sess"), "session")
            o.busy += 1
        try:
            self.send_append(o, self.rng.randint(1, 3))
        finally:
            with self.m.lock:
                o.busy -= 1

    def op_create_stream(self, _o: Obj | None) -> None:
        with self.m.lock:
            o = self.m.new_obj(self.fresh_name("cl-s"), "stream")
        st, _h, data = self.client.request("PUT", stream_path(o.name), b"",
                                           {"Content-Type": "application/json"})
        with self.m.lock:
            if st in (200, 201):
                o.created = ACK
            else:
                self.m.load_errors.append(f"PUT {stream_path(o.name)} answered {st}: {data[:200]!r}")

    def op_fork(self, src: Obj) -> None:
        headers = {"Content-Type": "application/json",
                   "Stream-Forked-From": stream_path(src.name)}
        with self.m.lock:
            o = self.m.new_obj(self.fresh_name("cl-f"), "stream")
            o.fork_source = src.name
            mine = [b for b in (self.m.batches[i] for i in self.m.by_target.get(src.name, []))
                    if b.status == ACK and b.next_offset and b.keys[0][0] == self.wid]
            if mine and self.rng.random() < 0.5:
                b = self.rng.choice(mine[-5:])
                headers["Stream-Fork-Offset"] = b.next_offset
                o.fork_must_end = b.keys[-1]
            else:
                o.fork_ack_floor = self.m.ack_counter
        st, _h, data = self.client.request("PUT", stream_path(o.name), b"", headers)
        with self.m.lock:
            if st in (200, 201):
                o.created = ACK
            else:
                self.m.load_errors.append(
                    f"PUT {stream_path(o.name)} (fork of {src.name}"
                    f"{', offset ' + headers['Stream-Fork-Offset'] if o.fork_must_end else ''})"
                    f" answered {st}: {data[:200]!r}")

    def op_close(self, o: Obj) -> None:
        with self.m.lock:
            o.close_attempted = True
        path = stream_path(o.name) if o.kind == "stream" else session_events_path(o.name)
        st, h, data = self.client.request("POST", path, b"", {"Stream-Closed": "true"})
        with self.m.lock:
            if st in (200, 204):
                o.close_status = ACK
            else:
                self.m.load_errors.append(f"POST {path} (close) answered {st}: {data[:200]!r}")

    def op_delete(self, o: Obj) -> None:
        path = stream_path(o.name) if o.kind == "stream" else f"/v1/sessions/{o.name}"
        st, _h, data = self.client.request("DELETE", path)
        with self.m.lock:
            if st in (200, 204):
                o.delete_status = ACK
            else:
                self.m.load_errors.append(f"DELETE {path} answered {st}: {data[:200]!r}")


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------


class Verifier:
    def __init__(self, model: Model, port: int, rng: random.Random):
        self.m = model
        self.c = harness.Connection(port, HTTP_TIMEOUT)
        self.rng = rng
        self.gone_names: set[str] = set()
        self.tail_offset: str | None = None

    def read_stream(self, name: str) -> tuple[int, list | None]:
        """(status, items): items when 200, following Stream-Next-Offset to the tail."""
        items: list = []
        offset = "-1"
        for _ in range(10_000):
            st, h, body = self.c.request("GET", f"{stream_path(name)}?offset="
                                         + urllib.parse.quote(offset, safe=""))
            if st != 200:
                if items:
                    raise AssertionError(f"GET {stream_path(name)}?offset={offset} answered {st} mid-read")
                return st, None
            try:
                page = json.loads(body) if body.strip() else []
            except json.JSONDecodeError as e:
                raise AssertionError(f"GET {stream_path(name)}?offset={offset}: invalid JSON ({e}): "
                                     f"{body[:200]!r}")
            if not isinstance(page, list):
                raise AssertionError(f"GET {stream_path(name)}: not a JSON array: {body[:200]!r}")
            items.extend(page)
            if (h.get("stream-up-to-date") or "").lower() == "true":
                self.tail_offset = h.get("stream-next-offset")
                return 200, items
            nxt = h.get("stream-next-offset")
            if not nxt or (nxt == offset and not page):
                raise AssertionError(f"GET {stream_path(name)}?offset={offset}: no progress, not up to date")
            offset = nxt
        raise AssertionError(f"GET {stream_path(name)}: too many pages")

    def read_session(self, name: str) -> tuple[int, list | None]:
        items: list = []
        page_q = ""
        for _ in range(10_000):
            st, _h, body = self.c.request("GET", f"{session_events_path(name)}?offset=-1&limit=10000{page_q}")
            if st != 200:
                if items:
                    raise AssertionError(f"GET {session_events_path(name)} answered {st} mid-read")
                return st, None
            try:
                doc = json.loads(body)
            except json.JSONDecodeError as e:
                raise AssertionError(f"GET {session_events_path(name)}: invalid JSON ({e}): {body[:200]!r}")
            if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
                raise AssertionError(f"GET {session_events_path(name)}: no data array: {body[:200]!r}")
            items.extend(doc["data"])
            nxt = doc.get("next_page")
            if not nxt:
                return 200, items
            page_q = "&page=" + urllib.parse.quote(str(nxt), safe="")
        raise AssertionError(f"GET {session_events_path(name)}: too many pages")

    def head(self, o: Obj) -> tuple[bool, str | None]:
        """(closed, Stream-Next-Offset) from HEAD."""
        path = stream_path(o.name) if o.kind == "stream" else session_events_path(o.name)
        st, h, _ = self.c.request("HEAD", path)
        if st != 200:
            raise AssertionError(f"HEAD {path} answered {st} (GET answered 200)")
        return (h.get("stream-closed") or "").lower() == "true", h.get("stream-next-offset")

    def keys_of(self, o: Obj, items: list, problems: list[str]) -> list:
        keys = []
        ids, offsets = set(), []
        for pos, it in enumerate(items):
            ok = (isinstance(it, dict) and isinstance(it.get("w"), int) and isinstance(it.get("s"), int)
                  and isinstance(it.get("t"), str) and isinstance(it.get("b"), int))
            k = (it.get("w"), it.get("s")) if ok else None
            if not ok or k not in self.m.key_batch or self.m.key_batch[k] != it["b"]:
                problems.append(f"message at position {pos} is not one of ours (partial/foreign record?): "
                                f"{str(it)[:160]}")
                continue
            b = self.m.batches[it["b"]]
            if (b.target != it["t"] or b.keys.index(k) != it.get("i") or it.get("n") != len(b.keys)
                    or not isinstance(it.get("pad"), str)):
                problems.append(f"message at position {pos} does not match what was sent: {str(it)[:160]}")
            if o.kind == "session":
                if it.get("type") != "crash.loop":
                    problems.append(f"event at position {pos} lost its type: {str(it)[:160]}")
                if it.get("id") in ids:
                    problems.append(f"event id {it.get('id')} repeated")
                ids.add(it.get("id"))
                offsets.append(str(it.get("offset")))
            keys.append(k)
        if offsets and any(b <= a for a, b in zip(offsets, offsets[1:])):
            problems.append("session event offsets are not strictly increasing")
        return keys

    def check_existing(self, o: Obj, items: list, problems: list[str]) -> None:
        m = self.m
        keys = self.keys_of(o, items, problems)
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            problems.append(f"message(s) present more than once: {dup[:5]}")
        # Prefix: what was visible after the last restart is still there, unchanged.
        if keys[:len(o.content)] != o.content:
            problems.append(f"content verified earlier changed or was lost "
                            f"(had {len(o.content)} messages, now {len(keys)}; first difference at "
                            f"{next((i for i, (a, b) in enumerate(zip(o.content, keys)) if a != b), min(len(o.content), len(keys)))})")
        # Split inherited (forks) and own messages.
        n_inh = 0
        while n_inh < len(keys) and m.batches[m.key_batch[keys[n_inh]]].target != o.name:
            n_inh += 1
        inherited, own = keys[:n_inh], keys[n_inh:]
        if any(m.batches[m.key_batch[k]].target != o.name for k in own):
            problems.append("a message appended to another stream appears among this stream's own appends")
        if o.fork_source is None and inherited:
            problems.append(f"{len(inherited)} message(s) of other streams at the start of a non-fork")
        # Own appends: allowed outcome, per-writer order, batch atomicity.
        last_s: dict[int, int] = {}
        for k in own:
            b = m.batches[m.key_batch[k]]
            if b.status == REJECTED:
                problems.append(f"rejected (409) append is visible: batch {b.bid} {k}")
            if k[1] <= last_s.get(k[0], -1):
                problems.append(f"writer {k[0]} out of order: s={k[1]} after s={last_s[k[0]]}")
            last_s[k[0]] = k[1]
        seen_batches = {m.key_batch[k] for k in own}
        pos = {k: i for i, k in enumerate(keys)}
        for bid in seen_batches:
            b = m.batches[bid]
            i = pos.get(b.keys[0], -1)
            if i < 0 or keys[i:i + len(b.keys)] != b.keys:
                problems.append(f"batch {bid} ({len(b.keys)} messages) is not entirely present and contiguous")
        for bid in m.by_target.get(o.name, []):
            b = m.batches[bid]
            if b.status == ACK and bid not in seen_batches:
                problems.append(f"acknowledged append missing: batch {b.bid} keys {b.keys}")
                b.status = UNKNOWN      # report a loss once, not after every later restart
        # Forks: inherited prefix.
        if o.fork_source is not None:
            if o.inherited is not None and inherited != o.inherited:
                problems.append("inherited prefix of the fork changed since the last restart")
            src = m.objs[o.fork_source]
            sc = src.content   # source verified earlier in this pass (or last known if deleted)
            common = min(len(sc), len(inherited))
            src_gone = src.deleted or src.name in self.gone_names
            if inherited[:common] != sc[:common] or (len(inherited) > len(sc) and not src_gone):
                problems.append(f"inherited prefix ({len(inherited)} messages) is not a prefix of source "
                                f"{src.name} ({len(sc)} messages)")
            if o.inherited is None:
                if o.fork_must_end is not None:
                    if not inherited or inherited[-1] != o.fork_must_end:
                        problems.append(f"fork at Stream-Fork-Offset should end with {o.fork_must_end}, "
                                        f"inherited ends with {inherited[-1] if inherited else 'nothing'}")
                else:
                    need = [b for b in (m.batches[i] for i in m.by_target.get(src.name, []))
                            if b.status == ACK and b.ack_seq <= o.fork_ack_floor]
                    inh = set(inherited)
                    miss = [b.bid for b in need if b.keys[0] not in inh]
                    if miss:
                        problems.append(f"tail fork lacks source appends acknowledged before it was "
                                        f"requested: batches {miss[:5]}")
        # Closed state.
        closed, head_next = self.head(o)
        if o.kind == "stream" and head_next != self.tail_offset:
            problems.append(f"HEAD Stream-Next-Offset {head_next} != tail offset {self.tail_offset} of the read")
        if (o.closed or o.close_status == ACK) and not closed:
            problems.append("acknowledged close lost: HEAD has no Stream-Closed: true")
        closer = [m.batches[bid] for bid in seen_batches if m.batches[bid].closes]
        for b in closer:
            if not closed:
                problems.append(f"append-and-close batch {b.bid} is visible but the {o.kind} is not closed")
            elif keys[-len(b.keys):] != b.keys:
                problems.append(f"append-and-close batch {b.bid} is not the last data of the {o.kind}")
        if closed and (not o.closed or self.rng.random() < 0.2):
            # A closed stream must reject appends with 409 (probe is modelled as a batch).
            with m.lock:
                pb = m.new_batch(0, o.name, 1)
            msg = json.dumps([message(pb, 0, o.kind, self.rng)]).encode()
            path = stream_path(o.name) if o.kind == "stream" else session_events_path(o.name)
            st, _h, _ = self.c.request("POST", path, msg, {"Content-Type": "application/json"})
            if st == 409:
                pb.status = REJECTED
            else:
                pb.status = ACK if st in (200, 204) else UNKNOWN
                problems.append(f"append to a closed {o.kind} answered {st}, expected 409")
        # Catalog vs log for sessions.
        if o.kind == "session":
            st, _h, body = self.c.request("GET", f"/v1/sessions/{o.name}")
            try:
                doc = json.loads(body)
            except json.JSONDecodeError:
                doc = {}
            if st != 200:
                problems.append(f"GET /v1/sessions/{o.name} answered {st} while its events read 200")
            else:
                if doc.get("event_count") != len(items):
                    problems.append(f"catalog event_count {doc.get('event_count')} != {len(items)} events in log")
                if doc.get("next_offset") != head_next:
                    problems.append(f"catalog next_offset {doc.get('next_offset')} != HEAD Stream-Next-Offset {head_next}")
                if bool(doc.get("closed")) != closed:
                    problems.append(f"catalog closed={doc.get('closed')} but HEAD Stream-Closed={closed}")
        # Adopt what is visible as the new durable baseline.
        o.content = keys
        o.closed = closed
        if o.fork_source is not None:
            o.inherited = inherited
        o.created = ACK

    def has_live_fork(self, o: Obj) -> tuple[bool, bool]:
        """(surely has a live fork, ever had one: soft-delete cleanup MAY be asynchronous)."""
        sure = ever = False
        for f in self.m.objs.values():
            if f.fork_source == o.name:
                ever = True
                if not f.deleted and f.name not in self.gone_names and f.created == ACK:
                    sure = True
        return sure, ever

    def check_gone(self, o: Obj, st: int, problems: list[str]) -> None:
        if o.delete_status == ACK or o.deleted:
            if o.kind == "stream":
                sure, ever = self.has_live_fork(o)
                allowed = {410} if sure else ({404, 410} if ever else {404})
            else:
                allowed = {404}
            if st not in allowed:
                problems.append(f"deleted {o.kind} answered {st}, expected {sorted(allowed)}")
        elif o.delete_status == UNKNOWN:
            if st not in (404, 410):
                problems.append(f"{o.kind} answered {st}")
        elif o.created == ACK:
            problems.append(f"acknowledged {o.kind} is gone: GET answered {st}")
        elif st != 404:
            problems.append(f"{o.kind} whose creation was never acknowledged answered {st}")
        o.deleted = True

    def verify(self, iteration: int) -> tuple[int, int, list[str]]:
        m = self.m
        passed = failed = 0
        lines: list[str] = []
        gone: list[tuple[Obj, int]] = []
        self.gone_names = set()
        for o in sorted(m.objs.values(), key=lambda x: x.order):
            if o.deleted:
                continue
            problems: list[str] = []
            try:
                st, items = self.read_stream(o.name) if o.kind == "stream" else self.read_session(o.name)
                if st == 200:
                    if o.delete_status == ACK:
                        problems.append("acknowledged delete undone: the object reads back 200")
                    self.check_existing(o, items, problems)
                    o.delete_status = None   # not deleted after all (reported above if it was acked)
                elif st in (404, 410):
                    gone.append((o, st))
                    self.gone_names.add(o.name)
                    continue
                else:
                    problems.append(f"read answered {st}")
            except AssertionError as e:
                problems.append(str(e))
            except (OSError, http.client.HTTPException) as e:
                problems.append(f"request failed: {e!r}")
            passed, failed = self.tally(iteration, o, problems, passed, failed, lines)
        # Deleted / never created, evaluated once forks are resolved.
        for o, st in gone:
            problems = []
            self.check_gone(o, st, problems)
            passed, failed = self.tally(iteration, o, problems, passed, failed, lines)
        # Re-check a sample of objects deleted in earlier iterations.
        old = [o for o in m.objs.values() if o.deleted and o.created == ACK
               and all(o is not g for g, _ in gone)]
        for o in self.rng.sample(old, min(DELETED_SAMPLE, len(old))):
            problems = []
            try:
                path = stream_path(o.name) if o.kind == "stream" else session_events_path(o.name)
                st, _h, body = self.c.request("GET", path + "?offset=-1")
                self.check_gone(o, st, problems)
            except (OSError, http.client.HTTPException) as e:
                problems.append(f"request failed: {e!r}")
            passed, failed = self.tally(iteration, o, problems, passed, failed, lines)
        self.c.close()
        # Reset the per-iteration state.
        for o in m.objs.values():
            o.close_status = None
            if o.deleted:
                o.delete_status = None
        return passed, failed, lines

    @staticmethod
    def tally(iteration, o, problems, passed, failed, lines):
        if problems:
            lines.append(f"FAIL iteration {iteration} {o.kind} {o.name}: " + "; ".join(problems[:6]))
            return passed, failed + 1
        return passed + 1, failed


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> int:
    binary = harness.find_binary(log)
    if binary is None:
        return harness.setup_failed()
    tmp = Path(tempfile.mkdtemp(prefix="ds-crash-loop."))
    data_dir = tmp / "data"
    data_dir.mkdir()
    # Run a private copy: a rebuild of build/ during the ~1-3 minute run must not break it.
    server = harness.Server(harness.private_copy(binary, tmp), data_dir, tmp / "server.log",
                            ["--long-poll-timeout", "1", "--access-log", "false"], log=log)
    model = Model()
    master = random.Random(SEED)
    passed = failed = 0
    fail_lines: list[str] = []
    t0 = time.monotonic()
    log(f"binary {binary}; data dir {data_dir}; {ITERATIONS} iterations; seed {SEED}")
    try:
        server.start()
        for it in range(1, ITERATIONS + 1):
            stop = threading.Event()
            workers = [Worker(w, model, server.port, it, stop, random.Random(master.random()))
                       for w in range(WORKERS)]
            threads = [threading.Thread(target=w.run, name=f"w{w.wid}", daemon=True) for w in workers]
            for t in threads:
                t.start()
            time.sleep(master.uniform(0.05, 0.5))
            server.kill()
            stop.set()
            for t in threads:
                t.join(HTTP_TIMEOUT + 5)
            if any(t.is_alive() for t in threads):
                log(f"iteration {it}: WARNING: worker thread still running after the kill")
            # One group for the load phase: no unexpected answers while the server was up.
            with model.lock:
                errs, model.load_errors = model.load_errors, []
            if errs:
                failed += 1
                fail_lines.append(f"FAIL iteration {it} load: {len(errs)} unexpected answer(s): "
                                  + "; ".join(errs[:5]))
            else:
                passed += 1
            try:
                server.start()
            except RuntimeError as e:
                failed += 1
                fail_lines.append(f"FAIL iteration {it}: server failed to restart: {e}")
                break
            p, f, lines = Verifier(model, server.port, random.Random(master.random())).verify(it)
            passed, failed = passed + p, failed + f
            fail_lines.extend(lines)
            if it % 10 == 0 or it == ITERATIONS or f:
                live_s = len([o for o in model.objs.values() if o.kind == "stream" and not o.deleted])
                live_x = len([o for o in model.objs.values() if o.kind == "session" and not o.deleted])
                acked = sum(1 for b in model.batches.values() if b.status == ACK)
                log(f"iteration {it}: {live_s} streams, {live_x} sessions live; {acked} batches "
                    f"acknowledged so far; {passed} passed, {failed} failed; "
                    f"{time.monotonic() - t0:.0f}s")
        rc = server.stop()
        if rc not in (0, None):
            failed += 1
            fail_lines.append(f"FAIL shutdown: server exited with status {rc} after SIGTERM")
    except Exception as e:  # harness failure
        import traceback
        traceback.print_exc()
        failed += 1
        fail_lines.append(f"FAIL harness: {type(e).__name__}: {e}")
    finally:
        server.kill()

    print()
    print("==== crash loop summary ====")
    ops = ", ".join(f"{k}={v}" for k, v in sorted(model.op_counts.items()))
    n_ack = sum(1 for b in model.batches.values() if b.status == ACK)
    n_unk = sum(1 for b in model.batches.values() if b.status == UNKNOWN)
    print(f"seed {SEED}; {server.starts} server starts; operations: {ops}")
    print(f"append batches: {n_ack} acknowledged, {n_unk} in flight at a kill; "
          f"{time.monotonic() - t0:.1f}s")
    for line in fail_lines[:MAX_FAIL_LINES]:
        print(line)
    if len(fail_lines) > MAX_FAIL_LINES:
        print(f"... {len(fail_lines) - MAX_FAIL_LINES} more failure line(s)")
    if failed:
        print("\n---- server log tail ----")
        print(server.log_tail(40))
        print("---- end of server log ----")
    harness.keep_or_remove(tmp, bool(failed))
    return harness.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
