#!/usr/bin/env python3
"""Authentication edges that a security probe found open (Python 3.11 stdlib only).

Cases:
  1. a server that may not run open (listening on 0.0.0.0, no --allow-unauthenticated): revoking
     its last key refuses every request (401) instead of opening it; a new key works again;
  2. open on loopback (no keys): a cross-site browser request (foreign Origin, "null" Origin) and
     a dotted foreign Host name (DNS rebinding) get 403; loopback origins, IP literals,
     `localhost` and --cors-origin origins are served;
  3. with keys, a request without a valid key is refused from its head: 20 connections each
     declaring an 8 MiB body do not grow the server's memory by their bodies;
  4. with keys, /metrics needs one;
  5. the Anthropic-style event stream of a key revoked meanwhile ends within a heartbeat;
  6. a Transfer-Encoding whose last coding is not chunked is a 400 that closes the connection
     (the request smuggled in its body is never run).

Prints `N passed, M failed`; exit 1 on failure. Environment: DS_BIN (default
build/durable-sessions), DS_KEEP_DATA=1.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import HOST, wait_for  # noqa: E402

log = harness.make_log("auth")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Sends `data` on a fresh connection and returns everything read until the server closes
    it (or `timeout` passes with nothing more)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def test_revoking_the_last_key_of_a_public_server_does_not_open_it(ctx):
    data = ctx.tmp / "data-public"
    key = harness.create_key(ctx.binary, data, "acme")
    srv = harness.Server(ctx.binary, data, ctx.tmp / "public.log", ["--access-log", "false"],
                         name="public", listen_host="0.0.0.0")
    srv.start()
    try:
        assert srv.request("GET", "/v1/sessions")[0] == 401
        assert srv.request("GET", "/v1/sessions", headers={"x-api-key": key})[0] == 200
        harness.cli(ctx.binary, "keys", "revoke", "--data-dir", str(data), key)
        wait_for(lambda: srv.request("GET", "/v1/sessions", headers={"x-api-key": key})[0] == 401,
                 10, "the revocation to take effect")
        for _ in range(3):  # and it stays closed: no key, no tenant "default"
            st, _, body = srv.request("GET", "/v1/sessions")
            assert st == 401, f"open after the last key was revoked: {st} {body[:200]!r}"
            assert srv.request("PUT", "/v1/sessions/pwned", "{}", {"content-type": "application/json"})[0] == 401
            time.sleep(0.4)
        key2 = harness.create_key(ctx.binary, data, "acme")
        wait_for(lambda: srv.request("GET", "/v1/sessions", headers={"x-api-key": key2})[0] == 200,
                 10, "a new key to work")
    finally:
        srv.stop()


def test_open_loopback_server_refuses_cross_site_and_rebound_requests(ctx):
    srv = harness.Server(ctx.binary, ctx.tmp / "data-open", ctx.tmp / "open.log",
                         ["--access-log", "false", "--cors-origin", "https://ui.example.com"],
                         name="open")
    srv.start()
    try:
        port = srv.port
        j = {"content-type": "application/json"}
        refused = [
            ({"Origin": "https://evil.example"}, "GET"),
            ({"Origin": "null"}, "GET"),
            ({"Origin": "http://127.evil.example"}, "GET"),  # registrable names that look local
            ({"Origin": "http://127.0.0.1.evil.example"}, "GET"),
            ({"Origin": "http://localhost.evil.example"}, "GET"),
            ({"Host": f"rebind.evil.example:{port}"}, "GET"),
            ({"Host": f"127.0.0.1.evil.example:{port}"}, "GET"),
        ]
        for headers, method in refused:
            st, _, body = srv.request(method, "/v1/sessions", headers=headers)
            assert st == 403, f"{headers}: {st} {body[:200]!r}"
            assert json.loads(body)["error"]["type"] == "permission_error", body
        # A cross-site write (text/plain: no preflight) is refused before it is stored.
        st, _, _ = srv.request("POST", "/v1/sessions/x/events", '[{"type":"user.message"}]',
                               {"content-type": "text/plain", "Origin": "https://evil.example"})
        assert st == 403, st
        # A preflight is answered (the protocol's conformance suite asks one from any origin);
        # the request it announces is refused.
        st, _, _ = srv.request("OPTIONS", "/v1/sessions/mine", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"})
        assert st in (200, 204), f"preflight from a foreign origin: {st}"
        st, _, _ = srv.request("DELETE", "/v1/sessions/mine", headers={"Origin": "https://evil.example"})
        assert st == 403, f"DELETE from a foreign origin: {st}"
        served = [
            {},
            {"Host": f"127.0.0.1:{port}"},
            {"Host": f"localhost:{port}"},
            {"Host": "x"},
            {"Host": f"[::1]:{port}"},
            {"Host": f"LocalHost.:{port}"},
            {"Origin": f"http://127.0.0.1:{port}"},
            {"Origin": f"http://localhost:{port}"},
            {"Origin": f"http://app.localhost:{port}"},
            {"Origin": "https://ui.example.com"},
        ]
        for headers in served:
            st, _, body = srv.request("GET", "/v1/sessions", headers=headers)
            assert st == 200, f"{headers}: {st} {body[:200]!r}"
        assert srv.request("PUT", "/v1/sessions/mine", "{}", {**j, "Origin": f"http://localhost:{port}"})[0] in (200, 201)
    finally:
        srv.stop()


def test_unauthenticated_bodies_are_not_buffered(ctx):
    data = ctx.tmp / "data-bodies"
    harness.create_key(ctx.binary, data, "acme")
    srv = harness.Server(ctx.binary, data, ctx.tmp / "bodies.log", ["--access-log", "false"],
                         name="bodies")
    srv.start()
    socks = []
    try:
        before = rss_kib(srv.proc.pid)
        body_part = b"x" * (4 << 20)
        for _ in range(20):
            s = socket.create_connection((HOST, srv.port), timeout=10)
            s.sendall(b"POST /v1/sessions/s/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 8388600\r\n\r\n")
            try:
                s.sendall(body_part)  # half the declared body, then hold the connection
            except OSError:
                pass
            socks.append(s)
        time.sleep(0.5)
        grown = rss_kib(srv.proc.pid) - before
        assert grown < 40 * 1024, f"RSS grew by {grown / 1024:.0f} MiB for 20 unauthenticated bodies"
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_metrics_need_a_key_once_keys_exist(ctx):
    data = ctx.tmp / "data-metrics"
    key = harness.create_key(ctx.binary, data, "acme")
    srv = harness.Server(ctx.binary, data, ctx.tmp / "metrics.log", ["--access-log", "false"],
                         name="metrics")
    srv.start()
    try:
        assert srv.request("GET", "/metrics")[0] == 401
        st, _, body = srv.request("GET", "/metrics", headers={"Authorization": f"Bearer {key}"})
        assert st == 200 and b"ds_http_requests_total" in body, (st, body[:200])
        assert srv.request("GET", "/healthz")[0] == 200 and srv.request("GET", "/readyz")[0] == 200
    finally:
        srv.stop()


def test_a_revoked_key_stops_receiving_the_event_stream(ctx):
    data = ctx.tmp / "data-revoke-stream"
    key = harness.create_key(ctx.binary, data, "acme")
    other = harness.create_key(ctx.binary, data, "acme")
    srv = harness.Server(ctx.binary, data, ctx.tmp / "revoke.log",
                         ["--access-log", "false", "--sse-heartbeat", "30"], name="revoke")
    srv.start()
    try:
        j = {"content-type": "application/json", "x-api-key": other}
        assert srv.request("POST", "/v1/sessions/rv/events", '[{"type":"user.message"}]', j)[0] == 204
        s = socket.create_connection((HOST, srv.port), timeout=10)
        s.sendall(f"GET /v1/sessions/rv/events/stream HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\n\r\n".encode())
        head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        # Events keep arriving (a busy stream wakes before every heartbeat).
        stop = threading.Event()

        def keep_appending():
            while not stop.is_set():
                srv.request("POST", "/v1/sessions/rv/events", '[{"type":"user.message"}]', j)
                time.sleep(0.05)
        appender = threading.Thread(target=keep_appending, daemon=True)
        appender.start()
        harness.cli(ctx.binary, "keys", "revoke", "--data-dir", str(data), key)
        t0 = time.monotonic()
        s.settimeout(10)
        ended = False
        while time.monotonic() - t0 < 10:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk or b"0\r\n\r\n" in chunk:  # closed, or the chunked body's end
                ended = True
                break
        s.close()
        stop.set()
        appender.join(5)
        assert ended, "the stream of a revoked key went on"
        assert time.monotonic() - t0 < 5, f"ended {time.monotonic() - t0:.1f} s after the revocation"
    finally:
        srv.stop()


def test_a_transfer_coding_not_ending_in_chunked_is_refused_and_closes(ctx):
    srv = harness.Server(ctx.binary, ctx.tmp / "data-te", ctx.tmp / "te.log", ["--access-log", "false"],
                         name="te")
    srv.start()
    try:
        smuggled = b"GET /v1/sessions/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        for te in (b"xchunked", b"chunked, gzip", b"identity"):
            req = (b"POST /v1/stream/te HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                   b"Transfer-Encoding: " + te + b"\r\nContent-Length: " + str(len(smuggled)).encode() +
                   b"\r\n\r\n" + smuggled)
            out = raw(srv.port, req)
            assert out.startswith(b"HTTP/1.1 400"), (te, out[:200])
            assert out.count(b"HTTP/1.1 ") == 1, f"{te}: a second response followed: {out[:400]!r}"
        # An empty first Transfer-Encoding field must not hide the second one.
        req = (b"POST /v1/stream/te HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
               b"Transfer-Encoding:\r\nTransfer-Encoding: gzip\r\n\r\n" + smuggled)
        out = raw(srv.port, req)
        assert out.startswith(b"HTTP/1.1 400"), out[:200]
        assert out.count(b"HTTP/1.1 ") == 1, f"a second response followed: {out[:400]!r}"
    finally:
        srv.stop()


TESTS = [
    test_revoking_the_last_key_of_a_public_server_does_not_open_it,
    test_open_loopback_server_refuses_cross_site_and_rebound_requests,
    test_unauthenticated_bodies_are_not_buffered,
    test_metrics_need_a_key_once_keys_exist,
    test_a_revoked_key_stops_receiving_the_event_stream,
    test_a_transfer_coding_not_ending_in_chunked_is_refused_and_closes,
]


class Ctx:
    def __init__(self, binary: Path, tmp: Path):
        self.binary = binary
        self.tmp = tmp


def main() -> int:
    binary = harness.find_binary(log)
    if binary is None:
        return harness.setup_failed()
    tmp = Path(tempfile.mkdtemp(prefix="ds-auth-test."))
    ctx = Ctx(harness.private_copy(binary, tmp), tmp)
    passed = failed = 0
    for t in TESTS:
        t0 = time.monotonic()
        try:
            t(ctx)
            passed += 1
            log(f"PASS {t.__name__} ({time.monotonic() - t0:.1f}s)")
        except Exception:  # noqa: BLE001 - report and go on
            failed += 1
            log(f"FAIL {t.__name__}\n{traceback.format_exc()}")
    harness.keep_or_remove(tmp, failed > 0, log)
    return harness.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
