"""Slow and hostile clients must not keep a normal client from being served."""
import socket
import threading
import time

import pytest
import requests

from conftest import DEFAULT_ENDPOINTS, ROOT, ServerProcess, parse_responses, raw_exchange, write_config

ONE = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_bytes()


@pytest.fixture()
def guarded(tmp_path):
    # every test client connects from 127.0.0.1: one address may hold all the slots here
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={
        "headerReadTimeoutSeconds": 2, "bodyReadTimeoutSeconds": 2, "maxConnections": 400, "maxConnectionsPerClient": 400}))
    yield s
    assert s.stop() == 0, "".join(s.stderr_lines)[-2000:]


def timed_infer(base):
    start = time.time()
    r = requests.post(base + "/v2/models/digits/infer", data=ONE, timeout=5)
    return r.status_code, time.time() - start


def test_slowloris_and_slow_bodies_do_not_block_a_normal_client(guarded):
    stop = threading.Event()
    socks = []
    for i in range(300):
        s = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
        if i % 3 == 0:  # slow body: honest headers, then a byte now and then
            s.sendall(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4000\r\n\r\n{")
        else:  # slowloris: headers that never end
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n")
        socks.append(s)

    def trickle():
        while not stop.is_set():
            for s in socks:
                try:
                    s.send(b"X-Slow: 1\r\n" if s.fileno() % 3 else b" ")
                except OSError:
                    pass
            stop.wait(0.3)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        for _ in range(5):
            status, seconds = timed_infer(guarded.url)
            assert status == 200
            assert seconds < 1.0, f"a normal request took {seconds:.2f} s behind 300 slow clients"
            time.sleep(0.2)
        # after the header/body timeouts every slow connection has been answered (408) or closed
        time.sleep(2.5)
        closed = 0
        for s in socks:
            s.settimeout(0.5)
            try:
                data = s.recv(4096)
                if not data or b" 408 " in data:
                    closed += 1
            except ConnectionResetError:
                closed += 1
            except socket.timeout:
                pass  # still open: the server has not given up on it
        assert closed >= 290, f"only {closed} of 300 slow connections were timed out"
    finally:
        stop.set()
        t.join()
        for s in socks:
            s.close()
    assert timed_infer(guarded.url)[0] == 200


def test_connection_cap_refuses_cleanly(tmp_path):
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"maxConnections": 20, "maxConnectionsPerClient": 20}))
    idle = []
    try:
        for _ in range(20):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
            idle.append(c)
        data = raw_exchange(s.port, b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n", read_until_close=True)
        (status, headers, body), = parse_responses(data)
        assert status == 503 and headers["retry-after"] == "1" and b"error" in body
        assert headers["connection"] == "close"
        for c in idle:
            c.close()
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                if requests.get(s.url + "/v2/health/live", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the server did not accept connections again after the idle ones closed")
    finally:
        for c in idle:
            c.close()
        assert s.stop() == 0
