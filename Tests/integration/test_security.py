"""API keys and CORS on a server configured with both."""
import pytest
import requests
import tritonclient.http as httpclient
import numpy as np

from conftest import DEFAULT_ENDPOINTS, ROOT, ServerProcess, write_config

KEY = "test-key-0123456789abcdef"
ONE = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_bytes()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("sec"), DEFAULT_ENDPOINTS[:1],
                        server={"apiKeys": [KEY, "second-key-abcdefghijkl"],
                                "cors": {"allowOrigins": ["https://app.example"], "maxAgeSeconds": 60}})
    s = ServerProcess(path)
    yield s
    assert s.stop() == 0


def test_health_and_metrics_are_public(secured):
    base = f"http://{secured.authority}"
    assert requests.get(base + "/v2/health/live", timeout=5).status_code == 200
    assert requests.get(base + "/v2/health/ready", timeout=5).status_code == 200
    assert requests.get(base + "/metrics", timeout=5).status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong-key-0123456789", "Basic " + KEY, "Bearer " + KEY[:-1]])
def test_missing_or_wrong_key_is_401(secured, header):
    headers = {"Authorization": header} if header else {}
    r = requests.post(f"http://{secured.authority}/v2/models/digits/infer", data=ONE, headers=headers, timeout=5)
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "application/json" and "API key" in r.json()["error"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"http://{secured.authority}/v2/models/digits", headers=headers, timeout=5).status_code == 401


def test_valid_keys_work_with_tritonclient(secured):
    client = httpclient.InferenceServerClient(url=secured.authority)
    x = np.zeros((1, 64), dtype=np.float32)
    inp = httpclient.InferInput("input", [1, 64], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("digits", [inp], headers={"Authorization": f"Bearer {KEY}"})
    assert result.as_numpy("probabilities").shape == (1, 10)
    r = requests.get(f"http://{secured.authority}/v2/models/digits",
                     headers={"Authorization": "Bearer second-key-abcdefghijkl"}, timeout=5)
    assert r.status_code == 200


def test_cors_preflight_and_headers(secured):
    base = f"http://{secured.authority}"
    r = requests.options(base + "/v2/models/digits/infer", timeout=5, headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Access-Control-Allow-Headers"] == "content-type, authorization"
    assert r.headers["Access-Control-Max-Age"] == "60"
    r = requests.get(base + "/v2/health/live", headers={"Origin": "https://app.example"}, timeout=5)
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    # an origin the config does not allow is refused outright (issue 15 item 2), preflight included
    r = requests.get(base + "/v2/health/live", headers={"Origin": "https://evil.example"}, timeout=5)
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.options(base + "/v2/models/digits/infer", headers={"Origin": "https://evil.example"}, timeout=5)
    assert r.status_code == 403


EKEY = "endpoint-key-0123456789"


@pytest.fixture(scope="module")
def per_endpoint(tmp_path_factory):
    endpoints = [dict(DEFAULT_ENDPOINTS[0], apiKeys=[EKEY]), DEFAULT_ENDPOINTS[1]]
    path = write_config(tmp_path_factory.mktemp("sec2"), endpoints, server={"publicRoutes": ["health"]})
    s = ServerProcess(path)
    yield s
    assert s.stop() == 0


def test_per_endpoint_keys(per_endpoint):
    base = per_endpoint.url
    url = base + "/v2/models/digits/infer"
    assert requests.post(url, data=ONE, timeout=5).status_code == 401
    assert requests.post(url, data=ONE, headers={"Authorization": "Bearer " + KEY}, timeout=5).status_code == 401
    assert requests.post(url, data=ONE, headers={"Authorization": "Bearer " + EKEY}, timeout=5).status_code == 200
    assert requests.get(base + "/v2/models/digits", timeout=5).status_code == 401
    # the other endpoint has no key, and the server has none: open
    assert requests.get(base + "/v2/models/identity", timeout=5).status_code == 200
    # health stays public (publicRoutes), metrics are open too because no server key exists; a
    # model's readiness is metadata (it names the model), so it needs the endpoint's key
    assert requests.get(base + "/v2/health/ready", timeout=5).status_code == 200
    assert requests.get(base + "/v2/models/digits/ready", timeout=5).status_code == 401
    assert requests.get(base + "/v2/models/digits/ready", headers={"Authorization": "Bearer " + EKEY}, timeout=5).status_code == 200
    assert requests.get(base + "/metrics", timeout=5).status_code == 200


def test_public_routes_are_configurable(tmp_path):
    path = write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"apiKeys": [KEY], "publicRoutes": ["health", "metadata"]})
    s = ServerProcess(path)
    try:
        base = s.url
        assert requests.get(base + "/metrics", timeout=5).status_code == 401
        assert requests.get(base + "/metrics", headers={"Authorization": "Bearer " + KEY}, timeout=5).status_code == 200
        assert requests.get(base + "/v2/models/digits", timeout=5).status_code == 200
        assert requests.get(base + "/v2", timeout=5).status_code == 200
        assert requests.post(base + "/v2/models/digits/infer", data=ONE, timeout=5).status_code == 401
        assert requests.post(base + "/v2/repository/index", timeout=5).status_code == 401
    finally:
        assert s.stop() == 0
