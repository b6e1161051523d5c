#!/usr/bin/env python3
"""A client that goes away while a live read waits is noticed at once (Python 3.11 stdlib only).

Before: a long-poll parked for --long-poll-timeout, and an SSE response for up to one heartbeat,
after its client had closed the connection — holding the socket, a file descriptor and one of the
tenant's --max-live-per-tenant slots. 10,000 long-polls abandoned at once then starved the next
10,000 connections of descriptors for a whole timeout (bench: 9,830 of 10,000 SSE subscribers
attached in 120 s).

Each case starts a live read on a raw socket, waits until the server counts it
(/metrics: ds_waiting_long_polls, ds_open_sse_connections), closes the socket, and expects the
count back to 0 well before the timeout or heartbeat would have ended it (both 120 s here); then it
checks the tenant's live slot is free again (--max-live-per-tenant 1) and that the server still
serves live reads and pipelined requests normally.

Environment: DS_BIN (default build/durable-sessions), DS_KEEP_DATA=1 keeps the temp dir.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

log = harness.make_log("disconnect")

# Long enough that only the disconnect detection can end the waits within the test's bounds.
LIVE_TIMEOUT_S = 120
NOTICE_WITHIN_S = 10


def metric(srv: harness.Server, name: str) -> int:
    st, _, body = srv.request("GET", "/metrics")
    assert st == 200, f"/metrics: {st}"
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"{name} not in /metrics")


def open_live(srv: harness.Server, path: str) -> socket.socket:
    s = socket.create_connection((harness.HOST, srv.port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


def check_released(srv: harness.Server, gauge: str, path: str, how: str) -> None:
    s = open_live(srv, path)
    harness.wait_for(lambda: metric(srv, gauge) == 1, 10, f"{gauge} == 1")
    if how == "reset":  # RST instead of FIN
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    t0 = time.monotonic()
    s.close()
    harness.wait_for(lambda: metric(srv, gauge) == 0, NOTICE_WITHIN_S,
                     f"{gauge} == 0 after the client closed ({how})")
    log(f"  {gauge}: released {time.monotonic() - t0:.3f} s after the client closed ({how})")
    # The tenant's only live slot (--max-live-per-tenant 1) is free again: a new live read is
    # accepted, not refused with 429. (The slot is released as the handler returns, right after
    # the gauge drops: a 429 in that instant is retried once.)
    def state(s2):
        if metric(srv, gauge) == 1:
            return "waiting"
        answer = peek(s2)  # an SSE head can come before the gauge counts the response
        return answer if answer.startswith(b"HTTP/1.1 429") else None

    for attempt in range(2):
        s2 = open_live(srv, path)
        try:
            got = harness.wait_for(lambda: state(s2), 10, f"{gauge} == 1 again")
        finally:
            s2.close()
        if got == "waiting":
            break
        assert attempt == 0, f"second live read refused twice: {got[:200]!r}"
        time.sleep(0.05)
    harness.wait_for(lambda: metric(srv, gauge) == 0, NOTICE_WITHIN_S, f"{gauge} == 0 again")


def peek(s: socket.socket):
    """Whatever the server already answered on `s` (b"" = nothing yet: falsy)."""
    s.setblocking(False)
    try:
        return s.recv(65536, socket.MSG_PEEK)
    except BlockingIOError:
        return b""
    finally:
        s.setblocking(True)


def test_stream_long_poll(srv):
    assert srv.request("PUT", "/v1/stream/lp", "", {"Content-Type": "application/json"})[0] in (200, 201)
    for how in ("close", "reset"):
        check_released(srv, "ds_waiting_long_polls", "/v1/stream/lp?offset=now&live=long-poll", how)


def test_stream_sse(srv):
    assert srv.request("PUT", "/v1/stream/sse", "", {"Content-Type": "application/json"})[0] in (200, 201)
    for how in ("close", "reset"):
        check_released(srv, "ds_open_sse_connections", "/v1/stream/sse?offset=now&live=sse", how)


def test_percent_encoded_live_key_takes_the_slot(srv):
    """`li%76e=sse` is `live=sse` to the handlers, so it must take the tenant's live slot too
    (it bypassed --max-live-per-tenant)."""
    assert srv.request("PUT", "/v1/stream/enc", "", {"Content-Type": "application/json"})[0] in (200, 201)
    s = open_live(srv, "/v1/stream/enc?offset=now&live=sse")
    try:
        harness.wait_for(lambda: metric(srv, "ds_open_sse_connections") == 1, 10, "the first SSE read")
        for q in ("li%76e=sse", "%6Cive=sse", "live=long-poll"):
            st, _, body = srv.request("GET", f"/v1/stream/enc?offset=now&{q}", timeout=10)
            assert st == 429, f"{q}: expected 429 with the only slot taken, got {st} {body[:200]!r}"
    finally:
        s.close()
    harness.wait_for(lambda: metric(srv, "ds_open_sse_connections") == 0, NOTICE_WITHIN_S, "slot free")


def test_long_poll_on_a_stream_deleted_while_waiting(srv):
    """A stream with a fork is only soft-deleted (kept for the fork): a long-poll waiting on it
    gets 410 at once, not a 204 "keep polling" after the whole timeout."""
    jh = {"Content-Type": "application/json"}
    assert srv.request("PUT", "/v1/stream/sd", '[{"a":1}]', jh)[0] in (200, 201)
    assert srv.request("PUT", "/v1/stream/sd-fork", "", {"Stream-Forked-From": "/v1/stream/sd"})[0] in (200, 201)
    s = open_live(srv, "/v1/stream/sd?offset=now&live=long-poll")
    try:
        harness.wait_for(lambda: metric(srv, "ds_waiting_long_polls") == 1, 10, "the long-poll waiting")
        t0 = time.monotonic()
        assert srv.request("DELETE", "/v1/stream/sd")[0] in (200, 204)
        s.settimeout(10)
        head = s.recv(4096)
        took = time.monotonic() - t0
        assert head.startswith(b"HTTP/1.1 410"), head[:200]
        assert took < 2, f"answered {took:.2f} s after the DELETE"
    finally:
        s.close()


def test_session_long_poll_and_sse(srv):
    st, _, body = srv.request("POST", "/v1/sessions/s1/events",
                              json.dumps({"events": [{"type": "user.message", "content": "hi"}]}),
                              {"Content-Type": "application/json"})
    assert st in (200, 204), f"append: {st} {body[:200]!r}"
    check_released(srv, "ds_waiting_long_polls", "/v1/sessions/s1/events?offset=now&live=long-poll",
                   "close")
    check_released(srv, "ds_open_sse_connections", "/v1/sessions/s1/events?offset=now&live=sse",
                   "close")
    check_released(srv, "ds_open_sse_connections", "/v1/sessions/s1/events/stream", "close")


def test_live_read_still_delivers(srv):
    """A live read whose client stays gets its data (the watch does not end healthy waits)."""
    assert srv.request("PUT", "/v1/stream/d", "", {"Content-Type": "application/json"})[0] in (200, 201)
    s = open_live(srv, "/v1/stream/d?offset=now&live=long-poll")
    try:
        harness.wait_for(lambda: metric(srv, "ds_waiting_long_polls") == 1, 10, "long-poll waiting")
        st, _, _ = srv.request("POST", "/v1/stream/d", '{"n":1}', {"Content-Type": "application/json"})
        assert st in (200, 204), f"append: {st}"
        s.settimeout(10)
        data = b""
        while b'{"n":1}' not in data:
            chunk = s.recv(65536)
            assert chunk, f"connection closed before the data arrived: {data!r}"
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
    finally:
        s.close()


def test_pipelined_request_during_long_poll(srv):
    """Bytes of a pipelined request arriving during a wait do not count as a disconnect: the
    long-poll times out normally (204) and the pipelined request is answered after it."""
    assert srv.request("PUT", "/v1/stream/p", "", {"Content-Type": "application/json"})[0] in (200, 201)
    s = socket.create_connection((harness.HOST, srv.port), timeout=30)
    try:
        s.sendall(b"GET /v1/stream/p?offset=now&live=long-poll HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 25
        while data.count(b"HTTP/1.1 ") < 2 and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.count(b"HTTP/1.1 ") == 2, f"expected two responses, got {data[:400]!r}"
        first, second = data.split(b"HTTP/1.1 ")[1:3]
        assert first.startswith(b"204") or first.startswith(b"200"), first[:80]
        assert second.startswith(b"200"), second[:80]
    finally:
        s.close()


def main() -> int:
    binary = harness.find_binary(log)
    if binary is None:
        return harness.setup_failed()
    tmp = Path(tempfile.mkdtemp(prefix="ds-disconnect-test."))
    binary = harness.private_copy(binary, tmp)
    srv = harness.Server(binary, tmp / "data", tmp / "server.log",
                         ["--long-poll-timeout", "5", "--sse-heartbeat", str(LIVE_TIMEOUT_S),
                          "--max-live-per-tenant", "1"], name="disconnect")
    srv_long = harness.Server(binary, tmp / "data-long", tmp / "server-long.log",
                              ["--long-poll-timeout", str(LIVE_TIMEOUT_S), "--sse-heartbeat",
                               str(LIVE_TIMEOUT_S), "--max-live-per-tenant", "1"], name="disconnect-long")
    passed = failed = 0
    try:
        srv.start()
        srv_long.start()
        cases = [("stream long-poll released on disconnect", test_stream_long_poll, srv_long),
                 ("stream SSE released on disconnect", test_stream_sse, srv_long),
                 ("session long-poll and SSE released on disconnect", test_session_long_poll_and_sse,
                  srv_long),
                 ("live read still delivers", test_live_read_still_delivers, srv_long),
                 ("a percent-encoded live key takes the slot", test_percent_encoded_live_key_takes_the_slot,
                  srv_long),
                 ("pipelined request during a long-poll", test_pipelined_request_during_long_poll, srv),
                 ("long-poll on a stream deleted while waiting", test_long_poll_on_a_stream_deleted_while_waiting,
                  srv_long)]
        for name, fn, s in cases:
            t0 = time.monotonic()
            try:
                fn(s)
                passed += 1
                log(f"PASS {name} ({(time.monotonic() - t0) * 1000:.0f} ms)")
            except Exception:  # noqa: BLE001 - report and go on
                failed += 1
                log(f"FAIL {name}\n{traceback.format_exc()}\n{s.log_tail(20)}")
    except Exception as e:  # noqa: BLE001 - setup
        log(f"setup failed: {e}")
        failed += 1
    finally:
        srv.stop()
        srv_long.stop()
        harness.keep_or_remove(tmp, failed > 0, log)
    return harness.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
