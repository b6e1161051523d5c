#!/usr/bin/env python3
"""Curl-level tests of the session API (SPEC section 3) -- Python 3.11 stdlib only.

Starts its own `$DS_BIN serve` on a free 127.0.0.1 port with a temp data dir,
`--long-poll-timeout 2` and a small `--max-body`, after creating two API keys for two
tenants with `keys create`. Every request is a plain HTTP/1.1 request (http.client), the
way curl would send it: no SDK, `Authorization: Bearer` (and `x-api-key` where noted).

Covers: the three append body shapes; implicit creation; 204 vs 200 {"data":[...]} by
Accept; Stream-Next-Offset; reads with offset=-1 / now / explicit / 8-digit; type filters
(repeatable, comma-separated, types[]=); long-poll wake-up and timeout; live=sse framing;
the Anthropic-style /events/stream and /stream framing; closure (Stream-Closed); idempotent
producer retries; limits (413, 400s); a tenant-isolation matrix; 401 without a key.

Prints one line per test and a final `N passed, M failed`; exit 1 on any failure, 2 on a
setup error (missing binary, server not starting).

Environment:
  DS_BIN            server binary (default build/durable-sessions, relative to the repo root)
  DS_READY_TIMEOUT  seconds to wait for /readyz (default 30)
  DS_KEEP_DATA      1 = keep the temp dir (always kept on failure)
  DS_TEST_FILTER    only run tests whose name contains this substring
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import HOST  # noqa: E402

LONG_POLL_TIMEOUT = 2.0
MAX_BODY = 512 * 1024  # --max-body for this server (10,000 small events still fit)
MAX_EVENTS = 10_000
HTTP_TIMEOUT = 15.0

SERVER_FIELDS = ("id", "offset", "created_at", "processed_at")

log = harness.make_log("sessions_curl")


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


SERVER: harness.Server | None = None
KEY_A: str | None = None
KEY_B: str | None = None

# --------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------


class Resp:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def h(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:300]!r}>"


def auth_headers(key: str | None, style: str = "bearer") -> dict[str, str]:
    if key is None:
        return {}
    return {"Authorization": f"Bearer {key}"} if style == "bearer" else {"x-api-key": key}


def request(method: str, path: str, body=None, headers: dict | None = None, key: str | None = "A",
            port: int | None = None, timeout: float = HTTP_TIMEOUT, auth_style: str = "bearer"):
    """One request on a fresh connection; returns (status, lowercase headers, body bytes)."""
    if key == "A":
        key = KEY_A
    elif key == "B":
        key = KEY_B
    hdrs = dict(auth_headers(key, auth_style))
    if isinstance(body, (dict, list)):
        body = json.dumps(body, separators=(",", ":")).encode()
        hdrs["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    return harness.request(port or SERVER.port, method, path, body, hdrs, timeout)


def call(method: str, path: str, body=None, headers: dict | None = None, key: str | None = "A", **kw) -> Resp:
    return Resp(*request(method, path, body, headers, key, **kw))


JSON_ACCEPT = {"Accept": "application/json"}


def append(sid: str, body, accept_json: bool = True, headers: dict | None = None, key: str | None = "A") -> Resp:
    h = dict(JSON_ACCEPT if accept_json else {})
    h.update(headers or {})
    return call("POST", f"/v1/sessions/{q(sid)}/events", body, h, key)


def read(sid: str, query: str = "", key: str | None = "A", headers: dict | None = None, **kw) -> Resp:
    return call("GET", f"/v1/sessions/{q(sid)}/events" + (f"?{query}" if query else ""), None,
                headers, key, **kw)


def q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def strip_server_fields(ev: dict) -> dict:
    return {k: v for k, v in ev.items() if k not in SERVER_FIELDS}


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)


def expect_status(r: Resp, status, what: str) -> None:
    ok = r.status in status if isinstance(status, (tuple, list, set)) else r.status == status
    expect(ok, f"{what}: expected HTTP {status}, got {r.status} body={r.body[:300]!r}")


def expect_error(r: Resp, status: int, err_type: str, what: str) -> None:
    expect_status(r, status, what)
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"{what}: error body is not JSON: {r.body[:200]!r}")
    expect(body.get("type") == "error" and isinstance(body.get("error"), dict),
           f"{what}: not an Anthropic error body: {body}")
    expect(body["error"].get("type") == err_type,
           f"{what}: expected error.type {err_type}, got {body['error'].get('type')}: {body}")
    expect(isinstance(body["error"].get("message"), str) and body["error"]["message"],
           f"{what}: error.message missing: {body}")
    expect((r.h("content-type") or "").startswith("application/json"),
           f"{what}: error Content-Type is {r.h('content-type')}")
    expect(r.h("request-id"), f"{what}: no request-id header")


def all_events(sid: str, key: str | None = "A") -> list[dict]:
    """Every event of the session, following next_page until it is null."""
    out: list[dict] = []
    query = "offset=-1"
    for _ in range(10_000):
        r = read(sid, query, key=key)
        expect_status(r, 200, f"read {sid} ({query})")
        body = r.json()
        out.extend(body["data"])
        if not body.get("next_page"):
            return out
        query = f"offset=-1&page={q(body['next_page'])}"
    raise AssertionError("next_page never became null")


def make_session(prefix: str, events: list[dict] | None = None, key: str = "A") -> tuple[str, list[dict]]:
    """Implicitly create a session with a client-chosen id by appending `events`."""
    sid = uid(prefix)
    stored: list[dict] = []
    if events:
        r = append(sid, {"events": events}, key=key)
        expect_status(r, 200, f"append to {sid}")
        stored = r.json()["data"]
    return sid, stored


# --------------------------------------------------------------------------
# SSE reader
# --------------------------------------------------------------------------


class SSE:
    """Incremental SSE reader on one http.client connection."""

    def __init__(self, path: str, key: str | None = "A", headers: dict | None = None, timeout: float = 10):
        self.conn = http.client.HTTPConnection(HOST, SERVER.port, timeout=timeout)
        hdrs = auth_headers(KEY_A if key == "A" else KEY_B if key == "B" else key)
        hdrs.update(headers or {})
        t0 = time.monotonic()
        self.conn.request("GET", path, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.headers_after = time.monotonic() - t0
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.raw_lines: list[str] = []

    def next_message(self, timeout: float = 5.0) -> dict | None:
        """Next message as {'event': str|None, 'data': [lines], 'comment_only': bool}; None at EOF.
        Raises socket.timeout if nothing complete arrives in time. Comment-only blocks are skipped."""
        deadline = time.monotonic() + timeout
        event, data, fields_seen = None, [], False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete SSE message in time")
            self.conn.sock.settimeout(remaining)
            line = self.resp.readline()
            if not line:
                return None if not fields_seen else {"event": event, "data": data}
            s = line.decode("utf-8").rstrip("\r\n")
            self.raw_lines.append(s)
            if s == "":
                if fields_seen:
                    return {"event": event, "data": data}
                continue
            if s.startswith(":"):
                continue
            name, _, value = s.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "event":
                event, fields_seen = value, True
            elif name == "data":
                data.append(value)
                fields_seen = True
            else:
                fields_seen = True

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

TESTS: list = []


def test(fn):
    TESTS.append(fn)
    return fn


E1 = {"type": "user.message", "content": [{"type": "text", "text": "hello"}]}
E2 = {"type": "agent.tool_use", "name": "grep", "input": {"pattern": "stripe", "n": 3}}


@test
def body_shapes_are_equivalent():
    wrapped, listed, single = uid("shape-w"), uid("shape-l"), uid("shape-s")
    expect_status(append(wrapped, {"events": [E1, E2]}), 200, "{events:[..]}")
    expect_status(append(listed, [E1, E2]), 200, "[..]")
    expect_status(append(single, E1), 200, "{..} #1")
    expect_status(append(single, E2), 200, "{..} #2")
    results = {name: all_events(sid) for name, sid in
               (("wrapped", wrapped), ("list", listed), ("single", single))}
    stripped = {name: [strip_server_fields(e) for e in evs] for name, evs in results.items()}
    expect(stripped["wrapped"] == [E1, E2], f"wrapped stored {stripped['wrapped']}")
    expect(stripped["list"] == stripped["wrapped"], f"[..] differs: {stripped['list']}")
    expect(stripped["single"] == stripped["wrapped"], f"{{..}} differs: {stripped['single']}")
    offs = {name: [e["offset"] for e in evs] for name, evs in results.items()}
    expect(offs["wrapped"] == offs["list"] == offs["single"], f"offsets differ: {offs}")
    # Single-object response: data is still a list of one stored event.
    r = append(single, {"type": "x.single"})
    expect(isinstance(r.json().get("data"), list) and len(r.json()["data"]) == 1, f"single response {r.json()}")


@test
def implicit_creation_on_first_append():
    sid = uid("implicit")
    expect_status(call("GET", f"/v1/sessions/{sid}"), 404, "GET before first append")
    r = append(sid, [E1], accept_json=False)
    expect_status(r, 204, "first append to an unknown client-chosen id")
    r = call("GET", f"/v1/sessions/{sid}")
    expect_status(r, 200, "GET after implicit creation")
    s = r.json()
    expect(s.get("id") == sid, f"id {s.get('id')} != {sid}")
    expect(s.get("type") == "session", f"type {s.get('type')}")
    expect(s.get("event_count") == 1, f"event_count {s.get('event_count')}")
    expect(s.get("status") == "idle", f"status {s.get('status')}")
    expect(s.get("closed") is False, f"closed {s.get('closed')}")
    # Ids with every allowed character class.
    odd = f"A.b_c:d~e-{uuid.uuid4().hex[:6]}"
    expect_status(append(odd, [E1]), 200, f"append to {odd!r}")
    expect_status(call("GET", f"/v1/sessions/{q(odd)}"), 200, f"GET {odd!r}")


@test
def append_response_by_accept_header():
    sid = uid("accept")
    r = append(sid, [E1], accept_json=False)
    expect_status(r, 204, "append without Accept")
    expect(r.body == b"", f"204 with a body {r.body!r}")
    expect(r.h("stream-next-offset") is not None, "Stream-Next-Offset missing on 204")
    n1 = r.h("stream-next-offset")

    r = append(sid, [E1], accept_json=False, headers={"Accept": "*/*"})  # what curl sends
    expect_status(r, 204, "append with Accept: */*")
    n2 = r.h("stream-next-offset")
    expect(n2 is not None and n2 > n1, f"Stream-Next-Offset did not advance: {n1} -> {n2}")

    r = append(sid, [E1, E2], accept_json=True)
    expect_status(r, 200, "append with Accept: application/json")
    expect((r.h("content-type") or "").startswith("application/json"), f"content-type {r.h('content-type')}")
    expect(r.h("request-id"), "request-id header missing")
    n3 = r.h("stream-next-offset")
    expect(n3 is not None, "Stream-Next-Offset missing on 200")
    data = r.json()["data"]
    expect(len(data) == 2, f"data {data}")
    for ev in data:
        expect(ev["id"].startswith("evt_") and len(ev["id"]) == 30, f"event id {ev['id']}")
        expect(len(ev["offset"]) == 16 and ev["offset"].isdigit(), f"offset {ev['offset']}")
        for f in ("created_at", "processed_at"):
            v = ev.get(f, "")
            expect(len(v) == 24 and v.endswith("Z") and v[19] == ".", f"{f} not RFC 3339 UTC with ms: {v!r}")
    # Stream-Next-Offset before this append is the first new event's offset (SPEC 3.6).
    expect(data[0]["offset"] == n2, f"first offset {data[0]['offset']} != previous Stream-Next-Offset {n2}")
    expect(data[1]["offset"] > data[0]["offset"], "offsets not increasing")
    expect(n3 > data[1]["offset"], f"Stream-Next-Offset {n3} not after last offset {data[1]['offset']}")
    # Client-sent server fields are replaced.
    r = append(sid, {"type": "x", "id": "evt_mine", "offset": "9", "created_at": "1999-01-01T00:00:00.000Z"})
    ev = r.json()["data"][0]
    expect(ev["id"] != "evt_mine" and ev["offset"] == n3 and ev["created_at"] != "1999-01-01T00:00:00.000Z",
           f"server fields not replaced: {ev}")


@test
def read_offsets_minus1_now_explicit_8digit():
    sid, stored = make_session("offsets", [{"type": "t", "n": i} for i in range(5)])
    offsets = [e["offset"] for e in stored]

    r = read(sid, "offset=-1")
    expect_status(r, 200, "offset=-1")
    expect((r.h("content-type") or "").startswith("application/json"), f"content-type {r.h('content-type')}")
    body = r.json()
    expect([e["offset"] for e in body["data"]] == offsets, f"offset=-1 offsets {[e['offset'] for e in body['data']]}")
    expect(body["data"] == stored, "read events differ from the append response")
    expect("next_page" in body and body["next_page"] is None, f"next_page {body.get('next_page')!r}")
    tail = r.h("stream-next-offset")
    expect(tail is not None and tail > offsets[-1], f"Stream-Next-Offset {tail}")
    expect(r.h("stream-up-to-date") == "true", f"Stream-Up-To-Date {r.h('stream-up-to-date')}")

    r0 = read(sid)
    expect(r0.json()["data"] == stored, "no offset should read from the start")

    r = read(sid, "offset=now")
    expect_status(r, 200, "offset=now")
    expect(r.json()["data"] == [], f"offset=now returned {r.json()['data']}")
    expect(r.h("stream-next-offset") == tail, f"offset=now Stream-Next-Offset {r.h('stream-next-offset')} != {tail}")
    expect(r.h("stream-up-to-date") == "true", "offset=now not up to date")

    r = read(sid, f"offset={offsets[2]}")
    expect_status(r, 200, "explicit offset")
    expect([e["offset"] for e in r.json()["data"]] == offsets[2:], "explicit offset is not an inclusive start")

    # Resume from the tail: nothing new.
    r = read(sid, f"offset={tail}")
    expect_status(r, 200, "offset=tail")
    expect(r.json()["data"] == [] and r.h("stream-up-to-date") == "true", f"offset=tail {r}")

    # 8-digit offset == 16-digit offset.
    pos = int(offsets[2])
    short, full = str(pos).zfill(8), str(pos).zfill(16)
    a, b = read(sid, f"offset={short}"), read(sid, f"offset={full}")
    expect_status(a, 200, f"offset={short}")
    expect(a.json()["data"] == b.json()["data"] and a.json()["data"],
           f"offset={short} returned {[e['offset'] for e in a.json()['data']]}, "
           f"offset={full} returned {[e['offset'] for e in b.json()['data']]}")
    expect(a.h("stream-next-offset") == b.h("stream-next-offset"), "8-digit offset: different Stream-Next-Offset")

    # The literal example: 00000002 means 0000000000000002.
    a, b = read(sid, "offset=00000002"), read(sid, "offset=0000000000000002")
    expect_status(a, 200, "offset=00000002")
    expect(a.json()["data"] == b.json()["data"], "00000002 and 0000000000000002 differ")
    expect(a.json()["data"] and a.json()["data"][0]["offset"] == "0000000000000002",
           f"offset=00000002 starts at {a.json()['data'][:1]}")

    # Malformed offsets are 400.
    for bad in ("abc", "-2", "12ab"):
        expect_status(read(sid, f"offset={bad}"), 400, f"offset={bad}")


@test
def head_and_etag():
    sid, stored = make_session("head", [E1, E2])
    r = call("HEAD", f"/v1/sessions/{sid}/events")
    expect_status(r, 200, "HEAD events")
    expect(r.body == b"", "HEAD has a body")
    g = read(sid, "offset=-1")
    expect(r.h("stream-next-offset") == g.h("stream-next-offset"),
           f"HEAD Stream-Next-Offset {r.h('stream-next-offset')} != GET {g.h('stream-next-offset')}")
    etag = g.h("etag")
    expect(etag, "GET events: no ETag")
    r = read(sid, "offset=-1", headers={"If-None-Match": etag})
    expect_status(r, 304, "If-None-Match with the current ETag")
    r = read(sid, "offset=-1", headers={"If-None-Match": f'"other", W/{etag}'})
    expect_status(r, 304, "If-None-Match with a list holding the weak form of the ETag")
    append(sid, [E1])
    r = read(sid, "offset=-1", headers={"If-None-Match": etag})
    expect_status(r, 200, "If-None-Match after an append")
    # A full page (limit 2) had next_page null; after another append the same page gains a
    # next_page, so it is a different body and must not be answered 304.
    g = read(sid, "offset=-1&limit=3")
    page_etag = g.h("etag")
    expect(json.loads(g.body).get("next_page") is None, f"last page has a next_page: {g.body[:200]!r}")
    append(sid, [E2])
    r = read(sid, "offset=-1&limit=3", headers={"If-None-Match": page_etag})
    expect_status(r, 200, "If-None-Match on a page that gained a next_page")
    expect(json.loads(r.body).get("next_page") is not None, f"no next_page: {r.body[:200]!r}")


@test
def type_filters():
    evs = [{"type": "a.x", "n": 0}, {"type": "b.y", "n": 1}, {"type": "a.x", "n": 2},
           {"type": "c.z", "n": 3}, {"type": "d.w", "n": 4}]
    sid, stored = make_session("types", evs)
    tail = read(sid, "offset=-1").h("stream-next-offset")

    def ns(query: str) -> list[int]:
        r = read(sid, query)
        expect_status(r, 200, query)
        return [e["n"] for e in r.json()["data"]]

    expect(ns("type=a.x") == [0, 2], f"type=a.x -> {ns('type=a.x')}")
    expect(ns("type=a.x&type=b.y") == [0, 1, 2], f"repeated type -> {ns('type=a.x&type=b.y')}")
    expect(ns("type=a.x,b.y") == [0, 1, 2], f"comma type -> {ns('type=a.x,b.y')}")
    expect(ns("type=a.x%2Cb.y") == [0, 1, 2], "percent-encoded comma type")
    expect(ns("types%5B%5D=b.y&types%5B%5D=c.z") == [1, 3], "types%5B%5D=")
    expect(ns("types[]=b.y&types[]=c.z") == [1, 3], "types[]= (unencoded)")
    expect(ns("types=c.z&types=b.y") == [1, 3], "types= repeated")
    expect(ns("type=nope") == [], "unknown type")
    # Filters skip events, but the resume offset still moves past them.
    r = read(sid, "type=a.x")
    expect(r.h("stream-next-offset") == tail, f"filtered read Stream-Next-Offset {r.h('stream-next-offset')} != {tail}")
    # Type filter with an offset.
    expect(ns(f"type=a.x&offset={stored[1]['offset']}") == [2], "type + offset")
    # Limit and pagination with a filter.
    r = read(sid, "type=a.x&limit=1")
    body = r.json()
    expect([e["n"] for e in body["data"]] == [0] and body["next_page"], f"limit=1 page 1: {body}")
    r2 = read(sid, f"type=a.x&limit=1&page={q(body['next_page'])}")
    body2 = r2.json()
    expect([e["n"] for e in body2["data"]] == [2], f"limit=1 page 2: {body2}")
    if body2.get("next_page"):
        body3 = read(sid, f"type=a.x&limit=1&page={q(body2['next_page'])}").json()
        expect(body3["data"] == [] and body3["next_page"] is None, f"page 3: {body3}")
    # Types the log stores escaped (a quote, a backslash) are asked for as themselves, and
    # types[] takes each value whole, commas included (type= still splits on commas).
    odd = [{"type": 'say "hi"', "n": 0}, {"type": "a,b", "n": 1}, {"type": "back\\slash", "n": 2},
           {"type": "a", "n": 3}]
    sid2, _ = make_session("oddtypes", odd)

    def ns2(query: str) -> list[int]:
        r = read(sid2, query)
        expect_status(r, 200, query)
        return [e["n"] for e in r.json()["data"]]

    expect(ns2("type=" + q('say "hi"')) == [0], "a type with quotes")
    expect(ns2("types%5B%5D=" + q("a,b")) == [1], "types[] with a comma is one type")
    expect(ns2("type=" + q("a,b")) == [3], "type= with a comma lists two types, a and b")
    expect(ns2("types%5B%5D=" + q("back\\slash")) == [2], "type with a backslash")


@test
def long_poll_wakeup():
    sid, _ = make_session("lp-wake", [E1])
    result: dict = {}

    def reader():
        t0 = time.monotonic()
        result["r"] = read(sid, "live=long-poll&offset=now", timeout=10)
        result["t"] = time.monotonic() - t0

    th = threading.Thread(target=reader)
    th.start()
    time.sleep(0.3)
    a = append(sid, [{"type": "wake.up", "n": 1}])
    th.join(10)
    expect(not th.is_alive(), "long-poll reader still waiting")
    r = result["r"]
    expect_status(r, 200, "long-poll after append")
    data = r.json()["data"]
    expect([e["type"] for e in data] == ["wake.up"], f"long-poll data {data}")
    expect(data[0]["id"] == a.json()["data"][0]["id"], "long-poll delivered a different event")
    expect(result["t"] < LONG_POLL_TIMEOUT, f"long-poll took {result['t']:.2f}s (woke at timeout?)")
    expect(result["t"] >= 0.25, f"long-poll returned after {result['t']:.2f}s, before the append")
    expect(r.h("stream-next-offset") == a.h("stream-next-offset"), "long-poll Stream-Next-Offset")
    # With data already at the offset it returns at once.
    t0 = time.monotonic()
    r = read(sid, "live=long-poll&offset=-1")
    expect_status(r, 200, "long-poll with existing data")
    expect(time.monotonic() - t0 < 1.0 and len(r.json()["data"]) == 2, "long-poll did not return immediately")
    # A long-poll with a type filter wakes only for a matching type.
    result.clear()

    def typed_reader():
        t0 = time.monotonic()
        result["r"] = read(sid, "live=long-poll&offset=now&type=wanted", timeout=10)
        result["t"] = time.monotonic() - t0

    th = threading.Thread(target=typed_reader)
    th.start()
    time.sleep(0.2)
    append(sid, [{"type": "unwanted"}])
    time.sleep(0.3)
    append(sid, [{"type": "wanted"}])
    th.join(10)
    r = result["r"]
    expect_status(r, 200, "typed long-poll")
    expect([e["type"] for e in r.json()["data"]] == ["wanted"], f"typed long-poll data {r.json()['data']}")
    expect(result["t"] >= 0.45, f"typed long-poll woke early ({result['t']:.2f}s)")


@test
def long_poll_timeout():
    sid, _ = make_session("lp-timeout", [E1])
    tail = read(sid).h("stream-next-offset")
    t0 = time.monotonic()
    r = read(sid, "live=long-poll&offset=now", timeout=10)
    dt = time.monotonic() - t0
    expect_status(r, 204, "long-poll timeout")
    expect(r.body == b"", f"204 with body {r.body!r}")
    expect(LONG_POLL_TIMEOUT - 0.3 <= dt <= LONG_POLL_TIMEOUT + 2, f"timed out after {dt:.2f}s")
    expect(r.h("stream-up-to-date") == "true", f"Stream-Up-To-Date {r.h('stream-up-to-date')}")
    expect(r.h("stream-next-offset") == tail, f"Stream-Next-Offset {r.h('stream-next-offset')} != {tail}")
    expect(r.h("stream-cursor"), "Stream-Cursor missing")


@test
def sse_live_framing():
    sid, stored = make_session("sse", [E1, E2])
    sse = SSE(f"/v1/sessions/{sid}/events?live=sse&offset=-1")
    try:
        expect(sse.status == 200, f"live=sse status {sse.status}")
        expect((sse.headers.get("content-type") or "").startswith("text/event-stream"),
               f"content-type {sse.headers.get('content-type')}")
        got: list[dict] = []
        control = None
        while control is None or not control.get("upToDate"):
            m = sse.next_message()
            expect(m is not None, "SSE ended early")
            if m["event"] == "data":
                arr = json.loads("\n".join(m["data"]))
                expect(isinstance(arr, list), f"event: data is not a JSON array: {m['data']}")
                got.extend(arr)
            elif m["event"] == "control":
                control = json.loads("\n".join(m["data"]))
            else:
                raise AssertionError(f"unexpected SSE event {m}")
        expect([e["id"] for e in got] == [e["id"] for e in stored], f"catch-up events {got}")
        tail = read(sid).h("stream-next-offset")
        expect(control.get("streamNextOffset") == tail, f"control {control} vs tail {tail}")
        expect("streamCursor" in control, f"control without streamCursor: {control}")

        # Live: append, expect data then control.
        a = append(sid, [{"type": "live.one"}, {"type": "live.two"}])
        live: list[dict] = []
        control = None
        while len(live) < 2 or control is None:
            m = sse.next_message()
            expect(m is not None, "SSE ended before live events")
            if m["event"] == "data":
                live.extend(json.loads("\n".join(m["data"])))
            elif m["event"] == "control":
                control = json.loads("\n".join(m["data"]))
        expect([e["type"] for e in live] == ["live.one", "live.two"], f"live events {live}")
        expect([e["id"] for e in live] == [e["id"] for e in a.json()["data"]], "live ids differ")
        expect(control.get("streamNextOffset") == a.h("stream-next-offset"), f"live control {control}")
    finally:
        sse.close()

    # live=sse with offset=now and a type filter.
    sse = SSE(f"/v1/sessions/{sid}/events?live=sse&offset=now&type=keep")
    try:
        expect(sse.status == 200, f"status {sse.status}")
        append(sid, [{"type": "drop"}, {"type": "keep", "k": 1}])
        seen: list[dict] = []
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            m = sse.next_message()
            if m and m["event"] == "data":
                seen.extend(json.loads("\n".join(m["data"])))
        expect([e["type"] for e in seen] == ["keep"], f"filtered SSE {seen}")
    finally:
        sse.close()


def _check_anthropic_stream(path_fmt: str):
    sid, history = make_session("astream", [E1])
    sse = SSE(path_fmt.format(sid=sid), headers={"Accept": "application/json"})  # as the SDK sends
    try:
        expect(sse.status == 200, f"{path_fmt}: status {sse.status}")
        expect(sse.headers_after < 1.0, f"headers took {sse.headers_after:.2f}s (must be flushed at once)")
        ct = sse.headers.get("content-type") or ""
        expect(ct.startswith("text/event-stream"), f"content-type {ct}")
        time.sleep(0.1)
        a = append(sid, [E2, {"type": "agent.message", "content": [{"type": "text", "text": "multi\nline"}]}])
        sent = a.json()["data"]
        got = []
        while len(got) < 2:
            m = sse.next_message()
            expect(m is not None, "stream ended early")
            if m["event"] == "ping":
                continue
            expect(m["event"] is not None, f"message without an event: line: {m}")
            expect(len(m["data"]) == 1, f"data must be one line, got {len(m['data'])}: {m['data']}")
            ev = json.loads(m["data"][0])
            expect(m["event"] == ev["type"], f"event: {m['event']} but data.type {ev['type']}")
            got.append(ev)
        expect([e["id"] for e in got] == [e["id"] for e in sent],
               f"live tail delivered {[e.get('type') for e in got]} (history must not be replayed)")
        expect(got == sent, "streamed events differ from the stored ones")
    finally:
        sse.close()
    # With ?offset=-1 the history is replayed first.
    sse = SSE(path_fmt.format(sid=sid) + "?offset=-1")
    try:
        got = []
        while len(got) < 3:
            m = sse.next_message()
            expect(m is not None, "replay ended early")
            if m["event"] != "ping":
                got.append(json.loads(m["data"][0]))
        expect([e["id"] for e in got] == [e["id"] for e in history + sent], "replay from offset=-1")
    finally:
        sse.close()


@test
def anthropic_events_stream_framing():
    _check_anthropic_stream("/v1/sessions/{sid}/events/stream")


@test
def anthropic_seed_stream_path_framing():
    _check_anthropic_stream("/v1/sessions/{sid}/stream")


@test
def delete_ends_live_streams():
    sid, stored = make_session("del-live", [E1, E2, E1])
    sse = SSE(f"/v1/sessions/{sid}/events/stream")
    try:
        time.sleep(0.1)
        d = call("DELETE", f"/v1/sessions/{sid}", None, JSON_ACCEPT)
        expect_status(d, 200, "DELETE")
        expect(d.json() == {"id": sid, "type": "session_deleted"}, f"DELETE body {d.json()}")
        types, last = [], None
        while True:
            m = sse.next_message(timeout=5)
            if m is None:
                break
            if m["event"] != "ping":
                types.append(m["event"])
                last = json.loads(m["data"][0])
        expect(types and types[-1] == "session.deleted", f"events before end of stream: {types}")
        expect(last["id"].startswith("evt_") and last["offset"] > stored[-1]["offset"],
               f"session.deleted must come after the log (offsets strictly increase): {last}, "
               f"last stored offset {stored[-1]['offset']}")
    finally:
        sse.close()


@test
def delete_ends_live_sse_reads():
    # live=sse readers get session.deleted too, then the stream ends.
    sid, stored = make_session("del-live-sse", [E1, E2])
    sse = SSE(f"/v1/sessions/{sid}/events?live=sse&offset=now")
    try:
        time.sleep(0.1)
        expect_status(call("DELETE", f"/v1/sessions/{sid}", None, JSON_ACCEPT), 200, "DELETE (sse)")
        got, controls = [], []
        while True:
            m = sse.next_message(timeout=5)
            if m is None:
                break
            if m["event"] == "data":
                got.extend(json.loads("\n".join(m["data"])))
            if m["event"] == "control":
                controls.append(json.loads("\n".join(m["data"])))
        expect([e["type"] for e in got] == ["session.deleted"], f"live=sse after delete: {got}")
        # Like every data event, it is followed by a control event, which closes the stream.
        expect(controls and controls[-1].get("streamClosed") is True, f"no closing control: {controls}")
        expect(got[0]["offset"] > stored[-1]["offset"], f"session.deleted offset {got[0]['offset']}")
    finally:
        sse.close()


@test
def delete_wakes_long_poll_reads():
    # A long-poll reader waiting at the tail gets session.deleted and a closed stream (SPEC 3.2).
    sid, stored = make_session("del-live-lp", [E1])
    res: dict = {}
    th = threading.Thread(target=lambda: res.update(r=read(sid, "live=long-poll&offset=now", timeout=10)))
    th.start()
    time.sleep(0.2)
    call("DELETE", f"/v1/sessions/{sid}", None, JSON_ACCEPT)
    th.join(10)
    r = res["r"]
    expect(r.status == 200, f"long-poll on delete -> {r.status} (want 200 with session.deleted)")
    if r.status == 200:
        expect([e["type"] for e in r.json()["data"]] == ["session.deleted"], f"long-poll on delete: {r.body[:200]!r}")
        expect(r.headers.get("stream-closed") == "true", f"long-poll on delete: Stream-Closed {r.headers}")
    expect_error(call("GET", f"/v1/sessions/{sid}"), 404, "not_found_error", "GET after delete")
    expect_error(read(sid), 404, "not_found_error", "GET events after delete")


@test
def session_ttl_expires_idle_sessions():
    # ttl_seconds (SPEC 3.2): a session idle that long is deleted, with its search documents; a
    # waiting live reader keeps it alive; re-PUT compares the TTL.
    idle, watched = uid("ttl-idle"), uid("ttl-watched")
    word = "zyxwtt" + uid("w").replace("-", "").replace("_", "")[-8:].lower()
    for sid in (idle, watched):
        expect_status(call("PUT", f"/v1/sessions/{sid}", {"ttl_seconds": 1}, JSON_ACCEPT), 201, f"PUT {sid} ttl 1")
    expect_status(call("PUT", f"/v1/sessions/{idle}", {"ttl_seconds": 1}, JSON_ACCEPT), 200, "same ttl -> 200")
    expect_error(call("PUT", f"/v1/sessions/{idle}", {"ttl_seconds": 5}, JSON_ACCEPT), 409, "conflict_error",
                 "another ttl -> 409")
    expect_status(append(idle, {"events": [{"type": "user.message",
                                            "content": [{"type": "text", "text": word}]}]}), 200, "append")
    hits = call("GET", f"/v1/search?q={word}").json()
    expect(hits["total_hits"] == 1, f"search before expiry: {hits}")
    sse = SSE(f"/v1/sessions/{watched}/events/stream")
    try:
        deadline = time.monotonic() + 15
        while call("GET", f"/v1/sessions/{idle}").status != 404 and time.monotonic() < deadline:
            time.sleep(0.1)
        expect(call("GET", f"/v1/sessions/{idle}").status == 404, "idle session with ttl 1 s still there after 15 s")
        expect(call("GET", f"/v1/sessions/{watched}").status == 200,
               "a session with a live reader expired under it")
        expect(call("GET", f"/v1/search?q={word}").json()["total_hits"] == 0, "expired session still searchable")
    finally:
        sse.close()
    deadline = time.monotonic() + 15
    while call("GET", f"/v1/sessions/{watched}").status != 404 and time.monotonic() < deadline:
        time.sleep(0.1)
    expect(call("GET", f"/v1/sessions/{watched}").status == 404, "session still there 15 s after its reader left")


@test
def closure():
    sid, _ = make_session("closed", [E1])
    r = append(sid, [{"type": "last"}], headers={"Stream-Closed": "true"})
    expect_status(r, (200, 204), "append with Stream-Closed: true")
    expect(r.h("stream-closed") == "true", f"append response Stream-Closed {r.h('stream-closed')}")
    h = call("HEAD", f"/v1/sessions/{sid}/events")
    expect(h.h("stream-closed") == "true", f"HEAD Stream-Closed {h.h('stream-closed')}")
    g = read(sid, "offset=-1")
    expect([e["type"] for e in g.json()["data"]][-1] == "last", "closing append not stored")
    expect(g.h("stream-closed") == "true", "GET at end of closed session: Stream-Closed missing")
    s = call("GET", f"/v1/sessions/{sid}").json()
    expect(s.get("closed") is True, f"session.closed {s.get('closed')}")
    r = append(sid, [{"type": "too.late"}])
    expect_error(r, 409, "conflict_error", "append after close")
    expect(r.h("stream-closed") == "true", f"409 without Stream-Closed: true (headers {r.headers})")
    expect(r.h("x-should-retry") == "false", f"409 without x-should-retry: false (got {r.h('x-should-retry')})")
    expect(len(all_events(sid)) == 2, "an event was stored after close")

    # Close only (empty body) on another session.
    sid2, _ = make_session("close-only", [E1])
    r = call("POST", f"/v1/sessions/{sid2}/events", b"", {"Stream-Closed": "true"})
    expect_status(r, (200, 204), "close-only append")
    expect(call("GET", f"/v1/sessions/{sid2}").json().get("closed") is True, "close-only did not close")
    expect(len(all_events(sid2)) == 1, "close-only stored an event")
    # A long-poll on a closed session at its tail returns at once with Stream-Closed.
    t0 = time.monotonic()
    r = read(sid2, "live=long-poll&offset=now", timeout=10)
    expect(time.monotonic() - t0 < 1.0, "long-poll on a closed session waited")
    expect(r.h("stream-closed") == "true", f"long-poll on closed session: {r.status} {r.headers}")


@test
def idempotent_producer_retry():
    sid, _ = make_session("producer", [E1])
    ph = {"Producer-Id": "p-1", "Producer-Epoch": "0", "Producer-Seq": "0"}
    r1 = append(sid, [{"type": "once", "n": 0}], accept_json=False, headers=ph)
    expect_status(r1, (200, 204), "producer seq 0")
    r2 = append(sid, [{"type": "once", "n": 0}], accept_json=False, headers=ph)
    expect_status(r2, (200, 204), "producer seq 0 retry")
    expect(r2.h("stream-next-offset") == r1.h("stream-next-offset"),
           f"retry moved the tail: {r1.h('stream-next-offset')} -> {r2.h('stream-next-offset')}")
    r3 = append(sid, [{"type": "once", "n": 1}], accept_json=False, headers={**ph, "Producer-Seq": "1"})
    expect_status(r3, (200, 204), "producer seq 1")
    # Retry with Accept: application/json is deduplicated too.
    r4 = append(sid, [{"type": "once", "n": 1}], accept_json=True, headers={**ph, "Producer-Seq": "1"})
    expect_status(r4, (200, 204), "producer seq 1 retry (JSON)")
    ns = [e.get("n") for e in all_events(sid) if e["type"] == "once"]
    expect(ns == [0, 1], f"stored {ns}, expected [0, 1]")
    # A gap in the sequence is refused (Durable Streams: 409).
    r5 = append(sid, [{"type": "once", "n": 9}], headers={**ph, "Producer-Seq": "5"})
    expect_status(r5, 409, "producer seq gap")
    # Stream-Seq must increase.
    sid2, _ = make_session("stream-seq", [E1])
    expect_status(append(sid2, [{"type": "s"}], headers={"Stream-Seq": "b"}), (200, 204), "Stream-Seq b")
    expect_status(append(sid2, [{"type": "s"}], headers={"Stream-Seq": "a"}), 409, "Stream-Seq regression")
    expect(len(all_events(sid2)) == 2, "regressed Stream-Seq stored an event")


@test
def limits():
    sid, _ = make_session("limits", [E1])
    before = len(all_events(sid))

    big = {"type": "big", "blob": "x" * (MAX_BODY + 1024)}
    r = append(sid, big)
    expect_error(r, 413, "request_too_large", "body over --max-body")

    many = [{"type": "a"}] * (MAX_EVENTS + 1)
    expect(len(json.dumps(many, separators=(",", ":"))) < MAX_BODY, "test bug: 10,001 events exceed max-body")
    expect_error(append(sid, many), 400, "invalid_request_error", ">10,000 events")
    expect_error(append(sid, {"events": many}), 400, "invalid_request_error", ">10,000 events (wrapped)")

    for body, what in (({"events": []}, "empty {events:[]}"), ([], "empty []"),
                       ([1], "number event"), (["x"], "string event"), ({"events": [None]}, "null event"),
                       ([[{"type": "a"}]], "array event"), ({"foo": 1}, "missing type"),
                       ({"type": ""}, "empty type"), ({"type": 5}, "non-string type"),
                       ({"type": "t" * 129}, "type over 128 bytes"),
                       ([{"type": "ok"}, {"type": ""}], "one bad event in a batch"),
                       ({"events": {"type": "a"}}, "events not a list")):
        expect_error(append(sid, body), 400, "invalid_request_error", what)
    for raw, what in ((b"{not json", "invalid JSON"), (b"", "empty body"), (b"42", "bare number")):
        expect_error(call("POST", f"/v1/sessions/{sid}/events", raw,
                          {"Content-Type": "application/json", **JSON_ACCEPT}), 400, "invalid_request_error", what)

    expect(len(all_events(sid)) == before, "a rejected request stored events (batches must be atomic)")

    # Exactly 10,000 events is accepted, contiguously.
    r = append(sid, [{"type": "bulk", "i": i} for i in range(MAX_EVENTS)], accept_json=False)
    expect_status(r, 204, "10,000 events")
    evs = all_events(sid)
    bulk = [e for e in evs if e["type"] == "bulk"]
    expect(len(bulk) == MAX_EVENTS and [e["i"] for e in bulk] == list(range(MAX_EVENTS)), "10,000 events not stored in order")


@test
def sessions_crud_over_http():
    r = call("POST", "/v1/sessions", {"title": "general form", "metadata": {"user_email": "a@example.com", "experiment": "v2"}},
             JSON_ACCEPT)
    expect_status(r, 200, "create (general form)")
    expect((r.h("content-type") or "").startswith("application/json") and r.h("request-id"), f"headers {r.headers}")
    s = r.json()
    expect(s["id"].startswith("sesn_") and len(s["id"]) == 31, f"id {s['id']}")
    expect(s["title"] == "general form" and s["metadata"]["experiment"] == "v2", f"session {s}")
    sid = s["id"]
    # Anthropic headers and ?beta=true are accepted and ignored.
    r = call("GET", f"/v1/sessions/{sid}?beta=true", None,
             {"anthropic-beta": "managed-agents-2026-04-01", "anthropic-version": "2023-06-01",
              "x-stainless-lang": "js", "anthropic-workspace-id": "wrkspc_1"})
    expect_status(r, 200, "GET with anthropic-* headers and beta=true")
    # PUT with a client-chosen id: 201 new, 200 identical, 409 conflicting.
    cid = uid("put")
    body = {"title": "put me", "metadata": {"k": "v"}}
    expect_status(call("PUT", f"/v1/sessions/{cid}", body, JSON_ACCEPT), 201, "PUT new")
    expect_status(call("PUT", f"/v1/sessions/{cid}", body, JSON_ACCEPT), 200, "PUT identical")
    r = call("PUT", f"/v1/sessions/{cid}", {"title": "different"}, JSON_ACCEPT)
    expect_error(r, 409, "conflict_error", "PUT conflicting")
    expect(r.h("x-should-retry") == "false", "PUT 409 without x-should-retry: false")
    # Update and list over plain HTTP.
    r = call("POST", f"/v1/sessions/{cid}", {"metadata": {"k": None, "n": "1"}}, JSON_ACCEPT)
    expect_status(r, 200, "update")
    expect(r.json()["metadata"] == {"n": "1"}, f"metadata after patch {r.json()['metadata']}")
    r = call("GET", f"/v1/sessions?metadata%5Bn%5D=1&limit=5")
    expect_status(r, 200, "list with metadata filter")
    body = r.json()
    expect([x["id"] for x in body["data"]] == [cid], f"list data {[x['id'] for x in body['data']]}")
    expect("next_page" in body and "prev_page" in body and body["next_page"] is None, f"list keys {list(body)}")
    # Archive: no body, no content type.
    r = call("POST", f"/v1/sessions/{cid}/archive", None, JSON_ACCEPT)
    expect_status(r, 200, "archive")
    expect(r.json()["archived_at"] and r.json()["status"] == "terminated", f"archive {r.json()}")
    # Agents and environments are out of scope: 404 not_found_error.
    expect_error(call("GET", "/v1/agents"), 404, "not_found_error", "GET /v1/agents")
    expect_error(call("POST", "/v1/environments", {"name": "x"}), 404, "not_found_error", "POST /v1/environments")
    # Unknown session: Anthropic error body.
    expect_error(call("GET", "/v1/sessions/sesn_01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "not_found_error", "unknown session")


@test
def tenant_isolation_matrix():
    sid, stored = make_session("tenant-a", [E1, E2])
    call("POST", f"/v1/sessions/{sid}", {"title": "A's secret"}, JSON_ACCEPT)
    created = call("POST", "/v1/sessions", {"title": "A server id"}, JSON_ACCEPT).json()["id"]
    for target in (sid, created):
        t = q(target)
        matrix = [
            ("GET", f"/v1/sessions/{t}", None),
            ("POST", f"/v1/sessions/{t}", {"title": "pwned"}),
            ("POST", f"/v1/sessions/{t}/archive", None),
            ("GET", f"/v1/sessions/{t}/events", None),
            ("GET", f"/v1/sessions/{t}/events?offset=-1", None),
            ("GET", f"/v1/sessions/{t}/events?live=long-poll&offset=now", None),
            ("GET", f"/v1/sessions/{t}/events?live=sse&offset=-1", None),
            ("HEAD", f"/v1/sessions/{t}/events", None),
            ("GET", f"/v1/sessions/{t}/events/stream", None),
            ("GET", f"/v1/sessions/{t}/stream", None),
            ("DELETE", f"/v1/sessions/{t}", None),
        ]
        failures = []
        for method, path, body in matrix:
            r = call(method, path, body, JSON_ACCEPT, key="B", timeout=5)
            if r.status != 404:
                failures.append(f"{method} {path} -> {r.status} {r.body[:120]!r}")
            elif method != "HEAD":
                try:
                    expect_error(r, 404, "not_found_error", f"{method} {path}")
                except AssertionError as e:
                    failures.append(str(e))
        expect(not failures, "tenant B reached tenant A's session:\n      " + "\n      ".join(failures))
        # POST events with B's key on A's id: either 404 or (implicit creation, SPEC 3.3: the id is
        # unknown in B's namespace) a separate session of B's. Never A's session.
        r = append(target, {"events": [{"type": "from.b"}]}, key="B")
        expect(r.status in (404, 200), f"B's append to A's id -> {r.status} {r.body[:200]!r}")
        if r.status == 200:
            evs_b = all_events(target, key="B")
            expect([e["type"] for e in evs_b] == ["from.b"], f"B's read of the id shows {[e['type'] for e in evs_b]}")
            expect_status(call("DELETE", f"/v1/sessions/{t}", None, JSON_ACCEPT, key="B"), 200, "B deletes its own")
        else:
            expect_error(r, 404, "not_found_error", "B's append to A's id")
    # A's data is untouched.
    s = call("GET", f"/v1/sessions/{sid}").json()
    expect(s["title"] == "A's secret" and s["archived_at"] is None, f"A's session changed: {s}")
    expect([e["id"] for e in all_events(sid)][:2] == [e["id"] for e in stored], "A's events changed")
    expect(not any(e["type"] == "from.b" for e in all_events(sid)), "B's append landed in A's session")
    expect_status(call("GET", f"/v1/sessions/{created}"), 200, "A's server-id session still there")
    # List: B sees none of A's sessions.
    ids_b = set()
    page = ""
    for _ in range(100):
        r = call("GET", "/v1/sessions?include_archived=true&limit=1000" + (f"&page={q(page)}" if page else ""), key="B")
        expect_status(r, 200, "B list")
        ids_b |= {x["id"] for x in r.json()["data"]}
        page = r.json().get("next_page")
        if not page:
            break
    expect(sid not in ids_b and created not in ids_b, "tenant B's list shows tenant A's sessions")
    # Same client-chosen id in both tenants: two separate sessions.
    shared = uid("same-id")
    append(shared, [{"type": "mine.a"}], key="A")
    rb = append(shared, [{"type": "mine.b"}], key="B")
    if rb.status in (200, 204):
        expect([e["type"] for e in all_events(shared, key="A")] == ["mine.a"], "A sees B's event under the same id")
        expect([e["type"] for e in all_events(shared, key="B")] == ["mine.b"], "B sees A's event under the same id")


@test
def auth_required():
    sid, _ = make_session("auth", [E1])
    for path in ("/healthz", "/readyz"):
        expect_status(call("GET", path, key=None), 200, f"{path} without a key")
    endpoints = [
        ("GET", "/v1/sessions", None), ("POST", "/v1/sessions", {"title": "x"}),
        ("GET", f"/v1/sessions/{sid}", None), ("POST", f"/v1/sessions/{sid}", {"title": "x"}),
        ("PUT", f"/v1/sessions/{uid('auth-put')}", {"title": "x"}),
        ("POST", f"/v1/sessions/{sid}/archive", None), ("DELETE", f"/v1/sessions/{sid}", None),
        ("GET", f"/v1/sessions/{sid}/events", None), ("POST", f"/v1/sessions/{sid}/events", [E1]),
        ("POST", f"/v1/sessions/{uid('auth-new')}/events", [E1]),
        ("HEAD", f"/v1/sessions/{sid}/events", None), ("GET", f"/v1/sessions/{sid}/events/stream", None),
        ("GET", f"/v1/sessions/{sid}/stream", None),
        ("GET", f"/v1/sessions/{sid}/events?live=sse", None),
        ("PUT", f"/v1/stream/{uid('auth-ds')}", None),
    ]
    failures = []
    for key, label in ((None, "no key"), ("ds_wrong_key_123", "wrong key")):
        for method, path, body in endpoints:
            r = call(method, path, body, JSON_ACCEPT, key=key, timeout=5)
            if r.status != 401:
                failures.append(f"{label}: {method} {path} -> {r.status}")
            elif method != "HEAD" and not path.startswith("/v1/stream/"):
                try:
                    expect_error(r, 401, "authentication_error", f"{label}: {method} {path}")
                except AssertionError as e:
                    failures.append(str(e))
    expect(not failures, "\n      ".join(["endpoints not refusing:"] + failures))
    # x-api-key works like Bearer; a malformed Authorization does not.
    expect_status(call("GET", f"/v1/sessions/{sid}", auth_style="x-api-key"), 200, "x-api-key")
    expect_status(call("GET", f"/v1/sessions/{sid}", key=None, headers={"Authorization": f"Basic {KEY_A}"}),
                  401, "Authorization: Basic")
    # Nothing was changed by the refused requests.
    s = call("GET", f"/v1/sessions/{sid}").json()
    expect(s["event_count"] == 1 and s["archived_at"] is None, f"refused requests changed the session: {s}")


@test
def key_revocation():
    key = SERVER.create_key("tenant-a")  # a second key of tenant A, created while the server runs
    sid, _ = make_session("revoke", [E1])
    deadline = time.monotonic() + 3
    while call("GET", f"/v1/sessions/{sid}", key=key).status != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    expect_status(call("GET", f"/v1/sessions/{sid}", key=key), 200, "new key of the same tenant sees the session")
    r = SERVER.cli("keys", "list", "--data-dir", str(SERVER.data_dir))
    expect(r.returncode == 0, f"keys list failed: {r.stderr}")
    expect(key not in r.stdout, "keys list prints a full key (keys must be stored hashed, printed once)")
    r = SERVER.cli("keys", "revoke", "--data-dir", str(SERVER.data_dir), key)
    expect(r.returncode == 0, f"keys revoke failed: {r.stdout} {r.stderr}")
    deadline = time.monotonic() + 3
    while call("GET", f"/v1/sessions/{sid}", key=key).status != 401 and time.monotonic() < deadline:
        time.sleep(0.1)
    expect_error(call("GET", f"/v1/sessions/{sid}", key=key), 401, "authentication_error", "revoked key")
    expect_status(call("GET", f"/v1/sessions/{sid}"), 200, "the other key of tenant A still works")



@test
def events_stored_byte_for_byte():
    """SPEC 3.3: the event is stored byte-for-byte as sent (whitespace may be normalised)."""
    sid = uid("bytes")
    raw = ('{"type":"raw.check","zeta":1,"alpha":{"b":2,"a":1},"big":12345678901234567890,'
           '"f":1.50,"e":1e3,"esc":"caf\\u00e9 \\"q\\" \\n","emoji":"\U0001F600","arr":[true,false,null]}')
    r = call("POST", f"/v1/sessions/{sid}/events", raw.encode(), {"Content-Type": "application/json", **JSON_ACCEPT})
    expect_status(r, 200, "append raw event")
    g = read(sid, "offset=-1")
    text = g.body.decode()
    compact = "".join(text.split())  # whitespace-insensitive comparison
    # Key order, big integers and number lexemes are part of the bytes; string escapes are
    # compared by value below (re-encoding \u00e9 as UTF-8 is tolerated).
    lost = [frag for frag in ('"zeta":1,"alpha":{"b":2,"a":1},"big":12345678901234567890', '"f":1.50',
                              '"e":1e3', '"arr":[true,false,null]')
            if "".join(frag.split()) not in compact]
    expect(not lost, f"stored event is not the sent bytes; lost {lost}; stored: {text[:400]}")
    ev = json.loads(text)["data"][0]
    expect(ev["esc"] == 'caf\u00e9 "q" \n' and ev["emoji"] == "\U0001F600", f"strings changed: {ev}")


@test
def concurrent_appends_are_atomic_and_dense():
    sid, _ = make_session("concurrent", [{"type": "start"}])
    errors: list[str] = []

    def writer(w: int):
        for k in range(15):
            r = append(sid, [{"type": "batch", "w": w, "k": k, "j": j} for j in range(5)], accept_json=False)
            if r.status != 204:
                errors.append(f"writer {w} batch {k}: {r.status} {r.body[:100]!r}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    expect(not errors, "; ".join(errors[:5]))
    evs = all_events(sid)
    expect(len(evs) == 1 + 8 * 15 * 5, f"{len(evs)} events stored")
    offs = [int(e["offset"]) for e in evs]
    expect(offs == list(range(offs[0], offs[0] + len(offs))), "offsets are not dense and increasing")
    expect(len({e["id"] for e in evs}) == len(evs), "duplicate event ids")
    batches = evs[1:]
    for i in range(0, len(batches), 5):
        chunk = batches[i:i + 5]
        expect(len({(e["w"], e["k"]) for e in chunk}) == 1 and [e["j"] for e in chunk] == list(range(5)),
               f"batch not contiguous at {i}: {[(e['w'], e['k'], e['j']) for e in chunk]}")
    s = call("GET", f"/v1/sessions/{sid}").json()
    expect(s["event_count"] == len(evs), f"event_count {s['event_count']} != {len(evs)}")
    expect(s["next_offset"] == read(sid).h("stream-next-offset"), "session.next_offset != Stream-Next-Offset")


@test
def delete_removes_data_and_id_can_be_reused():
    sid, _ = make_session("reuse", [{"type": "old", "n": i} for i in range(3)])
    expect_status(call("DELETE", f"/v1/sessions/{sid}", None, JSON_ACCEPT), 200, "DELETE")
    expect_status(call("HEAD", f"/v1/sessions/{sid}/events"), 404, "HEAD after delete")
    r = append(sid, [{"type": "new"}])
    expect_status(r, 200, "append to a deleted id (implicit re-creation)")
    expect([e["type"] for e in all_events(sid)] == ["new"], f"old events survived delete: {all_events(sid)}")


@test
def session_list_cursor_pages_over_http():
    tag = uid("listpages")
    ids = []
    for i in range(5):
        r = call("POST", "/v1/sessions", {"title": f"p{i}", "metadata": {"tag": tag}}, JSON_ACCEPT)
        expect_status(r, 200, "create")
        ids.append(r.json()["id"])
        time.sleep(0.002)
    for bad in ("abc:def", "12", ":x", "-5:x", "<x:y"):
        expect_error(call("GET", f"/v1/sessions?limit=2&page={q(bad)}"), 400, "invalid_request_error",
                     f"page={bad!r}")
    seen, page, pages = [], "", 0
    while True:
        r = call("GET", f"/v1/sessions?limit=2&metadata%5Btag%5D={tag}" + (f"&page={q(page)}" if page else ""))
        expect_status(r, 200, "list page")
        body = r.json()
        expect(len(body["data"]) <= 2, "page larger than limit")
        seen += [x["id"] for x in body["data"]]
        pages += 1
        page = body["next_page"]
        if not page or pages > 10:
            break
    expect(seen == list(reversed(ids)), f"desc order by created_at: {seen} vs {list(reversed(ids))}")
    # prev_page from the second page leads back to the first page.
    p1 = call("GET", f"/v1/sessions?limit=2&metadata%5Btag%5D={tag}").json()
    p2 = call("GET", f"/v1/sessions?limit=2&metadata%5Btag%5D={tag}&page={q(p1['next_page'])}").json()
    expect(p2.get("prev_page"), f"second page has no prev_page: {p2}")
    back = call("GET", f"/v1/sessions?limit=2&metadata%5Btag%5D={tag}&page={q(p2['prev_page'])}").json()
    expect([x["id"] for x in back["data"]] == [x["id"] for x in p1["data"]],
           f"prev_page -> {[x['id'] for x in back['data']]}, first page was {[x['id'] for x in p1['data']]}")
    # created_at filters.
    pivot = call("GET", f"/v1/sessions/{ids[2]}").json()["created_at"]
    r = call("GET", f"/v1/sessions?order=asc&metadata%5Btag%5D={tag}&created_at%5Bgte%5D={q(pivot)}")
    got = [x["id"] for x in r.json()["data"]]
    expect(got[:1] == [ids[2]] and set(got) <= set(ids[2:]), f"created_at[gte] -> {got}")
    r = call("GET", f"/v1/sessions?metadata%5Btag%5D={tag}&created_at%5Blt%5D={q(pivot)}")
    got = [x["id"] for x in r.json()["data"]]
    expect(ids[2] not in got and set(got) <= set(ids[:2]), f"created_at[lt] -> {got}")
    # statuses= (no brackets) is accepted like statuses[]=.
    a = call("GET", f"/v1/sessions?statuses=idle&metadata%5Btag%5D={tag}").json()["data"]
    b = call("GET", f"/v1/sessions?statuses%5B%5D=idle&metadata%5Btag%5D={tag}").json()["data"]
    expect(len(a) == len(b) == 5, f"statuses filter: {len(a)} vs {len(b)}")
    c = call("GET", f"/v1/sessions?statuses%5B%5D=running&metadata%5Btag%5D={tag}").json()["data"]
    expect(c == [], "statuses[]=running returned idle sessions")
    # Malformed list filters name what is wrong instead of being ignored (SPEC 6).
    for bad in ("statuses%5B%5D=sleeping", "include_archived=maybe", "metadata%5Btag=x", "metadata=x"):
        expect_error(call("GET", f"/v1/sessions?{bad}"), 400, "invalid_request_error", f"list with {bad}")
    # Metadata: at most 16 pairs; lengths count characters, not bytes (wire contract 1.2).
    many = {f"k{i}": "v" for i in range(17)}
    expect_error(call("POST", "/v1/sessions", {"metadata": many}), 400, "invalid_request_error", "17 metadata pairs")
    ok = call("POST", "/v1/sessions", {"metadata": {"\u00e9" * 64: "\u4e2d" * 512}})
    expect_status(ok, 200, "64-character key and 512-character value in multi-byte UTF-8")
    expect_error(call("POST", "/v1/sessions", {"metadata": {"\u00e9" * 65: "x"}}), 400, "invalid_request_error",
                 "65-character key")


@test
def event_read_desc_and_created_at_filters():
    sid, stored = make_session("readflt", [{"type": "t", "n": i} for i in range(7)])
    r = read(sid, "order=desc&limit=3")
    body = r.json()
    expect([e["n"] for e in body["data"]] == [6, 5, 4] and body["next_page"], f"desc page 1 {body}")
    body2 = read(sid, f"order=desc&limit=3&page={q(body['next_page'])}").json()
    expect([e["n"] for e in body2["data"]] == [3, 2, 1], f"desc page 2 {body2}")
    # offset=-1 is the documented default ("from the start"): descending, that is the newest.
    body3 = read(sid, "order=desc&limit=3&offset=-1").json()
    expect([e["n"] for e in body3["data"]] == [6, 5, 4], f"desc with offset=-1 {body3}")
    # An explicit offset is an inclusive start in both orders (SPEC 3.4).
    at = stored[4]["offset"]
    body4 = read(sid, f"order=desc&limit=3&offset={at}").json()
    expect([e["n"] for e in body4["data"]] == [4, 3, 2], f"desc from offset {at} (inclusive) {body4}")
    expect_error(read(sid, "order=desc&live=long-poll"), 400, "invalid_request_error", "order=desc with live")
    # Live reads from past the end are refused like plain reads (they would never deliver).
    for path in (f"/v1/sessions/{sid}/events?live=sse&offset=20", f"/v1/sessions/{sid}/events?live=long-poll&offset=20",
                 f"/v1/sessions/{sid}/events?offset=20", f"/v1/sessions/{sid}/stream?offset=20"):
        expect_error(call("GET", path), 400, "invalid_request_error", f"{path} past the end")
    future = read(sid, "created_at%5Bgt%5D=2999-01-01T00%3A00%3A00Z").json()["data"]
    expect(future == [], "created_at[gt] future")
    past = read(sid, "created_at%5Bgte%5D=2000-01-01T00%3A00%3A00Z").json()["data"]
    expect(len(past) == 7, "created_at[gte] past")
    # q= answers 501 until search lands -- only that it does not crash or 200 with garbage.
    r = read(sid, "q=hello")
    expect(r.status in (200, 501), f"q= -> {r.status}")


@test
def create_echoes_anthropic_fields_and_hides_tokens():
    body = {
        "agent": {"type": "agent_with_overrides", "id": "agent_ov", "version": 3, "model": "claude-x",
                  "system": "be brief"},
        "environment_id": "env_1",
        "vault_ids": ["vlt_1"],
        "budget": {"type": "limit", "max_list_cost": {"amount": "2500", "currency": "USD"}},
        "resources": [{"type": "github_repository", "url": "https://github.com/o/r",
                       "authorization_token": "ghp_SECRET_TOKEN"}],
        "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}],
    }
    r = call("POST", "/v1/sessions", body, JSON_ACCEPT)
    expect_status(r, 200, "create with overrides")
    s = r.json()
    expect(s["agent"].get("id") == "agent_ov" and s["agent"].get("version") == 3, f"agent {s['agent']}")
    expect(s["agent"].get("model", {}).get("id") == "claude-x", f"model override {s['agent'].get('model')}")
    expect(s["agent"].get("system") == "be brief", f"system override {s['agent'].get('system')}")
    expect(s["vault_ids"] == ["vlt_1"], f"vault_ids {s['vault_ids']}")
    expect(s["budget"] == body["budget"], f"budget {s['budget']}")
    expect(s["event_count"] == 1, f"initial_events: event_count {s['event_count']}")
    for where, text in (("create response", r.body), ("retrieve", call("GET", f"/v1/sessions/{s['id']}").body),
                        ("list", call("GET", "/v1/sessions?limit=1000").body)):
        expect(b"ghp_SECRET_TOKEN" not in text, f"authorization_token echoed in {where}")
    # Resources carry what the API adds (wire contract 3.5): id, timestamps, default mount path.
    res = s["resources"][0]
    expect(res.get("id", "").startswith("sesrsc_") and res.get("created_at") and res.get("updated_at")
           and res.get("mount_path") == "/workspace/r", f"github_repository resource {res}")
    # Fields of the wrong type are refused, naming the field, instead of being stored.
    sid = s["id"]
    for bad, field in (({"agent": 5}, "agent"), ({"budget": 5}, "budget"), ({"resources": [5]}, "resource"),
                       ({"vault_ids": [1]}, "vault_ids"), ({"agent": {"id": "a", "tools": 5}}, "tools")):
        r = call("POST", "/v1/sessions", bad, JSON_ACCEPT)
        expect_error(r, 400, "invalid_request_error", f"create with {bad}")
        expect(field.encode() in r.body, f"create with {bad}: the error names {field}: {r.body[:200]!r}")
    r = call("POST", f"/v1/sessions/{sid}", {"agent": {"tools": 5}}, JSON_ACCEPT)
    expect_error(r, 400, "invalid_request_error", "update with agent.tools = 5")



@test
def seed_curl_before_and_after():
    """The seed's curl examples: Anthropic's headers (x-api-key, anthropic-*) and the Bearer form;
    plus `curl -d` without a content type (application/x-www-form-urlencoded), as in the README."""
    sid = uid("seedcurl")
    body = b'{"events":[{"type":"user.message","content":[{"type":"text","text":"..."}]}]}'
    before = {"x-api-key": KEY_A, "anthropic-version": "2023-06-01",
              "anthropic-beta": "managed-agents-2026-04-01", "content-type": "application/json",
              "Accept": "*/*"}
    r = call("POST", f"/v1/sessions/{sid}/events", body, before, key=None)
    expect_status(r, 204, "seed 'before' curl (x-api-key + anthropic headers)")
    after = {"Authorization": f"Bearer {KEY_A}", "content-type": "application/json", "Accept": "*/*"}
    expect_status(call("POST", f"/v1/sessions/{sid}/events", body, after, key=None), 204, "seed 'after' curl")
    form = {"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/x-www-form-urlencoded", "Accept": "*/*"}
    expect_status(call("POST", f"/v1/sessions/{sid}/events", b'[{"type":"agent.tool_use","name":"bash","input":{}}]',
                       form, key=None), 204, "curl -d (form content type)")
    evs = all_events(sid)
    expect([e["type"] for e in evs] == ["user.message", "user.message", "agent.tool_use"], f"stored {evs}")


# Last on purpose: a server crash here must not hide the results of the other tests.
@test
def invalid_client_ids_refused():
    """Ids outside [A-Za-z0-9._:~-]{1,128} are refused (4xx) and create nothing."""
    for bad in ("has space", "x" * 129, "semi;colon"):
        r = append(bad, [E1])
        expect(400 <= r.status < 500, f"append to invalid id {bad[:20]!r}: got {r.status}")
        expect(SERVER.proc.poll() is None, f"server died after POST /v1/sessions/{q(bad)[:30]}/events")
        r = call("GET", f"/v1/sessions/{q(bad)}")
        expect(400 <= r.status < 500, f"GET invalid id {bad[:20]!r}: got {r.status}")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> int:
    global SERVER, KEY_A, KEY_B
    binary = harness.find_binary(log)
    if binary is None:
        return harness.setup_failed()
    tmp = Path(tempfile.mkdtemp(prefix="ds-sessions-curl."))
    data_dir = tmp / "data"
    data_dir.mkdir()
    SERVER = harness.Server(binary, data_dir, tmp / "server.log",
                            ["--long-poll-timeout", str(LONG_POLL_TIMEOUT), "--max-body", str(MAX_BODY)],
                            log=log, announce=True)
    try:
        KEY_A = SERVER.create_key("tenant-a")
        KEY_B = SERVER.create_key("tenant-b")
        if KEY_A == KEY_B:
            raise RuntimeError("keys create printed the same key twice")
        SERVER.start()
    except Exception as e:  # noqa: BLE001
        log(f"setup failed: {e}")
        print(SERVER.log_tail(40, access_log=False), flush=True)
        SERVER.stop()
        log(f"temp dir kept: {tmp}")
        return 2

    flt = os.environ.get("DS_TEST_FILTER", "")
    passed = failed = 0
    failures: list[str] = []
    try:
        for fn in TESTS:
            if flt and flt not in fn.__name__:
                continue
            t0 = time.monotonic()
            try:
                fn()
            except AssertionError as e:
                failed += 1
                failures.append(fn.__name__)
                log(f"FAIL {fn.__name__} ({time.monotonic() - t0:.2f}s): {e}")
            except Exception as e:  # noqa: BLE001
                failed += 1
                failures.append(fn.__name__)
                log(f"FAIL {fn.__name__} ({time.monotonic() - t0:.2f}s): {type(e).__name__}: {e}")
                traceback.print_exc(limit=3, file=sys.stdout)
            else:
                passed += 1
                log(f"PASS {fn.__name__} ({time.monotonic() - t0:.2f}s)")
            if SERVER.proc.poll() is not None:
                log(f"server died (exit {SERVER.proc.returncode}) during {fn.__name__}; remaining tests not run")
                if fn.__name__ not in failures:
                    failed += 1
                    failures.append(fn.__name__)
                break
    finally:
        died = SERVER.proc.poll() is not None
        rc = SERVER.stop()
        if not died and rc != 0:
            log(f"server exited with status {rc} after SIGTERM (expected 0)")
            failed += 1
            failures.append("clean_shutdown")
    if failed:
        log("failed: " + ", ".join(failures))
        print("---- server log tail ----\n" + SERVER.log_tail(30, access_log=False), flush=True)
    harness.keep_or_remove(tmp, bool(failed), log)
    return harness.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
