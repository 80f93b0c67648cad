"""Model repository extension (index/load/unload), atomic reload under traffic, SIGHUP reload."""
import json
import signal
import threading
import time

import numpy as np
import pytest
import requests
from safetensors.numpy import load_file

from conftest import DEFAULT_ENDPOINTS, ROOT, ServerProcess, write_config

DIGITS = str(ROOT / "models" / "digits-mlp")
ADMIN_KEY = "repository-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# The admin API on, with the whole file system as its model root: these tests are about the
# repository's behaviour (confinement and keys are test_security_admin.py's).
ADMIN_SETTINGS = {"admin": {"enabled": True, "apiKeys": [ADMIN_KEY], "modelRoot": "/"}}


@pytest.fixture(scope="module")
def repo_server(tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("repo"), DEFAULT_ENDPOINTS, server=ADMIN_SETTINGS)
    s = ServerProcess(path)
    yield s
    assert s.stop() == 0


def digits_body(n=1):
    x = load_file(str(ROOT / "models" / "digits-mlp" / "test.safetensors"))["inputs"][:n]
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


def index(base, **body):
    r = requests.post(base + "/v2/repository/index", json=body or None, timeout=5)
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()}


def test_index_lists_every_endpoint_ready(repo_server):
    base = repo_server.url
    models = index(base)
    assert set(models) == {"digits", "identity", "digits-batched"}
    assert all(m["state"] == "READY" and m["version"] == "1" for m in models.values())
    assert "model_repository" in requests.get(base + "/v2", timeout=5).json()["extensions"]


