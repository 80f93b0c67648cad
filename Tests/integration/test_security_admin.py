"""Issue 15, items 1 and 3: the repository admin API is off by default; when on it needs an admin
key (not an inference key), loads only from inside the model root, and holds posted configs to
the config file's validation with server-side ceilings."""
import json
import os

import pytest
import requests

from conftest import BINARY, DEFAULT_ENDPOINTS, ROOT, ServerProcess, write_config
from security_support import ADMIN_KEY, INFER_KEY, ONE, HealthWatch, admin_server, make_model_root

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def load(base, model, config=None, headers=ADMIN, **kwargs):
    body = {"parameters": {"config": config}} if config is not None else None
    return requests.post(f"{base}/v2/repository/models/{model}/load", json=body, headers=headers, timeout=60, **kwargs)


def test_admin_routes_are_off_by_default(server):
    # item 1: no apiKeys, no admin section: load and unload are refused, nothing changes
    base = server.url
    for action in ["load", "unload"]:
        r = requests.post(f"{base}/v2/repository/models/digits/{action}", json={}, timeout=5)
        assert r.status_code == 403, r.text
        assert "admin" in r.json()["error"]
    r = requests.post(f"{base}/v2/repository/models/x/load",
                      json={"parameters": {"config": {"model": "/etc"}}}, timeout=5)
    assert r.status_code == 403
    assert requests.post(f"{base}/v2/models/digits/infer", data=ONE, timeout=5).status_code == 200


def test_admin_on_without_admin_key_refuses_to_start(tmp_path):
    path = write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"admin": {"enabled": True, "modelRoot": str(ROOT / "models")}})
    import subprocess
    r = subprocess.run([BINARY, "serve", "--config", str(path), "--port", "0", "--host", "127.0.0.1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "admin" in (r.stderr + r.stdout) and "apiKeys" in (r.stderr + r.stdout)


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admin")
    endpoints = [dict(DEFAULT_ENDPOINTS[0], apiKeys=[INFER_KEY]), DEFAULT_ENDPOINTS[1]]
    s, root = admin_server(tmp, endpoints=endpoints, server={"maxBodyBytes": 4 << 20, "maxQueueSize": 256})
    yield s, root, tmp
    assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def test_admin_routes_need_the_admin_key(admin):
    s, root, _ = admin
    base = s.url
    for headers in [{}, {"Authorization": f"Bearer {INFER_KEY}"}, {"Authorization": "Bearer wrong-key-0123456789"}]:
        r = requests.post(f"{base}/v2/repository/models/identity/unload", json={}, headers=headers, timeout=5)
        assert r.status_code == 401, r.text
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"{base}/v2/models/identity/ready", timeout=5).status_code == 200
    r = requests.post(f"{base}/v2/repository/models/identity/unload", json={}, headers=ADMIN, timeout=5)
    assert r.status_code == 200, r.text
    r = load(base, "identity", {"model": "identity"})
    assert r.status_code == 200, r.text
    # an admin key is not an inference key
    assert requests.post(f"{base}/v2/models/digits/infer", data=ONE, headers=ADMIN, timeout=5).status_code == 401


def test_item3_endpoint_keys_cannot_be_removed_without_the_admin_key(admin):
    s, _, _ = admin
    base = s.url
    r = load(base, "digits", {"model": "digits-mlp"}, headers={})
    assert r.status_code == 401
    r = load(base, "digits", {"model": "digits-mlp"}, headers={"Authorization": f"Bearer {INFER_KEY}"})
    assert r.status_code == 401
    assert requests.post(f"{base}/v2/models/digits/infer", data=ONE, timeout=5).status_code == 401
    r = requests.post(f"{base}/v2/models/digits/infer", data=ONE, headers={"Authorization": f"Bearer {INFER_KEY}"}, timeout=5)
    assert r.status_code == 200


def test_load_paths_are_confined_to_the_model_root(admin, tmp_path):
    s, root, _ = admin
    base = s.url
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.json").write_text((ROOT / "models" / "digits-mlp" / "model.json").read_text())
    link = root / "escape"
    if not link.exists():
        os.symlink(outside, link)
    answers = set()
    with HealthWatch(s) as watch:
        for path in ["/etc", "/etc/passwd", "/nonexistent", "/etc/model.json", str(ROOT / "models" / "digits-mlp"),
                     "../../etc", "escape", "escape/../identity/../../outside", "no-such-model", "digits-mlp/../../x"]:
            r = load(base, "confined", {"model": path})
            assert r.status_code == 400, (path, r.text)
            answers.add(r.json()["error"].replace(path, "<path>"))
    watch.assert_healthy()
    assert len(answers) == 1, answers  # one error whatever exists on disk
    assert "model root" in answers.pop()
    r = load(base, "confined", {"model": "digits-mlp"})
    assert r.status_code == 200, r.text
    assert requests.post(f"{base}/v2/models/confined/infer", data=ONE, timeout=5).status_code == 200
    r = requests.post(f"{base}/v2/repository/models/confined/unload", json={}, headers=ADMIN, timeout=5)
    assert r.status_code == 200


def test_artifact_and_calibration_paths_of_a_load_are_confined_too(admin):
    """A posted config's `artifact` and `compression.calibration` files must lie in the model root as
    well, with one error whatever exists on disk (nothing read from outside it)."""
    s, _, _ = admin
    nm = {"method": "nm", "n": 2, "m": 4}
    answers = set()
    with HealthWatch(s) as watch:
        for path in ["/etc/passwd", "/nonexistent", "../../etc/hostname", str(ROOT / "README.md")]:
            for config in ({"model": "digits-mlp", "artifact": path},
                           {"model": "digits-mlp", "compression": {**nm, "calibration": path}},
                           {"model": "digits-mlp", "compression": {**nm, "calibration": {"path": path, "samples": 8}}}):
                r = load(s.url, "confined", config)
                assert r.status_code == 400, (config, r.text)
                answers.add(r.json()["error"].replace(path, "<path>"))
    watch.assert_healthy()
    assert answers == {"model '<path>' is not available under the model root",
                       "calibration file '<path>' is not available under the model root"}, answers


@pytest.mark.parametrize("config, field", [
    ({"model": "digits-mlp", "maxBodyBytes": 17179869184}, "maxBodyBytes"),
    ({"model": "digits-mlp", "batching": {"maxBatchSize": 8, "maxQueueSize": 1000000}}, "maxQueueSize"),
    ({"model": "digits-mlp", "maxInputs": 10 ** 9}, "maxInputs"),
    ({"model": "digits-mlp", "bogus": 1}, "bogus"),
])
def test_posted_configs_are_validated_with_server_ceilings(admin, config, field):
    s, _, _ = admin
    r = load(s.url, "ceiling", config)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]
    assert s.alive()


def test_admin_mutations_need_json_content_type(admin):
    s, _, _ = admin
    r = requests.post(f"{s.url}/v2/repository/models/identity/unload", data=b"{}",
                      headers={**ADMIN, "Content-Type": "text/plain"}, timeout=5)
    assert r.status_code == 415, r.text
