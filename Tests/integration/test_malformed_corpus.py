"""Malformed-request corpus (framing-bug classes that HTTP differential fuzzers report), checked
against the live server and cross-checked with the h11 parser's verdict."""
import json

import h11
import pytest

from conftest import parse_responses, raw_exchange

P = b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\n"
G = b"GET /v2/health/live HTTP/1.1\r\n"

# (name, bytes, expected status) — every one must be a precise 4xx/505 and close the connection.
CORPUS = [
    ("cl-plus", P + b"Content-Length: +5\r\n\r\nhello", 400),
    ("cl-underscore", P + b"Content-Length: 1_0\r\n\r\nhellohello", 400),
    ("cl-hex", P + b"Content-Length: 0x5\r\n\r\nhello", 400),
    ("cl-leading-space-in-value", P + b"Content-Length:  \t5\r\n\r\nhello", None),  # OWS is legal: accepted
    ("cl-negative", P + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-list", P + b"Content-Length: 5, 5\r\n\r\nhello", 400),
    ("cl-duplicate-equal", P + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("cl-duplicate-different", P + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("cl-and-te", P + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-not-chunked-last", P + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("te-unknown", P + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("te-chunked-twice", P + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-in-http10", b"POST /v2/models/digits/infer HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("chunk-size-not-hex", P + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-overflow", P + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400),
    ("chunk-size-negative", P + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n", 400),
    ("chunk-missing-crlf", P + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
    ("chunk-bad-extension", P + b"Transfer-Encoding: chunked\r\n\r\n5;\x01=1\r\nhello\r\n0\r\n\r\n", 400),
    ("bare-lf", b"GET /v2/health/live HTTP/1.1\nHost: x\n\n", 400),
    ("bare-cr", b"GET /v2/health/live HTTP/1.1\rHost: x\r\r\n\r\n", 400),
    ("nul-in-value", G + b"Host: x\x00y\r\n\r\n", 400),
    ("cr-in-value", G + b"Host: x\ry\r\n\r\n", 400),
    ("space-before-colon", G + b"Host : x\r\n\r\n", 400),
    ("obs-fold", G + b"Host: localhost\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("whitespace-before-first-header", G + b" Host: localhost\r\n\r\n", 400),
    ("no-host-http11", b"GET /v2/health/live HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", G + b"Host: localhost\r\nHost: y\r\n\r\n", 400),
    ("version-1-32", b"GET / HTTP/1.32\r\nHost: localhost\r\n\r\n", 400),
    ("version-2-on-h1", b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 505),
    ("version-lowercase", b"GET / http/1.1\r\nHost: localhost\r\n\r\n", 400),
    ("relative-target", b"GET v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    ("huge-request-line", b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
    ("ten-thousand-headers", G + b"Host: localhost\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(10000)) + b"\r\n", 431),
    ("huge-header", G + b"Host: localhost\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ("bad-method-char", b"G(T /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
]


def h11_verdict(data):
    """'ok' when h11 (as a server) accepts the first request, else 'reject'."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=65536)
    conn.receive_data(data)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return "incomplete"
            if isinstance(event, (h11.EndOfMessage,)):
                return "ok"
    except h11.RemoteProtocolError:
        return "reject"


@pytest.mark.parametrize("name,data,status", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_vector(server, name, data, status):
    answer = raw_exchange(server.port, data, read_until_close=True, timeout=5)
    responses = parse_responses(answer)
    assert responses, f"{name}: no response"
    got, headers, body = responses[0]
    if status is None:
        assert got < 500, f"{name}: {got}"
        return
    assert got == status, f"{name}: got {got} {body!r}"
    assert got < 500 or got == 505
    assert headers["content-type"] == "application/json" and "error" in json.loads(body)
    assert headers.get("connection") == "close", f"{name}: framing is unknown, the connection must close"
    assert len(responses) == 1, f"{name}: more than one response (desynchronised)"


def test_we_reject_everything_h11_rejects():
    """Differential check: every vector h11 refuses, we refuse too (we are stricter on some:
    duplicate equal Content-Length, TE in HTTP/1.0, 'identity' TE, bare CR in values)."""
    stricter = []
    for name, data, status in CORPUS:
        verdict = h11_verdict(data)
        if verdict == "reject":
            assert status is not None and status >= 400, f"h11 rejects {name} but the corpus expects acceptance"
        elif status is not None and verdict == "ok":
            stricter.append(name)
    print("stricter than h11 on:", stricter)
    assert len(stricter) < len(CORPUS) // 2


def test_smuggling_attempts_do_not_desynchronise(server):
    # A body that looks like a second request stays body: one response only.
    inner = b"GET /v2/health/ready HTTP/1.1\r\nHost: localhost\r\n\r\n"
    data = P + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(inner) + inner
    responses = parse_responses(raw_exchange(server.port, data, read_until_close=True))
    assert len(responses) == 1 and responses[0][0] == 400  # the "body" is not valid JSON
    # CL.TE: the server refuses the ambiguous request and closes, so the tail is never parsed.
    data = P + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v2/health/ready HTTP/1.1\r\nHost: localhost\r\n\r\n"
    responses = parse_responses(raw_exchange(server.port, data, read_until_close=True))
    assert len(responses) == 1 and responses[0][0] == 400
    # Chunked body with a smuggled request after the terminating chunk, then a real pipelined one:
    # exactly two answers, in order.
    data = (P + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + b"GET /v2/health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    responses = parse_responses(raw_exchange(server.port, data, read_until_close=True))
    assert [r[0] for r in responses] == [400, 200]
    # truncated body: the server waits, then times out or sees the close; never answers twice
    responses = parse_responses(raw_exchange(server.port, P + b"Content-Length: 100\r\n\r\nshort", read_until_close=True, timeout=3))
    assert len(responses) <= 1
