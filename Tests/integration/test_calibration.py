"""Calibrated (data-aware) one-shot compression: `compress --calibration` on digits writes an
artifact whose served accuracy on the held-out test split (never seen by compression) is far
above weight-only compression, records the calibration and the held-out quality in its metadata
and reports them in GET /v2/models/NAME; the same compression at load serves the same outputs;
bad calibration files are refused naming the file and tensor, with no partial artifact left."""
import json
import subprocess

import numpy as np
import requests
import tritonclient.http as httpclient
from safetensors.numpy import load_file, save_file

from conftest import BINARY, ROOT, ServerProcess, write_config

DIGITS = ROOT / "models" / "digits-mlp"
SPLIT = load_file(str(DIGITS / "test.safetensors"))
NM24 = {"method": "nm", "n": 2, "m": 4, "pin": True}


def run(*args, timeout=180):
    return subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def accuracy(client, model):
    inp = httpclient.InferInput("input", list(SPLIT["inputs"].shape), "FP32")
    inp.set_data_from_numpy(SPLIT["inputs"])
    probabilities = client.infer(model, [inp]).as_numpy("probabilities")
    return float((probabilities.argmax(axis=1) == SPLIT["labels"]).mean()), probabilities


def test_calibrated_artifact_serves_its_recorded_held_out_quality(tmp_path):
    out = tmp_path / "digits-2of4"
    r = run("compress", "--model", DIGITS, "--compression", json.dumps(NM24), "--calibration",
            DIGITS / "calibration.safetensors", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "calibrated on 512 samples" in r.stdout and "held-out accuracy" in r.stdout
    weight_only = {**NM24, "saliency": "magnitude", "refit": False, "calibration": "default"}
    endpoints = [{"name": "artifact", "model": str(out)},
                 {"name": "at-load", "model": str(DIGITS), "compression": {**NM24, "calibration": "default"}},
                 {"name": "magnitude", "model": str(DIGITS), "compression": NM24},
                 {"name": "magnitude-calibrated", "model": str(DIGITS), "compression": weight_only},
                 {"name": "dense", "model": str(DIGITS)}]
    s = ServerProcess(write_config(tmp_path, endpoints))
    try:
        client = httpclient.InferenceServerClient(s.authority)
        served, from_artifact = accuracy(client, "artifact")
        at_load, loaded = accuracy(client, "at-load")
        magnitude, magnitude_out = accuracy(client, "magnitude")
        dense, _ = accuracy(client, "dense")
        assert np.abs(from_artifact - loaded).max() <= 1e-6
        assert np.array_equal(magnitude_out, accuracy(client, "magnitude-calibrated")[1])
        assert served >= dense - 0.015 and served > magnitude + 0.1, (served, magnitude, dense)
        meta = requests.get(f"{s.url}/v2/models/artifact", timeout=5).json()["compression"]["artifact"]
        # file names only: the server does not tell clients where its files are
        assert meta["calibration"]["source"] == "calibration.safetensors"
        assert meta["calibration"]["samples"] == 512 and meta["calibration"]["saliency"] == "hessian" and meta["calibration"]["refit"]
        quality = meta["quality"]
        assert quality["source"] == "test.safetensors" and quality["samples"] == len(SPLIT["labels"])
        assert abs(quality["accuracy"] - served) < 1e-9 and abs(quality["denseAccuracy"] - dense) < 1e-9
    finally:
        assert s.stop() == 0


def test_bad_calibration_files_are_refused_by_name(tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_file({"inputs": np.zeros((4, 63), dtype=np.float32)}, str(bad))
    empty = tmp_path / "empty.safetensors"
    save_file({"labels": np.zeros((4,), dtype=np.int64)}, str(empty))
    for path, fragments in [(bad, ["tensor 'inputs'", "[63]", "[64]"]), (empty, ["tensor 'inputs'", "missing"]),
                            (tmp_path / "absent.safetensors", ["cannot read"])]:
        out = tmp_path / f"out-{path.stem}"
        r = run("compress", "--model", DIGITS, "--compression", json.dumps(NM24), "--calibration", path, "--out", out)
        assert r.returncode != 0
        assert str(path) in r.stderr and all(f in r.stderr for f in fragments), r.stderr
        assert not out.exists() and not list(tmp_path.glob(".out-*"))
    endpoints = [{"name": "good", "model": str(DIGITS), "compression": {**NM24, "calibration": "default"}},
                 {"name": "bad", "model": str(DIGITS), "compression": {**NM24, "calibration": str(bad)}}]
    s = ServerProcess(write_config(tmp_path, endpoints, server={"exitOnModelLoadError": False}))
    try:
        index = {e["name"]: e for e in requests.post(s.url + "/v2/repository/index", timeout=5).json()}
        assert index["good"]["state"] == "READY"
        assert index["bad"]["state"] == "UNAVAILABLE" and str(bad) in index["bad"]["reason"] and "[63]" in index["bad"]["reason"]
    finally:
        assert s.stop() == 0
