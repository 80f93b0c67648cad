"""Issue 15, item 6: failed loads leave no permanent entry beyond a bounded recent-errors list;
unload frees the model and removes its metric series."""
import re
import time

import pytest
import requests

from security_support import ADMIN_KEY, ONE, HealthWatch, admin_server, rss_bytes

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    s, root = admin_server(tmp_path_factory.mktemp("growth"))
    yield s, root
    assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def index(base):
    r = requests.post(base + "/v2/repository/index", json={}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def series(base):
    return len([line for line in requests.get(base + "/metrics", timeout=5).text.splitlines() if line and not line.startswith("#")])


def test_failed_loads_under_new_names_do_not_accumulate(admin):
    s, _ = admin
    base = s.url
    entries0, series0 = len(index(base)), series(base)
    with HealthWatch(s) as watch:
        for i in range(300):
            r = requests.post(f"{base}/v2/repository/models/ghost-{i}/load", headers=ADMIN, timeout=10,
                              json={"parameters": {"config": {"model": f"missing-{i}"}}})
            assert r.status_code == 400
    watch.assert_healthy()
    listed = index(base)
    assert len(listed) <= entries0 + 32, f"{len(listed)} index entries after 300 failed loads"
    assert series(base) <= series0 + 40, "failed loads must not add metric series without bound"
    metrics = requests.get(base + "/metrics", timeout=5).text
    assert len(re.findall(r'model="ghost-', metrics)) <= 32


def test_unload_frees_the_model_and_its_series(admin):
    s, root = admin
    base = s.url
    # a model big enough to see in RSS: digits-mlp loaded under several names
    rss0 = rss_bytes(s.proc.pid)
    for i in range(8):
        r = requests.post(f"{base}/v2/repository/models/extra-{i}/load", headers=ADMIN, timeout=60,
                          json={"parameters": {"config": {"model": "digits-mlp", "batching": {"maxBatchSize": 4}}}})
        assert r.status_code == 200, r.text
        assert requests.post(f"{base}/v2/models/extra-{i}/infer", data=ONE, timeout=5).status_code == 200
    loaded = rss_bytes(s.proc.pid)
    assert 'model="extra-3"' in requests.get(base + "/metrics", timeout=5).text
    for i in range(8):
        r = requests.post(f"{base}/v2/repository/models/extra-{i}/unload", json={}, headers=ADMIN, timeout=10)
        assert r.status_code == 200, r.text
    time.sleep(0.5)
    metrics = requests.get(base + "/metrics", timeout=5).text
    assert 'model="extra-' not in metrics
    assert not any(m["name"].startswith("extra-") for m in index(base))
    after = rss_bytes(s.proc.pid)
    grown = loaded - rss0
    print(f"RSS {rss0 >> 20} MiB -> {loaded >> 20} MiB with 8 models -> {after >> 20} MiB after unloading")
    assert after <= rss0 + max(grown // 2, 8 << 20), f"RSS did not come back: {rss0} -> {loaded} -> {after}"
