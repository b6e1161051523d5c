"""Session API driven by the official Python SDK (`anthropic` on PyPI), as in the seed document.

The client is built exactly as the migration guide shows:

    client = Anthropic(base_url=..., api_key=...)

With the pinned anthropic 1.17.0 (see requirements.txt) `api_key=` is sent as the
`X-Api-Key` header -- the path the seed promises works ("the Anthropic SDK only sets
x-api-key"). `auth_token=` is sent as `Authorization: Bearer`; one test covers that form too.
anthropic 1.17.0 has the `client.beta.sessions` resource, so no generic `client.get/post`
fallback is needed.

Environment (exported by run.sh): DS_BASE_URL, DS_KEY_A (tenant A), DS_KEY_B (tenant B).
Contract: shared/SPEC.md section 3, shared/reference/anthropic-sessions-wire.md.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

import pytest
from anthropic import Anthropic, AuthenticationError, BadRequestError, NotFoundError

BASE_URL = os.environ.get("DS_BASE_URL")
KEY_A = os.environ.get("DS_KEY_A")
KEY_B = os.environ.get("DS_KEY_B")
if not (BASE_URL and KEY_A and KEY_B):
    pytest.exit("DS_BASE_URL, DS_KEY_A and DS_KEY_B must be set (use tests/compat/sessions/run.sh)", returncode=2)

RUN = f"py-{uuid.uuid4().hex[:10]}"
SESSION_ID_RE = re.compile(r"^sesn_[0-9A-HJKMNP-TV-Z]{26}$")
EVENT_ID_RE = re.compile(r"^evt_[0-9A-HJKMNP-TV-Z]{26}$")
OFFSET_RE = re.compile(r"^\d{16}$")
MISSING = "sesn_01ARZ3NDEKTSV4RRFFQ69G5FAV"


def user_message(text: str) -> dict:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def as_dict(model) -> dict:
    """The raw JSON object the SDK parsed (extra, non-Anthropic fields included)."""
    return model.to_dict(mode="json")


@pytest.fixture(scope="module")
def client() -> Anthropic:
    c = Anthropic(base_url=BASE_URL, api_key=KEY_A)
    # Document which header this SDK version sends for api_key=.
    assert c.auth_headers == {"X-Api-Key": KEY_A}
    return c


@pytest.fixture(scope="module")
def client_b() -> Anthropic:
    return Anthropic(base_url=BASE_URL, api_key=KEY_B)


@pytest.fixture(scope="module")
def no_retry(client: Anthropic) -> Anthropic:
    # A retry would hide the status of 409/5xx answers; 404/401 are not retried anyway.
    return client.with_options(max_retries=0)


def new_session(client: Anthropic, **kw):
    kw.setdefault("agent", "agent_py")
    kw.setdefault("environment_id", "env_py")
    md = {"run": RUN}
    md.update(kw.pop("metadata", {}))
    return client.beta.sessions.create(metadata=md, **kw)


def test_seed_flow_create_send_list_retrieve_delete(client: Anthropic, no_retry: Anthropic):
    # Create with Anthropic's body unchanged (seed: "Durable Sessions accepts the same body").
    s = client.beta.sessions.create(agent="agt_abc123", environment_id="env_xyz", title="My session",
                                    metadata={"run": RUN, "role": "seed"})
    assert SESSION_ID_RE.match(s.id), s.id
    assert s.type == "session"
    assert s.title == "My session"
    assert s.environment_id == "env_xyz"
    assert s.agent.id == "agt_abc123"
    assert s.status == "idle"
    assert s.archived_at is None
    assert s.metadata == {"run": RUN, "role": "seed"}
    raw = as_dict(s)
    assert raw["event_count"] == 0 and raw["closed"] is False and OFFSET_RE.match(raw["next_offset"])

    # Send exactly as the seed's example.
    sent = client.beta.sessions.events.send(
        s.id,
        events=[{"type": "user.message", "content": [{"type": "text", "text": "..."}]}],
    )
    assert len(sent.data) == 1
    ev = as_dict(sent.data[0])
    assert EVENT_ID_RE.match(ev["id"]) and OFFSET_RE.match(ev["offset"])
    assert ev["type"] == "user.message"
    assert ev["content"] == [{"type": "text", "text": "..."}]
    assert ev["created_at"] and ev["processed_at"]

    events = list(client.beta.sessions.events.list(s.id))
    assert [e.id for e in events] == [ev["id"]]
    assert as_dict(events[0]) == ev

    r = client.beta.sessions.retrieve(s.id)
    assert r.id == s.id and r.title == "My session"
    assert as_dict(r)["event_count"] == 1

    listed = list(client.beta.sessions.list(extra_query={"metadata[run]": RUN, "metadata[role]": "seed"}))
    assert [x.id for x in listed] == [s.id]

    deleted = client.beta.sessions.delete(s.id)
    assert deleted.id == s.id and deleted.type == "session_deleted"
    with pytest.raises(NotFoundError) as ei:
        no_retry.beta.sessions.retrieve(s.id)
    assert ei.value.status_code == 404
    assert ei.value.body["error"]["type"] == "not_found_error"


def test_bearer_auth_token_also_works():
    c = Anthropic(base_url=BASE_URL, auth_token=KEY_A)
    assert c.auth_headers == {"Authorization": f"Bearer {KEY_A}"}
    s = new_session(c, metadata={"role": "bearer"})
    assert c.beta.sessions.retrieve(s.id).id == s.id
    c.beta.sessions.delete(s.id)


def test_types_filter_and_auto_pagination(client: Anthropic):
    s = new_session(client, metadata={"role": "paging"})
    batch = []
    for i in range(11):
        batch.append(user_message(f"q{i}"))
        batch.append({"type": "agent.message", "content": [{"type": "text", "text": f"a{i}"}]})
    batch.append({"type": "agent.tool_use", "name": "grep", "input": {"pattern": "stripe"}})
    stored = client.beta.sessions.events.send(s.id, events=batch).data
    assert len(stored) == len(batch)
    offsets = [e.to_dict()["offset"] for e in stored]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)

    # Auto-pagination with limit 5 over 23 events.
    everything = list(client.beta.sessions.events.list(s.id, limit=5))
    assert [e.id for e in everything] == [e.id for e in stored]

    page = client.beta.sessions.events.list(s.id, limit=5)
    pages = 0
    for p in page.iter_pages():
        pages += 1
        assert len(p.data) <= 5
        assert pages < 100, "pagination does not terminate"
    assert pages >= 5

    tools = list(client.beta.sessions.events.list(s.id, types=["agent.tool_use"]))
    assert [e.type for e in tools] == ["agent.tool_use"]
    assert tools[0].name == "grep"

    msgs = list(client.beta.sessions.events.list(s.id, types=["user.message"], limit=4))
    assert [e.id for e in msgs] == [e.id for e in stored if e.type == "user.message"]

    desc = list(client.beta.sessions.events.list(s.id, order="desc", limit=7))
    assert [e.id for e in desc] == [e.id for e in reversed(stored)]
    client.beta.sessions.delete(s.id)


def test_stream_live_tail_while_another_thread_appends(client: Anthropic):
    s = new_session(client, metadata={"role": "stream"})
    client.beta.sessions.events.send(s.id, events=[user_message("history, not in the live tail")])
    payload = [user_message("live one"), user_message("live two")]
    result: dict = {}

    def append_later():
        time.sleep(0.2)
        result["sent"] = client.beta.sessions.events.send(s.id, events=payload).data

    # timeout=10: a read that sees no bytes for 10 s raises instead of hanging.
    stream = client.beta.sessions.events.stream(s.id, timeout=10)
    t = threading.Thread(target=append_later)
    t.start()
    got = []
    try:
        for ev in stream:
            got.append(ev)
            if len(got) >= len(payload):
                break
    finally:
        stream.close()
        t.join()
    assert [e.id for e in got] == [e.id for e in result["sent"]]
    assert [e.content[0].text for e in got] == ["live one", "live two"]
    client.beta.sessions.delete(s.id)


def test_update_list_archive(client: Anthropic):
    s = new_session(client, title="before", metadata={"role": "upd", "gone": "soon"})
    u = client.beta.sessions.update(s.id, title="after", metadata={"gone": None, "new": "v"})
    assert u.title == "after"
    assert u.metadata == {"run": RUN, "role": "upd", "new": "v"}
    updates = list(client.beta.sessions.events.list(s.id, types=["session.updated"]))
    assert len(updates) == 1

    q = {"metadata[run]": RUN, "metadata[role]": "upd"}
    assert [x.id for x in client.beta.sessions.list(extra_query=q)] == [s.id]
    a = client.beta.sessions.archive(s.id)
    assert a.archived_at is not None
    assert a.status == "terminated"
    assert list(client.beta.sessions.list(extra_query=q)) == []
    shown = list(client.beta.sessions.list(include_archived=True, extra_query=q))
    assert [x.id for x in shown] == [s.id]
    client.beta.sessions.delete(s.id)


def test_error_classes(client: Anthropic, no_retry: Anthropic):
    with pytest.raises(NotFoundError) as ei:
        no_retry.beta.sessions.retrieve(MISSING)
    assert ei.value.status_code == 404
    assert ei.value.body["type"] == "error"
    assert ei.value.body["error"]["type"] == "not_found_error"

    with pytest.raises(NotFoundError):
        no_retry.beta.sessions.update(MISSING, title="x")
    with pytest.raises(NotFoundError):
        no_retry.beta.sessions.delete(MISSING)

    bad = Anthropic(base_url=BASE_URL, api_key="ds_not_a_real_key", max_retries=0)
    with pytest.raises(AuthenticationError) as ei:
        bad.beta.sessions.list()
    assert ei.value.status_code == 401
    assert ei.value.body["error"]["type"] == "authentication_error"

    s = new_session(client, metadata={"role": "bad-request"})
    with pytest.raises(BadRequestError) as ei:
        no_retry.beta.sessions.events.send(s.id, events=[])
    assert ei.value.status_code == 400
    assert ei.value.body["error"]["type"] == "invalid_request_error"
    client.beta.sessions.delete(s.id)


def test_tenant_isolation(client: Anthropic, client_b: Anthropic):
    s = new_session(client, title="A only", metadata={"role": "iso"})
    client.beta.sessions.events.send(s.id, events=[user_message("secret")])
    b = client_b.with_options(max_retries=0)
    with pytest.raises(NotFoundError):
        b.beta.sessions.retrieve(s.id)
    with pytest.raises(NotFoundError):
        list(b.beta.sessions.events.list(s.id))
    with pytest.raises(NotFoundError):
        b.beta.sessions.update(s.id, title="pwned")
    with pytest.raises(NotFoundError):
        b.beta.sessions.delete(s.id)
    ids_b = {x.id for x in b.beta.sessions.list(include_archived=True, limit=1000)}
    assert s.id not in ids_b
    assert list(b.beta.sessions.list(include_archived=True, extra_query={"metadata[run]": RUN})) == []
    r = client.beta.sessions.retrieve(s.id)
    assert r.title == "A only"
    assert len(list(client.beta.sessions.events.list(s.id))) == 1
    client.beta.sessions.delete(s.id)


def stream_types_while(client: Anthropic, session_id: str, action) -> list[str]:
    """The event types the SDK's stream of the session yields while `action` runs on another
    thread (it starts 0.2 s after the stream opens); the stream must end by itself."""
    stream = client.beta.sessions.events.stream(session_id, timeout=10)

    def later():
        time.sleep(0.2)
        action()

    t = threading.Thread(target=later)
    t.start()
    got = []
    try:
        for ev in stream:
            got.append(ev.type)
    finally:
        stream.close()
        t.join()
    return got


def test_stream_ends_with_session_deleted(client: Anthropic):
    s = new_session(client, metadata={"role": "stream-delete"})
    got = stream_types_while(client, s.id, lambda: client.beta.sessions.delete(s.id))
    assert got and got[-1] == "session.deleted", got


def test_stored_error_and_ping_events_do_not_break_the_sdk_stream(client: Anthropic):
    # The SDK raises on an SSE message named `error` and drops one named `ping`: stored events of
    # those types must still arrive as ordinary events, and the stream must go on.
    s = new_session(client, metadata={"role": "stream-error-type"})

    def append_then_delete():
        client.beta.sessions.events.send(s.id, events=[
            {"type": "error", "error": {"type": "x", "message": "user data"}},
            {"type": "ping"},
            {"type": "user.message", "content": [{"type": "text", "text": "after"}]}])
        time.sleep(0.2)
        client.beta.sessions.delete(s.id)

    got = stream_types_while(client, s.id, append_then_delete)
    assert got == ["error", "ping", "user.message", "session.deleted"], got


def test_create_with_initial_events_and_list_filters(client: Anthropic):
    s = client.beta.sessions.create(
        agent={"type": "agent", "id": "agent_typed", "version": 2},
        environment_id="env_py",
        metadata={"run": RUN, "role": "initial"},
        initial_events=[user_message("first")],
    )
    assert s.agent.id == "agent_typed" and s.agent.version == 2
    evs = list(client.beta.sessions.events.list(s.id))
    assert [e.type for e in evs] == ["user.message"]
    client.beta.sessions.events.send(s.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "x"}]}])
    assert as_dict(client.beta.sessions.retrieve(s.id))["event_count"] == 2
    idle = list(client.beta.sessions.list(statuses=["idle"], agent_id="agent_typed",
                                          extra_query={"metadata[run]": RUN}))
    assert [x.id for x in idle] == [s.id]
    running = list(client.beta.sessions.list(statuses=["running"], extra_query={"metadata[run]": RUN}))
    assert running == []
    client.beta.sessions.delete(s.id)
