"""Dynamic batching: concurrent requests are coalesced, each client gets its own rows back."""
import concurrent.futures
import json

import numpy as np
import requests
from safetensors.numpy import load_file

from conftest import ROOT
from test_metrics import sample, scrape


def test_concurrent_requests_are_batched_and_answers_stay_separate(server):
    t = load_file(str(ROOT / "models" / "digits-mlp" / "test.safetensors"))
    inputs, ref = t["inputs"], t["probabilities"]
    before = scrape(server)

    def one(i):
        body = {"id": str(i), "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                          "data": inputs[i].tolist()}], "outputs": [{"name": "probabilities"}]}
        r = requests.post(f"http://{server.authority}/v2/models/digits-batched/infer", json=body, timeout=20)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["id"] == str(i)
        return i, np.array(out["outputs"][0]["data"], dtype=np.float32)

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(one, range(64)))
    for i, probs in results:
        assert np.max(np.abs(probs - ref[i])) <= 1e-5, f"request {i} got someone else's rows"
    after = scrape(server)
    name = "sparseserve_batch_rows"
    batches = sample(after, name, name + "_count", model="digits-batched") - sample(before, name, name + "_count", model="digits-batched")
    rows = sample(after, name, name + "_sum", model="digits-batched") - sample(before, name, name + "_sum", model="digits-batched")
    assert rows == 64
    assert batches < 64, "a 20 ms queue delay with 32 concurrent clients must coalesce requests"


def test_model_config_for_perf_analyzer(server):
    cfg = requests.get(f"http://{server.authority}/v2/models/digits-batched/config", timeout=10).json()
    assert cfg["max_batch_size"] == 16
    assert cfg["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [64]}]
    assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 20000


def test_queue_timeout_parameter(server):
    body = {"parameters": {"timeout": "soon"}, "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}]}
    r = requests.post(f"http://{server.authority}/v2/models/digits-batched/infer", json=body, timeout=10)
    assert r.status_code == 400 and "timeout" in r.json()["error"]
    body["parameters"]["timeout"] = 10_000_000
    assert requests.post(f"http://{server.authority}/v2/models/digits-batched/infer", json=body, timeout=10).status_code == 200


def test_disconnected_client_is_dropped_before_its_batch_runs(tmp_path):
    import socket
    import time
    from conftest import DEFAULT_ENDPOINTS, ServerProcess, write_config
    endpoint = dict(DEFAULT_ENDPOINTS[0], name="slowbatch",
                    batching={"maxBatchSize": 64, "maxQueueDelayMicroseconds": 1500000, "dispatchWhenIdle": False})
    s = ServerProcess(write_config(tmp_path, [endpoint]))
    try:
        body = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_bytes()
        head = (f"POST /v2/models/slowbatch/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        leaving = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        leaving.sendall(head + body)
        time.sleep(0.2)
        leaving.close()  # gone while its request waits for the batch window
        r = requests.post(s.url + "/v2/models/slowbatch/infer", data=body, timeout=10)
        assert r.status_code == 200
        metrics = requests.get(s.url + "/metrics", timeout=5).text
        assert 'sparseserve_inference_failures_total{model="slowbatch",reason="cancelled"} 1' in metrics
        assert 'sparseserve_inference_rows_total{model="slowbatch"} 1' in metrics  # only the staying client ran
    finally:
        assert s.stop() == 0
