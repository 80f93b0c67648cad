"""/metrics parses as Prometheus text format and moves with traffic; the statistics extension agrees."""
import json

import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT

ONE = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_bytes()


def scrape(server):
    r = requests.get(f"http://{server.authority}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert r.text.endswith("\n")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def sample(families, family, name, **labels):
    for s in families[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


def test_metrics_move_with_traffic(server):
    before = scrape(server)
    for _ in range(3):
        assert requests.post(f"http://{server.authority}/v2/models/digits/infer", data=ONE, timeout=10).status_code == 200
    requests.post(f"http://{server.authority}/v2/models/digits/infer", data=b"{", timeout=10)
    after = scrape(server)
    ok = "sparseserve_inference_requests"
    assert sample(after, ok, ok + "_total", model="digits", outcome="success") - \
        sample(before, ok, ok + "_total", model="digits", outcome="success") == 3
    assert sample(after, ok, ok + "_total", model="digits", outcome="failure") >= 1
    http = "sparseserve_http_requests"
    assert sample(after, http, http + "_total", route="infer", code="200") >= 3
    h = "sparseserve_inference_request_duration_seconds"
    buckets = [s for s in after[h].samples if s.name == h + "_bucket" and s.labels["model"] == "digits"]
    values = [s.value for s in buckets]
    assert values == sorted(values) and buckets[-1].labels["le"] == "+Inf"
    assert buckets[-1].value == sample(after, h, h + "_count", model="digits")
    assert sample(after, "process_resident_memory_bytes", "process_resident_memory_bytes") > 1e6
    assert sample(after, "sparseserve_model_info", "sparseserve_model_info", model="digits", compression="dense") == 1


def test_statistics_extension(server):
    requests.post(f"http://{server.authority}/v2/models/digits/infer", data=ONE, timeout=10)
    stats = requests.get(f"http://{server.authority}/v2/models/digits/stats", timeout=10).json()
    entry = stats["model_stats"][0]
    assert entry["name"] == "digits" and entry["inference_count"] >= 1
    assert entry["inference_stats"]["success"]["count"] >= 1 and entry["inference_stats"]["success"]["ns"] > 0
    all_stats = requests.get(f"http://{server.authority}/v2/models/stats", timeout=10).json()
    assert {m["name"] for m in all_stats["model_stats"]} == {"digits", "identity", "digits-batched"}
