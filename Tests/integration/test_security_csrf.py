"""Issue 15, item 2: cross-site requests and DNS rebinding. Mutating routes need
Content-Type: application/json, origins the CORS config does not allow are refused, and a server
bound to loopback answers only requests whose Host names loopback (by default)."""
import pytest
import requests

from conftest import DEFAULT_ENDPOINTS, ServerProcess, parse_responses, raw_exchange, write_config
from security_support import ADMIN_KEY, ONE, HealthWatch, admin_server

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ATTACK = {"Origin": "https://attacker.example", "Host": "attacker.example"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s, _ = admin_server(tmp_path_factory.mktemp("csrf"),
                        server={"cors": {"allowOrigins": ["https://app.example"], "maxAgeSeconds": 60}})
    yield s
    assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def test_the_reported_attack_is_refused(site):
    # POST …/unload with text/plain, a foreign Origin and a rebinding Host: refused, nothing unloaded
    base = f"http://{site.authority}"
    with HealthWatch(site) as watch:
        for headers in [{**ATTACK, "Content-Type": "text/plain"}, {**ATTACK, **ADMIN, "Content-Type": "text/plain"},
                        {**ATTACK, **ADMIN, "Content-Type": "application/json"}]:
            r = requests.post(base + "/v2/repository/models/digits/unload", data=b"{}", headers=headers, timeout=5)
            assert r.status_code in (403, 421), r.text
            assert "error" in r.json()
    watch.assert_healthy()
    assert requests.get(base + "/v2/models/digits/ready", timeout=5).status_code == 200


def test_mutating_routes_need_json(site):
    base = f"http://{site.authority}"
    for content_type in [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]:
        headers = dict(ADMIN)
        if content_type:
            headers["Content-Type"] = content_type
        r = requests.post(base + "/v2/repository/models/digits/unload", data=b"{}", headers=headers, timeout=5)
        assert r.status_code == 415, (content_type, r.text)
    r = requests.post(base + "/v2/repository/models/identity/unload", json={}, headers=ADMIN, timeout=5)
    assert r.status_code == 200, r.text
    r = requests.post(base + "/v2/repository/models/identity/load", json={}, headers={**ADMIN, "Content-Type": "application/json; charset=utf-8"}, timeout=30)
    assert r.status_code == 200, r.text


def test_origins_outside_the_cors_config_are_refused(site):
    base = f"http://{site.authority}"
    r = requests.post(base + "/v2/models/digits/infer", data=ONE, headers={"Origin": "https://evil.example"}, timeout=5)
    assert r.status_code == 403 and "origin" in r.json()["error"].lower()
    r = requests.post(base + "/v2/models/digits/infer", data=ONE, headers={"Origin": "https://app.example"}, timeout=5)
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    # same-origin requests (Origin equal to the server's own) stay allowed
    r = requests.post(base + "/v2/models/digits/infer", data=ONE, headers={"Origin": base}, timeout=5)
    assert r.status_code == 200


def test_loopback_bind_allows_only_loopback_host_names(site):
    port = site.port
    for host, expected in [("attacker.example", 421), (f"attacker.example:{port}", 421), ("10.0.0.1", 421),
                           ("localhost", 200), (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 200), ("[::1]", 200)]:
        data = raw_exchange(port, f"GET /v2/health/ready HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode(),
                            read_until_close=True)
        (status, _, body), = parse_responses(data)
        assert status == expected, (host, body)


def test_host_allowlist_is_configurable(tmp_path):
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"allowedHosts": ["models.internal"]}))
    try:
        for host, expected in [("models.internal", 200), ("models.internal:8000", 200), ("localhost", 421)]:
            data = raw_exchange(s.port, f"GET /v2/health/ready HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode(),
                                read_until_close=True)
            assert parse_responses(data)[0][0] == expected, host
    finally:
        assert s.stop() == 0
