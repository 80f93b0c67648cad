"""Issue 15, item 7: one client address cannot hold every connection slot (per-client cap), and
connections that never send a request are dropped after a short timeout; health keeps answering."""
import socket
import time

import pytest
import requests

from conftest import DEFAULT_ENDPOINTS, ServerProcess, write_config
from security_support import HealthWatch, idle_sockets


@pytest.fixture()
def capped(tmp_path):
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={
        "maxConnections": 64, "maxConnectionsPerClient": 16, "firstRequestTimeoutSeconds": 2, "idleTimeoutSeconds": 60}))
    yield s
    assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def test_idle_sockets_from_one_address_do_not_starve_health(capped):
    with HealthWatch(capped) as watch:
        hogs = idle_sockets(capped.port, 200, source="127.0.0.2")
        try:
            time.sleep(0.5)
            for _ in range(10):
                r = requests.get(f"http://{capped.authority}/v2/health/ready", timeout=2)
                assert r.status_code == 200
        finally:
            for s in hogs:
                s.close()
    watch.assert_healthy()


def test_silent_connections_are_closed_after_the_first_request_timeout(capped):
    hogs = idle_sockets(capped.port, 10, source="127.0.0.2")
    start = time.time()
    closed = 0
    for s in hogs:
        s.settimeout(5)
        try:
            if s.recv(1) == b"":
                closed += 1
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass
        s.close()
    assert closed == 10
    assert time.time() - start < 4.5, "silent connections must be dropped after firstRequestTimeoutSeconds"


def test_default_first_request_timeout_keeps_the_global_cap_free(tmp_path):
    # the reported attack with default settings: idle sockets up to the global cap (from one
    # address): health recovers within the short first-request timeout, not after 60 s
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"maxConnections": 32}))
    try:
        hogs = idle_sockets(s.port, 40, source="127.0.0.2")
        time.sleep(0.2)
        r = requests.get(f"http://{s.authority}/v2/health/live", timeout=2)
        assert r.status_code == 200, "the per-client cap leaves room for another address"
        for h in hogs:
            h.close()
    finally:
        assert s.stop() == 0
