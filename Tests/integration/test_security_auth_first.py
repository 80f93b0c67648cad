"""Issue 15, item 5: the key is checked from the headers before a body is read, inflated or
parsed, on every route; request bodies share a global memory budget (503 + Retry-After above it)."""
import gzip
import socket
import threading
import time

import pytest
import requests

from conftest import DEFAULT_ENDPOINTS, ROOT, ServerProcess, parse_responses, write_config
from security_support import INFER_KEY, ONE, HealthWatch, rss_bytes

AUTH = {"Authorization": f"Bearer {INFER_KEY}"}
BOMB = gzip.compress(b'{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[' + b"0," * (31 << 20) + b'0]}]}',
                     compresslevel=9)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    minilm = ROOT / "models" / "minilm-l6"
    endpoints = list(DEFAULT_ENDPOINTS[:1])
    if (minilm / "model.safetensors").exists():
        endpoints.append({"name": "minilm", "model": str(minilm), "maxBodyBytes": 65536})
    s = ServerProcess(write_config(tmp_path_factory.mktemp("auth"), endpoints, server={
        "apiKeys": [INFER_KEY], "maxBodyBytes": 64 << 20, "maxTotalBodyBytes": 96 << 20}))
    yield s
    assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def send_head_only(port, path, length, extra=b""):
    """Sends a request head announcing `length` body bytes and returns the answer without
    sending any body (the server must answer from the headers alone)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                  % (path.encode(), length, extra))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return parse_responses(data)


@pytest.mark.parametrize("path", ["/v2/models/digits/infer", "/v1/embeddings", "/v2/repository/index",
                                  "/v2/repository/models/digits/load"])
def test_unauthenticated_bodies_are_not_read(keyed, path):
    (status, headers, body), = send_head_only(keyed.port, path, 50_000_000)
    assert status == (403 if "repository/models" in path else 401), body  # the admin API is off here
    assert headers["connection"] == "close"


def test_gzip_bomb_without_key_is_not_inflated(keyed):
    rss0 = rss_bytes(keyed.proc.pid)
    with HealthWatch(keyed, interval=0.05) as watch:
        for _ in range(3):
            start = time.time()
            r = requests.post(keyed.url + "/v2/models/digits/infer", data=BOMB, timeout=10,
                              headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
            assert r.status_code == 401
            assert time.time() - start < 1.0
    watch.assert_healthy(rss_limit=rss0 + (64 << 20))


def test_embeddings_key_is_checked_before_parsing(keyed):
    r = requests.post(keyed.url + "/v1/embeddings", data=b"{not json", timeout=5, headers={"Content-Type": "application/json"})
    assert r.status_code == 401, r.text


def test_concurrent_bomb_bodies_stay_within_the_budget(keyed):
    # With a key, two 64 MiB-decoded bodies at once: the server answers each (413 from the cap, 503
    # over the shared budget, or 400 for the model) without stalling health or growing unboundedly.
    rss0 = rss_bytes(keyed.proc.pid)
    statuses = []

    def one():
        r = requests.post(keyed.url + "/v2/models/digits/infer", data=BOMB, timeout=60,
                          headers={**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"})
        statuses.append((r.status_code, r.headers.get("Retry-After")))

    with HealthWatch(keyed, interval=0.05) as watch:
        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    watch.assert_healthy(rss_limit=rss0 + (1 << 30))
    assert all(code in (400, 413, 503) for code, _ in statuses), statuses
    assert all(retry == "1" for code, retry in statuses if code == 503), statuses
    assert requests.post(keyed.url + "/v2/models/digits/infer", data=ONE, headers=AUTH, timeout=5).status_code == 200
