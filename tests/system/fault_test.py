#!/usr/bin/env python3
"""Faults, limits and hostile input, checked from outside the binary (Python 3.11 stdlib only).

Starts its own servers (private copy of the binary, free loopback ports, temp data dirs):

  (a) full disk: the data dir lives on a 2 MiB tmpfs (`mount -t tmpfs`, needs root; the case
      is SKIPPED with a message when mounting is not permitted). The disk is filled with a
      filler file; appends must answer 507 or 503 with an Anthropic-shaped JSON error and
      never 2xx unless really stored; the server keeps running and keeps serving reads of
      existing data; once space is freed appends succeed again; the data read back, before
      and after a SIGKILL + restart, is exactly what was acknowledged (no partial record,
      nothing from the rejected appends).
  (b) slowloris (`--idle-timeout 2`): clients that send their headers one byte per second, a
      client that sends nothing, and a client that sends its body one byte per second are
      disconnected within the timeout (plus a margin), while other clients keep being served.
  (c) limits and hostile input:
      - body over `--max-body` -> 413 `request_too_large` (declared Content-Length, chunked,
        and a huge Content-Length with no body, which must be refused without waiting);
      - header block over 16 KiB -> 431; request target over `--max-url` (8192) -> 414;
      - `--max-connections 50`: the 51st concurrent connection gets 503, the 50 others and
        new connections after some close keep being served;
      - `--rate-limit 5 --rate-burst 5` -> 429 `rate_limit_error` with `Retry-After`, and
        requests succeed again after waiting;
      - `..` segments (plain or percent-encoded) and `%00` in stream paths -> 400, stream
        paths over 1024 bytes -> 400; session ids that do not match
        `[A-Za-z0-9._:~-]{1,128}` (NUL, encoded slash, `../..`) -> 400; none of these create
        anything or crash the server;
      - 200 random/garbage requests (raw bytes, broken framing, bad headers, bad JSON, deep
        nesting, invalid UTF-8, bad query values) never crash the server and never get a 5xx;
        /healthz answers 200 afterwards;
      - no error body anywhere in this test contains a file path or a stack trace, and every
        JSON error body has the shape {"type":"error","error":{"type","message"},...}.
  Whenever the server dies, the request that killed it is reported, the server is restarted
  and the remaining checks go on.

Prints `ok`/`FAIL`/`SKIP` per check and a final line `N passed, M failed`; exit status 1 on
any failure, 2 on setup errors.

Environment:
  DS_BIN              server binary (default build/durable-sessions, relative to repo root)
  DS_FAULT_SEED       seed for the garbage generator (default: time-based; printed)
  DS_READY_TIMEOUT    seconds to wait for /readyz (default 30)
  DS_KEEP_DATA        1 = keep the temp dir (always kept on failure)
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import HOST  # noqa: E402

SEED = int(os.environ.get("DS_FAULT_SEED", str(int(time.time() * 1000) % 1_000_000_007)))
MAX_BODY = 65536
IDLE_TIMEOUT = 2
SLOW_MARGIN = 4.0          # seconds allowed beyond --idle-timeout before we call it a failure

log = harness.make_log("fault_test")


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.lines: list[str] = []
        # (description, status, body) of every error response seen, for the leak check.
        self.error_bodies: list[tuple[str, int, bytes]] = []
        self.lock = threading.Lock()

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if len(detail) > 700:
            detail = detail[:700] + "..."
        with self.lock:
            if ok:
                self.passed += 1
                line = f"ok   {name}"
            else:
                self.failed += 1
                line = f"FAIL {name}" + (f": {detail}" if detail else "")
            self.lines.append(line)
        print(line, flush=True)
        return ok

    def skip(self, name: str, why: str) -> None:
        self.skipped += 1
        line = f"SKIP {name}: {why}"
        self.lines.append(line)
        print(line, flush=True)

    def saw(self, desc: str, status: int, body: bytes) -> None:
        if status >= 400 and body:
            with self.lock:
                self.error_bodies.append((desc, status, body))


R = Results()


# --------------------------------------------------------------------------
# Server and HTTP helpers
# --------------------------------------------------------------------------


class Server(harness.Server):
    """A named server: `--long-poll-timeout 1` plus `extra` flags."""

    def __init__(self, name: str, binary: Path, data_dir: Path, log_path: Path, extra: list[str]):
        super().__init__(binary, data_dir, log_path, ["--long-poll-timeout", "1", *extra],
                         name=name, log=log)

    def status(self, path: str, timeout: float = 3.0) -> int:
        return super().status(path, timeout)

    def crash_note(self) -> str:
        """Exit status and the last non-access-log lines of the server log."""
        rc = self.proc.poll() if self.proc else None
        text = self.log_tail(200)
        text = text[text.rfind("===== start"):]          # this run of the server only
        tail = [ln for ln in text.splitlines()
                if ln.strip() and not ln.startswith(('{"ts"', "=====")) and "NO API KEYS" not in ln
                and "listening on" not in ln]
        return f"exit status {rc}; log: " + " | ".join(tail[-2:])

    def survived(self) -> str:
        """'' if the server is still up a moment after a request; else a crash note (and the
        server is restarted). A crash can come a few ms after the response was written."""
        time.sleep(0.1)
        if self.alive():
            return ""
        note = "SERVER DIED: " + self.crash_note()
        self.start()
        return note

    def ensure_alive(self, where: str) -> bool:
        """Record a failure if the server died, and restart it. Returns True if it was alive."""
        time.sleep(0.1)
        if self.alive():
            return True
        R.check(f"{self.name}: server survives {where}", False, self.crash_note())
        self.start()
        return False


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    st, hdrs, data = harness.request(port, method, path, body, headers, timeout)
    R.saw(f"{method} {path[:80]}", st, data)
    return st, hdrs, data


def parse_response(data: bytes) -> tuple[int, dict, bytes] | None:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        return None
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    n = int(hdrs.get("content-length", "0") or 0)
    return int(m.group(1)), hdrs, rest[:n]


def raw(port: int, payload: bytes, timeout: float = 3.0, desc: str = "raw") -> tuple[int, dict, bytes] | None:
    """Send raw bytes, half-close nothing, read until the first complete response or EOF.

    Returns (status, headers, body) of the first response, or None when the server closed
    the connection (or timed out) without a parsable response."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    buf = b""
    try:
        try:
            s.sendall(payload)
        except OSError:
            pass                       # the server may close early (e.g. 431 before reading all)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            parsed = parse_response(buf)
            if parsed and len(parsed[2]) >= int(parsed[1].get("content-length", "0") or 0):
                break
    finally:
        s.close()
    parsed = parse_response(buf)
    if parsed:
        R.saw(desc, parsed[0], parsed[2])
    return parsed


