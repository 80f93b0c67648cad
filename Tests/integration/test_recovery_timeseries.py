"""Recovery training of GunPoint's sequential 1-D CNN (`sparse-serve compress --recover`): 2:4 and
BLAST 50 % on the conv layers, fine-tuned against the dense model on the 50-series training split,
serve an accuracy within one point of the dense model's 0.9733 on the 150-series held-out test
split through the real server (tritonclient); the artifact records the run and keeps the
structure (exact 2:4 masks, BLAST factors); bad training files are refused by name."""
import json

import numpy as np
import requests
import pytest
import tritonclient.http as httpclient
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from conftest import BINARY, ROOT, ServerProcess, write_config
import subprocess

MODEL = ROOT / "models" / "timeseries"
SPLIT = load_file(str(MODEL / "test.safetensors"))
DENSE = 0.9733
TARGET = DENSE - 0.01
COMPRESSIONS = {
    "nm24": {"method": "dense", "layers": {"conv*": {"method": "nm", "n": 2, "m": 4, "pin": True}}},
    # conv1's window is 7 wide (kernel 7 x 1 channel): one block; conv2 (16 x 40) and conv3 (32 x 48): 4 x 4 blocks
    "blast50": {"method": "dense", "layers": {"conv1": {"method": "blast", "blocks": 1, "parameterRatio": 0.5, "pin": True},
                                              "conv*": {"method": "blast", "blocks": 4, "parameterRatio": 0.5, "pin": True}}},
}


def run(*args, timeout=600):
    return subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def metadata(artifact, key):
    with safe_open(str(artifact / "model.safetensors"), "np") as f:
        return json.loads(f.metadata()[key])


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recovered-timeseries")
    runs = {name: run("compress", "--model", MODEL, "--compression", json.dumps(c), "--out", tmp / name, "--recover")
            for name, c in COMPRESSIONS.items()}
    for name, r in runs.items():
        assert r.returncode == 0 and "recover: epoch 1/" in r.stdout and "ETA" in r.stdout, (name, r.stdout, r.stderr)
        print(r.stdout.splitlines()[-1])
    return {name: tmp / name for name in runs}


def served_accuracy(server, names):
    client = httpclient.InferenceServerClient(url=server.url.split("//", 1)[1])
    x, labels = SPLIT["inputs"], SPLIT["labels"]
    assert x.shape == (150, 1, 150)
    result = {}
    for name in names:
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        response = client.infer(name, [inp], outputs=[httpclient.InferRequestedOutput("probabilities"), httpclient.InferRequestedOutput("label")])
        probabilities, label = response.as_numpy("probabilities"), response.as_numpy("label")
        assert np.isfinite(probabilities).all() and (probabilities.argmax(axis=1) == label).all()
        result[name] = float((label == labels).mean())
    return result


def test_recovered_conv_layers_serve_within_one_point_of_dense(tmp_path, recovered):
    endpoints = [{"name": n, "model": str(p)} for n, p in recovered.items()] + [{"name": "dense", "model": str(MODEL)}]
    server = ServerProcess(write_config(tmp_path, endpoints))
    try:
        accuracy = served_accuracy(server, list(recovered) + ["dense"])
        served = {n: requests.get(f"{server.url}/v2/models/{n}", timeout=5).json()["compression"]["artifact"]["recovery"] for n in recovered}
    finally:
        assert server.stop() == 0
    assert abs(accuracy["dense"] - DENSE) < 1e-3
    for name, artifact in recovered.items():
        meta = metadata(artifact, "recovery")
        assert meta["outcome"] == "completed" and meta["steps"] == meta["stepsPlanned"] > 0
        assert meta["usesLabels"] and meta["trainingSamples"] == 50 and meta["trainingFile"].endswith("calibration.safetensors")
        held = meta["heldOut"]
        assert held["file"].endswith("test.safetensors") and held["samples"] == 150 and abs(held["dense"] - DENSE) < 1e-3
        # the trainer's evaluation and the server agree up to float rounding (one series at most)
        assert abs(held["recovered"] - accuracy[name]) <= 1.5 / 150, (name, held, accuracy[name])
        assert served[name]["heldOut"] == {**held, "file": "test.safetensors"}
        assert accuracy[name] >= TARGET, f"{name}: served accuracy {accuracy[name]:.4f} < {TARGET:.4f} (one-shot {held['oneShot']:.4f})"


def test_structure_is_recorded_unchanged(recovered):
    layers = {l["name"]: l for l in metadata(recovered["nm24"], "layers")}
    for conv, shape in [("conv1", [8, 7]), ("conv2", [16, 40]), ("conv3", [32, 48])]:
        assert layers[conv]["shape"] == shape and layers[conv]["method"] == "nm"
        assert layers[conv]["maskCheck"].startswith("exactly 2 of every 4 inputs per row")
    assert layers["fc"]["method"] == "dense"
    with safe_open(str(recovered["blast50"] / "model.safetensors"), "np") as f:
        layers = {l["name"]: l for l in json.loads(f.metadata()["layers"])}
        assert f.get_tensor("conv3.blast.s").shape == (4, 4, layers["conv3"]["parameters"]["rank"])
        assert f.get_tensor("conv1.blast.s").shape == (1, 1, layers["conv1"]["parameters"]["rank"])
        assert "conv2.weight" not in f.keys() and "conv2.blast.U" in f.keys()


def test_bad_training_files_are_named(tmp_path):
    wrong = tmp_path / "wrong.safetensors"
    save_file({"inputs": np.zeros((5, 1, 149), np.float32)}, str(wrong))
    labels = tmp_path / "labels.safetensors"
    save_file({"inputs": np.zeros((2, 1, 150), np.float32), "labels": np.array([1, 2], np.int64)}, str(labels))
    for path, fragments in [(wrong, ["wrong.safetensors", "inputs", "[5, 1, 149]"]), (labels, ["labels.safetensors", "label 2"])]:
        out = tmp_path / f"out-{path.stem}"
        r = run("compress", "--model", MODEL, "--compression", json.dumps(COMPRESSIONS["nm24"]), "--out", out, "--recover",
                "--recovery-data", path)
        assert r.returncode != 0 and all(f in r.stderr for f in fragments), r.stderr
        assert not out.exists()
