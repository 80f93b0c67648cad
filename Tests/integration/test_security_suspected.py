"""Issue 15, the suspected items, checked against the real server."""
import json
import shutil
import signal
import ssl
import subprocess
import time

import pytest
import requests

from conftest import BINARY, DEFAULT_ENDPOINTS, ROOT, ServerProcess, write_config
from security_support import INFER_KEY, HealthWatch, rss_bytes

MINILM = ROOT / "models" / "minilm-l6"
needs_minilm = pytest.mark.skipif(not (MINILM / "model.safetensors").exists(), reason="models/minilm-l6 is absent (scripts/fetch-minilm.sh)")
AUTH = {"Authorization": f"Bearer {INFER_KEY}"}


@pytest.fixture(scope="module")
def text_server(tmp_path_factory):
    if not (MINILM / "model.safetensors").exists():
        pytest.skip("models/minilm-l6 is absent (scripts/fetch-minilm.sh)")
    s = ServerProcess(write_config(tmp_path_factory.mktemp("text"), [
        {"name": "minilm", "model": str(MINILM), "maxBodyBytes": 65536}], server={"maxBodyBytes": 64 << 20}))
    yield s
    assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def test_embeddings_honour_the_endpoint_body_limit(text_server):
    body = json.dumps({"model": "minilm", "input": "word " * 40000}).encode()  # 200 KB > 64 KiB
    r = requests.post(text_server.url + "/v1/embeddings", data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 413, r.text[:300]


def test_long_text_is_bounded_before_tokenizing(tmp_path):
    if not (MINILM / "model.safetensors").exists():
        pytest.skip("models/minilm-l6 is absent")
    s = ServerProcess(write_config(tmp_path, [{"name": "minilm", "model": str(MINILM)}], server={"maxBodyBytes": 64 << 20}))
    try:
        text = ("lorem ipsum dolor sit amet " * 620000)[:16 << 20]
        rss0 = rss_bytes(s.proc.pid)
        with HealthWatch(s) as watch:
            for truncate in [False, True]:
                start = time.time()
                r = requests.post(s.url + "/v1/embeddings", timeout=30, headers={"Content-Type": "application/json"},
                                  data=json.dumps({"model": "minilm", "input": text, **({"truncate": True} if truncate else {})}))
                elapsed = time.time() - start
                assert r.status_code in ((200,) if truncate else (413, 422)), r.text[:300]
                assert elapsed < 1.0, f"{elapsed:.2f} s for 16 MB of text (truncate={truncate})"
        watch.assert_healthy(rss_limit=rss0 + (160 << 20))
    finally:
        assert s.stop() == 0


def test_model_ready_does_not_reveal_names_without_a_key(tmp_path):
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"apiKeys": [INFER_KEY]}))
    try:
        known = requests.get(s.url + "/v2/models/digits/ready", timeout=5)
        unknown = requests.get(s.url + "/v2/models/no-such-model/ready", timeout=5)
        assert known.status_code == unknown.status_code == 401
        assert requests.get(s.url + "/v2/models/digits/ready", headers=AUTH, timeout=5).status_code == 200
        assert requests.get(s.url + "/v2/health/ready", timeout=5).status_code == 200  # probes stay public
    finally:
        assert s.stop() == 0


def test_artifact_metadata_does_not_expose_filesystem_paths(tmp_path):
    artifact = tmp_path / "digits-nm"
    r = subprocess.run([BINARY, "compress", "--model", str(ROOT / "models" / "digits-mlp"), "--out", str(artifact),
                        "--compression", json.dumps({"method": "nm", "n": 2, "m": 4})],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    s = ServerProcess(write_config(tmp_path, [{"name": "digits-nm", "model": str(artifact)}]))
    try:
        for path in ["/v2/models/digits-nm", "/v2/models/digits-nm/config"]:
            text = requests.get(s.url + path, timeout=5).text
            assert str(ROOT) not in text and str(tmp_path) not in text, text
    finally:
        assert s.stop() == 0


def test_batched_compute_time_is_measured(tmp_path):
    s = ServerProcess(write_config(tmp_path, [{"name": "digits-batched", "model": str(ROOT / "models" / "digits-mlp"),
                                               "batching": {"maxBatchSize": 64, "maxQueueDelayMicroseconds": 100}}]))
    try:
        x = [[float(i % 17) for i in range(64)]] * 64
        body = {"inputs": [{"name": "input", "shape": [64, 64], "datatype": "FP32", "data": sum(x, [])}]}
        for _ in range(50):
            assert requests.post(s.url + "/v2/models/digits-batched/infer", json=body, timeout=5).status_code == 200
        stats = requests.get(s.url + "/v2/models/digits-batched/stats", timeout=5).json()["model_stats"][0]["inference_stats"]
        compute = stats["compute_infer"]
        assert compute["count"] == 50
        assert compute["ns"] / compute["count"] > 10_000, f"compute time per batched request reads {compute['ns'] / 50:.0f} ns"
    finally:
        assert s.stop() == 0


def make_cert(directory, name, common_name):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={common_name}",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", f"{name}.key", "-out", f"{name}.pem"],
                   cwd=directory, check=True, capture_output=True, timeout=60)


def served_common_name(port):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der, capture_output=True, timeout=10).stdout
    return text.decode()


def test_tls_certificate_is_reloaded_on_sighup(tmp_path):
    make_cert(tmp_path, "first", "first-cert")
    make_cert(tmp_path, "second", "second-cert")
    shutil.copy(tmp_path / "first.pem", tmp_path / "server.pem")
    shutil.copy(tmp_path / "first.key", tmp_path / "server.key")
    config = write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"tls": {
        "certificate": str(tmp_path / "server.pem"), "privateKey": str(tmp_path / "server.key"), "port": 0}})
    s = ServerProcess(config)
    try:
        https = next(l for l in iter(s.proc.stdout.readline, "") if "listening on https://" in l)
        port = int(https.strip().rsplit(":", 1)[1])
        assert "first-cert" in served_common_name(port)
        shutil.copy(tmp_path / "second.pem", tmp_path / "server.pem")
        shutil.copy(tmp_path / "second.key", tmp_path / "server.key")
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and "second-cert" not in served_common_name(port):
            time.sleep(0.2)
        assert "second-cert" in served_common_name(port)
        # a broken pair is refused and the old certificate keeps serving
        (tmp_path / "server.key").write_text("not a key")
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert "second-cert" in served_common_name(port)
        assert s.alive()
    finally:
        assert s.stop() == 0
