"""HTTP/1.1 behaviour of the real server on raw loopback sockets, curl and h11."""
import json
import socket
import subprocess
import time

import h11

from conftest import ROOT, parse_responses, raw_exchange

ONE = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_bytes()


def infer_request(body=ONE, extra=b""):
    return (b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_keep_alive_sequence_on_one_socket(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        conn = h11.Connection(h11.CLIENT)
        for i in range(5):
            path = "/v2/health/live" if i % 2 == 0 else "/v2/models/digits"
            sock.sendall(conn.send(h11.Request(method="GET", target=path, headers=[("Host", "localhost")])))
            sock.sendall(conn.send(h11.EndOfMessage()))
            body = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(sock.recv(65536))
                    continue
                if isinstance(event, h11.Response):
                    assert event.status_code == 200
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            json.loads(body)
            conn.start_next_cycle()


def test_pipelined_requests_answered_in_order(server):
    payload = (b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n" + infer_request() +
               b"GET /v2/models/nope HTTP/1.1\r\nHost: localhost\r\n\r\n" +
               b"GET /v2/health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    responses = parse_responses(raw_exchange(server.port, payload, read_until_close=True))
    assert [r[0] for r in responses] == [200, 200, 404, 200]
    assert json.loads(responses[1][2])["model_name"] == "digits"
    assert json.loads(responses[3][2]) == {"ready": True}


def test_chunked_request_body(server):
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(ONE[i:i + 100]), ONE[i:i + 100]) for i in range(0, len(ONE), 100))
    payload = (b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + chunks + b"0\r\nX-Trailer: y\r\n\r\n")
    responses = parse_responses(raw_exchange(server.port, payload, read_until_close=True))
    assert responses[0][0] == 200
    assert json.loads(responses[0][2])["model_name"] == "digits"


def test_expect_100_continue_with_curl(server):
    out = subprocess.run(["curl", "-sv", "--max-time", "10", "-H", "Expect: 100-continue",
                          f"http://{server.authority}/v2/models/digits/infer", "--data-binary", f"@{ROOT / 'Tests' / 'fixtures' / 'digits-one.json'}"],
                         capture_output=True, timeout=20)
    assert b"HTTP/1.1 100 Continue" in out.stderr
    assert json.loads(out.stdout)["model_name"] == "digits"


def test_http10_closes_by_default(server):
    data = raw_exchange(server.port, b"GET /v2/health/live HTTP/1.0\r\n\r\n", read_until_close=True)
    assert data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
    assert len(parse_responses(data)) == 1


MALFORMED = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /v2/health/live HTTP/9.9\r\nHost: localhost\r\n\r\n", 505),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n", 431),
    (b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    (b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello", 400),
    (b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x5\r\n\r\nhello", 400),
    (b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"GET /v2/health/live HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    (b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n folded\r\n\r\n", 400),
    (b"GET /v2/health/live HTTP/1.1\nHost: x\n\n", 400),
    (b"GET /v2/health/live HTTP/1.1\r\nHost: x\x00y\r\n\r\n", 400),
    (b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999\r\n\r\n", 413),
]


def test_malformed_requests_get_precise_4xx_and_server_survives(server):
    for payload, status in MALFORMED:
        data = raw_exchange(server.port, payload, read_until_close=True)
        responses = parse_responses(data)
        assert responses, f"no response to {payload[:60]!r}"
        got, headers, body = responses[0]
        assert got == status, f"{payload[:60]!r}: got {got} {body!r}"
        assert headers["content-type"] == "application/json"
        assert "error" in json.loads(body)
    # random junk and abrupt disconnects
    for junk in [b"\x00" * 100, b"\r\n" * 50, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab"]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(junk)
    # the server still serves normal traffic
    responses = parse_responses(raw_exchange(server.port, infer_request(extra=b"Connection: close\r\n"), read_until_close=True))
    assert responses[0][0] == 200
    assert server.alive()


def test_header_read_timeout_gives_408(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n")
        start = time.time()
        data = b""
        while time.time() - start < 8:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 408"), data
        assert time.time() - start < 6
