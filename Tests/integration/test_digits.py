"""The digits MLP served end to end: tritonclient (JSON path) over the whole test split, and curl."""
import json
import subprocess

import numpy as np
import pytest
import tritonclient.http as httpclient
from safetensors.numpy import load_file

from conftest import ROOT

TEST_SPLIT = ROOT / "models" / "digits-mlp" / "test.safetensors"


@pytest.fixture(scope="module")
def reference():
    t = load_file(str(TEST_SPLIT))
    return t["inputs"], t["labels"], t["probabilities"]


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(url=server.authority, connection_timeout=10, network_timeout=30)
    yield c
    c.close()


def test_health_and_metadata_through_tritonclient(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits")
    meta = client.get_model_metadata("digits")
    assert meta["name"] == "digits"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert {o["name"] for o in meta["outputs"]} == {"probabilities", "label"}
    assert client.get_server_metadata()["name"] == "sparse-serve"


def run_split(client, inputs, batch):
    probs = []
    for start in range(0, len(inputs), batch):
        x = inputs[start:start + batch].astype(np.float32)
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=False)
        out = httpclient.InferRequestedOutput("probabilities", binary_data=False)
        result = client.infer("digits", [inp], outputs=[out], request_id=f"req-{start}")
        assert result.get_response()["model_name"] == "digits"
        assert result.get_response()["id"] == f"req-{start}"
        probs.append(result.as_numpy("probabilities"))
    return np.concatenate(probs)


@pytest.mark.parametrize("batch", [1, 37])
def test_whole_test_split_matches_reference(client, reference, batch):
    inputs, labels, ref_probs = reference
    probs = run_split(client, inputs, batch)
    assert probs.shape == ref_probs.shape
    assert np.array_equal(probs.argmax(1), ref_probs.argmax(1)), "argmax differs from the Python reference"
    assert np.max(np.abs(probs - ref_probs)) <= 1e-5
    served_accuracy = float((probs.argmax(1) == labels).mean())
    reference_accuracy = float((ref_probs.argmax(1) == labels).mean())
    assert served_accuracy == reference_accuracy
    assert served_accuracy > 0.9


def test_label_output_is_argmax(client, reference):
    inputs, _, ref_probs = reference
    x = inputs[:16].astype(np.float32)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=False)
    result = client.infer("digits", [inp], outputs=[httpclient.InferRequestedOutput("label", binary_data=False)])
    assert result.as_numpy("label").tolist() == ref_probs[:16].argmax(1).tolist()
    assert result.as_numpy("probabilities") is None


def test_curl_fixture_request(server, reference):
    out = subprocess.run(["curl", "-s", "--max-time", "10", f"http://{server.authority}/v2/models/digits/infer",
                          "-d", f"@{ROOT / 'Tests' / 'fixtures' / 'digits-one.json'}"],
                         capture_output=True, check=True, timeout=20)
    body = json.loads(out.stdout)
    assert body["model_name"] == "digits"
    outputs = {o["name"]: o for o in body["outputs"]}
    probs = np.array(outputs["probabilities"]["data"], dtype=np.float32)
    assert outputs["probabilities"]["shape"] == [1, 10]
    _, _, ref_probs = reference
    assert np.max(np.abs(probs - ref_probs[0])) <= 1e-5
    assert outputs["label"]["data"] == [int(ref_probs[0].argmax())]


def test_binary_tensor_path_is_tritonclients_default(client, reference):
    inputs, _, ref_probs = reference
    x = inputs[:50].astype(np.float32)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)  # binary_data=True by default
    result = client.infer("digits", [inp])  # no outputs listed: binary_data_output for all
    assert np.max(np.abs(result.as_numpy("probabilities") - ref_probs[:50])) <= 1e-5
    assert result.as_numpy("label").tolist() == ref_probs[:50].argmax(1).tolist()
    result = client.infer("digits", [inp], outputs=[httpclient.InferRequestedOutput("label", binary_data=True),
                                                     httpclient.InferRequestedOutput("probabilities", binary_data=False)])
    assert result.as_numpy("label").dtype == np.int64
    assert np.max(np.abs(result.as_numpy("probabilities") - ref_probs[:50])) <= 1e-5


def test_raw_binary_request(server, reference):
    import requests
    inputs, _, ref_probs = reference
    body = inputs[3].astype("<f4").tobytes()
    r = requests.post(f"http://{server.authority}/v2/models/digits/infer", data=body,
                      headers={"Inference-Header-Content-Length": "0"}, timeout=10)
    assert r.status_code == 200, r.text
    n = int(r.headers["Inference-Header-Content-Length"])
    header = json.loads(r.content[:n])
    assert r.headers["Content-Type"] == "application/octet-stream"
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    blobs, offset = {}, n
    for o, size in zip(header["outputs"], sizes):
        blobs[o["name"]] = r.content[offset:offset + size]
        offset += size
    probs = np.frombuffer(blobs["probabilities"], dtype="<f4")
    assert np.max(np.abs(probs - ref_probs[3])) <= 1e-5
    assert np.frombuffer(blobs["label"], dtype="<i8").tolist() == [int(ref_probs[3].argmax())]


def test_bad_binary_header(server):
    import requests
    for value in ["-1", "abc", "999999"]:
        r = requests.post(f"http://{server.authority}/v2/models/digits/infer", data=b"{}",
                          headers={"Inference-Header-Content-Length": value}, timeout=10)
        assert r.status_code == 400 and "Inference-Header-Content-Length" in r.json()["error"]


def test_async_requests_and_many_threads(server, reference):
    import concurrent.futures
    x, _, probabilities = reference
    expected = probabilities.argmax(axis=1)

    def inputs(i):
        inp = httpclient.InferInput("input", [3, 64], "FP32")
        inp.set_data_from_numpy(x[3 * i:3 * i + 3])
        return [inp]

    # 40 requests in flight at once from one client (tritonclient's gevent pool)
    client = httpclient.InferenceServerClient(server.authority, concurrency=8)
    handles = [client.async_infer("digits", inputs(i)) for i in range(40)]
    for i, h in enumerate(handles):
        assert (h.get_result(timeout=30).as_numpy("probabilities").argmax(axis=1) == expected[3 * i:3 * i + 3]).all()
    client.close()

    # and 8 threads, each with its own client (gevent clients are not shared across threads)
    def worker(t):
        c = httpclient.InferenceServerClient(server.authority)
        for i in range(t, 40, 8):
            got = c.infer("digits", inputs(i)).as_numpy("probabilities").argmax(axis=1)
            assert (got == expected[3 * i:3 * i + 3]).all()
        c.close()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
