"""Issue 15, item 4: compression parameters from a load request are checked against the layer
shapes and the memory/time limits before anything is allocated; no input aborts the process."""
import pytest
import requests

from security_support import ADMIN_KEY, ONE, HealthWatch, admin_server, make_model_root, rss_bytes

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    s, _ = admin_server(tmp_path_factory.mktemp("bounds"), server={"admin": {
        "enabled": True, "apiKeys": [ADMIN_KEY], "modelRoot": str(make_model_root(tmp_path_factory.mktemp("root"))),
        "maxCompressionSeconds": 2}})
    yield s
    assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


@pytest.mark.parametrize("compression, words", [
    ({"method": "blast", "blocks": 1, "rank": 65536}, ["rank 65536"]),
    ({"method": "blast", "blocks": 64, "rank": 4}, ["rank 4 does not fit", "64×64 blocks"]),
    ({"method": "blast", "blocks": 1, "rank": 16, "iterations": 10000}, ["time budget"]),
    ({"method": "nm", "n": 2, "m": 4, "layers": {"*": {"method": "blast", "blocks": 3, "rank": 2}}}, ["blocks 3"]),
    ({"method": "csr", "density": 1e-300}, []),  # tiny but valid: loads (or fails cleanly)
])
def test_bad_compression_parameters_fail_cleanly(admin, compression, words):
    rss0 = rss_bytes(admin.proc.pid)
    with HealthWatch(admin) as watch:
        r = requests.post(f"{admin.url}/v2/repository/models/bounded/load", headers=ADMIN, timeout=120,
                          json={"parameters": {"config": {"model": "digits-mlp", "compression": compression}}})
    watch.assert_healthy(rss_limit=rss0 + (256 << 20))
    if not words:
        assert r.status_code in (200, 400), r.text
        return
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    for word in words:
        assert word in error, error
    assert requests.post(f"{admin.url}/v2/models/digits/infer", data=ONE, timeout=5).status_code == 200
