"""Faulty models: broken or vanished model files leave the other endpoints serving, and the
failure shows in the repository index, the metrics and the log."""
import shutil
import subprocess

import requests

from conftest import BINARY, DEFAULT_ENDPOINTS, ROOT, ServerProcess, write_config

DIGITS = ROOT / "models" / "digits-mlp"
ONE = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_bytes()


def broken_model(tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    shutil.copy(DIGITS / "model.json", d / "model.json")
    data = (DIGITS / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    return d


def test_failed_endpoints_do_not_stop_the_others(tmp_path):
    endpoints = [DEFAULT_ENDPOINTS[0],
                 {"name": "broken", "model": str(broken_model(tmp_path))},
                 {"name": "missing", "model": str(tmp_path / "no-such-folder")}]
    s = ServerProcess(write_config(tmp_path, endpoints, server={"exitOnModelLoadError": False}))
    try:
        base = s.url
        assert requests.get(base + "/v2/health/ready", timeout=5).status_code == 200
        assert requests.post(base + "/v2/models/digits/infer", data=ONE, timeout=5).status_code == 200
        index = {m["name"]: m for m in requests.post(base + "/v2/repository/index", timeout=5).json()}
        assert index["digits"]["state"] == "READY"
        assert index["broken"]["state"] == "UNAVAILABLE" and "model.safetensors" in index["broken"]["reason"]
        assert index["missing"]["state"] == "UNAVAILABLE" and "no-such-folder" in index["missing"]["reason"]
        r = requests.post(base + "/v2/models/broken/infer", data=ONE, timeout=5)
        assert r.status_code == 503 and "model.safetensors" in r.json()["error"]
        metrics = requests.get(base + "/metrics", timeout=5).text
        assert 'sparseserve_model_load_failures_total{model="broken"} 1' in metrics
        assert 'sparseserve_model_load_failures_total{model="missing"} 1' in metrics
        assert any("endpoint failed to load" in line and "broken" in line for line in s.stderr_lines)
    finally:
        assert s.stop() == 0


def test_a_model_folder_that_vanishes(tmp_path):
    copy = tmp_path / "digits-copy"
    shutil.copytree(DIGITS, copy)
    admin = {"admin": {"enabled": True, "apiKeys": ["faults-admin-key-0123456789"], "modelRoot": "/"}}
    s = ServerProcess(write_config(tmp_path, [{"name": "d", "model": str(copy)}], server=admin))
    try:
        shutil.rmtree(copy)
        # the loaded model keeps serving; a reload fails cleanly and keeps the old one
        assert requests.post(s.url + "/v2/models/d/infer", data=ONE, timeout=5).status_code == 200
        r = requests.post(s.url + "/v2/repository/models/d/load", json={}, timeout=30,
                          headers={"Authorization": "Bearer faults-admin-key-0123456789"})
        assert r.status_code == 400 and "digits-copy" in r.json()["error"]
        assert requests.post(s.url + "/v2/models/d/infer", data=ONE, timeout=5).status_code == 200
        entry = requests.post(s.url + "/v2/repository/index", timeout=5).json()[0]
        assert entry["state"] == "READY" and "last load failed" in entry["reason"]
    finally:
        assert s.stop() == 0


def test_no_loadable_endpoint_is_a_start_up_error(tmp_path):
    config = write_config(tmp_path, [{"name": "broken", "model": str(broken_model(tmp_path))}],
                          server={"exitOnModelLoadError": False})
    r = subprocess.run([BINARY, "serve", "--config", str(config), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no endpoint could be loaded" in r.stderr


def test_optional_endpoint_without_its_model_folder_is_skipped(tmp_path):
    endpoints = [DEFAULT_ENDPOINTS[0], {"name": "later", "model": str(tmp_path / "not-fetched"), "optional": True}]
    s = ServerProcess(write_config(tmp_path, endpoints))
    try:
        assert requests.get(s.url + "/v2/health/ready", timeout=5).status_code == 200
        entry = {m["name"]: m for m in requests.post(s.url + "/v2/repository/index", timeout=5).json()}["later"]
        assert entry["state"] == "UNAVAILABLE" and "optional" in entry["reason"]
        r = requests.post(s.url + "/v2/models/later/infer", data=ONE, timeout=5)
        assert r.status_code == 404 and "model folder absent" in r.json()["error"]
        assert any("optional endpoint skipped" in line for line in s.stderr_lines)
    finally:
        assert s.stop() == 0
