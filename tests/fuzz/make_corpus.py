#!/usr/bin/env python3
"""Writes the seed corpus under tests/fuzz/corpus/<target>/ (idempotent; overwrites seeds).

Seeds are request shapes taken from the conformance suite (tests/compat) and the session tests
(tests/system/sessions_curl_test.py): stream create/append/read with offsets, JSON mode, producer
headers, Stream-Seq, TTL/Expires-At, forks, close, long-poll and SSE; session create/append/list/
read/live/archive/delete. Run: python3 tests/fuzz/make_corpus.py
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def req(method, target, headers=(), body=b""):
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def seq(*reqs):
    return b"".join(reqs)


S = "/v1/stream/fz"
TXT = ("Content-Type", "text/plain")
JSN = ("Content-Type", "application/json")
E1 = '{"type":"user.message","content":[{"type":"text","text":"hi"}]}'

http = [
    req("GET", "/healthz"), req("GET", "/readyz"), req("GET", "/metrics"),
    req("OPTIONS", S, [("Origin", "https://a.example"), ("Access-Control-Request-Method", "PUT"),
                       ("Access-Control-Request-Headers", "content-type, producer-id")]),
    req("GET", "/v1/agents"),
    # Durable Streams: create, append, read at offsets, HEAD, close, delete.
    seq(req("PUT", S, [TXT]), req("POST", S, [TXT], "hello"), req("GET", S + "?offset=-1"),
        req("GET", S + "?offset=0000000000000001"), req("HEAD", S)),
    seq(req("PUT", S, [JSN], "[1,2]"), req("POST", S, [JSN], '[{"a":1},{"b":[true,null]}]'),
        req("GET", S + "?offset=0000000000000000_0000000000000000")),
    seq(req("PUT", S, [TXT, ("Stream-TTL", "3600")]), req("GET", S + "?offset=now")),
    seq(req("PUT", S, [TXT, ("Stream-Expires-At", "2099-01-02T03:04:05.678+01:00")]), req("HEAD", S)),
    seq(req("PUT", S, [TXT]), req("POST", S, [TXT, ("Stream-Seq", "00000001")], "a"),
        req("POST", S, [TXT, ("Stream-Seq", "00000001")], "b")),
    seq(req("PUT", S, [TXT]),
        req("POST", S, [TXT, ("Producer-Id", "p1"), ("Producer-Epoch", "0"), ("Producer-Seq", "0")], "x"),
        req("POST", S, [TXT, ("Producer-Id", "p1"), ("Producer-Epoch", "0"), ("Producer-Seq", "0")], "x"),
        req("POST", S, [TXT, ("Producer-Id", "p1"), ("Producer-Epoch", "1"), ("Producer-Seq", "5")], "y")),
    seq(req("PUT", S, [TXT]), req("POST", S, [TXT], "a"),
        req("PUT", S + "2", [TXT, ("Stream-Forked-From", S), ("Stream-Fork-Offset", "0000000000000001")]),
        req("GET", S + "2?offset=-1")),
    seq(req("PUT", S, [TXT]), req("POST", S, [TXT, ("Stream-Closed", "true")], "end"),
        req("POST", S, [TXT], "late"), req("GET", S + "?offset=-1")),
    seq(req("PUT", S, [TXT]), req("GET", S + "?offset=-1&live=long-poll"),
        req("GET", S + "?offset=now&live=long-poll&cursor=abc")),
    seq(req("PUT", S, [JSN]), req("POST", S, [JSN], '{"m":1}'), req("GET", S + "?offset=-1&live=sse")),
    seq(req("PUT", S, [("Content-Type", "application/octet-stream")]),
        req("POST", S, [("Content-Type", "application/octet-stream")], b"\x00\x01\xff"),
        req("GET", S + "?offset=-1&live=sse")),
    seq(req("PUT", S, [TXT]), req("GET", S + "?offset=-1", [("If-None-Match", '"1:0:0"')]),
        req("DELETE", S), req("GET", S + "?offset=-1")),
    # Sessions API.
    seq(req("POST", "/v1/sessions", [JSN], '{"title":"t","metadata":{"k":"v"}}'), req("GET", "/v1/sessions?limit=5")),
    seq(req("PUT", "/v1/sessions/sesn_fuzz1", [JSN], '{"title":"x"}'),
        req("POST", "/v1/sessions/sesn_fuzz1/events", [JSN], '{"events":[' + E1 + ']}'),
        req("GET", "/v1/sessions/sesn_fuzz1/events?offset=-1"),
        req("HEAD", "/v1/sessions/sesn_fuzz1/events"), req("GET", "/v1/sessions/sesn_fuzz1")),
    seq(req("POST", "/v1/sessions/sesn_fuzz2/events", [JSN], "[" + E1 + "," + E1 + "]"),
        req("GET", "/v1/sessions/sesn_fuzz2/events?live=sse&offset=-1"),
        req("GET", "/v1/sessions/sesn_fuzz2/events?live=long-poll&offset=now"),
        req("GET", "/v1/sessions/sesn_fuzz2/stream")),
    seq(req("POST", "/v1/sessions/sesn_fuzz3/events", [JSN], E1),
        req("POST", "/v1/sessions/sesn_fuzz3", [JSN], '{"metadata":{"k":null,"n":"1"}}'),
        req("GET", "/v1/sessions?metadata%5Bn%5D=1&include_archived=true"),
        req("POST", "/v1/sessions/sesn_fuzz3/archive"), req("GET", "/v1/sessions/sesn_fuzz3/export"),
        req("DELETE", "/v1/sessions/sesn_fuzz3"), req("GET", "/v1/sessions/sesn_fuzz3")),
    seq(req("POST", "/v1/sessions/sesn_fuzz4/events", [JSN, ("Producer-Id", "p"), ("Producer-Epoch", "0"),
                                                       ("Producer-Seq", "0")], E1),
        req("POST", "/v1/sessions/sesn_fuzz4/events", [("Stream-Closed", "true")], ""),
        req("GET", "/v1/sessions/sesn_fuzz4/events?offset=0000000000000000&type=user.message")),
    req("GET", "/v1/sessions/a%2Fb%00c/events"),
    b"POST /v1/sessions/c/events HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: application/json\r\n\r\n5\r\n[{\"ty\r\n1a\r\npe\":\"user.message\"}]\r\n0\r\n\r\n",
    req("GET", "/v1/search?q=hello%20type:user.message&limit=3"),
]
for h in http:
    write("fuzz_http_request", h)


def ev(max_events, body, ms=1767323045678):
    return bytes([max_events]) + ms.to_bytes(6, "big") + body.encode()


for b in ['{"events":[' + E1 + ']}', "[" + E1 + "," + E1 + "]", E1,
          '{"type":"x","id":"evil","offset":"9","created_at":"no","processed_at":1,"type":"y"}',
          '{"type":"a\\u0000\\"b","k\\n":"\\ud83d\\ude00"}', '{"events":[]}', "[]", '{"type":""}',
          '[{"type":"a"},1]', '"str"', '{"events":{"type":"x"}}', '[[1,2],{"a":[]}]', "1e999",
          '{"type":"t","nested":{"deep":[[[[{"x":null}]]]]}}']:
    write("fuzz_event_body", ev(9, b))

for s in ["0000000000000145", "00000145", "-1", "now", "0000000000000000_0000000000000000",
          "18446744073709551615", "9999999999999999999", "0", "007", "9007199254740991",
          "a=1&b=%20x+y&a=2", "metadata%5Bn%5D=1&limit=5", "%zz", "%4", "&&=&", "offset=-1&live=sse",
          "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.678+05:30", "1970-01-01T00:00:00.000Z",
          "9999-12-31T23:59:60.999999-23:59", "2026-13-40T25:61:61Z"]:
    write("fuzz_offset_query", s)


def frame(closes=False, first=0, ms=0, producer=None, sseq=None, msgs=()):
    flags = (1 if closes else 0) | (2 if producer else 0) | (4 if sseq is not None else 0)
    body = struct.pack("<BQIQ", flags, first, len(msgs), ms)
    if producer:
        pid, ep, sq = producer
        body += struct.pack("<I", len(pid)) + pid + struct.pack("<QQ", ep, sq)
    if sseq is not None:
        body += struct.pack("<I", len(sseq)) + sseq
    for m in msgs:
        body += struct.pack("<I", len(m)) + m
    # mode 1 patches the checksum, so a zero checksum is fine for the seeds
    return struct.pack("<IIQ", 0x31465344, len(body), 0) + body


for mode in (0, 1):
    for f in [frame(msgs=[b"hello", b""]), frame(True, 7, 1767323045678, (b"p1", 1, 2), b"00000001", [b"x"]),
              frame(), frame(sseq=b"", msgs=[b"\x00" * 40])]:
        write("fuzz_frame", bytes([mode]) + f)
write("fuzz_frame", bytes([2]) + os.urandom(0) + b"\x01" * 64)
write("fuzz_frame", bytes([2]) + bytes(range(256)))

for q in ['hello world', '"exact phrase" type:user.message', 'a OR b c', '-draft report NOT old',
          'foo-bar agent.tool_use', '-type:agent.thinking tool', '"unterminated', 'OR', '-', 'type:',
          'x OR -y', '"" a']:
    write("fuzz_search_query", q)

for seedbytes in [bytes(range(200)), b"GET\x00/bucket/a b\x00" * 8, b"\xff" * 120,
                  b"PUT/k?x=1&y=%2F\x03host\x0820150830T123600Z" * 3]:
    write("fuzz_sigv4", seedbytes)
