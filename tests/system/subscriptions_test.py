#!/usr/bin/env python3
"""Durable Streams subscriptions (PROTOCOL.md §6 "Reserved Subscription APIs" and §7
"Subscription Delivery") end to end against `durable-sessions serve` (Python 3.11 stdlib; the
webhook signature is checked with the `cryptography` package when it is importable, else with the
RFC 8032 reference verification written out below).

Endpoints under the stream root /v1/stream/:
  PUT|GET|DELETE __ds/subscriptions/{id}, POST {id}/streams, DELETE {id}/streams/{encoded path},
  POST {id}/claim, {id}/ack, {id}/release, {id}/callback, GET __ds/jwks.json.
Offsets are the server's 16-digit stream offsets (a stream's tail is its Stream-Next-Offset; a JSON
stream stores one message per array element). A link made before any data of its stream was
acknowledged reads "-1" or "0000000000000000" (both are accepted here).

Cases:
  1. pull-wake end to end: create (201, identical re-PUT 200), GET, an append writes a wake event
     to the wake stream, claim (200; a second worker 409 ALREADY_CLAIMED), heartbeat ack, a
     partial done ack (next_wake true) writes a wake of a higher generation, stale token / wake_id /
     generation on ack and release are 409 FENCED and advance nothing, release re-wakes, the final
     done ack (next_wake false); wake generations never go back and a wake names each stream
     at most once (one wake event per pending stream is allowed);
  2. persistence: a subscription whose PUT answered 201 and an ack that answered 200 survive
     kill -9 (the kill follows the answers at once) and a SIGTERM restart -- GET shows the same
     configuration, links and acked offsets; a deleted one stays deleted; generations keep
     increasing across both restarts (old tokens stay FENCED); the JWKS kid and key are stable;
  3. lease expiry: a claim (lease_ttl_ms 1000) not acked in time is dropped no earlier than the
     TTL, a wake of a higher generation is written, the old token is FENCED, the next claim gets
     the new generation; ack heartbeats (done false) keep a lease past its TTL;
  4. webhook: a local http.server receiver on 127.0.0.1 gets a POST whose Webhook-Signature
     `t=<unix>,kid=<kid>,ed25519=<base64url>` verifies against the JWKS over `<t>.<raw body>`;
     its {"done": true} answer auto-acks the wake's tail_offset; a second delivery answered without
     done is finished through the callback endpoint (Bearer callback_token), the first delivery's
     credentials are FENCED there;
  5. bad input: missing / unknown type, neither pattern nor streams, lease_ttl_ms out of
     [1000, 600000], non-JSON bodies, a missing wake stream, SSRF webhook URLs (400
     WEBHOOK_URL_REJECTED; http://127.0.0.1:PORT and http://localhost:PORT allowed), same id with
     another configuration 409, DELETE 204 then GET 404; no garbage body gets a 5xx;
  6. explicit streams: links made at the stream's tail, POST .../streams idempotent, explicit
     takes precedence over glob in GET, removing the explicit link keeps a matching glob link,
     a removed stream no longer wakes, an ack after DELETE of the subscription fails.

Environment: DS_BIN (default build/durable-sessions), DS_KEEP_DATA=1 keeps the temp dir (always
kept on failure), DS_SUB_WAKE_TIMEOUT (seconds to wait for a wake or a webhook delivery, default 10).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

try:  # Debian: python3-cryptography
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    HAVE_CRYPTOGRAPHY = True
except ImportError:  # the pure-Python verification below is used instead
    HAVE_CRYPTOGRAPHY = False

log = harness.make_log("subscriptions")

WAKE_TIMEOUT = float(os.environ.get("DS_SUB_WAKE_TIMEOUT", "10"))
STREAM_ROOT = "/v1/stream/"
SUBS = STREAM_ROOT + "__ds/subscriptions/"
JWKS_PATH = STREAM_ROOT + "__ds/jwks.json"
JSON_CT = {"Content-Type": "application/json"}
CONFIG_KEYS = ("id", "subscription_id", "type", "pattern", "webhook", "wake_stream", "lease_ttl_ms",
               "created_at", "description")
_NO_BODY = object()


def off(n: int) -> str:
    """The server's offset after n messages of a JSON stream."""
    return f"{n:016d}"


UNACKED = ("-1", off(0))  # acked_offset of a stream linked at its start


# --------------------------------------------------------------------------
# Ed25519 verification (RFC 8032 §5.1.7), used when `cryptography` is missing
# --------------------------------------------------------------------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _point_add(a, b):
    A = (a[1] - a[0]) * (b[1] - b[0]) % _P
    B = (a[1] + a[0]) * (b[1] + b[0]) % _P
    C = 2 * a[3] * b[3] * _D % _P
    D = 2 * a[2] * b[2] % _P
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F % _P, G * H % _P, F * G % _P, E * H % _P)


def _point_mul(s: int, pt):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _point_add(q, pt)
        pt = _point_add(pt, pt)
        s >>= 1
    return q


def _point_equal(a, b) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _decompress(s: bytes):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)