def test_unload_then_load(repo_server):
    base = repo_server.url
    r = requests.post(base + "/v2/repository/models/identity/unload", json={}, headers=ADMIN, timeout=5)
    assert r.status_code == 200 and r.json() == {}
    r = requests.get(base + "/v2/models/identity", timeout=5)
    assert r.status_code == 404 and "unloaded" in r.json()["error"]
    assert requests.get(base + "/v2/models/identity/ready", timeout=5).status_code == 404
    assert index(base)["identity"]["state"] == "UNAVAILABLE"
    assert "identity" not in index(base, ready=True)
    r = requests.post(base + "/v2/repository/models/identity/load", json={}, headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    assert requests.get(base + "/v2/models/identity/ready", timeout=5).status_code == 200
    assert index(base)["identity"]["state"] == "READY"


def test_unknown_and_broken_loads_fail_cleanly(repo_server, tmp_path):
    base = repo_server.url
    r = requests.post(base + "/v2/repository/models/nope/unload", json={}, headers=ADMIN, timeout=5)
    assert r.status_code == 404
    r = requests.post(base + "/v2/repository/models/nope/load", json={}, headers=ADMIN, timeout=5)
    assert r.status_code == 404 and "parameters.config" in r.json()["error"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((ROOT / "models" / "digits-mlp" / "model.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    r = requests.post(base + "/v2/repository/models/digits/load",
                      json={"parameters": {"config": json.dumps({"model": str(broken)})}}, headers=ADMIN, timeout=30)
    assert r.status_code == 400 and "digits" in r.json()["error"]
    # the previous model keeps serving and the index says why the load failed
    r = requests.post(base + "/v2/models/digits/infer", json=digits_body(), timeout=5)
    assert r.status_code == 200
    entry = index(base)["digits"]
    assert entry["state"] == "READY" and "last load failed" in entry["reason"]
    r = requests.post(base + "/v2/repository/models/digits/load",
                      json={"parameters": {"config": {"model": DIGITS, "bogus": 1}}}, headers=ADMIN, timeout=30)
    assert r.status_code == 400 and "parameters.config.bogus" in r.json()["error"]
    r = requests.post(base + "/v2/repository/models/digits/load", data=b"{nope", timeout=5,
                      headers={**ADMIN, "Content-Type": "application/json"})
    assert r.status_code == 400
    metrics = requests.get(base + "/metrics", timeout=5).text
    assert 'sparseserve_model_load_failures_total{model="digits"} 1' in metrics


def test_add_a_new_endpoint_at_run_time(repo_server):
    base = repo_server.url
    r = requests.post(base + "/v2/repository/models/digits-extra/load",
                      json={"parameters": {"config": {"model": DIGITS, "batching": {"maxBatchSize": 8}}}}, headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(base + "/v2/models/digits-extra/infer", json=digits_body(3), timeout=5)
    assert r.status_code == 200 and r.json()["model_name"] == "digits-extra"
    assert requests.get(base + "/v2/models/digits-extra/config", timeout=5).json()["max_batch_size"] == 8


def test_reload_under_traffic_loses_no_request(repo_server):
    base = repo_server.url
    body = digits_body(2)
    expected = requests.post(base + "/v2/models/digits-batched/infer", json=body, timeout=5).json()["outputs"]
    failures, done = [], threading.Event()
    counts = [0] * 6

    def client(i):
        with requests.Session() as s:
            while not done.is_set():
                r = s.post(base + "/v2/models/digits-batched/infer", json=body, timeout=10)
                if r.status_code != 200 or r.json()["outputs"] != expected:
                    failures.append((r.status_code, r.text[:200]))
                counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        for size in (4, 32, 8):
            r = requests.post(base + "/v2/repository/models/digits-batched/load", timeout=30, headers=ADMIN, json={
                "parameters": {"config": {"model": DIGITS, "batching": {"maxBatchSize": size, "maxQueueDelayMicroseconds": 1000}}}})
            assert r.status_code == 200, r.text
            time.sleep(0.2)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=30)
    assert not failures, failures[:5]
    assert sum(counts) > 20
    assert requests.get(base + "/v2/models/digits-batched/config", timeout=5).json()["max_batch_size"] == 8


def test_generated_request_id(repo_server):
    r = requests.get(repo_server.url + "/v2/health/live", timeout=5)
    rid = r.headers["X-Request-ID"]
    assert len(rid) == 32 and int(rid, 16) >= 0
    assert requests.get(repo_server.url + "/v2/health/live", timeout=5).headers["X-Request-ID"] != rid
    r = requests.get(repo_server.url + "/v2/health/live", headers={"X-Request-ID": "has spaces in it"}, timeout=5)
    assert len(r.headers["X-Request-ID"]) == 32


def wait_for(predicate, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_sighup_reloads_the_config_file(tmp_path):
    path = write_config(tmp_path, DEFAULT_ENDPOINTS[:2])
    s = ServerProcess(path)
    try:
        base = s.url
        assert set(index(base)) == {"digits", "identity"}
        # a broken file is refused and everything keeps serving
        path.write_text("{not json")
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "sparseserve_config_reload_failures_total 1" in requests.get(base + "/metrics", timeout=5).text)
        assert requests.post(base + "/v2/models/digits/infer", json=digits_body(), timeout=5).status_code == 200
        # add one endpoint, drop another, change a third
        config = json.loads(write_config(tmp_path, [
            {"name": "digits", "model": DIGITS, "batching": {"maxBatchSize": 4}},
            {"name": "digits-two", "model": DIGITS},
        ]).read_text())
        path.write_text(json.dumps(config))
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: index(base).get("digits-two", {}).get("state") == "READY")
        assert wait_for(lambda: index(base)["identity"]["state"] == "UNAVAILABLE")
        assert wait_for(lambda: requests.get(base + "/v2/models/digits/config", timeout=5).json()["max_batch_size"] == 4)
        assert requests.post(base + "/v2/models/digits-two/infer", json=digits_body(), timeout=5).status_code == 200
        assert s.alive()
    finally:
        assert s.stop() == 0


def test_sighup_warns_of_server_settings_only_when_they_changed(tmp_path):
    # --host, --port (ServerProcess passes both) and --threads override the file; a re-read of the
    # file gets the same flags, so an unchanged server section is no change of server settings.
    path = write_config(tmp_path, DEFAULT_ENDPOINTS[:1])
    s = ServerProcess(path, extra_args=["--threads", "1"])
    warning = "server settings changed"

    def reloads():
        return sum("SIGHUP: reloading config" in line for line in s.stderr_lines)
    try:
        # 1: an endpoint changes (applied once the reload is done)
        config = json.loads(path.read_text())
        config["endpoints"][0]["batching"] = {"maxBatchSize": 4}
        path.write_text(json.dumps(config))
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: requests.get(s.url + "/v2/models/digits/config", timeout=5).json()["max_batch_size"] == 4)
        # 2: nothing changes
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: reloads() == 2)
        # 3: a server setting changes; reloads run one after another, so once this one has warned,
        # the two before it are done, and only it may have warned
        config["server"]["maxQueueSize"] = 77
        path.write_text(json.dumps(config))
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any(warning in line for line in s.stderr_lines))
        assert sum(warning in line for line in s.stderr_lines) == 1, "".join(s.stderr_lines)[-3000:]
        assert requests.post(s.url + "/v2/models/digits/infer", json=digits_body(), timeout=5).status_code == 200
    finally:
        assert s.stop() == 0