def error_shape(body: bytes) -> str | None:
    """None if body is an Anthropic-shaped error, else a description of what is wrong."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"not JSON: {body[:120]!r}"
    if not (isinstance(doc, dict) and doc.get("type") == "error" and isinstance(doc.get("error"), dict)
            and isinstance(doc["error"].get("type"), str) and isinstance(doc["error"].get("message"), str)
            and doc["error"]["message"]):
        return f"not an Anthropic error body: {body[:160]!r}"
    return None


def err_type(body: bytes) -> str | None:
    try:
        return json.loads(body)["error"]["type"]
    except Exception:
        return None


def err_msg(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except Exception:
        return ""


def read_stream(port: int, name: str) -> list:
    items, offset = [], "-1"
    for _ in range(1000):
        st, h, body = request(port, "GET", f"/v1/stream/{name}?offset={offset}")
        if st != 200:
            raise AssertionError(f"GET /v1/stream/{name}?offset={offset} answered {st}: {body[:200]!r}")
        items.extend(json.loads(body) if body.strip() else [])
        if (h.get("stream-up-to-date") or "").lower() == "true":
            return items
        offset = h["stream-next-offset"]
    raise AssertionError("too many pages")


def read_session(port: int, sid: str) -> list:
    st, _h, body = request(port, "GET", f"/v1/sessions/{sid}/events?offset=-1&limit=10000")
    if st != 200:
        raise AssertionError(f"GET /v1/sessions/{sid}/events answered {st}: {body[:200]!r}")
    return json.loads(body)["data"]


def run_case(name: str, fn, *args) -> None:
    """Run one test function; an unexpected exception is one failure."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - report and go on
        R.check(f"{name} (unexpected exception)", False, f"{type(e).__name__}: {e}")


# --------------------------------------------------------------------------
# (a) full disk
# --------------------------------------------------------------------------


