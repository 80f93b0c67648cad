"""Recovery training (`sparse-serve compress --recover`): every compression of the digits MLP,
fine-tuned against the dense model on the digits training split, serves at least 0.965 accuracy on
the held-out test split (dense: 0.976) through the real server (tritonclient); the artifact records
the run; bad input is refused by name with no artifact left behind; SIGINT and a diverging run stop
the training and still write an artifact with the last good weights."""
import json
import pathlib
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from conftest import BINARY, ROOT, ServerProcess, write_config

DIGITS = ROOT / "models" / "digits-mlp"
SPLIT = load_file(str(DIGITS / "test.safetensors"))
TARGET = 0.965
FC3_DENSE = {"fc3": {"method": "dense"}}
COMPRESSIONS = {
    "nm24": {"method": "nm", "n": 2, "m": 4, "pin": True},
    "nm24t": {"method": "nm", "n": 2, "m": 4, "mask": "transposable", "pin": True, "layers": FC3_DENSE},
    "blast50": {"method": "blast", "blocks": 4, "parameterRatio": 0.5, "pin": True, "layers": FC3_DENSE},
    # neuron (row) groups of fc1 and fc2 at radiusRatio 0.16: 132 of fc1's and 245 of fc2's 256 neurons
    # stay, fc2 and fc3 shrink with them; 51 % of the dense parameters
    "l1inf50": {"method": "dense", "layers": {"fc1": {"method": "l1inf", "groups": "rows", "radiusRatio": 0.16},
                                              "fc2": {"method": "l1inf", "groups": "rows", "radiusRatio": 0.16}}},
    "csr50": {"method": "csr", "density": 0.5, "pin": True},
    # 2:4 with int8 weights and activations: trained as fp32 under the mask, then quantized again
    "nm24int8": {"method": "nm", "n": 2, "m": 4, "pin": True, "quantize": {"weights": "int8", "activations": "int8-dynamic"}},
}


