"""/metrics checked by promtool and scraped by a real Prometheus server on loopback."""
import os
import shutil
import socket
import subprocess
import time

import pytest
import requests

from conftest import DEFAULT_ENDPOINTS, ServerProcess, write_config

pytestmark = pytest.mark.skipif((shutil.which("prometheus") is None or shutil.which("promtool") is None)
                                and not os.environ.get("SPARSESERVE_REQUIRE_ALL"),
                                reason="Debian's prometheus package is not installed (scripts/test.sh installs it)")

BODY = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def fresh_server(tmp_path):
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:2]))
    yield s
    assert s.stop() == 0


def test_promtool_accepts_the_exposition(fresh_server):
    base = fresh_server.url
    requests.post(base + "/v2/models/digits/infer", json=BODY, timeout=5)
    requests.post(base + "/v2/models/digits/infer", json={"inputs": []}, timeout=5)
    text = requests.get(base + "/metrics", timeout=5).text
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr
    for needle in ['sparseserve_inference_failures_total{model="digits",reason="invalid_input"} 1',
                   'sparseserve_model_parameters{model="digits"}', 'sparseserve_model_bytes{model="digits"}',
                   'sparseserve_model_density{model="digits"} 1', "sparseserve_open_connections",
                   'sparseserve_inference_request_duration_seconds_bucket{model="digits",le="5e-05"}']:
        assert needle in text, needle


def test_real_prometheus_scrapes_and_computes_the_rate(fresh_server, tmp_path):
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: sparse-serve
    static_configs:
      - targets: ["{fresh_server.authority}"]
""")
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    api = f"http://127.0.0.1:{port}/api/v1"

    def query(q):
        r = requests.get(api + "/query", params={"query": q}, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()["data"]["result"]

    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if query('up{job="sparse-serve"} == 1'):
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("Prometheus never scraped sparse-serve successfully")
        counter = 'sparseserve_inference_requests_total{job="sparse-serve",model="digits",outcome="success"}'

        def send_and_wait(n, total):
            with requests.Session() as s:
                for _ in range(n):
                    assert s.post(fresh_server.url + "/v2/models/digits/infer", json=BODY, timeout=5).status_code == 200
            deadline = time.time() + 30
            while time.time() < deadline:
                result = query(counter)
                if result and float(result[0]["value"][1]) >= total:
                    return float(result[0]["value"][1])
                time.sleep(0.5)
            return None

        # two rounds, so the histogram series (born at the first request) has two scraped samples
        sent = 40
        assert send_and_wait(20, 20) == 20
        value = send_and_wait(20, sent)
        assert value == sent, f"Prometheus saw {value}, the test sent {sent}"
        # the counter series existed at 0 before the traffic, so increase() over the window sees all
        # of it (Prometheus extrapolates to the window edges, hence the tolerance)
        time.sleep(1.5)
        result = query(f"increase({counter}[5m])")
        assert result and abs(float(result[0]["value"][1]) - sent) <= sent * 0.5, result
        assert query(f"rate({counter}[5m]) > 0")
        # histogram quantiles work on our buckets
        p99 = query('histogram_quantile(0.99, sum by (le) (rate(sparseserve_inference_request_duration_seconds_bucket{model="digits"}[5m])))')
        assert p99 and 0 < float(p99[0]["value"][1]) < 1
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=10)
        except subprocess.TimeoutExpired:
            prom.kill()
