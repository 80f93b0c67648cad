"""Start-up validation and graceful stop of the real binary."""
import json
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import BINARY, DEFAULT_ENDPOINTS, ROOT, ServerProcess, write_config


def run_with_config(tmp_path, config_text):
    path = tmp_path / "config.json"
    path.write_text(config_text)
    return subprocess.run([BINARY, "serve", "--config", str(path), "--port", "0"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("config,fragments", [
    ({"endpoints": [{"name": "d", "model": "x"}], "sever": {}}, ["sever", "unknown key"]),
    ({"server": {"port": 70000}, "endpoints": [{"name": "d", "model": "x"}]}, ["server.port", "out of range"]),
    ({"server": {"threads": "two"}, "endpoints": [{"name": "d", "model": "x"}]}, ["server.threads", "integer"]),
    ({"endpoints": []}, ["endpoints", "non-empty"]),
    ({"endpoints": [{"name": "d"}]}, ["endpoints[0].model", "required"]),
    ({"endpoints": [{"name": "a b", "model": "x"}]}, ["endpoints[0].name"]),
    ({"endpoints": [{"name": "d", "model": str(ROOT / "models" / "digits-mlp"), "compression": {"method": "zip"}}]},
     ["endpoints[0].compression.method", "zip"]),
    ({"endpoints": [{"name": "d", "model": "/nonexistent/model"}]}, ["endpoint 'd'", "/nonexistent/model"]),
])
def test_bad_config_exits_nonzero_naming_the_field(tmp_path, config, fragments):
    r = run_with_config(tmp_path, json.dumps(config))
    assert r.returncode != 0
    for f in fragments:
        assert f in r.stderr, r.stderr
    assert "listening" not in r.stdout


def test_invalid_json_config(tmp_path):
    r = run_with_config(tmp_path, '{"endpoints": [}')
    assert r.returncode != 0 and "invalid JSON" in r.stderr


def test_broken_model_file_is_a_clear_startup_error(tmp_path):
    model = tmp_path / "broken"
    model.mkdir()
    (model / "model.json").write_text((ROOT / "models" / "digits-mlp" / "model.json").read_text())
    (model / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    r = run_with_config(tmp_path, json.dumps({"endpoints": [{"name": "d", "model": str(model)}]}))
    assert r.returncode != 0
    assert "endpoint 'd'" in r.stderr and "model.safetensors" in r.stderr, r.stderr


def test_address_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        path = write_config(tmp_path, DEFAULT_ENDPOINTS[:1])
        r = subprocess.run([BINARY, "serve", "--config", str(path), "--port", str(port), "--host", "127.0.0.1"],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert r.returncode != 0 and str(port) in r.stderr


def test_sigterm_drains_and_exits_zero(tmp_path):
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"gracePeriodSeconds": 5}))
    # an idle keep-alive connection must not hold the drain up
    idle = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    idle.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
    idle.recv(4096)
    assert requests.get(f"http://{s.authority}/v2/health/ready", timeout=5).status_code == 200
    start = time.time()
    rc = s.stop(timeout=10)
    assert rc == 0
    assert time.time() - start < 4
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()


def test_sigint_also_stops(tmp_path):
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1]))
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(timeout=10) == 0


def test_sigterm_under_load_finishes_every_accepted_request(tmp_path):
    import threading
    import requests
    body = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_bytes()
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"gracePeriodSeconds": 5}))
    url = s.url + "/v2/models/digits/infer"
    outcomes = {"ok": 0, "bad": [], "refused": 0, "closed_idle": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def client():
        session = requests.Session()
        while not stop.is_set():
            try:
                r = session.post(url, data=body, timeout=10)
                with lock:
                    if r.status_code == 200 and r.json()["outputs"]:
                        outcomes["ok"] += 1
                    else:
                        outcomes["bad"].append((r.status_code, r.text[:200]))
            except requests.ConnectionError as e:
                text = str(e)
                with lock:
                    if "Connection refused" in text:
                        outcomes["refused"] += 1  # the listener is closed: never accepted
                    elif "without response" in text or ("Connection aborted" in text and "reset" in text):
                        # An idle keep-alive connection closed by the drain just as the client reused
                        # it: the request was never read (urllib3 says "aborted" only before any
                        # response byte; a reset mid-response would be "Connection broken").
                        outcomes["closed_idle"] += 1
                    else:
                        outcomes["bad"].append(("error", text[:200]))
                session = requests.Session()
                time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    start = time.time()
    rc = s.stop(timeout=20)
    elapsed = time.time() - start
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert rc == 0, "".join(s.stderr_lines)[-2000:]
    assert elapsed < 6
    assert outcomes["ok"] > 50
    # no truncated response, no reset in the middle of an exchange, no 5xx for accepted requests
    assert not outcomes["bad"], outcomes["bad"][:5]


def test_debug_log_has_one_line_per_request_with_its_id(tmp_path):
    import requests
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1]), extra_args=("--log-level", "debug"))
    try:
        requests.get(s.url + "/v2/health/live", headers={"X-Request-ID": "trace-me-42"}, timeout=5)
        deadline = time.time() + 5
        while time.time() < deadline and not any("trace-me-42" in l for l in s.stderr_lines):
            time.sleep(0.05)
        lines = [l for l in s.stderr_lines if "trace-me-42" in l]
        assert len(lines) == 1 and "GET /v2/health/live 200" in lines[0], s.stderr_lines[-5:]
    finally:
        assert s.stop() == 0
