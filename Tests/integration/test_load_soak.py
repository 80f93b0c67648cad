"""Load, soak and slow-attack runs against the real server: no errors, no leaks, still responsive.

Durations are short by default so the suite stays fast; the documented long runs set
SPARSESERVE_LOAD_SECONDS=60 and SPARSESERVE_SOAK_SECONDS=600.
"""
import os
import re
import shutil
import subprocess
import threading
import time

import pytest
import requests

from conftest import DEFAULT_ENDPOINTS, ROOT, ServerProcess, write_config

REQUIRED = bool(os.environ.get("SPARSESERVE_REQUIRE_ALL"))
LOAD_SECONDS = int(os.environ.get("SPARSESERVE_LOAD_SECONDS", "10"))
SOAK_SECONDS = int(os.environ.get("SPARSESERVE_SOAK_SECONDS", "30"))
BODY = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_text().strip()
LUA = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' % BODY


def proc_status(pid):
    text = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def wrk(url, seconds, connections, script):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
                          "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60).stdout
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    p99 = re.search(r"\s99%\s+(\S+)", out).group(1)
    return requests_done, non2xx, errors, p99, out


@pytest.fixture()
def loaded(tmp_path):
    s = ServerProcess(write_config(tmp_path, [dict(DEFAULT_ENDPOINTS[0], batching={"maxBatchSize": 32, "maxQueueSize": 1024})],
                                   server={"maxConnections": 2048}))
    yield s, tmp_path
    assert s.stop() == 0, "".join(s.stderr_lines)[-2000:]


@pytest.mark.skipif(shutil.which("wrk") is None and not REQUIRED, reason="wrk is not installed (scripts/test.sh installs it)")
def test_load_has_no_errors_and_soak_does_not_leak(loaded):
    s, tmp = loaded
    script = tmp / "post.lua"
    script.write_text(LUA)
    url = s.url + "/v2/models/digits/infer"
    done, non2xx, errors, p99, out = wrk(url, LOAD_SECONDS, 64, script)
    print(f"load: {done} requests in {LOAD_SECONDS} s at 64 connections, p99 {p99}")
    assert done > 1000 and non2xx == 0 and errors == 0, out
    # soak: after the warm-up above, resident memory and descriptors stay flat
    pid = s.proc.pid
    rss0, fds0 = proc_status(pid)
    done, non2xx, errors, p99, out = wrk(url, SOAK_SECONDS, 32, script)
    time.sleep(0.5)  # let closed connections be reaped
    rss1, fds1 = proc_status(pid)
    print(f"soak: {done} requests in {SOAK_SECONDS} s, RSS {rss0 >> 20} -> {rss1 >> 20} MiB, fds {fds0} -> {fds1}")
    assert non2xx == 0 and errors == 0, out
    assert rss1 <= rss0 * 1.05 + (2 << 20), f"resident memory grew from {rss0} to {rss1} bytes"
    assert fds1 <= fds0, f"descriptors grew from {fds0} to {fds1}"


@pytest.mark.skipif(shutil.which("slowhttptest") is None and not REQUIRED, reason="slowhttptest is not installed")
@pytest.mark.parametrize("mode", ["-H", "-B", "-X"])
def test_slowhttptest_does_not_starve_normal_clients(tmp_path, mode):
    s = ServerProcess(write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={
        "headerReadTimeoutSeconds": 2, "bodyReadTimeoutSeconds": 2, "idleTimeoutSeconds": 5, "maxConnections": 400,
        "maxConnectionsPerClient": 400}))  # slowhttptest and the normal client share 127.0.0.1
    try:
        target = s.url + ("/v2/models/digits/infer" if mode == "-B" else "/v2/health/live")
        attack = subprocess.Popen(["slowhttptest", mode, "-c", "300", "-r", "100", "-i", "1", "-l", "8", "-p", "2",
                                   "-u", target, "-t", "POST" if mode == "-B" else "GET"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        slowest = 0.0
        try:
            time.sleep(3)  # the attack is at full strength
            for _ in range(10):
                start = time.time()
                r = requests.post(s.url + "/v2/models/digits/infer", data=BODY, timeout=5)
                slowest = max(slowest, time.time() - start)
                assert r.status_code == 200
                time.sleep(0.3)
        finally:
            attack.wait(timeout=60)
        assert slowest < 1.0, f"a normal request took {slowest:.2f} s during slowhttptest {mode}"
        assert s.alive()
    finally:
        assert s.stop() == 0


@pytest.mark.skipif(shutil.which("wrk") is None and not REQUIRED, reason="wrk is not installed")
def test_minilm_endpoint_under_load(tmp_path):
    minilm = ROOT / "models" / "minilm-l6"
    if not (minilm / "model.safetensors").exists():
        pytest.skip("models/minilm-l6 is absent (scripts/fetch-minilm.sh)")
    s = ServerProcess(write_config(tmp_path, [{"name": "minilm", "model": str(minilm),
                                               "batching": {"maxBatchSize": 32, "maxQueueSize": 1024}}]))
    try:
        script = tmp_path / "embed.lua"
        script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                          'wrk.body = [[{"model": "minilm", "input": "A man is eating a piece of bread."}]]\n')
        done, non2xx, errors, p99, out = wrk(s.url + "/v1/embeddings", max(5, LOAD_SECONDS // 2), 64, script)
        print(f"minilm load: {done} requests, p99 {p99}")
        assert done > 50 and non2xx == 0 and errors == 0, out
    finally:
        assert s.stop() == 0
