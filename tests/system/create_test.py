#!/usr/bin/env python3
"""A stream created with initial data is whole or absent, never half made (Python 3.11 stdlib).

Before: PUT published the stream (catalog row committed, visible to other requests) and only then
appended its body, its Stream-Closed and a fork's inherited part of a message. So:
  - a POST racing the PUT could land before the PUT's body, or be accepted by a stream created
    closed, or split a fork's inherited bytes (37, 41 and 34 of 50 tries in a probe);
  - a second identical PUT meanwhile answered 200 with offset 0;
  - kill -9 between the two left an empty (or open) stream after the restart, and the client's
    retried PUT then answered 200 without ever writing the body.

Also: equivalent spellings of a stream path (RFC 3986 §6.2.2: %65 is "e") name one stream, and
the reserved first segment __ds cannot be reached as %5F_ds.

Cases:
  1. races: a PUT with a body against POSTs to the same path (the body must come first), a PUT
     with Stream-Closed: true against POSTs (none may be accepted), a fork at a sub-offset
     against POSTs (the inherited bytes must come first, unsplit); 25 rounds each;
  2. crash: three clients PUT streams with bodies (some also closed) while the server is
     killed with SIGKILL, 4 times; after each restart every stream that exists holds exactly
     its body (and is closed if it was created closed), and re-sending the PUT of one the crash
     interrupted makes the stream with its body (201), or finds it whole (200).

Environment: DS_BIN (default build/durable-sessions), DS_KEEP_DATA=1 keeps the temp dir.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

log = harness.make_log("create")

TEXT = {"Content-Type": "text/plain"}


def race(srv: harness.Server, put_path: str, put_body: bytes, put_headers: dict,
         post_path: str) -> tuple[int, list[int]]:
    """PUT put_path while another connection POSTs b"POST" to post_path until one is accepted
    (or the PUT's answer has come and one more POST was tried). Returns the PUT's status and the
    POST statuses."""
    put_status = [0]
    posts: list[int] = []
    done = threading.Event()

    def creator():
        put_status[0] = srv.request("PUT", put_path, put_body, put_headers)[0]
        done.set()

    def appender():
        c = harness.Connection(srv.port)
        try:
            while True:
                finished = done.is_set()
                st = c.request("POST", post_path, b"POST", TEXT)[0]
                posts.append(st)
                if st in (200, 204) or finished or len(posts) > 5000:
                    return
        finally:
            c.close()

    threads = [threading.Thread(target=appender), threading.Thread(target=creator)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return put_status[0], posts


def get(srv: harness.Server, path: str) -> tuple[int, dict, bytes]:
    return srv.request("GET", path + "?offset=-1")


def test_body_comes_first(srv: harness.Server) -> None:
    for i in range(25):
        path = f"/v1/stream/race-body-{i}"
        st, posts = race(srv, path, b"INIT", TEXT, path)
        assert st == 201, f"{path}: PUT {st}"
        _, _, data = get(srv, path)
        assert data == b"INIT" + b"POST" * sum(p in (200, 204) for p in posts), \
            f"{path}: read back {data!r} (POST statuses {sorted(set(posts))})"


def test_created_closed_takes_no_append(srv: harness.Server) -> None:
    for i in range(25):
        path = f"/v1/stream/race-closed-{i}"
        st, posts = race(srv, path, b"LAST", {**TEXT, "Stream-Closed": "true"}, path)
        assert st == 201, f"{path}: PUT {st}"
        assert not any(p in (200, 204) for p in posts), f"{path}: a POST was accepted: {posts[-3:]}"
        s, h, data = get(srv, path)
        assert data == b"LAST" and h.get("stream-closed") == "true", f"{path}: {s} {h} {data!r}"


def test_fork_prefix_is_not_split(srv: harness.Server) -> None:
    src = "/v1/stream/race-fork-src"
    assert srv.request("PUT", src, b"", TEXT)[0] == 201
    st, h, _ = srv.request("POST", src, b"abc", TEXT)
    assert st == 204
    second = h["stream-next-offset"]  # where the message b"defgh" starts
    assert srv.request("POST", src, b"defgh", TEXT)[0] == 204
    for i in range(25):
        path = f"/v1/stream/race-fork-{i}"
        headers = {**TEXT, "Stream-Forked-From": src, "Stream-Fork-Offset": second,
                   "Stream-Fork-Sub-Offset": "2"}
        st, posts = race(srv, path, b"", headers, path)
        assert st == 201, f"{path}: PUT {st}"
        _, _, data = get(srv, path)
        assert data == b"abcde" + b"POST" * sum(p in (200, 204) for p in posts), \
            f"{path}: read back {data!r}"


def test_equivalent_paths_name_one_stream(srv: harness.Server) -> None:
    # RFC 3986 §6.2.2: %65 is "e", so these are one stream; %2F is not "/", so that is another.
    assert srv.request("PUT", "/v1/stream/%65nc/a/b", b"one", TEXT)[0] == 201
    st, h, data = get(srv, "/v1/stream/enc/a/b")
    assert (st, data) == (200, b"one"), f"enc/a/b: {st} {data!r}"
    assert srv.request("PUT", "/v1/stream/enc/a/b", b"one", TEXT)[0] == 200
    assert srv.request("PUT", "/v1/stream/enc/a%2fb", b"two", TEXT)[0] == 201
    st, h, data = get(srv, "/v1/stream/enc/a%2Fb")
    assert (st, data) == (200, b"two"), f"enc/a%2Fb: {st} {data!r}"
    # The reserved first segment cannot be reached by escaping it: this is the subscription API
    # (which refuses an empty body), not a stream.
    st, _, data = srv.request("PUT", "/v1/stream/%5F_ds/subscriptions/x", b"", TEXT)
    assert st == 400 and json.loads(data)["error"]["code"] == "INVALID_REQUEST", f"%5F_ds: {st} {data!r}"
    # A stream may have __ds as a later segment.
    assert srv.request("PUT", "/v1/stream/app/__ds/x", b"", TEXT)[0] == 201


def test_repeated_puts_and_conditional_gets(srv: harness.Server) -> None:
    # Expires-At is compared as an instant when a PUT is repeated.
    path = "/v1/stream/expiring"
    assert srv.request("PUT", path, b"", {**TEXT, "Stream-Expires-At": "2030-01-01T00:00:00Z"})[0] == 201
    for same in ("2030-01-01T00:00:00.000Z", "2030-01-01T00:00:00+00:00", "2030-01-01T05:30:00+05:30"):
        st = srv.request("PUT", path, b"", {**TEXT, "Stream-Expires-At": same})[0]
        assert st == 200, f"Expires-At {same}: {st}"
    assert srv.request("PUT", path, b"", {**TEXT, "Stream-Expires-At": "2030-01-01T00:00:01Z"})[0] == 409
    # Re-confirming a fork whose source was deleted (soft: the fork still needs its data) is
    # a 200 with or without Content-Type.
    assert srv.request("PUT", "/v1/stream/fsrc", b"hello", TEXT)[0] == 201
    fork = {"Stream-Forked-From": "/v1/stream/fsrc", "Stream-Fork-Offset": "-1"}
    assert srv.request("PUT", "/v1/stream/fdst", b"", fork)[0] == 201
    assert srv.request("DELETE", "/v1/stream/fsrc")[0] == 204
    assert srv.request("PUT", "/v1/stream/fdst", b"", fork)[0] == 200
    assert srv.request("PUT", "/v1/stream/fdst", b"", {**fork, **TEXT})[0] == 200
    assert srv.request("PUT", "/v1/stream/fdst2", b"", fork)[0] == 409  # a new fork of it: no
    # If-None-Match takes lists, weak tags and "*" (RFC 9110 13.1.2).
    st, h, _ = get(srv, "/v1/stream/fdst")
    etag = h["etag"]
    for inm in (etag, "W/" + etag, f'"x", {etag}', "*"):
        st = srv.request("GET", "/v1/stream/fdst?offset=-1", None, {"If-None-Match": inm})[0]
        assert st == 304, f"If-None-Match {inm}: {st}"
    assert srv.request("GET", "/v1/stream/fdst?offset=-1", None, {"If-None-Match": '"x"'})[0] == 200


def test_ttl_counts_across_restarts_and_expired_streams_are_reclaimed(srv: harness.Server) -> None:
    # A 2 s sliding TTL, idle across a restart for longer than that: expired after the restart
    # (it used to count again from the restart).
    assert srv.request("PUT", "/v1/stream/ttl-restart", b"x", {**TEXT, "Stream-TTL": "2"})[0] == 201
    t0 = time.monotonic()
    srv.stop()
    time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
    srv.start()
    st = srv.request("HEAD", "/v1/stream/ttl-restart")[0]
    assert st == 404, f"idle 3 s with a 2 s TTL across a restart: HEAD {st}"
    # An expired stream nobody asks for again leaves the disk on its own.
    streams_dir = srv.data_dir / "streams"
    before = set(p.name for p in streams_dir.iterdir())
    assert srv.request("PUT", "/v1/stream/ttl-sweep", b"y" * 2_000_000, {**TEXT, "Stream-TTL": "1"})[0] == 201
    mine = set(p.name for p in streams_dir.iterdir()) - before
    assert len(mine) == 1, mine
    harness.wait_for(lambda: not (streams_dir / next(iter(mine))).exists(), 20,
                     "the expired stream's directory to be removed without a request")


def test_access_log_counts_byte_bodies(srv: harness.Server) -> None:
    # bytes_in is the request body's size for byte streams too (it logged 0: the handler had
    # moved the body into the append by then).
    assert srv.request("PUT", "/v1/stream/logged", b"", TEXT)[0] == 201
    assert srv.request("POST", "/v1/stream/logged", b"z" * 1000, TEXT)[0] == 204

    def logged():
        for line in srv.log_path.read_text(errors="replace").splitlines():
            if '"path":"/v1/stream/logged"' in line and '"method":"POST"' in line:
                return json.loads(line[line.index("{"):])
        return None
    entry = harness.wait_for(logged, 10, "the POST's access log line")
    assert entry["bytes_in"] == 1000, entry


def test_crash_leaves_whole_streams(srv: harness.Server, rng: random.Random) -> None:
    sent: dict[str, bool] = {}  # path -> created closed
    acked: set[str] = set()
    for round_no in range(4):
        stop = threading.Event()
        lock = threading.Lock()

        def writer(k: int) -> None:
            c = harness.Connection(srv.port, timeout=5)
            i = 0
            while not stop.is_set():
                path = f"/v1/stream/crash-{round_no}-{k}-{i}"
                closed = i % 3 == 0
                i += 1
                with lock:
                    sent[path] = closed
                headers = {**TEXT, **({"Stream-Closed": "true"} if closed else {})}
                try:
                    st = c.request("PUT", path, b"BODY " + path.encode(), headers)[0]
                except Exception:  # noqa: BLE001 - the server was killed
                    return
                if st == 201:
                    with lock:
                        acked.add(path)
            c.close()

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 1.0))
        srv.kill()
        stop.set()
        for t in threads:
            t.join()
        srv.start()
        c = harness.Connection(srv.port)
        retried = 0
        try:
            for path, closed in sent.items():
                st, h, data = c.request("GET", path + "?offset=-1")
                body = b"BODY " + path.encode()
                if st == 404:
                    assert path not in acked, f"{path}: acknowledged (201) but gone after the crash"
                    if retried < 5:  # the client's retry makes it, with its body
                        headers = {**TEXT, **({"Stream-Closed": "true"} if closed else {})}
                        st, h, _ = c.request("PUT", path, body, headers)
                        assert st == 201, f"{path}: retried PUT answered {st}"
                        retried += 1
                        st, h, data = c.request("GET", path + "?offset=-1")
                    else:
                        continue
                assert st == 200, f"{path}: GET {st}"
                assert data == body, f"{path}: holds {data!r}, expected {body!r}"
                assert (h.get("stream-closed") == "true") == closed, f"{path}: Stream-Closed {h}"
                # Re-sending the same PUT now finds it whole.
                headers = {**TEXT, **({"Stream-Closed": "true"} if closed else {})}
                st, h, _ = c.request("PUT", path, body, headers)
                assert st == 200, f"{path}: repeated PUT answered {st}"
        finally:
            c.close()
        log(f"  round {round_no + 1}: {len(sent)} PUTs sent, {len(acked)} acknowledged, "
            f"{retried} retried after the crash")


def main() -> int:
    binary = harness.find_binary(log)
    if binary is None:
        return harness.setup_failed()
    tmp = Path(tempfile.mkdtemp(prefix="ds-create-test."))
    binary = harness.private_copy(binary, tmp)
    srv = harness.Server(binary, tmp / "data", tmp / "server.log", name="create")
    rng = random.Random()
    passed = failed = 0
    try:
        srv.start()
        cases = [("a PUT's body comes before racing POSTs", lambda: test_body_comes_first(srv)),
                 ("a stream created closed takes no racing POST",
                  lambda: test_created_closed_takes_no_append(srv)),
                 ("a fork's inherited bytes are not split by racing POSTs",
                  lambda: test_fork_prefix_is_not_split(srv)),
                 ("equivalent spellings of a path name one stream",
                  lambda: test_equivalent_paths_name_one_stream(srv)),
                 ("repeated PUTs compare instants and tolerate a deleted fork source; "
                  "If-None-Match lists", lambda: test_repeated_puts_and_conditional_gets(srv)),
                 ("a TTL counts across restarts; expired streams are reclaimed",
                  lambda: test_ttl_counts_across_restarts_and_expired_streams_are_reclaimed(srv)),
                 ("the access log counts byte-stream bodies", lambda: test_access_log_counts_byte_bodies(srv)),
                 ("kill -9 during PUTs leaves every stream whole or absent",
                  lambda: test_crash_leaves_whole_streams(srv, rng))]
        for name, fn in cases:
            t0 = time.monotonic()
            try:
                fn()
                passed += 1
                log(f"PASS {name} ({(time.monotonic() - t0) * 1000:.0f} ms)")
            except Exception:  # noqa: BLE001 - report and go on
                failed += 1
                log(f"FAIL {name}\n{traceback.format_exc()}\n{srv.log_tail(20)}")
    except Exception as e:  # noqa: BLE001 - setup
        log(f"setup failed: {e}")
        failed += 1
    finally:
        srv.stop()
        harness.keep_or_remove(tmp, failed > 0, log)
    return harness.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
