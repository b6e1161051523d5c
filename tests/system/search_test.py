#!/usr/bin/env python3
"""System tests of search (SPEC section 3.7) -- Python 3 stdlib only.

Starts its own `$DS_BIN serve --listen 127.0.0.1:PORT --data-dir DIR` after creating API keys
for two tenants with `keys create` (the key is the last stdout line), then checks over plain
HTTP: ranked results with score and snippet (per session and across sessions), snippet HTML
escaping, query syntax and 400s for malformed queries, session_id / type / metadata filters,
paging, cross-tenant isolation, read-your-writes freshness right after an acknowledged append,
deletion, index persistence across a restart, rebuild after deleting DIR/index, and concurrent
appends + searches.

Prints one line per test and a final `N passed, M failed`; exit 1 on any failure, 2 on a setup
error.

Environment:
  DS_BIN          server binary (default build/durable-sessions, relative to the repo root)
  DS_KEEP_DATA    1 = keep the temp dir (always kept on failure)
  DS_TEST_FILTER  only run tests whose name contains this substring
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
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

log = harness.make_log("search")


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Client:
    def __init__(self, server: harness.Server, key: str):
        self.server = server
        self.key = key
        self.conn = harness.Connection(server.port, timeout=30)

    def request(self, method: str, path: str, body=None, headers=None):
        hdrs = {"Authorization": f"Bearer {self.key}"}
        if headers:
            hdrs.update(headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        for attempt in range(2):
            self.conn.port = self.server.port  # the server may have been restarted
            try:
                return self.conn.request(method, path, body=data, headers=hdrs)
            except (OSError, http.client.HTTPException):
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body=None, expect=200, headers=None):
        st, h, raw = self.request(method, path, body, headers)
        assert st == expect, f"{method} {path}: expected {expect}, got {st}: {raw[:300]!r}"
        return json.loads(raw) if raw else None

    def append(self, sid: str, events: list[dict]):
        st, h, raw = self.request("POST", f"/v1/sessions/{urllib.parse.quote(sid)}/events",
                                  {"events": events})
        assert st in (200, 204), f"append: {st} {raw[:200]!r}"
        return h

    def search(self, params: dict | list, expect=200):
        return self.json("GET", "/v1/search?" + urllib.parse.urlencode(params, doseq=True),
                         expect=expect)

    def session_search(self, sid: str, params: dict | list, expect=200):
        return self.json("GET", f"/v1/sessions/{urllib.parse.quote(sid)}/events?" +
                         urllib.parse.urlencode(params, doseq=True), expect=expect)


def msg(text: str, type_: str = "user.message") -> dict:
    return {"type": type_, "content": [{"type": "text", "text": text}]}


def tool_use(name: str, inp: dict) -> dict:
    return {"type": "agent.tool_use", "name": name, "input": inp}


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def t_ranked_per_session_with_score_and_snippet(env):
    a = env.a
    sid = uid("rank")
    a.append(sid, [
        msg("we talked about many things today: lunch, the weather, a webhook, and some "
            "other topics that have nothing to do with payments at all really"),
        msg("The Stripe webhook signature check fails: stripe webhook secret mismatch"),
        tool_use("bash", {"command": "grep -rn webhook src/payments"}),
        msg("unrelated chatter"),
    ])
    r = a.session_search(sid, {"q": "webhook"})
    data = r["data"]
    assert len(data) == 3, data
    assert data[0]["offset"] == "0000000000000001", [d["offset"] for d in data]
    scores = [d["score"] for d in data]
    assert all(s > 0 for s in scores) and scores == sorted(scores, reverse=True), scores
    assert "<mark>webhook</mark>" in data[0]["snippet"], data[0]["snippet"]
    assert data[0]["type"] == "user.message" and data[0]["id"].startswith("evt_")
    assert r["total_hits"] == 3 and r["next_page"] is None
    # type filter and limit/page
    r = a.session_search(sid, {"q": "webhook", "type": "agent.tool_use"})
    assert [d["type"] for d in r["data"]] == ["agent.tool_use"], r
    r1 = a.session_search(sid, {"q": "webhook", "limit": 2})
    assert len(r1["data"]) == 2 and r1["next_page"], r1
    r2 = a.session_search(sid, {"q": "webhook", "limit": 2, "page": r1["next_page"]})
    assert len(r2["data"]) == 1 and r2["next_page"] is None, r2
    seen = {d["offset"] for d in r1["data"] + r2["data"]}
    assert len(seen) == 3


def t_snippet_escapes_html(env):
    sid = uid("xss")
    env.a.append(sid, [msg("please review <script>alert('pwned')</script> in the template")])
    r = env.a.session_search(sid, {"q": "script"})
    snip = r["data"][0]["snippet"]
    assert "<script>" not in snip, snip
    assert "&lt;<mark>script</mark>&gt;" in snip, snip


def t_query_syntax(env):
    a = env.a
    sid = uid("syntax")
    a.append(sid, [
        msg("the stripe webhook failed"),            # 0
        msg("webhook from stripe failed"),           # 1
        tool_use("grep", {"pattern": "webhook"}),    # 2
        msg("refund issued via chargeback"),         # 3
    ])
    offs = lambda r: sorted(int(d["offset"]) for d in r["data"])
    assert offs(a.session_search(sid, {"q": '"stripe webhook"'})) == [0]
    assert offs(a.session_search(sid, {"q": "webhook -stripe"})) == [2]
    assert offs(a.session_search(sid, {"q": "grep OR refund"})) == [2, 3]
    assert offs(a.session_search(sid, {"q": "webhook type:agent.tool_use"})) == [2]
    assert offs(a.session_search(sid, {"q": "fail"})) == [0, 1], "stemming: fail ~ failed"


def t_malformed_queries_are_400(env):
    sid = uid("bad")
    env.a.append(sid, [msg("x")])
    for q in ['"unterminated', "OR", "a OR", "-", "-only", "type:", "x type:<b>", ""]:
        for path in (f"/v1/search?q={urllib.parse.quote(q)}",
                     f"/v1/sessions/{sid}/events?q={urllib.parse.quote(q)}"):
            st, h, raw = env.a.request("GET", path)
            assert st == 400, f"{q!r} on {path}: {st} {raw[:200]!r}"
            body = json.loads(raw)
            assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
            assert body["error"]["message"], body
    st, _, _ = env.a.request("GET", "/v1/search")
    assert st == 400
    for page in ("r+1", "r 1", "r-0", "r01", "r", "x1", "r1x"):
        st, _, raw = env.a.request("GET", f"/v1/search?q=x&page={urllib.parse.quote(page)}")
        assert st == 400, f"page={page!r}: {st} {raw[:200]!r}"
    st, _, raw = env.a.request("GET", f"/v1/sessions/{sid}/events?q=x&live=sse")
    assert st == 400, raw


def t_cross_session_filters(env):
    a = env.a
    s1, s2, s3 = uid("f1"), uid("f2"), uid("f3")
    word = "zebra" + uuid.uuid4().hex[:6]
    a.json("POST", "/v1/sessions", {"id": s1, "metadata": {"team": "payments"}}, expect=200) \
        if False else None
    for s, team in ((s1, "payments"), (s2, "search"), (s3, "payments")):
        st, _, raw = a.request("PUT", f"/v1/sessions/{s}", {"metadata": {"team": team}})
        assert st in (200, 201), (st, raw[:200])
        a.append(s, [msg(f"{word} appears here"), tool_use("bash", {"command": f"echo {word}"})])
    r = a.search({"q": word})
    assert r["total_hits"] == 6 and len(r["data"]) == 6, r
    assert r["indexed_events"] >= 6
    hit = r["data"][0]
    assert set(hit) == {"session_id", "event", "score", "snippet"}, hit.keys()
    assert hit["score"] > 0 and "<mark>" in hit["snippet"]
    r = a.search({"q": word, "session_id": s2})
    assert {h["session_id"] for h in r["data"]} == {s2}, r
    r = a.search([("q", word), ("session_id", s1), ("session_id", s2)])
    assert {h["session_id"] for h in r["data"]} == {s1, s2}, r
    r = a.search({"q": word, "type": "agent.tool_use"})
    assert len(r["data"]) == 3 and all(h["event"]["type"] == "agent.tool_use" for h in r["data"])
    r = a.search({"q": word, "metadata[team]": "payments"})
    assert {h["session_id"] for h in r["data"]} == {s1, s3}, r
    r = a.search({"q": word, "metadata[team]": "nobody"})
    assert r["data"] == [] and r["total_hits"] == 0, r
    r1 = a.search({"q": word, "limit": 4})
    assert len(r1["data"]) == 4 and r1["next_page"]
    r2 = a.search({"q": word, "limit": 4, "page": r1["next_page"]})
    assert len(r2["data"]) == 2 and r2["next_page"] is None


def t_cross_tenant_isolation(env):
    word = "secret" + uuid.uuid4().hex[:6]
    sid = uid("iso")
    env.a.append(sid, [msg(f"{word} of tenant a")])
    assert len(env.a.search({"q": word})["data"]) == 1
    r = env.b.search({"q": word})
    assert r["data"] == [] and r["total_hits"] == 0, r
    env.b.json("GET", f"/v1/sessions/{sid}/events?q={word}", expect=404)
    # Same session id in tenant b holds b's own events only.
    env.b.append(sid, [msg("tenant b text")])
    assert env.b.session_search(sid, {"q": word})["data"] == []
    assert len(env.b.session_search(sid, {"q": "tenant"})["data"]) == 1


def t_freshness_after_acknowledged_append(env):
    sid = uid("fresh")
    waits = []
    for i in range(30):
        word = f"fresh{uuid.uuid4().hex[:8]}"
        env.a.append(sid, [msg(f"{word} event {i}")])
        t0 = time.perf_counter()
        r = env.a.session_search(sid, {"q": word})
        waits.append((time.perf_counter() - t0) * 1000)
        assert len(r["data"]) == 1, f"append {i} not searchable: {r}"
        r = env.a.search({"q": word})
        assert len(r["data"]) == 1, f"append {i} not searchable across sessions: {r}"
    waits.sort()
    log(f"  freshness: search right after append, p50 {waits[len(waits)//2]:.1f} ms, "
        f"max {waits[-1]:.1f} ms")


def t_delete_session_removes_documents(env):
    word = "doomed" + uuid.uuid4().hex[:6]
    sid = uid("del")
    env.a.append(sid, [msg(f"{word} one"), msg(f"{word} two")])
    assert len(env.a.search({"q": word})["data"]) == 2
    env.a.json("DELETE", f"/v1/sessions/{sid}")
    r = env.a.search({"q": word})
    assert r["data"] == [], r
    deadline = time.time() + 5
    while time.time() < deadline and env.a.search({"q": word})["total_hits"] != 0:
        time.sleep(0.05)
    assert env.a.search({"q": word})["total_hits"] == 0
    # A new session with the same id starts clean.
    env.a.append(sid, [msg(f"{word} reborn")])
    r = env.a.search({"q": word})
    assert len(r["data"]) == 1 and "reborn" in r["snippet"] if False else len(r["data"]) == 1, r


def t_concurrent_append_and_search(env):
    sid = uid("conc")
    stop = time.time() + 4
    errors: list[str] = []
    appended: list[str] = []
    lock = threading.Lock()

    def writer():
        c = Client(env.server, env.key_a)
        i = 0
        while time.time() < stop:
            w = f"conc{uuid.uuid4().hex[:8]}"
            c.append(sid, [msg(f"{w} number {i}"), tool_use("bash", {"command": f"echo {w}"})])
            with lock:
                appended.append(w)
            i += 1

    def reader():
        c = Client(env.server, env.key_a)
        lat = []
        while time.time() < stop:
            with lock:
                w = appended[-1] if appended else None
            if not w:
                time.sleep(0.005)
                continue
            t0 = time.perf_counter()
            r = c.search({"q": w})
            lat.append((time.perf_counter() - t0) * 1000)
            if len(r["data"]) != 2:
                errors.append(f"{w}: {len(r['data'])} hits")
        if lat:
            lat.sort()
            log(f"  concurrent: {len(lat)} searches, p50 {lat[len(lat)//2]:.1f} ms, "
                f"p99 {lat[int(len(lat)*0.99)]:.1f} ms")

    ts = [threading.Thread(target=writer) for _ in range(2)] + \
         [threading.Thread(target=reader) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:5]
    r = env.a.session_search(sid, {"q": "number", "limit": 1})
    assert r["total_hits"] == len(appended), (r["total_hits"], len(appended))


def t_index_survives_restart_and_is_rebuilt(env):
    word = "durable" + uuid.uuid4().hex[:6]
    sids = [uid("rb") for _ in range(3)]
    for s in sids:
        env.a.append(s, [msg(f"{word} in {s}"), tool_use("bash", {"command": f"cat {word}.txt"})])
    before = env.a.search({"q": word})
    assert before["total_hits"] == 6
    env.server.stop()
    env.server.start()
    after = env.a.search({"q": word})
    assert after["total_hits"] == 6, after
    assert [h["event"]["id"] for h in after["data"]] == [h["event"]["id"] for h in before["data"]]
    # Delete the index and restart: rebuilt from the logs in the background. The server promises
    # an honest answer, not a complete one within --search-wait: while the rebuild has not reached
    # the sessions a search covers, the answer says X-Index-Stale: true. A fresh answer (no such
    # header) must be complete. Retry stale answers until a bounded deadline.
    env.server.stop()
    shutil.rmtree(env.data_dir / "index")
    t0 = time.perf_counter()
    env.server.start()
    ready = (time.perf_counter() - t0) * 1000
    # A per-session search needs only its session, which the indexer takes first.
    one, stale_one = fresh_search(env.a, {"q": word}, timeout=120, sid=sids[0])
    assert one["total_hits"] == 2, one
    rebuilt, stale_all = fresh_search(env.a, {"q": word}, timeout=120)
    assert rebuilt["total_hits"] == 6, rebuilt
    assert {h["event"]["id"] for h in rebuilt["data"]} == {h["event"]["id"] for h in before["data"]}
    b, _ = fresh_search(env.b, {"q": "tenant"}, timeout=120)
    assert b["total_hits"] >= 1, b
    assert (env.data_dir / "index").is_dir()
    log(f"  rebuild: ready in {ready:.0f} ms, searchable after restart "
        f"(stale answers first: {stale_one} per-session, {stale_all} cross-session)")


def t_index_survives_kill_9_while_indexing(env):
    """kill -9 while appends run and the indexer writes segments and commits, five times: after
    the last restart every acknowledged event is found exactly once (its own word: one hit), and
    a word in every event counts each stored event once (no event indexed twice, none lost)."""
    import random
    rng = random.Random(9)
    common = "crashword" + uuid.uuid4().hex[:6]
    sids = [uid("k9") for _ in range(4)]
    acked, attempted = [], 0
    n = 0
    for round_ in range(5):
        stop = threading.Event()
        sent = []

        def writer():
            nonlocal n
            while not stop.is_set():
                batch = list(range(n, n + 40))
                n += 40
                sent.append(len(batch))
                body = json.dumps({"events": [msg(f"{common} unique{common}x{i} filler words")
                                              for i in batch]})
                try:
                    st, _, _ = harness.request(
                        env.server.port, "POST",
                        f"/v1/sessions/{sids[batch[0] // 40 % len(sids)]}/events", body,
                        {"Authorization": f"Bearer {env.key_a}",
                         "Content-Type": "application/json"}, timeout=5)
                except (OSError, http.client.HTTPException):
                    return
                if st in (200, 204):
                    acked.extend(batch)
                else:
                    return

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.2 + rng.random() * 0.5)
        env.server.kill()
        stop.set()
        t.join()
        attempted += sum(sent)
        env.server.start()
    assert len(acked) >= 200, len(acked)
    total, _ = fresh_search(env.a, {"q": common, "session_id": sids}, timeout=120)
    # Stored events: the acknowledged ones, and perhaps some whose answer the kill cut off.
    stored = 0
    for s in sids:
        page = None
        while True:
            r = env.a.json("GET", f"/v1/sessions/{s}/events?limit=1000" +
                           (f"&page={urllib.parse.quote(page)}" if page else ""))
            stored += len(r["data"])
            page = r.get("next_page")
            if not page:
                break
    assert len(acked) <= stored <= attempted, (len(acked), stored, attempted)
    assert total["total_hits"] == stored, (total["total_hits"], stored)
    for i in rng.sample(acked, 60):
        r, _ = fresh_search(env.a, {"q": f"unique{common}x{i}"}, timeout=60)
        assert r["total_hits"] == 1, (i, r["total_hits"])
    log(f"  kill -9 x5: {len(acked)} acknowledged, {stored} stored, all found once")


def fresh_search(client: Client, params: dict, timeout: float, sid: str | None = None):
    """Searches until the answer is not marked X-Index-Stale (at most `timeout` seconds); returns
    (body, number of stale answers seen). A stale answer must say so and carry indexed_events."""
    path = (f"/v1/sessions/{urllib.parse.quote(sid)}/events?" if sid else "/v1/search?") + \
        urllib.parse.urlencode(params, doseq=True)
    deadline = time.time() + timeout
    stale = 0
    while True:
        st, h, raw = client.request("GET", path)
        assert st == 200, f"GET {path}: {st} {raw[:300]!r}"
        body = json.loads(raw)
        if h.get("x-index-stale") != "true":
            return body, stale
        stale += 1
        assert "indexed_events" in body, body
        assert time.time() < deadline, f"index still stale after {timeout} s: {body}"


def t_pages_are_bounded_in_bytes(env):
    # Events can be megabytes: a page stops at ~16 MiB (with at least one hit) and next_page
    # continues where it stopped, so limit=1000 cannot make a gigabyte response.
    sid = uid("big")
    word = "bigword" + uuid.uuid4().hex[:8]
    for i in range(5):
        env.a.append(sid, [msg(f"{word} number {i} " + "filler " * (6_000_000 // 7))])
    seen, pages, page = [], 0, None
    while True:
        params = {"q": word, "limit": 1000} | ({"page": page} if page else {})
        st, _, raw = env.a.request("GET", f"/v1/sessions/{sid}/events?" + urllib.parse.urlencode(params))
        assert st == 200, f"{st} {raw[:200]!r}"
        assert len(raw) < 16 * 2**20 + 7_000_000, f"page of {len(raw)} bytes"
        r = json.loads(raw)
        assert r["data"], r["next_page"]
        seen += [d["offset"] for d in r["data"]]
        pages += 1
        page = r["next_page"]
        if not page:
            break
        assert pages < 10, "next_page does not end"
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 5, seen
    assert pages >= 2, f"5 events of 6 MB came back in {pages} page(s)"
    r = env.a.search({"q": word, "session_id": sid, "limit": 1000})
    assert 1 <= len(r["data"]) < 5 and r["next_page"], (len(r["data"]), r["next_page"])


TESTS = [
    t_ranked_per_session_with_score_and_snippet,
    t_snippet_escapes_html,
    t_query_syntax,
    t_malformed_queries_are_400,
    t_cross_session_filters,
    t_cross_tenant_isolation,
    t_freshness_after_acknowledged_append,
    t_delete_session_removes_documents,
    t_concurrent_append_and_search,
    t_index_survives_restart_and_is_rebuilt,
    t_index_survives_kill_9_while_indexing,
    t_pages_are_bounded_in_bytes,
]


class Env:
    pass


def main() -> int:
    binary = harness.find_binary(log)
    if binary is None:
        return harness.setup_failed()
    tmp = Path(tempfile.mkdtemp(prefix="ds-search-"))
    data_dir = tmp / "data"
    data_dir.mkdir()
    env = Env()
    env.data_dir = data_dir
    try:
        env.key_a = harness.create_key(binary, data_dir, "tenant-a")
        env.key_b = harness.create_key(binary, data_dir, "tenant-b")
        env.server = harness.Server(binary, data_dir, tmp / "server.log", ["--access-log", "false"],
                                    log=log)
        env.server.start()
    except Exception as e:  # noqa: BLE001
        log(f"setup failed: {e}")
        return 2
    env.a = Client(env.server, env.key_a)
    env.b = Client(env.server, env.key_b)
    flt = os.environ.get("DS_TEST_FILTER", "")
    passed = failed = 0
    try:
        for t in TESTS:
            name = t.__name__[2:]
            if flt and flt not in name:
                continue
            t0 = time.perf_counter()
            try:
                t(env)
                passed += 1
                log(f"PASS {name} ({(time.perf_counter() - t0) * 1000:.0f} ms)")
            except Exception:  # noqa: BLE001
                failed += 1
                log(f"FAIL {name}")
                traceback.print_exc()
                if env.server.proc is None or env.server.proc.poll() is not None:
                    try:
                        env.server.start()
                    except Exception as e:  # noqa: BLE001
                        log(f"cannot restart server: {e}")
                        break
    finally:
        env.server.stop()
        harness.keep_or_remove(tmp, bool(failed), log, what="data")
    return harness.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