def ed25519_verify_pure(public: bytes, msg: bytes, sig: bytes) -> bool:
    if len(public) != 32 or len(sig) != 64:
        return False
    a = _decompress(public)
    r = _decompress(sig[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % _L
    return _point_equal(_point_mul(s, _G), _point_add(r, _point_mul(h, a)))


def ed25519_verify(public: bytes, msg: bytes, sig: bytes) -> bool:
    if not HAVE_CRYPTOGRAPHY:
        return ed25519_verify_pure(public, msg, sig)
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False


def check_verifier() -> None:
    """RFC 8032 §7.1 TEST 1 (empty message), so a broken verifier cannot pass vacuously."""
    pub = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = bytes.fromhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590"
                        "a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    for verify in {ed25519_verify, ed25519_verify_pure}:
        assert verify(pub, b"", sig), f"{verify.__name__} rejects the RFC 8032 test vector"
        assert not verify(pub, b"x", sig), f"{verify.__name__} accepts a wrong message"


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# --------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------


class Resp(NamedTuple):
    status: int
    headers: dict
    json: Any
    raw: bytes

    def __str__(self) -> str:
        return f"{self.status} {self.raw[:400]!r}"

    def error_code(self) -> Any:
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"].get("code")
        return None


def call(srv: harness.Server, method: str, path: str, obj: Any = _NO_BODY, raw: bytes | None = None,
         token: str | None = None, key: str | None = None) -> Resp:
    """`token`: a wake token (Authorization: Bearer); `key`: an API key (x-api-key)."""
    headers: dict = {}
    if key is not None:
        headers["x-api-key"] = key
    body = None
    if raw is not None:
        body = raw
        headers.update(JSON_CT)
    elif obj is not _NO_BODY:
        body = json.dumps(obj).encode()
        headers.update(JSON_CT)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    st, h, data = srv.request(method, path, body, headers)
    try:
        parsed = json.loads(data) if data.strip() else None
    except ValueError:
        parsed = None
    return Resp(st, h, parsed, data)


def sub_path(sid: str, *rest: str) -> str:
    return SUBS + urllib.parse.quote(sid, safe="") + "".join("/" + r for r in rest)


def put_stream(srv: harness.Server, name: str, items: list | None = None) -> str:
    """Creates the JSON stream `name` (with `items` as its first messages); returns its tail."""
    body = json.dumps(items).encode() if items is not None else b""
    st, h, data = srv.request("PUT", STREAM_ROOT + name, body, JSON_CT)
    assert st == 201, f"PUT stream {name}: {st} {data[:200]!r}"
    return h["stream-next-offset"]


def append(srv: harness.Server, name: str, items: list) -> str:
    st, h, data = srv.request("POST", STREAM_ROOT + name, json.dumps(items).encode(), JSON_CT)
    assert st in (200, 204), f"POST stream {name}: {st} {data[:200]!r}"
    return h["stream-next-offset"]


def tail_of(srv: harness.Server, name: str) -> str:
    st, h, _ = srv.request("HEAD", STREAM_ROOT + name)
    assert st == 200, f"HEAD stream {name}: {st}"
    return h["stream-next-offset"]


def read_all(srv: harness.Server, name: str) -> list:
    """Every message of the JSON stream `name`, following Stream-Next-Offset."""
    items: list = []
    offset = "-1"
    for _ in range(1000):
        st, h, data = srv.request("GET", f"{STREAM_ROOT}{name}?offset={urllib.parse.quote(offset)}")
        assert st == 200, f"GET stream {name}?offset={offset}: {st} {data[:200]!r}"
        page = json.loads(data) if data.strip() else []
        assert isinstance(page, list), f"GET stream {name}: not a JSON array: {data[:200]!r}"
        items.extend(page)
        nxt = h.get("stream-next-offset")
        if h.get("stream-up-to-date") == "true" or not nxt or (nxt == offset and not page):
            return items
        offset = nxt
    raise AssertionError(f"GET stream {name}: no end after 1000 pages")


# --------------------------------------------------------------------------
# Subscription helpers
# --------------------------------------------------------------------------


def put_sub(srv: harness.Server, sid: str, cfg: dict, expect: int | None = 201) -> Resp:
    r = call(srv, "PUT", sub_path(sid), cfg)
    if expect is not None:
        assert r.status == expect, f"PUT subscription {sid}: expected {expect}, got {r}"
    return r


def get_sub(srv: harness.Server, sid: str) -> dict:
    r = call(srv, "GET", sub_path(sid))
    assert r.status == 200 and isinstance(r.json, dict), f"GET subscription {sid}: {r}"
    assert r.json.get("id") == sid or r.json.get("subscription_id") == sid, f"GET {sid}: {r}"
    return r.json


def links_of(doc_or_list: Any, what: str) -> dict[str, dict]:
    """{path: link} of a GET document, a claim answer or a webhook body (their "streams")."""
    lst = doc_or_list.get("streams") if isinstance(doc_or_list, dict) else doc_or_list
    assert isinstance(lst, list), f"{what}: `streams` is not a list: {doc_or_list!r}"
    out: dict[str, dict] = {}
    for ln in lst:
        assert isinstance(ln, dict) and isinstance(ln.get("path"), str), f"{what}: bad link {ln!r}"
        assert ln["path"] not in out, f"{what}: {ln['path']} listed twice: {lst!r}"
        out[ln["path"]] = ln
    return out


def check_link(links: dict[str, dict], path: str, what: str, *, link_type: str | None = None,
               acked: str | tuple | None = None, tail: str | None = None,
               pending: bool | None = None) -> dict:
    assert path in links, f"{what}: no link for {path} (links: {sorted(links)})"
    ln = links[path]
    if link_type is not None:
        assert ln.get("link_type") == link_type, f"{what}: {path} link_type {ln!r}, expected {link_type}"
    if acked is not None:
        ok = ln.get("acked_offset") in acked if isinstance(acked, tuple) else ln.get("acked_offset") == acked
        assert ok, f"{what}: {path} acked_offset {ln.get('acked_offset')!r}, expected {acked!r}"
    if tail is not None:
        assert ln.get("tail_offset") == tail, f"{what}: {path} tail_offset {ln.get('tail_offset')!r}, expected {tail}"
    if pending is not None:
        assert ln.get("has_pending") is pending, f"{what}: {path} has_pending {ln.get('has_pending')!r}, expected {pending}"
    return ln


def config_view(doc: dict) -> dict:
    """The parts of a GET document that must survive a restart unchanged."""
    view = {k: doc.get(k) for k in CONFIG_KEYS}
    view["links"] = sorted((ln.get("path"), ln.get("link_type"), ln.get("acked_offset"))
                           for ln in doc.get("streams") or [])
    return view


def wake_events(srv: harness.Server, wake: str, sid: str) -> list[dict]:
    return [e for e in read_all(srv, wake) if isinstance(e, dict) and e.get("subscription_id") == sid]


def check_wake_shape(ev: dict, sid: str) -> None:
    assert ev.get("type") == "wake", f"wake event type: {ev!r}"
    assert ev.get("subscription_id") == sid, f"wake event subscription_id: {ev!r}"
    assert isinstance(ev.get("stream"), str) and ev["stream"], f"wake event stream: {ev!r}"
    gen = ev.get("generation")
    assert isinstance(gen, int) and not isinstance(gen, bool) and gen >= 1, f"wake event generation: {ev!r}"
    ts = ev.get("ts")
    assert isinstance(ts, int) and abs(ts - time.time() * 1000) < 300_000, f"wake event ts (ms): {ev!r}"


def wait_wake(srv: harness.Server, wake: str, sid: str, after_gen: int) -> dict:
    """The first wake event for `sid` in `wake` with a generation above `after_gen` (polled)."""
    def newer():
        evs = [e for e in wake_events(srv, wake, sid)
               if isinstance(e.get("generation"), int) and e["generation"] > after_gen]
        return evs[0] if evs else None
    ev = harness.wait_for(newer, WAKE_TIMEOUT, f"a wake event for {sid} with generation > {after_gen} in {wake}")
    check_wake_shape(ev, sid)
    return ev


def check_wake_log(srv: harness.Server, wake: str, sid: str, expected_gens: list[int] | None = None) -> list[int]:
    """Wake events of `sid` in the wake stream: generations never go back, and one wake (one
    generation) names each stream at most once (a wake may write one event per pending stream).
    Returns the distinct generations in order; checked against `expected_gens` if given."""
    evs = wake_events(srv, wake, sid)
    for e in evs:
        check_wake_shape(e, sid)
    gens = [e["generation"] for e in evs]
    assert all(a <= b for a, b in zip(gens, gens[1:])), f"{sid}: wake generations go back: {gens}"
    seen: set[tuple[int, str]] = set()
    for e in evs:
        k = (e["generation"], e["stream"])
        assert k not in seen, f"{sid}: generation {k[0]} wakes {k[1]} twice: {evs}"
        seen.add(k)
    distinct = sorted(set(gens))
    if expected_gens is not None:
        assert distinct == expected_gens, f"{sid}: wake generations {distinct}, expected {expected_gens}"
    return distinct


def claim(srv: harness.Server, sid: str, worker: str, expect: int = 200) -> Resp:
    r = call(srv, "POST", sub_path(sid, "claim"), {"worker": worker})
    assert r.status == expect, f"claim {sid} by {worker}: expected {expect}, got {r}"
    if expect == 200:
        c = r.json
        assert isinstance(c, dict), f"claim {sid}: {r}"
        assert isinstance(c.get("wake_id"), str) and c["wake_id"], f"claim {sid}: wake_id: {r}"
        assert isinstance(c.get("generation"), int) and c["generation"] >= 1, f"claim {sid}: generation: {r}"
        assert isinstance(c.get("token"), str) and c["token"], f"claim {sid}: token: {r}"
        assert isinstance(c.get("lease_ttl_ms"), int), f"claim {sid}: lease_ttl_ms: {r}"
        links_of(c, f"claim {sid}")
    return r


def ack(srv: harness.Server, sid: str, token: str | None, wake_id: str, gen: int,
        acks: dict[str, str], done: bool, endpoint: str = "ack") -> Resp:
    body = {"wake_id": wake_id, "generation": gen,
            "acks": [{"stream": s, "offset": o} for s, o in acks.items()], "done": done}
    return call(srv, "POST", sub_path(sid, endpoint), body, token=token)


def ack_ok(r: Resp, what: str, next_wake: bool | None = None) -> None:
    assert r.status == 200 and isinstance(r.json, dict) and r.json.get("ok") is True, f"{what}: {r}"
    if next_wake is not None:
        assert r.json.get("next_wake") is next_wake, f"{what}: next_wake expected {next_wake}: {r}"


def assert_fenced(r: Resp, what: str) -> None:
    assert r.status == 409 and r.error_code() == "FENCED", f"{what}: expected 409 FENCED, got {r}"


def assert_refused(r: Resp, what: str) -> None:
    """A request that must not succeed (a bad or missing token: 401, 403 or 409 FENCED)."""
    assert r.status in (401, 403, 409), f"{what}: expected 401/403/409, got {r}"


def get_jwks(srv: harness.Server) -> dict[str, bytes]:
    """{kid: 32-byte public key} of GET __ds/jwks.json, checked for shape."""
    r = call(srv, "GET", JWKS_PATH)
    assert r.status == 200 and isinstance(r.json, dict), f"GET jwks: {r}"
    assert "json" in (r.headers.get("content-type") or ""), f"GET jwks Content-Type: {r.headers}"
    keys = r.json.get("keys")
    assert isinstance(keys, list) and keys, f"GET jwks: no keys: {r}"
    out: dict[str, bytes] = {}
    for k in keys:
        assert k.get("kty") == "OKP" and k.get("crv") == "Ed25519", f"jwk {k!r}"
        assert isinstance(k.get("kid"), str) and k["kid"].startswith("ds_"), f"jwk kid: {k!r}"
        assert "d" not in k, f"the JWKS publishes a private key: {k!r}"
        x = b64url_decode(k.get("x") or "")
        assert len(x) == 32, f"jwk x is not 32 bytes: {k!r}"
        assert k["kid"] not in out, f"kid {k['kid']} twice in the JWKS"
        out[k["kid"]] = x
    return out


def no_secret_keys(obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert not any(s in k.lower() for s in ("secret", "private")), f"{where}: exposes {k!r}"
            no_secret_keys(v, where)
    elif isinstance(obj, list):
        for v in obj:
            no_secret_keys(v, where)


# --------------------------------------------------------------------------
# Webhook receiver
# --------------------------------------------------------------------------


class Delivery(NamedTuple):
    method: str
    path: str
    headers: dict  # lower-case names
    body: bytes
    at: float


class Receiver:
    """An http.server on 127.0.0.1 that records each request and answers per `mode`:
    "done" -> 200 {"done": true}; "later" -> 200 {} (the handler will call back)."""

    def __init__(self):
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        self.mode = "done"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline().strip():
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self):
                body = self._body()
                d = Delivery(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                             body, time.time())
                with receiver.lock:
                    receiver.deliveries.append(d)
                    mode = receiver.mode
                out = b'{"done": true}' if mode == "done" else b"{}"
                if mode == "fail":
                    out = b'{"error": "down"}'
                self.send_response(503 if mode == "fail" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_POST = do_PUT = do_GET = _handle

        self.httpd = ThreadingHTTPServer((harness.HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="webhook-receiver", daemon=True)
        self.thread.start()

    def set_mode(self, mode: str) -> None:
        with self.lock:
            self.mode = mode

    def count(self) -> int:
        with self.lock:
            return len(self.deliveries)

    def wait(self, n: int) -> Delivery:
        """The n-th delivery (1-based), waited for."""
        harness.wait_for(lambda: self.count() >= n, WAKE_TIMEOUT, f"webhook delivery #{n}")
        with self.lock:
            return self.deliveries[n - 1]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def check_signature(d: Delivery, jwks: dict[str, bytes]) -> str:
    """Verifies Webhook-Signature `t=..,kid=..,ed25519=..` over `<t>.<raw body>`; returns the kid."""
    header = d.headers.get("webhook-signature")
    assert header, f"delivery without Webhook-Signature: {d.headers}"
    parts: dict[str, str] = {}
    for item in header.split(","):
        k, sep, v = item.strip().partition("=")
        assert sep, f"Webhook-Signature item {item!r} in {header!r}"
        parts[k] = v
    assert {"t", "kid", "ed25519"} <= set(parts), f"Webhook-Signature {header!r}"
    t = parts["t"]
    assert t.isdigit() and abs(int(t) - d.at) < 300, f"Webhook-Signature t={t} (received at {d.at:.0f})"
    assert parts["kid"] in jwks, f"Webhook-Signature kid {parts['kid']} not in the JWKS {sorted(jwks)}"
    sig = b64url_decode(parts["ed25519"])
    assert len(sig) == 64, f"signature is {len(sig)} bytes: {header!r}"
    signed = t.encode() + b"." + d.body
    assert ed25519_verify(jwks[parts["kid"]], signed, sig), f"Webhook-Signature does not verify: {header!r}"
    assert not ed25519_verify(jwks[parts["kid"]], signed + b" ", sig), "the signature verifies a changed body"
    return parts["kid"]


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


def test_pull_wake_end_to_end(srv: harness.Server) -> None:
    sid, wake = "pull-1", "wakes/p1"
    put_stream(srv, wake)
    old_tail = put_stream(srv, "p1/old", [{"n": 1}, {"n": 2}])
    assert old_tail == off(2), old_tail
    cfg = {"type": "pull-wake", "pattern": "p1/*", "wake_stream": wake, "lease_ttl_ms": 30000,
           "description": "pull e2e"}
    put_sub(srv, sid, cfg, 201)
    put_sub(srv, sid, cfg, 200)
    put_sub(srv, sid, dict(reversed(list(cfg.items()))), 200)  # same configuration, other key order
    doc = get_sub(srv, sid)
    for k, v in cfg.items():
        assert doc.get(k) == v, f"GET {sid}: {k} is {doc.get(k)!r}, expected {v!r}"
    assert doc.get("status") == "active", f"GET {sid}: status {doc.get('status')!r}"
    assert isinstance(doc.get("created_at"), str), f"GET {sid}: created_at {doc.get('created_at')!r}"
    links = links_of(doc, f"GET {sid}")
    assert set(links) == {"p1/old"}, f"GET {sid}: links {sorted(links)}"
    check_link(links, "p1/old", f"GET {sid}", link_type="glob", acked=old_tail)  # linked at its tail
    assert wake_events(srv, wake, sid) == [], "a wake was written with nothing pending"

    # An append makes work pending: one wake event.
    t_old = append(srv, "p1/old", [{"n": 3}, {"n": 4}, {"n": 5}])
    assert t_old == off(5), t_old
    w1 = wait_wake(srv, wake, sid, 0)
    assert w1["stream"] == "p1/old", f"wake names {w1['stream']!r}"
    g1 = w1["generation"]
    # A stream created later is linked from its start; a wake is in flight, so no new wake.
    t_new = put_stream(srv, "p1/new", [{"m": 1}])
    assert t_new == off(1), t_new

    c1 = claim(srv, sid, "w1").json
    assert c1["generation"] == g1, f"claim generation {c1['generation']}, wake said {g1}"
    assert c1["lease_ttl_ms"] == 30000, c1
    cl = links_of(c1, "claim 1")
    check_link(cl, "p1/old", "claim 1", link_type="glob", acked=old_tail, tail=t_old, pending=True)
    check_link(cl, "p1/new", "claim 1", link_type="glob", acked=UNACKED, tail=t_new, pending=True)
    r = claim(srv, sid, "w2", expect=409)
    assert r.error_code() == "ALREADY_CLAIMED", f"second claim: {r}"
    assert r.json["error"].get("current_holder") == "w1" and r.json["error"].get("generation") == g1, \
        f"second claim: {r}"

    # Heartbeat; wrong wake_id / generation / no token are refused.
    ack_ok(ack(srv, sid, c1["token"], c1["wake_id"], g1, {}, False), "heartbeat ack")
    assert_fenced(ack(srv, sid, c1["token"], c1["wake_id"] + "x", g1, {"p1/old": t_old}, True), "ack, wrong wake_id")
    assert_fenced(ack(srv, sid, c1["token"], c1["wake_id"], g1 + 1, {"p1/old": t_old}, True), "ack, wrong generation")
    assert_refused(ack(srv, sid, None, c1["wake_id"], g1, {"p1/old": t_old}, True), "ack without a token")
    assert_refused(ack(srv, sid, c1["token"] + "x", c1["wake_id"], g1, {"p1/old": t_old}, True), "ack, bad token")
    check_link(links_of(get_sub(srv, sid), "GET"), "p1/old", "after refused acks", acked=old_tail)

    # A partial done ack: still pending, so a new wake with a higher generation.
    r = ack(srv, sid, c1["token"], c1["wake_id"], g1, {"p1/old": off(4), "p1/new": t_new}, True)
    ack_ok(r, "partial done ack", next_wake=True)
    links = links_of(get_sub(srv, sid), "GET after partial ack")
    check_link(links, "p1/old", "GET after partial ack", acked=off(4))
    check_link(links, "p1/new", "GET after partial ack", acked=t_new)
    w2 = wait_wake(srv, wake, sid, g1)
    g2 = w2["generation"]
    c2 = claim(srv, sid, "w2").json
    assert c2["generation"] == g2 and c2["wake_id"] != c1["wake_id"], f"claim 2: {c2} (wake {w2})"
    cl = links_of(c2, "claim 2")
    check_link(cl, "p1/old", "claim 2", acked=off(4), tail=t_old, pending=True)
    check_link(cl, "p1/new", "claim 2", acked=t_new, tail=t_new, pending=False)

    # The first claim's credentials are stale now, alone or mixed with the current ones.
    assert_fenced(ack(srv, sid, c1["token"], c1["wake_id"], g1, {"p1/old": t_old}, True), "stale ack")
    assert_fenced(ack(srv, sid, c1["token"], c2["wake_id"], g2, {"p1/old": t_old}, True), "ack with an old token")
    assert_fenced(ack(srv, sid, c2["token"], c1["wake_id"], g2, {"p1/old": t_old}, True), "ack with an old wake_id")
    assert_fenced(ack(srv, sid, c2["token"], c2["wake_id"], g1, {"p1/old": t_old}, True), "ack with an old generation")
    assert_fenced(call(srv, "POST", sub_path(sid, "release"), {"wake_id": c1["wake_id"], "generation": g1},
                       token=c1["token"]), "stale release")
    check_link(links_of(get_sub(srv, sid), "GET"), "p1/old", "after stale acks", acked=off(4))

    # Release with work pending: another wake; the released token is stale.
    r = call(srv, "POST", sub_path(sid, "release"), {"wake_id": c2["wake_id"], "generation": g2}, token=c2["token"])
    assert r.status == 204, f"release: {r}"
    w3 = wait_wake(srv, wake, sid, g2)
    g3 = w3["generation"]
    assert_fenced(ack(srv, sid, c2["token"], c2["wake_id"], g2, {"p1/old": t_old}, True), "ack after release")
    c3 = claim(srv, sid, "w3").json
    assert c3["generation"] == g3, f"claim 3: {c3} (wake {w3})"
    ack_ok(ack(srv, sid, c3["token"], c3["wake_id"], g3, {"p1/old": t_old}, True), "final ack", next_wake=False)
    links = links_of(get_sub(srv, sid), "GET at the end")
    check_link(links, "p1/old", "GET at the end", acked=t_old)
    check_link(links, "p1/new", "GET at the end", acked=t_new)
    check_wake_log(srv, wake, sid, [g1, g2, g3])


def test_persistence_across_restarts(srv: harness.Server) -> None:
    sid, wake = "durable-1", "wakes/d"
    put_stream(srv, wake)
    t_a = put_stream(srv, "d/a", [1, 2, 3])
    t_x = put_stream(srv, "x/explicit", [1])
    cfg = {"type": "pull-wake", "pattern": "d/**", "streams": ["x/explicit"], "wake_stream": wake,
           "lease_ttl_ms": 5000, "description": "persist me"}
    put_sub(srv, sid, cfg, 201)
    jwks0 = get_jwks(srv)
    links = links_of(get_sub(srv, sid), "GET")
    check_link(links, "d/a", "GET", link_type="glob", acked=t_a)
    check_link(links, "x/explicit", "GET", link_type="explicit", acked=t_x)

    t_a = append(srv, "d/a", [4, 5])
    w1 = wait_wake(srv, wake, sid, 0)
    t_b = put_stream(srv, "d/sub/b", [1])  # ** spans two segments
    c1 = claim(srv, sid, "w1").json
    check_link(links_of(c1, "claim 1"), "d/sub/b", "claim 1", link_type="glob", tail=t_b, pending=True)
    check_link(links_of(c1, "claim 1"), "d/a", "claim 1", tail=t_a, pending=True)
    # Just before the crash: one subscription created, one deleted, an ack acknowledged.
    put_sub(srv, "durable-2", {"type": "pull-wake", "streams": ["d/a"], "wake_stream": wake}, 201)
    put_sub(srv, "durable-3", {"type": "pull-wake", "pattern": "d/*", "wake_stream": wake}, 201)
    assert call(srv, "DELETE", sub_path("durable-3")).status == 204
    r = ack(srv, sid, c1["token"], c1["wake_id"], c1["generation"], {"d/a": off(4), "d/sub/b": t_b}, True)
    ack_ok(r, "done ack before kill -9", next_wake=True)
    srv.kill()
    srv.start()

    doc = get_sub(srv, sid)
    expected = dict(cfg)
    for k, v in expected.items():
        if k != "streams":
            assert doc.get(k) == v, f"after kill -9: {k} is {doc.get(k)!r}, expected {v!r}"
    links = links_of(doc, "GET after kill -9")
    check_link(links, "d/a", "after kill -9", link_type="glob", acked=off(4))
    check_link(links, "d/sub/b", "after kill -9", link_type="glob", acked=t_b)
    check_link(links, "x/explicit", "after kill -9", link_type="explicit", acked=t_x)
    view = config_view(doc)
    d2 = get_sub(srv, "durable-2")
    assert d2.get("type") == "pull-wake" and d2.get("wake_stream") == wake, f"durable-2 after kill -9: {d2}"
    r = call(srv, "GET", sub_path("durable-3"))
    assert r.status == 404, f"deleted durable-3 after kill -9: {r}"
    jwks1 = get_jwks(srv)
    assert jwks1 == jwks0, f"JWKS changed across kill -9: {sorted(jwks0)} -> {sorted(jwks1)}"

    # Work is still pending (d/a at 4 of 5): a wake newer than the first, whatever survived.
    w2 = wait_wake(srv, wake, sid, w1["generation"])
    c2 = claim(srv, sid, "w2").json
    assert c2["generation"] >= w2["generation"] > c1["generation"], f"generation went back: {c1} -> {c2}"
    cl = links_of(c2, "claim after kill -9")
    check_link(cl, "d/a", "claim after kill -9", acked=off(4), tail=t_a, pending=True)
    check_link(cl, "d/sub/b", "claim after kill -9", acked=t_b, pending=False)
    assert_fenced(ack(srv, sid, c1["token"], c1["wake_id"], c1["generation"], {"d/a": t_a}, True),
                  "pre-crash token after kill -9")
    ack_ok(ack(srv, sid, c2["token"], c2["wake_id"], c2["generation"], {"d/a": t_a}, True),
           "ack after kill -9", next_wake=False)

    rc = srv.stop()
    if rc != 0:
        log(f"  WARNING: the server exited with status {rc} after SIGTERM")
    srv.start()
    doc = get_sub(srv, sid)
    view2 = config_view(doc)
    view["links"] = [(p, t, t_a if p == "d/a" else a) for p, t, a in view["links"]]
    assert view2 == view, f"after SIGTERM restart:\n  got      {view2}\n  expected {view}"
    assert get_jwks(srv) == jwks0, "JWKS changed across a SIGTERM restart"
    assert_fenced(ack(srv, sid, c1["token"], c1["wake_id"], c1["generation"], {"d/a": t_a}, True),
                  "pre-crash token after SIGTERM restart")
    t_a = append(srv, "d/a", [6])
    w3 = wait_wake(srv, wake, sid, c2["generation"])
    c3 = claim(srv, sid, "w3").json
    assert c3["generation"] == w3["generation"] > c2["generation"], f"generation after restart: {c2} -> {c3}"
    assert_fenced(ack(srv, sid, c2["token"], c2["wake_id"], c2["generation"], {"d/a": t_a}, True),
                  "pre-restart token")
    ack_ok(ack(srv, sid, c3["token"], c3["wake_id"], c3["generation"], {"d/a": t_a}, True), "last ack", False)
    check_link(links_of(get_sub(srv, sid), "GET"), "d/a", "GET at the end", acked=t_a)
    check_wake_log(srv, wake, sid)


def test_lease_expiry(srv: harness.Server) -> None:
    sid, wake = "lease-1", "wakes/l"
    put_stream(srv, wake)
    put_sub(srv, sid, {"type": "pull-wake", "pattern": "l/*", "wake_stream": wake, "lease_ttl_ms": 1000}, 201)
    t_a = put_stream(srv, "l/a", [{"k": 1}])  # linked from its start: pending
    w1 = wait_wake(srv, wake, sid, 0)
    c1 = claim(srv, sid, "w1").json
    claimed_at = time.monotonic()
    assert c1["generation"] == w1["generation"] and c1["lease_ttl_ms"] == 1000, f"claim: {c1}"
    r = claim(srv, sid, "w2", expect=409)
    assert r.error_code() == "ALREADY_CLAIMED", f"claim while leased: {r}"

    w2 = wait_wake(srv, wake, sid, c1["generation"])  # nobody acks: the lease runs out
    elapsed = time.monotonic() - claimed_at
    assert elapsed >= 0.9, f"the 1000 ms lease was dropped after {elapsed * 1000:.0f} ms"
    assert_fenced(ack(srv, sid, c1["token"], c1["wake_id"], c1["generation"], {"l/a": t_a}, True),
                  "ack after the lease expired")
    assert_fenced(call(srv, "POST", sub_path(sid, "release"),
                       {"wake_id": c1["wake_id"], "generation": c1["generation"]}, token=c1["token"]),
                  "release after the lease expired")
    check_link(links_of(get_sub(srv, sid), "GET"), "l/a", "after the expired ack", acked=UNACKED)

    c2 = claim(srv, sid, "w2").json
    assert c2["generation"] == w2["generation"] > c1["generation"], f"claim after expiry: {c2}"
    assert c2["token"] != c1["token"] and c2["wake_id"] != c1["wake_id"], f"claim after expiry reuses: {c2}"
    # Heartbeats keep the lease for twice its TTL.
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        ack_ok(ack(srv, sid, c2["token"], c2["wake_id"], c2["generation"], {}, False), "heartbeat")
        time.sleep(0.25)
    r = claim(srv, sid, "w3", expect=409)
    assert r.error_code() == "ALREADY_CLAIMED" and r.json["error"].get("current_holder") == "w2", \
        f"claim during heartbeats: {r}"
    ack_ok(ack(srv, sid, c2["token"], c2["wake_id"], c2["generation"], {"l/a": t_a}, True),
           "done ack after heartbeats", next_wake=False)
    check_link(links_of(get_sub(srv, sid), "GET"), "l/a", "GET at the end", acked=t_a)
    check_wake_log(srv, wake, sid, [w1["generation"], w2["generation"]])


def test_webhook_delivery(srv: harness.Server, receiver: Receiver) -> None:
    check_verifier()
    sid = "hook-1"
    jwks = get_jwks(srv)
    url = f"http://127.0.0.1:{receiver.port}/hook"
    receiver.set_mode("done")
    r = put_sub(srv, sid, {"type": "webhook", "pattern": "h/*", "webhook": {"url": url}}, 201)
    no_secret_keys(r.json, "PUT answer")
    doc = get_sub(srv, sid)
    no_secret_keys(doc, "GET")
    assert doc.get("type") == "webhook" and isinstance(doc.get("webhook"), dict), f"GET {sid}: {doc}"
    assert doc["webhook"].get("url") == url, f"GET {sid}: webhook {doc['webhook']!r}"
    signing = doc["webhook"].get("signing")
    if signing is not None:
        assert signing.get("alg") == "ed25519" and signing.get("kid") in jwks, f"signing {signing!r}"
        assert str(signing.get("jwks_url", "")).endswith(JWKS_PATH), f"signing {signing!r}"

    # Data in a stream created after the subscription: a signed delivery; {"done": true} acks it.
    t_a = put_stream(srv, "h/a", [{"e": 1}, {"e": 2}])
    d1 = receiver.wait(1)
    assert d1.method == "POST" and d1.path == "/hook", f"delivery 1: {d1.method} {d1.path}"
    assert "application/json" in d1.headers.get("content-type", ""), f"delivery 1 headers {d1.headers}"
    kid = check_signature(d1, jwks)
    if signing is not None:
        assert kid == signing.get("kid"), f"signed with {kid}, GET says {signing.get('kid')}"
    b1 = json.loads(d1.body)
    assert b1.get("subscription_id") == sid, f"delivery 1: {b1}"
    assert isinstance(b1.get("wake_id"), str) and isinstance(b1.get("generation"), int), f"delivery 1: {b1}"
    assert isinstance(b1.get("callback_token"), str) and b1["callback_token"], f"delivery 1: {b1}"
    cb = urllib.parse.urlsplit(b1.get("callback_url") or "")
    assert cb.scheme in ("http", "https") and cb.path == sub_path(sid, "callback"), f"callback_url {b1.get('callback_url')!r}"
    check_link(links_of(b1, "delivery 1"), "h/a", "delivery 1", link_type="glob", acked=UNACKED,
               tail=t_a, pending=True)
    harness.wait_for(lambda: links_of(get_sub(srv, sid), "GET").get("h/a", {}).get("acked_offset") == t_a,
                     WAKE_TIMEOUT, f"h/a acked at {t_a} after the {{done: true}} answer")

    # Second delivery, answered without done: finished through the callback endpoint.
    receiver.set_mode("later")
    t_a2 = append(srv, "h/a", [{"e": 3}])
    d2 = receiver.wait(2)
    check_signature(d2, jwks)
    b2 = json.loads(d2.body)
    assert b2["generation"] > b1["generation"] and b2["wake_id"] != b1["wake_id"], f"delivery 2: {b2}"
    check_link(links_of(b2, "delivery 2"), "h/a", "delivery 2", acked=t_a, tail=t_a2, pending=True)
    assert_fenced(ack(srv, sid, b1["callback_token"], b1["wake_id"], b1["generation"], {"h/a": t_a2}, True,
                      "callback"), "callback with the first delivery's credentials")
    assert_fenced(ack(srv, sid, b2["callback_token"], b1["wake_id"], b2["generation"], {"h/a": t_a2}, True,
                      "callback"), "callback with an old wake_id")
    assert_refused(ack(srv, sid, b2["callback_token"] + "x", b2["wake_id"], b2["generation"], {"h/a": t_a2},
                       True, "callback"), "callback with a bad token")
    check_link(links_of(get_sub(srv, sid), "GET"), "h/a", "after refused callbacks", acked=t_a)
    r = ack(srv, sid, b2["callback_token"], b2["wake_id"], b2["generation"], {"h/a": t_a2}, True, "callback")
    ack_ok(r, "callback", next_wake=False)
    doc = get_sub(srv, sid)
    check_link(links_of(doc, "GET"), "h/a", "after the callback", acked=t_a2)
    assert doc.get("status") == "active", f"status after the callback: {doc.get('status')!r}"
    assert receiver.count() == 2, f"{receiver.count()} deliveries, expected 2"


def test_bad_input(srv: harness.Server) -> None:
    wake = "wakes/bad"
    put_stream(srv, wake)
    base = {"type": "pull-wake", "pattern": "nomatch/*", "wake_stream": wake}
    rejects = [
        ("missing type", {"pattern": "nomatch/*", "wake_stream": wake}),
        ("unknown type", {**base, "type": "carrier-pigeon"}),
        ("type not a string", {**base, "type": 7}),
        ("neither pattern nor streams", {"type": "pull-wake", "wake_stream": wake}),
        ("lease_ttl_ms 999", {**base, "lease_ttl_ms": 999}),
        ("lease_ttl_ms 0", {**base, "lease_ttl_ms": 0}),
        ("lease_ttl_ms -1", {**base, "lease_ttl_ms": -1}),
        ("lease_ttl_ms 600001", {**base, "lease_ttl_ms": 600001}),
        ("lease_ttl_ms a string", {**base, "lease_ttl_ms": "30000"}),
        ("streams not a list", {**base, "streams": "nomatch/a"}),
        ("pull-wake without wake_stream", {"type": "pull-wake", "pattern": "nomatch/*"}),
        ("pull-wake with a wake_stream that does not exist", {**base, "wake_stream": "wakes/missing"}),
        ("webhook without webhook.url", {"type": "webhook", "pattern": "nomatch/*"}),
        ("webhook.url not a URL", {"type": "webhook", "pattern": "nomatch/*", "webhook": {"url": "not a url"}}),
    ]
    problems: list[str] = []
    for i, (what, cfg) in enumerate(rejects):
        r = put_sub(srv, f"bad-{i}", cfg, None)
        if r.status != 400:
            problems.append(f"{what}: {r}")
    raws = [b"not json", b"", b"[]", b'"pull-wake"', b'{"type":"pull-wake",', b"\xff\xfe{}"]
    for i, raw in enumerate(raws):
        r = call(srv, "PUT", sub_path(f"bad-raw-{i}"), raw=raw)
        if r.status != 400:
            problems.append(f"body {raw!r}: {r}")
    ssrf = ["http://10.0.0.1/x", "http://169.254.169.254/", "http://192.168.1.1/", "ftp://example.com/x",
            "http://example.com/", "https://10.0.0.1/x", "https://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1@10.0.0.1/x", "http://localhost.example.com/x", "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x"]
    for i, u in enumerate(ssrf):
        r = put_sub(srv, f"bad-url-{i}", {"type": "webhook", "pattern": "nomatch/*", "webhook": {"url": u}}, None)
        if r.status != 400 or r.error_code() != "WEBHOOK_URL_REJECTED":
            problems.append(f"webhook url {u}: expected 400 WEBHOOK_URL_REJECTED, got {r}")
    for i in range(len(rejects)):
        if (st := call(srv, "GET", sub_path(f"bad-{i}")).status) != 404:
            problems.append(f"rejected bad-{i} ({rejects[i][0]}) answers GET {st}")
    for i in range(len(ssrf)):
        if (st := call(srv, "GET", sub_path(f"bad-url-{i}")).status) != 404:
            problems.append(f"rejected bad-url-{i} ({ssrf[i]}) answers GET {st}")
    assert not problems, "\n  ".join(["bad input accepted or mis-answered:"] + problems)

    # Allowed: the localhost development exception, and the lease_ttl_ms bounds themselves.
    dead_port = harness.free_port()
    allowed = [("http://127.0.0.1 webhook", {"type": "webhook", "pattern": "nomatch/*",
                                              "webhook": {"url": f"http://127.0.0.1:{dead_port}/x"}}),
               ("http://localhost webhook", {"type": "webhook", "pattern": "nomatch/*",
                                             "webhook": {"url": f"http://localhost:{dead_port}/x"}}),
               ("lease_ttl_ms 1000", {**base, "lease_ttl_ms": 1000}),
               ("lease_ttl_ms 600000", {**base, "lease_ttl_ms": 600000})]
    for i, (what, cfg) in enumerate(allowed):
        r = put_sub(srv, f"ok-{i}", cfg, None)
        assert r.status == 201, f"{what}: expected 201, got {r}"
        assert call(srv, "DELETE", sub_path(f"ok-{i}")).status == 204, f"DELETE ok-{i}"

    # Same id, other configuration: 409, and the stored one is unchanged.
    sid = "bad-conflict"
    cfg = {**base, "description": "first", "lease_ttl_ms": 2000}
    put_sub(srv, sid, cfg, 201)
    put_sub(srv, sid, cfg, 200)
    for what, other in [("description", {**cfg, "description": "second"}), ("lease", {**cfg, "lease_ttl_ms": 3000}),
                        ("pattern", {**cfg, "pattern": "nomatch/**"}), ("type", {"type": "webhook",
                         "pattern": "nomatch/*", "webhook": {"url": f"http://127.0.0.1:{dead_port}/x"}})]:
        r = put_sub(srv, sid, other, None)
        assert r.status == 409, f"PUT {sid} with another {what}: expected 409, got {r}"
    doc = get_sub(srv, sid)
    assert doc.get("description") == "first" and doc.get("lease_ttl_ms") == 2000, f"after 409s: {doc}"

    # Garbage on the other endpoints is a 4xx, never a 5xx.
    for action in ("streams", "claim", "ack", "release", "callback", "frobnicate"):
        raws = [b"not json", b"[]"]
        if action != "claim":  # a claim body has only an optional-looking worker field
            raws.append(b'{"streams": "x", "wake_id": 5, "generation": "g", "acks": 3}')
        for raw in raws:
            r = call(srv, "POST", sub_path(sid, action), raw=raw)
            assert 400 <= r.status < 500, f"POST {sid}/{action} {raw!r}: {r}"
    r = call(srv, "POST", sub_path(sid, "streams"), {"streams": "nomatch/a"})
    assert r.status == 400, f"POST streams with a string: {r}"
    r = call(srv, "POST", sub_path(sid, "streams"), {})
    assert r.status == 400, f"POST streams without streams: {r}"
    assert call(srv, "PATCH", sub_path(sid), {}).status // 100 == 4, "PATCH on a subscription"

    # DELETE, then it is gone.
    assert call(srv, "DELETE", sub_path(sid)).status == 204, f"DELETE {sid}"
    assert call(srv, "GET", sub_path(sid)).status == 404, f"GET {sid} after DELETE"
    assert call(srv, "POST", sub_path(sid, "claim"), {"worker": "w"}).status == 404, f"claim {sid} after DELETE"
    assert call(srv, "DELETE", sub_path(sid)).status in (204, 404), f"second DELETE {sid}"
    assert call(srv, "GET", sub_path("never-made")).status == 404, "GET of an unknown id"
    assert srv.status("/healthz") == 200, "the server is not healthy after the bad input"


def test_explicit_streams(srv: harness.Server) -> None:
    sid, wake = "explicit-1", "wakes/e"
    put_stream(srv, wake)
    t_x = put_stream(srv, "e/x", [1, 2])
    t_y = put_stream(srv, "e/y", [1])
    t_g = put_stream(srv, "g/one", [1])
    put_sub(srv, sid, {"type": "pull-wake", "pattern": "g/*", "streams": ["e/x"], "wake_stream": wake}, 201)
    links = links_of(get_sub(srv, sid), "GET")
    assert set(links) == {"e/x", "g/one"}, f"links {sorted(links)}"
    check_link(links, "e/x", "GET", link_type="explicit", acked=t_x)
    check_link(links, "g/one", "GET", link_type="glob", acked=t_g)

    for _ in range(2):  # adding is idempotent
        r = call(srv, "POST", sub_path(sid, "streams"), {"streams": ["e/y"]})
        assert r.status == 204, f"POST streams e/y: {r}"
    links = links_of(get_sub(srv, sid), "GET after adding e/y")
    check_link(links, "e/y", "GET after adding e/y", link_type="explicit", acked=t_y)  # at its tail
    assert set(links) == {"e/x", "e/y", "g/one"}, f"links {sorted(links)}"

    # Explicit takes precedence over glob; removing the explicit link leaves the glob one.
    assert call(srv, "POST", sub_path(sid, "streams"), {"streams": ["g/one"]}).status == 204
    check_link(links_of(get_sub(srv, sid), "GET"), "g/one", "GET after adding g/one", link_type="explicit", acked=t_g)
    r = call(srv, "DELETE", sub_path(sid, "streams", urllib.parse.quote("g/one", safe="")))
    assert r.status == 204, f"DELETE streams/g%2Fone: {r}"
    check_link(links_of(get_sub(srv, sid), "GET"), "g/one", "GET after removing g/one", link_type="glob", acked=t_g)

    # Removing an explicit-only link drops it; removing again is idempotent.
    for _ in range(2):
        r = call(srv, "DELETE", sub_path(sid, "streams", urllib.parse.quote("e/y", safe="")))
        assert r.status == 204, f"DELETE streams/e%2Fy: {r}"
    links = links_of(get_sub(srv, sid), "GET after removing e/y")
    assert set(links) == {"e/x", "g/one"}, f"links after removing e/y: {sorted(links)}"

    # The removed stream does not wake; the explicit one does.
    assert wake_events(srv, wake, sid) == [], "a wake was written with nothing pending"
    append(srv, "e/y", [2])
    t_x = append(srv, "e/x", [3])
    w1 = wait_wake(srv, wake, sid, 0)
    assert w1["stream"] == "e/x", f"wake names {w1['stream']!r} (e/y was removed)"
    c1 = claim(srv, sid, "w1").json
    cl = links_of(c1, "claim")
    assert "e/y" not in cl, f"claim lists the removed e/y: {sorted(cl)}"
    check_link(cl, "e/x", "claim", link_type="explicit", acked=off(2), tail=t_x, pending=True)
    check_link(cl, "g/one", "claim", link_type="glob", acked=t_g, tail=t_g, pending=False)

    # Deleting the subscription fences its in-flight ack, and it advances nothing.
    assert call(srv, "DELETE", sub_path(sid)).status == 204
    r = ack(srv, sid, c1["token"], c1["wake_id"], c1["generation"], {"e/x": t_x}, True)
    assert r.status in (404, 409, 410), f"ack after DELETE of the subscription: {r}"
    assert call(srv, "GET", sub_path(sid)).status == 404, "GET after DELETE"
    check_wake_log(srv, wake, sid, [w1["generation"]])


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def test_webhook_retries(srv: harness.Server, receiver: Receiver) -> None:
    """A failing webhook (503) marks the subscription failed and is retried with backoff
    (about 1 s, then 2 s); once the receiver answers, delivery resumes and status is active."""
    receiver.set_mode("fail")
    try:
        sid = f"retry-{int(time.time() * 1000)}"
        base = receiver.count()
        put_sub(srv, sid, {"type": "webhook", "pattern": "retry/*",
                           "webhook": {"url": f"http://127.0.0.1:{receiver.port}/hook"},
                           "lease_ttl_ms": 1000}, 201)
        tail = put_stream(srv, "retry/a", [{"n": 1}])
        first = receiver.wait(base + 1)
        harness.wait_for(lambda: get_sub(srv, sid).get("status") == "failed", WAKE_TIMEOUT,
                         "status failed after a 503")
        second = receiver.wait(base + 2)
        gap = second.at - first.at
        assert gap >= 0.75, f"retry after {gap:.2f} s: the first backoff is 1 s +- 20 %"
        g1 = json.loads(first.body)["generation"]
        g2 = json.loads(second.body)["generation"]
        assert g2 > g1, f"a retry is a new wake: generations {g1} -> {g2}"
        receiver.set_mode("done")
        n = receiver.count()
        receiver.wait(n + 1)

        def delivered() -> bool:
            doc = get_sub(srv, sid)
            links = links_of(doc, "after recovery")
            return doc.get("status") == "active" and links.get("retry/a", {}).get("acked_offset") == tail
        harness.wait_for(delivered, WAKE_TIMEOUT, "status active and the stream acked after recovery")
        assert call(srv, "DELETE", sub_path(sid)).status == 204
    finally:
        receiver.set_mode("done")


def test_with_api_keys(binary: Path, tmp: Path) -> None:
    """With API keys: subscriptions are per tenant, the webhook development exception (this
    machine) is off, and ack/JWKS work with a wake token alone."""
    data = tmp / "keyed-data"
    data.mkdir()
    key_a = harness.create_key(binary, data, "alpha")
    key_b = harness.create_key(binary, data, "beta")
    srv = harness.Server(binary, data, tmp / "keyed.log", name="subscriptions-keyed")
    srv.start()
    try:
        def req(method: str, path: str, obj: Any = _NO_BODY, key: str | None = None,
                bearer: str | None = None) -> Resp:
            return call(srv, method, path, obj, token=bearer, key=key)

        st, _, _ = srv.request("PUT", STREAM_ROOT + "wake", b"[]", {**JSON_CT, "x-api-key": key_a})
        assert st == 201, f"PUT wake stream: {st}"
        cfg = {"type": "pull-wake", "pattern": "events/*", "wake_stream": "wake", "lease_ttl_ms": 30000}
        r = req("PUT", sub_path("k1"), cfg)
        assert r.status == 401, f"PUT without a key: {r}"
        r = req("PUT", sub_path("k1"), cfg, key=key_a)
        assert r.status == 201, f"PUT with alpha's key: {r}"
        for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "https://x.localhost/h"):
            r = req("PUT", sub_path("hook"), {"type": "webhook", "pattern": "events/*",
                                              "webhook": {"url": url}}, key=key_a)
            assert r.status == 400 and r.error_code() == "WEBHOOK_URL_REJECTED", \
                f"with API keys, a webhook to {url} must be refused: {r}"
        r = req("GET", sub_path("k1"), key=key_b)
        assert r.status == 404, f"beta must not see alpha's subscription: {r}"
        st, _, _ = srv.request("PUT", STREAM_ROOT + "events/a", b'[{"n":1}]',
                               {**JSON_CT, "x-api-key": key_a})
        assert st == 201, f"PUT events/a: {st}"

        def woken() -> bool:
            st, _, raw = srv.request("GET", STREAM_ROOT + "wake?offset=-1", None, {"x-api-key": key_a})
            return st == 200 and any(e.get("subscription_id") == "k1" for e in json.loads(raw))
        harness.wait_for(woken, WAKE_TIMEOUT, "a wake event in alpha's wake stream")
        assert req("POST", sub_path("k1", "claim"), {"worker": "w"}, key=key_b).status == 404, \
            "beta must not claim alpha's subscription"
        r = req("POST", sub_path("k1", "claim"), {"worker": "w"}, key=key_a)
        assert r.status == 200, f"claim with alpha's key: {r}"
        c = r.json
        tail = next(x["tail_offset"] for x in c["streams"] if x["path"] == "events/a")
        r = req("POST", sub_path("k1", "ack"), {"wake_id": c["wake_id"], "generation": c["generation"],
                                                "acks": [{"stream": "events/a", "offset": tail}],
                                                "done": True}, bearer="dsw_forged.x")
        assert r.status == 401, f"a forged token: {r}"
        r = req("POST", sub_path("k1", "ack"), {"wake_id": c["wake_id"], "generation": c["generation"],
                                                "acks": [{"stream": "events/a", "offset": tail}],
                                                "done": True}, bearer=c["token"])
        assert r.status == 200 and r.json == {"ok": True, "next_wake": False}, \
            f"ack with the claim token alone (no API key): {r}"
        st, h, _ = srv.request("GET", STREAM_ROOT + "__ds/jwks.json")
        assert st == 200 and "jwk-set+json" in h.get("content-type", ""), f"public JWKS: {st}"
    finally:
        srv.stop()


def main() -> int:
    binary = harness.find_binary(log)
    if binary is None:
        return harness.setup_failed()
    tmp = Path(tempfile.mkdtemp(prefix="ds-subscriptions-test."))
    binary = harness.private_copy(binary, tmp)
    srv = harness.Server(binary, tmp / "data", tmp / "server.log", name="subscriptions")
    receiver: Receiver | None = None
    passed = failed = 0
    log(f"webhook signatures checked with {'cryptography' if HAVE_CRYPTOGRAPHY else 'the RFC 8032 reference code'}")
    try:
        receiver = Receiver()
        srv.start()
        cases = [
            ("1. pull-wake end to end, stale acks fenced", lambda: test_pull_wake_end_to_end(srv)),
            ("2. subscriptions and acks survive kill -9 and a SIGTERM restart",
             lambda: test_persistence_across_restarts(srv)),
            ("3. an expired lease re-wakes with a higher generation", lambda: test_lease_expiry(srv)),
            ("4. webhook delivery is signed; {done: true} and the callback ack",
             lambda: test_webhook_delivery(srv, receiver)),
            ("5. bad input is a 400 (SSRF URLs WEBHOOK_URL_REJECTED), conflicts 409, DELETE",
             lambda: test_bad_input(srv)),
            ("6. explicit stream add and remove", lambda: test_explicit_streams(srv)),
            ("7. with API keys: per tenant, no webhooks to this machine, token-only acks",
             lambda: test_with_api_keys(binary, tmp)),
            ("8. a failing webhook is retried with backoff, then delivery resumes",
             lambda: test_webhook_retries(srv, receiver)),
        ]
        for name, fn in cases:
            if not srv.alive():
                log(f"(the server is not running; starting it again for: {name})")
                srv.start()
            t0 = time.monotonic()
            try:
                fn()
                passed += 1
                log(f"PASS {name} ({(time.monotonic() - t0) * 1000:.0f} ms)")
            except Exception:  # noqa: BLE001 - report and go on
                failed += 1
                log(f"FAIL {name}\n{traceback.format_exc()}\n{srv.log_tail(20)}")
    except Exception as e:  # noqa: BLE001 - setup
        log(f"setup failed: {type(e).__name__}: {e}")
        failed += 1
    finally:
        srv.stop()
        if receiver is not None:
            receiver.close()
        harness.keep_or_remove(tmp, failed > 0, log)
    return harness.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
