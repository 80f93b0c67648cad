"""The GunPoint 1-D CNN (`sequential` architecture: conv1d lowered to banded operators, pooling)
served end to end: tritonclient over the whole test split must give exactly the training script's
argmax, both input layouts work, bad shapes get a 400 naming the expected shape, and an N:M
compressed endpoint built from the config's layer glob serves too."""
import concurrent.futures
import json
import subprocess

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from safetensors import safe_open
from safetensors.numpy import load_file

from conftest import ROOT, ServerProcess, write_config

MODEL = ROOT / "models" / "timeseries"


@pytest.fixture(scope="module")
def reference():
    t = load_file(str(MODEL / "test.safetensors"))
    with safe_open(str(MODEL / "test.safetensors"), "np") as f:
        accuracy = float(f.metadata()["test_accuracy"])
    return t["inputs"], t["labels"], t["probabilities"], accuracy


@pytest.fixture(scope="module")
def ts_server(tmp_path_factory):
    endpoints = [
        {"name": "timeseries", "model": str(MODEL)},
        {"name": "timeseries-batched", "model": str(MODEL),
         "batching": {"maxBatchSize": 32, "maxQueueDelayMicroseconds": 2000, "maxQueueSize": 256}},
        {"name": "timeseries-nm", "model": str(MODEL),
         "compression": {"method": "dense", "layers": {"conv*": {"method": "nm", "n": 2, "m": 4, "pin": True}}}},
    ]
    s = ServerProcess(write_config(tmp_path_factory.mktemp("ts"), endpoints))
    yield s
    assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


@pytest.fixture(scope="module")
def client(ts_server):
    c = httpclient.InferenceServerClient(url=ts_server.authority, connection_timeout=10, network_timeout=30)
    yield c
    c.close()


def infer(client, x, model="timeseries", binary=True):
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(np.ascontiguousarray(x, dtype=np.float32), binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("probabilities", "label")]
    result = client.infer(model, [inp], outputs=outputs)
    return result.as_numpy("probabilities"), result.as_numpy("label")


def test_metadata(client):
    meta = client.get_model_metadata("timeseries")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 150]}]
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {"probabilities": [-1, 2], "label": [-1]}


@pytest.mark.parametrize("batch,binary", [(1, False), (32, True), (150, True)])
def test_whole_test_split_matches_reference(client, reference, batch, binary):
    inputs, labels, ref_probs, recorded_accuracy = reference
    probs, predicted = [], []
    for start in range(0, len(inputs), batch):
        p, label = infer(client, inputs[start:start + batch], binary=binary)
        probs.append(p)
        predicted.append(label)
    probs, predicted = np.concatenate(probs), np.concatenate(predicted)
    assert np.array_equal(predicted, ref_probs.argmax(1)), "argmax differs from the training script's reference"
    assert np.max(np.abs(probs - ref_probs)) <= 1e-5
    assert float((predicted == labels).mean()) == pytest.approx(recorded_accuracy, abs=1e-6)


def test_both_input_layouts(client, reference):
    inputs = reference[0][:20]
    with_channel, _ = infer(client, inputs)
    flat, _ = infer(client, inputs[:, 0, :])
    assert np.array_equal(with_channel, flat)


@pytest.mark.parametrize("shape", [[2, 149], [2, 2, 150], [300], [2, 1, 1, 150]])
def test_bad_shapes_name_the_expected_shape(ts_server, shape):
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": shape, "data": [0.5] * int(np.prod(shape))}]}
    r = requests.post(f"http://{ts_server.authority}/v2/models/timeseries/infer", json=body, timeout=10)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("application/json")
    assert "[-1, 1, 150]" in r.json()["error"] and "[-1, 150]" in r.json()["error"], r.json()
    assert requests.get(f"http://{ts_server.authority}/v2/health/live", timeout=5).status_code == 200


def test_batched_endpoint_under_concurrency(ts_server, reference):
    inputs, _, ref_probs, _ = reference
    expected = ref_probs.argmax(1)

    def worker(t):
        c = httpclient.InferenceServerClient(ts_server.authority)
        try:
            for i in range(t, 50, 8):
                _, label = infer(c, inputs[3 * i:3 * i + 3], model="timeseries-batched")
                assert label.tolist() == expected[3 * i:3 * i + 3].tolist()
        finally:
            c.close()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))