def fill(path: Path) -> int:
    """Write `path` until ENOSPC; returns bytes written."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 16, 4096, 512, 1):
            chunk = b"\0" * size
            while True:
                try:
                    w = f.write(chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
                n += w or 0
                if not w:
                    break
    return n


def test_disk_full(binary: Path, tmp: Path) -> None:
    mnt = tmp / "tmpfs"
    mnt.mkdir()
    try:
        mp = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                            capture_output=True, text=True)
    except OSError as e:
        R.skip("disk full", f"cannot run mount: {e}")
        return
    if mp.returncode != 0:
        R.skip("disk full", f"mounting a tmpfs is not permitted here ({mp.stderr.strip() or mp.returncode})")
        return
    srv = Server("diskfull", binary, mnt / "data", tmp / "diskfull.log", ["--access-log", "false"])
    try:
        srv.start()
        p = srv.port
        hdr = {"Content-Type": "application/json"}
        acked: list = []          # stream messages acknowledged, in order
        sacked: list = []         # session event markers acknowledged, in order
        st, _, _ = request(p, "PUT", "/v1/stream/full", b"", hdr)
        R.check("disk full: create stream before filling", st == 201, f"PUT answered {st}")
        for i in range(3):
            m = {"k": f"before-{i}"}
            st, _, _ = request(p, "POST", "/v1/stream/full", json.dumps([m]).encode(), hdr)
            if st == 204:
                acked.append(m)
        st, _, _ = request(p, "POST", "/v1/sessions/fulls/events",
                           json.dumps({"events": [{"type": "k", "k": "before-0"}]}).encode(), hdr)
        if st in (200, 204):
            sacked.append("before-0")
        R.check("disk full: appends succeed before filling", len(acked) == 3 and len(sacked) == 1,
                f"{len(acked)}/3 stream and {len(sacked)}/1 session appends acknowledged")

        filler = mnt / "filler"
        written = fill(filler)
        log(f"filled the tmpfs with {written} bytes")
        statuses: list[int] = []
        full_errors: list[tuple[int, bytes]] = []
        bad: list[str] = []
        pad = "x" * 16000
        for i in range(12):
            m = {"k": f"full-{i}", "pad": pad}
            st, _, body = request(p, "POST", "/v1/stream/full", json.dumps([m]).encode(), hdr)
            statuses.append(st)
            if st == 204:
                acked.append(m)          # it fit (a partly used page): it must be there
            elif st in (503, 507):
                full_errors.append((st, body))
                why = error_shape(body)
                if why:
                    bad.append(f"stream append {st}: {why}")
            else:
                bad.append(f"stream append answered {st}: {body[:160]!r}")
            st, _, body = request(p, "POST", "/v1/sessions/fulls/events",
                                  json.dumps({"events": [{"type": "k", "k": f"full-{i}", "pad": pad}]}).encode(), hdr)
            statuses.append(st)
            if st in (200, 204):
                sacked.append(f"full-{i}")
            elif st in (503, 507):
                full_errors.append((st, body))
                why = error_shape(body)
                if why:
                    bad.append(f"session append {st}: {why}")
            else:
                bad.append(f"session append answered {st}: {body[:160]!r}")
        for path, body in (("/v1/stream/full-new", b""), ("/v1/sessions/full-new/events",
                                                          b'{"events":[{"type":"k"}]}')):
            st, _, rb = request(p, "PUT" if "stream" in path else "POST", path, body, hdr)
            statuses.append(st)
            if st not in (200, 201, 204, 503, 507):
                bad.append(f"create {path} answered {st}: {rb[:160]!r}")
            elif st in (503, 507):
                full_errors.append((st, rb))
                if error_shape(rb):
                    bad.append(f"create {path} {st}: {error_shape(rb)}")
        log(f"statuses while the disk was full: {statuses}")
        unclear = [f"{st}: {b[:160]!r}" for st, b in full_errors
                   if not re.search(r"disk|space|storage|full", err_msg(b), re.I)]
        R.check("disk full: the error message says the disk is full", bool(full_errors) and not unclear,
                "; ".join(unclear[:3]) or "no 507/503 seen")
        wrong = [f"{err_type(b)!r}: {b[:140]!r}" for st, b in full_errors
                 if st == 503 and err_type(b) != "overloaded_error"]
        R.check("disk full: a 503 carries error type overloaded_error (SPEC section 6)", not wrong,
                f"{len(wrong)} 503(s) with another type, e.g. " + "; ".join(wrong[:2]))
        R.check("disk full: appends answer 507 or 503 (never another error)",
                not bad and any(s in (503, 507) for s in statuses),
                "; ".join(bad[:4]) or f"no 507/503 seen: {statuses}")
        R.check("disk full: server keeps running", srv.alive() and srv.status("/healthz") == 200,
                srv.crash_note() if not srv.alive() else "healthz not 200")
        if not srv.alive():
            srv.start()
            p = srv.port
        try:
            items = read_stream(p, "full")
            R.check("disk full: reads of existing data keep working (stream = exactly the acknowledged)",
                    items == acked, f"read {len(items)} messages, acknowledged {len(acked)}")
            ev = [e.get("k") for e in read_session(p, "fulls")]
            R.check("disk full: session events readable (= exactly the acknowledged)", ev == sacked,
                    f"read {ev}, acknowledged {sacked}")
        except AssertionError as e:
            R.check("disk full: reads of existing data keep working", False, str(e))

        filler.unlink()
        ok_s = ok_x = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (ok_s and ok_x):
            if not ok_s:
                m = {"k": "after"}
                st, _, _ = request(p, "POST", "/v1/stream/full", json.dumps([m]).encode(), hdr)
                if st == 204:
                    acked.append(m)
                    ok_s = True
            if not ok_x:
                st, _, _ = request(p, "POST", "/v1/sessions/fulls/events",
                                   b'{"events":[{"type":"k","k":"after"}]}', hdr)
                if st in (200, 204):
                    sacked.append("after")
                    ok_x = True
            if not (ok_s and ok_x):
                time.sleep(0.2)
        st, _, _ = request(p, "PUT", "/v1/stream/after-new", b"", hdr)
        R.check("disk full: appends and creates succeed again after freeing space",
                ok_s and ok_x and st in (200, 201), f"stream ok={ok_s} session ok={ok_x} create={st}")
        for phase in ("after freeing space", "after SIGKILL + restart"):
            if phase.startswith("after SIGKILL"):
                srv.kill()
                srv.start()
                p = srv.port
            try:
                items = read_stream(p, "full")
                ev = [e.get("k") for e in read_session(p, "fulls")]
                R.check(f"disk full: nothing unacknowledged visible {phase}",
                        items == acked and ev == sacked,
                        f"stream: read {[i.get('k') for i in items]}, acked {[a['k'] for a in acked]}; "
                        f"session: read {ev}, acked {sacked}")
            except AssertionError as e:
                R.check(f"disk full: data readable {phase}", False, str(e))
    finally:
        srv.kill()
        r = subprocess.run(["umount", str(mnt)], capture_output=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# --------------------------------------------------------------------------
# (b) slowloris
# --------------------------------------------------------------------------


def slow_client(port: int, payload: bytes, interval: float, limit: float, out: dict) -> None:
    """Send payload one byte per `interval`; record when the server closed the connection."""
    t0 = time.monotonic()
    s = socket.create_connection((HOST, port), timeout=limit)
    s.settimeout(interval)
    out["closed_after"] = None
    try:
        i = 0
        while time.monotonic() - t0 < limit:
            if i < len(payload):
                try:
                    s.send(payload[i:i + 1])
                except OSError:
                    out["closed_after"] = time.monotonic() - t0
                    return
                i += 1
            try:
                data = s.recv(4096)
                if not data:
                    out["closed_after"] = time.monotonic() - t0
                    return
                out.setdefault("data", b"")
                out["data"] += data     # e.g. a 408 before the close: fine, keep reading
            except socket.timeout:
                pass
            except OSError:
                out["closed_after"] = time.monotonic() - t0
                return
    finally:
        s.close()


def test_slowloris(srv: Server) -> None:
    p = srv.port
    limit = IDLE_TIMEOUT + SLOW_MARGIN + 4
    head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    body_req = (b"POST /v1/sessions/slow/events HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{")
    clients = ([("headers one byte/s", head, 1.0)] * 8 + [("nothing sent", b"", 1.0)] * 2
               + [("body one byte/s", body_req + b" " * 199, 1.0)] * 2)
    outs = [dict() for _ in clients]
    threads = [threading.Thread(target=slow_client, args=(p, pl, iv, limit, o), daemon=True)
               for (_, pl, iv), o in zip(clients, outs)]
    for t in threads:
        t.start()
    # Meanwhile other clients are served promptly.
    slow_answers = []
    t_end = time.monotonic() + IDLE_TIMEOUT + 1
    n = 0
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        try:
            st, _, _ = request(p, "GET", "/healthz", timeout=2)
        except (OSError, http.client.HTTPException) as e:
            st = f"error {e!r}"
        dt = time.monotonic() - t0
        n += 1
        if st != 200 or dt > 1.0:
            slow_answers.append(f"{st} in {dt:.2f}s")
        time.sleep(0.1)
    R.check("slowloris: other clients are served while slow clients hold connections",
            not slow_answers, f"{len(slow_answers)}/{n} bad: {slow_answers[:5]}")
    for t in threads:
        t.join(limit + 2)
    for kind in dict.fromkeys(c[0] for c in clients):
        times = [o.get("closed_after") for (k, _, _), o in zip(clients, outs) if k == kind]
        ok = all(x is not None and x <= IDLE_TIMEOUT + SLOW_MARGIN for x in times)
        R.check(f"slowloris: client with {kind} is disconnected within --idle-timeout {IDLE_TIMEOUT}s "
                f"(+{SLOW_MARGIN:g}s)", ok,
                "closed after " + ", ".join("never" if x is None else f"{x:.1f}s" for x in times))
    # Nothing half-received was stored.
    st, _, _ = request(p, "GET", "/v1/sessions/slow/events")
    R.check("slowloris: a half-sent append stored nothing", st == 404, f"GET /v1/sessions/slow/events -> {st}")
    st, _, _ = request(p, "GET", "/healthz")
    R.check("slowloris: server healthy afterwards", st == 200 and srv.alive(), f"healthz {st}")


# --------------------------------------------------------------------------
# (c) limits
# --------------------------------------------------------------------------


def test_body_limit(srv: Server) -> None:
    p = srv.port
    hdr = {"Content-Type": "application/json"}
    request(p, "PUT", "/v1/stream/lim", b"", hdr)
    ok_body = json.dumps([{"pad": "y" * (MAX_BODY - 200)}]).encode()
    st, _, _ = request(p, "POST", "/v1/stream/lim", ok_body, hdr)
    R.check(f"max-body: a {len(ok_body)}-byte body (under --max-body {MAX_BODY}) is accepted", st == 204, f"{st}")
    big = json.dumps([{"pad": "z" * (MAX_BODY + 10)}]).encode()
    for path, body in (("/v1/stream/lim", big),
                       ("/v1/sessions/lim/events", json.dumps({"events": [{"type": "t", "pad": "z" * (MAX_BODY + 10)}]}).encode())):
        st, _, rb = request(p, "POST", path, body, hdr)
        why = error_shape(rb)
        R.check(f"max-body: {len(body)}-byte POST {path} -> 413 request_too_large",
                st == 413 and not why and err_type(rb) == "request_too_large",
                f"{st} {why or rb[:160]!r}")
    # Chunked body over the limit.
    chunks = b""
    total = 0
    while total <= MAX_BODY:
        piece = b"[" + b"1," * 4000 + b"1]"
        chunks += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        total += len(piece)
    payload = (b"POST /v1/stream/lim HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
    r = raw(p, payload, desc="chunked over max-body")
    R.check(f"max-body: chunked body of {total} bytes -> 413", r is not None and r[0] == 413,
            f"{r[0] if r else 'no response'}")
    # Huge Content-Length, no body: must be refused at once, not read.
    t0 = time.monotonic()
    r = raw(p, b"POST /v1/stream/lim HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 1000000000\r\n\r\n", timeout=5, desc="huge content-length")
    dt = time.monotonic() - t0
    R.check("max-body: Content-Length 1e9 with no body -> 413 without waiting for the body",
            r is not None and r[0] == 413 and dt < 3, f"{r[0] if r else 'no response'} after {dt:.1f}s")
    try:
        items = read_stream(p, "lim")
        R.check("max-body: rejected bodies stored nothing", len(items) == 1, f"{len(items)} messages")
    except AssertionError as e:
        R.check("max-body: rejected bodies stored nothing", False, str(e))
    srv.ensure_alive("body limit checks")


def test_header_url_limits(srv: Server) -> None:
    p = srv.port
    r = raw(p, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 17000 + b"\r\n\r\n", desc="17000-byte header")
    R.check("max-header: one 17000-byte header -> 431", r is not None and r[0] == 431, f"{r[0] if r else 'no response'}")
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(200))
    r = raw(p, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", desc="200 headers")
    R.check("max-header: 200 x 100-byte headers (~21 KiB) -> 431", r is not None and r[0] == 431,
            f"{r[0] if r else 'no response'}")
    r = raw(p, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8000 + b"\r\n\r\n", desc="8000-byte header")
    R.check("max-header: an 8000-byte header is still accepted", r is not None and r[0] == 200,
            f"{r[0] if r else 'no response'}")
    for target in ("/v1/stream/" + "a" * 9000, "/healthz?x=" + "q" * 9000):
        r = raw(p, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), desc="long target")
        R.check(f"max-url: {len(target)}-byte request target ({target[:12]}...) -> 414",
                r is not None and r[0] == 414, f"{r[0] if r else 'no response'}")
    # Error messages that echo the request must stay valid JSON (UTF-8) for any input bytes.
    for target in (b"/v1/nope\xff\xfe", b"/v1/stream/ok\xc3(", b"/v1/sessions/\xe2\x82/events"):
        r = raw(p, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n", desc=f"GET {target!r}")
        why = error_shape(r[2]) if r else "no response"
        died = srv.survived()
        R.check(f"error bodies: GET {target!r} (invalid UTF-8 in the target) -> 4xx with valid JSON body, "
                f"server survives", r is not None and 400 <= r[0] < 500 and not why and not died,
                f"{r[0] if r else ''} {why or ''}" + (f"; {died}" if died else ""))
    # Requests Beast refuses on their first line get a 400 too (they were closed silently).
    for payload in (b"GARBAGE\r\n\r\n", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
                    b"GET /healthz HTTP/1.1\nHost: x\n\n"):
        r = raw(p, payload, desc=f"malformed {payload[:16]!r}")
        why = error_shape(r[2]) if r else "no response"
        R.check(f"malformed request {payload[:24]!r} -> 400 with an error body",
                r is not None and r[0] == 400 and not why, f"{r[0] if r else ''} {why or ''}")
    # Coded bodies would be stored coded: refused instead.
    r = raw(p, b"POST /v1/stream/coded HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
               b"Content-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", desc="Content-Encoding: gzip")
    R.check("Content-Encoding: gzip -> 415", r is not None and r[0] == 415, f"{r[0] if r else 'no response'}")
    r = raw(p, b"POST /v1/stream/coded HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
               b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", desc="TE: gzip, chunked")
    R.check("Transfer-Encoding: gzip, chunked -> 501 (or 400)", r is not None and r[0] in (400, 501),
            f"{r[0] if r else 'no response'}")
    # A single-valued header sent twice is ambiguous: refused, and nothing is stored.
    raw(p, b"PUT /v1/stream/dup-hdr HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 0\r\n\r\n", desc="create dup-hdr")
    r = raw(p, b"POST /v1/stream/dup-hdr HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
               b"Producer-Id: p\r\nProducer-Epoch: 0\r\nProducer-Seq: 0\r\nProducer-Seq: 5\r\n"
               b"Content-Length: 3\r\n\r\nabc", desc="two Producer-Seq")
    why = error_shape(r[2]) if r else "no response"
    R.check("two Producer-Seq headers -> 400 naming the header", r is not None and r[0] == 400 and not why
            and b"producer-seq" in r[2], f"{r[0] if r else ''} {why or ''}")
    st, _, body = request(srv.port, "GET", "/v1/stream/dup-hdr?offset=-1")
    R.check("two Producer-Seq headers: nothing appended", st == 200 and body == b"", f"{st} {body!r}")
    st, _, _ = request(srv.port, "GET", "/healthz")
    R.check("limits: server healthy after header/URL limit checks", st == 200, f"{st}")
    srv.ensure_alive("header/URL limit checks")


def test_traversal(srv: Server) -> None:
    hdr = {"Content-Type": "application/json"}
    cases = [
        ("PUT", "/v1/stream/a/../b"), ("PUT", "/v1/stream/../b"), ("PUT", "/v1/stream/.."),
        ("PUT", "/v1/stream/a/.."), ("PUT", "/v1/stream/%2e%2e/b"), ("PUT", "/v1/stream/a/%2E%2E/b"),
        ("PUT", "/v1/stream/a/..%2Fb"), ("GET", "/v1/stream/%2e%2e/%2e%2e/etc/passwd?offset=-1"),
        ("POST", "/v1/stream/x/../lim"), ("DELETE", "/v1/stream/x/../lim"),
        ("PUT", "/v1/stream/a%00b"), ("GET", "/v1/stream/a%00b?offset=-1"), ("POST", "/v1/stream/lim%00"),
        ("HEAD", "/v1/stream/a%00"), ("PUT", "/v1/stream/" + "p" * 1100),
    ]
    for method, path in cases:
        body = b"[1]" if method == "POST" else b""
        r = raw(srv.port, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body,
                desc=f"{method} {path[:60]}")
        died = srv.survived()
        R.check(f"stream path: {method} {path[:60]} -> 400, server survives",
                r is not None and r[0] == 400 and not died,
                f"{r[0] if r else 'no response'}" + (f"; {died}" if died else ""))
    for name in ("b", "etc/passwd"):
        st, _, _ = request(srv.port, "GET", f"/v1/stream/{name}?offset=-1")
        R.check(f"stream path: traversal attempts created nothing (/v1/stream/{name} -> 404)", st == 404, f"{st}")
    # The /v1/stream/lim stream (from the body-limit case) was not deleted through x/../lim.
    st, _, _ = request(srv.port, "GET", "/v1/stream/lim?offset=-1")
    R.check("stream path: DELETE /v1/stream/x/../lim did not delete /v1/stream/lim", st == 200, f"{st}")

    # Session ids outside [A-Za-z0-9._:~-]{1,128}.
    bad_ids = ["a%00b", "..%2F..%2Fx", "a%2Fb", "%00", "a%20b", "x" * 129]
    for sid in bad_ids:
        for method, sub, body in (("POST", "/events", b'{"events":[{"type":"t"}]}'), ("GET", "/events", b""),
                                  ("PUT", "", b"{}")):
            path = f"/v1/sessions/{sid}{sub}"
            r = raw(srv.port, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body,
                    desc=f"{method} {path[:60]}")
            died = srv.survived()
            R.check(f"session id: {method} {path[:60]} -> 400, server survives",
                    r is not None and r[0] == 400 and not died,
                    f"{r[0] if r else 'no response'}" + (f" {r[2][:120]!r}" if r and r[0] != 400 else "")
                    + (f"; {died}" if died else ""))
    st, body = 0, b""
    try:
        st, _, body = request(srv.port, "GET", "/v1/sessions?limit=1000")
        ids = [s.get("id") for s in json.loads(body).get("data", [])]
        leaked = [i for i in ids if i and ("/" in i or "\0" in i or " " in i)]
        R.check("session id: no session with an invalid id was created", not leaked, f"{leaked}")
    except Exception as e:  # noqa: BLE001
        R.check("session id: list sessions", False, f"{st} {e}")


def test_max_connections(binary: Path, tmp: Path) -> None:
    srv = Server("maxconn", binary, tmp / "maxconn-data", tmp / "maxconn.log",
                 ["--max-connections", "50", "--access-log", "false"])
    srv.start()
    socks: list[socket.socket] = []
    try:
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        bad = 0
        for _ in range(50):
            s = socket.create_connection((HOST, srv.port), timeout=5)
            s.sendall(req)
            data = s.recv(65536)
            if not data.startswith(b"HTTP/1.1 200"):
                bad += 1
            socks.append(s)
        R.check("max-connections 50: 50 concurrent keep-alive connections are served", bad == 0,
                f"{bad} of 50 not 200")
        r = raw(srv.port, req, timeout=5, desc="51st connection")
        R.check("max-connections 50: the 51st concurrent connection gets 503 (JSON error)",
                r is not None and r[0] == 503 and not error_shape(r[2]),
                f"{r[0] if r else 'no response (connection closed/refused)'}"
                + (f" {error_shape(r[2])}" if r and error_shape(r[2]) else ""))
        bad = 0
        for s in socks[:10]:
            s.sendall(req)
            if not s.recv(65536).startswith(b"HTTP/1.1 200"):
                bad += 1
        R.check("max-connections 50: the 50 open connections keep being served", bad == 0, f"{bad} of 10 failed")
        for s in socks[40:]:
            s.close()
        socks = socks[:40]
        st = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and st != 200:
            r = raw(srv.port, req, timeout=2, desc="after close")
            st = r[0] if r else 0
            if st != 200:
                time.sleep(0.1)
        R.check("max-connections 50: new connections are served once others close", st == 200, f"{st}")
        R.check("max-connections 50: server alive", srv.alive(), srv.crash_note())
    finally:
        for s in socks:
            s.close()
        srv.kill()


def test_rate_limit(binary: Path, tmp: Path) -> None:
    srv = Server("ratelimit", binary, tmp / "rate-data", tmp / "rate.log",
                 ["--rate-limit", "5", "--rate-burst", "5", "--access-log", "false"])
    srv.start()
    try:
        results = [request(srv.port, "GET", "/v1/sessions?limit=1") for _ in range(15)]
        sts = [r[0] for r in results]
        limited = [r for r in results if r[0] == 429]
        R.check("rate-limit 5/burst 5: the first requests pass", all(s == 200 for s in sts[:4]), f"{sts}")
        R.check("rate-limit 5/burst 5: a burst of 15 requests gets 429s", len(limited) >= 5, f"{sts}")
        if limited:
            st, h, body = limited[0]
            ra = h.get("retry-after", "")
            R.check("rate-limit: 429 carries Retry-After (whole seconds >= 1) and rate_limit_error",
                    ra.isdigit() and int(ra) >= 1 and err_type(body) == "rate_limit_error" and not error_shape(body),
                    f"Retry-After={ra!r} body={body[:160]!r}")
            time.sleep(int(ra) + 0.3 if ra.isdigit() else 1.5)
            st, _, _ = request(srv.port, "GET", "/v1/sessions?limit=1")
            R.check("rate-limit: requests pass again after Retry-After", st == 200, f"{st}")
    finally:
        srv.kill()


# --------------------------------------------------------------------------
# Garbage
# --------------------------------------------------------------------------


def garbage_requests(rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    def rb(k: int) -> bytes:
        return bytes(rng.randrange(256) for _ in range(k))

    def req(method: str, target: str, headers: list[str], body: bytes = b"") -> bytes:
        h = "".join(f"{x}\r\n" for x in headers)
        return f"{method} {target} HTTP/1.1\r\nHost: x\r\n{h}".encode("latin-1") + b"\r\n" + body

    def post(path: str, body: bytes, ctype: str = "application/json") -> bytes:
        return req("POST", path, [f"Content-Type: {ctype}", f"Content-Length: {len(body)}"], body)

    bad_json = [b"", b"{", b"[", b"null", b"1", b'"s"', b"[1,2,3]", b'{"events":7}', b'{"events":[1]}',
                b'{"events":[{}]}', b'{"events":[{"type":""}]}', b'{"events":[{"type":7}]}', b"[[[]]]",
                b'{"type":"a","x":1e999999}', b'{"type":"a","x":-0.0e-99999}',
                b'{"type":"a","s":"\xff\xfe\xc3"}', b'{"type":"a","s":"\\ud800"}', b'{"type":"a"}garbage',
                b'{"type":"a",}', b"\xef\xbb\xbf{\"type\":\"a\"}", b"[" * 100000, b"{\"a\":" * 50000,
                b'{"events":[' + b'{"type":"a"},' * 2000 + b'{"type":"a"}]}', b'{"type":"a","\x00":1}',
                b'{"events":[{"type":"a"}],"events":5}', b'{"title":["x"],"metadata":7}']
    paths = ["/v1/sessions/g{n}/events", "/v1/sessions", "/v1/sessions/g{n}", "/v1/stream/g{n}",
             "/v1/search", "/v1/sessions/g{n}/archive", "/v1/stream/g{n}/__ds/x", "/v1/stream/__ds/subscriptions"]
    queries = ["offset=zz", "offset=99999999999999999999999999", "offset=-2", "offset=now&live=sse&limit=0",
               "limit=-1", "limit=99999999999", "live=long-poll&offset=%ff", "q=%22%22%22((", "q=" + "a" * 3000,
               "type=&types[]=", "page=%00", "created_at[gt]=notadate", "order=sideways", "offset=1&offset=2",
               "metadata[=1", "%", "%zz=1", "a=%E0%A4%A", "beta=true&beta=false", "q=-", "q=OR", "q=type:"]
    methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE", "CONNECT", "BREW", "get", ""]
    weird_headers = ["Content-Length: -1", "Content-Length: 99999999999999999999", "Content-Length: 1, 2",
                     "Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked", "Stream-TTL: abc",
                     "Stream-Expires-At: yesterday", "Stream-Closed: maybe", "Stream-Seq: \x01",
                     "Producer-Id: p", "Producer-Epoch: -5", "Producer-Seq: 1e9", "Stream-Forked-From: /v1/stream/..",
                     "Stream-Fork-Offset: zzzz", "If-None-Match: \"", "Authorization: Bearer \x7f",
                     "x-api-key: " + "k" * 3000, "Content-Type: application/json; charset=bogus", "Accept: */*;q=x",
                     "Range: bytes=-5", "Expect: 100-continue", ": novalue", "NoColon", " leading: space",
                     "Stream-Fork-Sub-Offset: -1"]
    out = []
    for i in range(n):
        kind = rng.randrange(9)
        p = rng.choice(paths).format(n=i)
        if kind == 0:
            out.append(("random bytes", rb(rng.randint(1, 2000))))
        elif kind == 1:
            out.append(("random request line",
                        rng.choice(methods).encode() + b" " + rb(rng.randint(0, 60)).replace(b"\r\n", b"")
                        + b" HTTP/1.1\r\nHost: x\r\n\r\n"))
        elif kind == 2:
            body = rng.choice(bad_json)
            out.append((f"POST {p} bad JSON {body[:30]!r}", post(p, body)))
        elif kind == 3:
            q = rng.choice(queries)
            out.append((f"GET {p}?{q[:40]}", req("GET", f"{p}?{q}", [])))
        elif kind == 4:
            hs = rng.sample(weird_headers, rng.randint(1, 4))
            m = rng.choice(["GET", "POST", "PUT", "DELETE", "HEAD"])
            body = rng.choice(bad_json[:12])
            out.append((f"{m} {p} headers {hs}", req(m, p, hs + [f"Content-Length: {len(body)}"], body)))
        elif kind == 5:  # broken chunked framing
            bodies = [b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nab\r\n0\r\n\r\n", b"ffffffffffffffffff\r\n", b"3\r\nabc",
                      b"-1\r\n\r\n", b"3;ext=\x00\r\nabc\r\n0\r\n\r\n", b"0\r\nTrailer: \x00\r\n\r\n"]
            out.append((f"POST {p} broken chunked", req("POST", p, ["Content-Type: application/json",
                                                                   "Transfer-Encoding: chunked"],
                                                      rng.choice(bodies))))
        elif kind == 6:  # protocol-level oddities
            variants = [b"GET / HTTP/9.9\r\n\r\n", b"GET /healthz HTTP/1.1\r\n\r\n\r\n\r\n",
                        b"GET /healthz\r\n\r\n", b"\r\n\r\n\r\n", b"GET /healthz HTTP/1.1\nHost: x\n\n",
                        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 500 + b"\r\n",
                        b"GET http://evil/v1/stream/x HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /v1/stream/%%%% HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"POST /v1/stream/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                        b"POST /v1/stream/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]
            out.append(("protocol oddity", rng.choice(variants)))
        elif kind == 7:  # valid-looking stream operations with odd arguments
            hs = [rng.choice(["Content-Type: application/json", "Content-Type: text/plain",
                              "Content-Type: application/octet-stream", "Content-Type: \x01"])]
            hs += rng.sample(weird_headers[5:17], rng.randint(0, 3))
            body = rng.choice([b"", b"[]", b"[1]", b"{}", rb(50)])
            m = rng.choice(["PUT", "POST"])
            out.append((f"{m} /v1/stream/g{i} {hs}", req(m, f"/v1/stream/g{i}", hs + [f"Content-Length: {len(body)}"], body)))
        else:  # pipelined mixture: a good request followed by garbage on the same connection
            out.append(("pipelined good + garbage",
                        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + rb(rng.randint(1, 300))))
    return out


def test_garbage(srv: Server, rng: random.Random) -> None:
    fivexx: list[str] = []
    crashes: list[str] = []
    srv.ensure_alive("the checks before the garbage requests")
    prev = ("(none)", b"")
    for desc, payload in garbage_requests(rng, 200):
        if not srv.alive():   # died after answering the previous request
            crashes.append(f"{prev[0][:160]} (payload {prev[1][:80]!r}...): {srv.crash_note()}")
            srv.start()
        try:
            r = raw(srv.port, payload, timeout=1.5, desc=desc[:80])
        except OSError as e:
            r = None
            if srv.alive():
                fivexx.append(f"{desc[:80]}: connect failed {e!r}")
        if r is not None and r[0] >= 500 and r[0] != 501:   # 501: feature not implemented
            fivexx.append(f"{desc[:100]} -> {r[0]} {r[2][:100]!r}")
        prev = (desc, payload)
    if srv.survived():
        crashes.append(f"{prev[0][:160]} (payload {prev[1][:80]!r}...)")
    R.check("garbage: 200 random/garbage requests never crash the server", not crashes,
            f"{len(crashes)} crash(es): " + " || ".join(crashes[:5]))
    R.check("garbage: bad input never gets a 5xx", not fivexx, f"{len(fivexx)}: " + " || ".join(fivexx[:6]))
    st, _, _ = request(srv.port, "GET", "/healthz")
    R.check("garbage: /healthz is 200 afterwards", st == 200, f"{st}")


def test_error_bodies(data_dirs: list[Path], binary: Path) -> None:
    forbidden = [re.escape(str(d)) for d in data_dirs] + [
        re.escape(str(binary.parent)), r"/tmp/", r"/work/", r"/home/", r"/root/", r"/usr/", r"/var/",
        r"\.(cc|cpp|hpp|h):\d+", r"std::", r"boost::", r"Traceback", r"terminate called", r"what\(\):",
        r"Segmentation", r"0x[0-9a-f]{8,}", r"\.seg\b", r"catalog\.db"]
    pat = re.compile("|".join(forbidden), re.I)
    leaks, shapes = [], []
    for desc, st, body in R.error_bodies:
        text = body.decode("utf-8", "replace")
        m = pat.search(text)
        if m:
            leaks.append(f"{desc} -> {st}: ...{text[max(0, m.start() - 60):m.end() + 40]}...")
        if body.lstrip().startswith(b"{") or st not in (404, 409, 410):
            why = error_shape(body)
            if why:
                shapes.append(f"{desc} -> {st}: {why}")
    R.check(f"error bodies: none of {len(R.error_bodies)} contains a file path or stack trace", not leaks,
            f"{len(leaks)}: " + " || ".join(dict.fromkeys(leaks)) if leaks else "")
    R.check("error bodies: JSON errors are Anthropic-shaped", not shapes,
            f"{len(shapes)}: " + " || ".join(shapes[:5]))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> int:
    binary = harness.find_binary(log)
    if binary is None:
        return harness.setup_failed()
    tmp = Path(tempfile.mkdtemp(prefix="ds-fault-test."))
    binary = harness.private_copy(binary, tmp)     # immune to a concurrent rebuild
    rng = random.Random(SEED)
    log(f"binary {binary}; temp dir {tmp}; seed {SEED}")
    t0 = time.monotonic()
    servers: list[Server] = []
    try:
        main_srv = Server("limits", binary, tmp / "limits-data", tmp / "limits.log",
                          ["--max-body", str(MAX_BODY), "--idle-timeout", str(IDLE_TIMEOUT)])
        servers.append(main_srv)
        main_srv.start()
        run_case("disk full", test_disk_full, binary, tmp)
        run_case("slowloris", test_slowloris, main_srv)
        main_srv.ensure_alive("slowloris")
        run_case("body limit", test_body_limit, main_srv)
        run_case("header/url limits", test_header_url_limits, main_srv)
        run_case("traversal", test_traversal, main_srv)
        run_case("max connections", test_max_connections, binary, tmp)
        run_case("rate limit", test_rate_limit, binary, tmp)
        run_case("garbage", test_garbage, main_srv, rng)
        main_srv.ensure_alive("the garbage requests")
        run_case("error bodies", test_error_bodies,
                 [tmp, tmp / "limits-data", tmp / "tmpfs"], harness.resolve_bin())
    except Exception as e:  # noqa: BLE001 - harness failure
        R.check("harness", False, f"{type(e).__name__}: {e}")
    finally:
        for s in servers:
            s.kill()
        # test_disk_full unmounts in its own finally; make sure nothing stays mounted.
        if os.path.ismount(tmp / "tmpfs"):
            subprocess.run(["umount", "-l", str(tmp / "tmpfs")], capture_output=True)

    print()
    print(f"==== fault test summary ({time.monotonic() - t0:.1f}s, seed {SEED}) ====")
    for line in R.lines:
        if not line.startswith("ok"):
            print(line)
    harness.keep_or_remove(tmp, bool(R.failed), what="temp dir (server logs *.log)")
    if R.skipped:
        print(f"{R.skipped} check group(s) skipped (see SKIP lines)")
    return harness.summary(R.passed, R.failed)


if __name__ == "__main__":
    sys.exit(main())