def run(*args, timeout=300):
    return subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def training_split(tmp_path_factory):
    """The digits training split of scripts/train_digits.py (same seed and split); its complement
    must be exactly the held-out test split the model ships, so training never sees held-out data."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.25, stratify=digits.target,
                                                        random_state=20240601)
    assert np.array_equal(x_test.astype(np.float32), SPLIT["inputs"]) and np.array_equal(y_test, SPLIT["labels"])
    path = tmp_path_factory.mktemp("recovery-data") / "train.safetensors"
    save_file({"inputs": x_train.astype(np.float32), "labels": y_train.astype(np.int64)}, str(path))
    return path


def compress(out, compression, *extra):
    return run("compress", "--model", DIGITS, "--compression", json.dumps(compression), "--out", out, "--recover", *extra)


def recovery_metadata(artifact):
    with safe_open(str(artifact / "model.safetensors"), "np") as f:
        return json.loads(f.metadata()["recovery"])


@pytest.fixture(scope="module")
def recovered(tmp_path_factory, training_split):
    tmp = tmp_path_factory.mktemp("recovered")
    out = {}
    for name, compression in COMPRESSIONS.items():
        r = compress(tmp / name, compression, "--recovery-data", training_split)
        assert r.returncode == 0, r.stderr
        assert "recover: epoch 1/" in r.stdout and "ETA" in r.stdout, r.stdout
        out[name] = tmp / name
    return out


def served_accuracy(server, names):
    client = httpclient.InferenceServerClient(url=server.url.split("//", 1)[1])
    x, labels = SPLIT["inputs"], SPLIT["labels"]
    result = {}
    for name in names:
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        probabilities = client.infer(name, [inp], outputs=[httpclient.InferRequestedOutput("probabilities")]).as_numpy("probabilities")
        assert np.isfinite(probabilities).all()
        result[name] = float((probabilities.argmax(axis=1) == labels).mean())
    return result


def test_recovered_artifacts_meet_the_accuracy_target_through_the_server(tmp_path, recovered):
    config = write_config(tmp_path, [{"name": n, "model": str(p)} for n, p in recovered.items()])
    server = ServerProcess(config)
    try:
        accuracy = served_accuracy(server, recovered)
        served = {n: requests.get(f"{server.url}/v2/models/{n}", timeout=5).json()["compression"]["artifact"]["recovery"]
                  for n in recovered}
    finally:
        assert server.stop() == 0
    for name, artifact in recovered.items():
        meta = recovery_metadata(artifact)
        assert meta["outcome"] == "completed" and meta["steps"] == meta["stepsPlanned"] > 0
        assert meta["method"] == "distillation" and meta["usesLabels"] and meta["trainingSamples"] == 1347
        assert meta["trainingFingerprint"].startswith("fnv1a64:")
        held = meta["heldOut"]
        assert held["file"].endswith("test.safetensors") and held["samples"] == 450
        assert held["oneShot"] < held["recovered"]
        # the trainer's own evaluation and the server agree up to float rounding (one sample at most)
        assert abs(held["recovered"] - accuracy[name]) <= 1.5 / 450, (name, held, accuracy[name])
        # GET /v2/models/NAME reports the same run, with file names instead of the server's paths
        assert served[name]["heldOut"] == {**held, "file": "test.safetensors"} and served[name]["steps"] == meta["steps"]
        assert served[name]["trainingFile"] == pathlib.Path(meta["trainingFile"]).name
        assert accuracy[name] >= TARGET, f"{name}: served accuracy {accuracy[name]:.4f} < {TARGET} (one-shot {held['oneShot']:.4f})"


def test_structure_is_recorded_unchanged(recovered):
    """The artifact's layer records still say what the one-shot compression stored (mask check,
    BLAST rank, compaction)."""
    with safe_open(str(recovered["nm24t"] / "model.safetensors"), "np") as f:
        layers = {l["name"]: l for l in json.loads(f.metadata()["layers"])}
    assert layers["fc1"]["maskCheck"] == "exactly 2 of every 4 inputs per row; exactly 2 per column of every 4×4 block"
    with safe_open(str(recovered["blast50"] / "model.safetensors"), "np") as f:
        layers = {l["name"]: l for l in json.loads(f.metadata()["layers"])}
        assert f.get_tensor("fc2.blast.s").shape == (4, 4, layers["fc2"]["parameters"]["rank"])
    with safe_open(str(recovered["l1inf50"] / "model.safetensors"), "np") as f:
        layers = {l["name"]: l for l in json.loads(f.metadata()["layers"])}
        assert layers["fc1"]["compaction"]["outputWidth"] == 132 and f.get_tensor("fc1.l1inf.weight").shape == (132, 64)
        assert f.get_tensor("fc2.l1inf.weight").shape == (245, 132) and f.get_tensor("fc3.dense.weight").shape == (10, 245)


def test_quantized_layers_are_stored_quantized_after_recovery(recovered):
    with safe_open(str(recovered["nm24int8"] / "model.safetensors"), "np") as f:
        layers = {l["name"]: l for l in json.loads(f.metadata()["layers"])}
        assert f.get_tensor("fc2.nm.values").dtype == np.int8 and f.get_tensor("fc2.nm.scales").shape == (256, 1)
    assert layers["fc1"]["maskCheck"] == "exactly 2 of every 4 inputs per row"
    assert layers["fc2"]["parameters"]["activations"] == "int8-dynamic"


def test_an_endpoint_serves_its_artifact_once_built(tmp_path, recovered):
    """An endpoint's "artifact" is served when its folder exists (with the artifact's compression
    and recorded quality); while it is absent the model is compressed at load, and the log says so."""
    fallback = {"method": "nm", "n": 2, "m": 4, "pin": True}
    config = write_config(tmp_path, [
        {"name": "built", "model": str(DIGITS), "artifact": str(recovered["nm24int8"]), "compression": fallback},
        {"name": "absent", "model": str(DIGITS), "artifact": str(tmp_path / "not-built"), "compression": fallback},
    ])
    server = ServerProcess(config)
    try:
        meta = {n: requests.get(f"{server.url}/v2/models/{n}", timeout=5).json() for n in ("built", "absent")}
        accuracy = served_accuracy(server, ["built", "absent"])
    finally:
        assert server.stop() == 0
    built, absent = meta["built"]["parameters"], meta["absent"]["parameters"]
    assert built["compression_source"] == "artifact" and absent["compression_source"] == "config"
    assert meta["built"]["compression"]["artifact"]["recovery"]["outcome"] == "completed"
    assert accuracy["built"] >= TARGET and accuracy["absent"] < accuracy["built"], accuracy
    log = "".join(server.stderr_lines)
    assert "serving the compressed artifact" in log and "artifact absent: compressing the model at load" in log
    assert str(tmp_path / "not-built") in log


def test_recover_without_training_signal_is_refused(tmp_path):
    model = tmp_path / "bare"  # the digits model without any sample files beside it
    model.mkdir()
    for name in ("model.json", "model.safetensors"):
        shutil.copy(DIGITS / name, model / name)
    out = tmp_path / "none"
    r = run("compress", "--model", model, "--compression", json.dumps(COMPRESSIONS["nm24"]), "--out", out, "--recover")
    assert r.returncode != 0 and "no training samples" in r.stderr and "refused" in r.stderr
    assert not out.exists()


def test_recover_of_an_all_dense_plan_is_refused(tmp_path, training_split):
    out = tmp_path / "dense"
    r = compress(out, {"method": "dense"}, "--recovery-data", training_split)
    assert r.returncode != 0 and "nothing to recover" in r.stderr
    assert not out.exists()


def test_bad_training_files_are_named(tmp_path):
    wrong = tmp_path / "wrong.safetensors"
    save_file({"inputs": np.zeros((5, 63), np.float32)}, str(wrong))
    labels = tmp_path / "labels.safetensors"
    save_file({"inputs": np.zeros((2, 64), np.float32), "labels": np.array([1, 10], np.int64)}, str(labels))
    for path, fragments in [(wrong, ["wrong.safetensors", "inputs", "[5, 63]"]), (labels, ["labels.safetensors", "label 10"]),
                            (tmp_path / "missing.safetensors", ["missing.safetensors", "does not exist"])]:
        out = tmp_path / f"out-{path.stem}"
        r = compress(out, COMPRESSIONS["nm24"], "--recovery-data", path)
        assert r.returncode != 0 and all(f in r.stderr for f in fragments), r.stderr
        assert not out.exists() and not list(tmp_path.glob(".out-*partial*"))
    for flag in (["--epochs", "3"], ["--hidden-state-weight", "1"]):
        r = run("compress", "--model", DIGITS, "--compression", "{}", "--out", tmp_path / "x", *flag)
        assert r.returncode != 0 and "only apply with --recover" in r.stderr, flag
    for bad in ("-1", "nan", "1001"):
        r = run("compress", "--model", DIGITS, "--compression", "{}", "--out", tmp_path / "x", "--recover", f"--hidden-state-weight={bad}")
        assert r.returncode != 0 and "--hidden-state-weight must be a number in 0...1000" in r.stderr, (bad, r.stderr)
    assert not (tmp_path / "x").exists()


def test_sigint_stops_training_and_writes_the_weights_so_far(tmp_path, training_split):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([BINARY, "compress", "--model", str(DIGITS), "--compression", json.dumps(COMPRESSIONS["nm24"]), "--out", str(out),
                             "--recover", "--epochs", "1000", "--recovery-data", str(training_split)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines = []
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("recover: epoch 30/"):
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "interrupted" in stdout
    meta = recovery_metadata(out)
    assert meta["outcome"] == "interrupted" and 0 < meta["steps"] < meta["stepsPlanned"]
    assert meta["lastLoss"] < meta["firstLoss"] and meta["heldOut"]["recovered"] > meta["heldOut"]["oneShot"]


def test_a_diverging_run_stops_and_keeps_the_last_good_weights(tmp_path, training_split):
    out = tmp_path / "diverged"
    r = compress(out, COMPRESSIONS["nm24"], "--recovery-data", training_split, "--lr", "1e30", "--epochs", "5")
    assert r.returncode == 0, r.stderr
    assert "diverged" in r.stdout and "kept the weights of step" in r.stdout
    meta = recovery_metadata(out)
    assert meta["outcome"] == "diverged" and meta["steps"] < meta["stepsPlanned"]
    tensors = load_file(str(out / "model.safetensors"))
    assert all(np.isfinite(v).all() for v in tensors.values() if v.dtype == np.float32)