def test_compressed_conv_layers(client, ts_server, reference):
    """The config's `conv*` glob puts every conv layer's window weights at 2:4 inside the band."""
    inputs, labels, _, _ = reference
    meta = requests.get(f"http://{ts_server.authority}/v2/models/timeseries-nm", timeout=5).json()
    layers = {layer["name"]: layer for layer in meta["compression"]["layers"]}
    for name in ["conv1", "conv2", "conv3"]:
        assert layers[name]["storage"].startswith("banded ") and "[nm 2:4]" in layers[name]["storage"], layers[name]
        assert 0 < layers[name]["relative_error"] < 1
    assert layers["fc"]["storage"] == "dense"
    probs, predicted = infer(client, inputs, model="timeseries-nm")
    assert probs.shape == (150, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    accuracy = float((predicted == labels).mean())
    print(f"timeseries, conv layers at 2:4 (one-shot, no retraining): accuracy {accuracy:.4f}")


def test_curl_fixture_request(ts_server, reference):
    out = subprocess.run(["curl", "-s", "--max-time", "10", f"http://{ts_server.authority}/v2/models/timeseries/infer",
                          "-d", f"@{ROOT / 'Tests' / 'fixtures' / 'timeseries-one.json'}"],
                         capture_output=True, check=True, timeout=20)
    outputs = {o["name"]: o for o in json.loads(out.stdout)["outputs"]}
    assert outputs["probabilities"]["shape"] == [1, 2]
    assert np.max(np.abs(np.array(outputs["probabilities"]["data"]) - reference[2][0])) <= 1e-5
    assert outputs["label"]["data"] == [int(reference[2][0].argmax())]


def test_inspect_lists_the_lowered_layers():
    from conftest import BINARY
    r = subprocess.run([BINARY, "inspect", str(MODEL)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[5:] if line and not line.startswith("total")}
    assert rows["conv1"][1:3] == ["conv1d", "1200x150"] and rows["conv1"][-2:] == ["banded", "150x[dense]"]
    assert rows["gap"][1:3] == ["globalavgpool1d", "32x1184"]
    assert "total: 2354 parameters" in r.stdout


def test_recurrence_model_served_in_both_forms(tmp_path):
    """A causal conv feeding a linear recurrence (T = 128) and a classifier, written here with
    random weights: the server's matrix and scan forms both match a float64 numpy scan."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(8)
    steps, cin, hidden, state = 128, 2, 6, 8
    tensors = {"conv.weight": rng.normal(0, 0.5, (hidden, cin, 3)), "conv.bias": rng.normal(0, 0.1, hidden),
               "rec.weight": rng.normal(0, 0.5, (state, hidden)), "rec.decay": rng.uniform(-0.95, 0.95, state),
               "rec.bias": rng.normal(0, 0.1, state), "fc.weight": rng.normal(0, 0.5, (3, state)), "fc.bias": np.zeros(3)}
    tensors = {k: v.astype(np.float32) for k, v in tensors.items()}
    endpoints = []
    for form in ["matrix", "scan"]:
        folder = tmp_path / form
        folder.mkdir()
        save_file(tensors, str(folder / "model.safetensors"))
        (folder / "model.json").write_text(json.dumps({
            "architecture": "sequential",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, cin, steps]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
            "layers": [{"name": "conv", "type": "conv1d", "bias": "conv.bias", "padding": "causal", "activation": "tanh"},
                       {"name": "rec", "type": "recurrence", "bias": "rec.bias", "output": "last", "form": form},
                       {"name": "fc", "type": "linear", "bias": "fc.bias"}, {"type": "softmax"}]}))
        endpoints.append({"name": form, "model": str(folder)})
    x = rng.normal(0, 1, (5, cin, steps)).astype(np.float32)

    # float64 reference: causal conv + tanh, the recurrence as a loop, linear, softmax
    t = {k: v.astype(np.float64) for k, v in tensors.items()}
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (2, 0)))
    conv = np.tanh(np.einsum("ock,nckt->not", t["conv.weight"],
                             np.stack([padded[:, :, k:k + steps] for k in range(3)], axis=2)) + t["conv.bias"][None, :, None])
    h = np.zeros((5, state))
    for step in range(steps):
        h = t["rec.decay"] * h + conv[:, :, step] @ t["rec.weight"].T + t["rec.bias"]
    logits = h @ t["fc.weight"].T + t["fc.bias"]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)

    s = ServerProcess(write_config(tmp_path, endpoints))
    try:
        c = httpclient.InferenceServerClient(s.authority)
        meta = {form: requests.get(f"http://{s.authority}/v2/models/{form}", timeout=5).json() for form in ["matrix", "scan"]}
        for form in ["matrix", "scan"]:
            rec = next(layer for layer in meta[form]["compression"]["layers"] if layer["name"] == "rec")
            assert rec["storage"].startswith(f"recurrence {form}"), rec
            inp = httpclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            got = c.infer(form, [inp]).as_numpy("probabilities")
            assert np.max(np.abs(got - expected)) <= 1e-5, form
        c.close()
    finally:
        assert s.stop() == 0
