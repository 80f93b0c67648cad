"""Recovery training of MiniLM (`sparse-serve compress --recover` on a bert-encoder), the short CI
version of Benchmarks/scripts/recovery_minilm.py: 2:4 on every encoder linear, calibrated and then
recovered on the same 48 calibration texts (the --calibration file is the default training data),
held-out texts the run never trains on, LayerNorms trained too (--train-norms: stored in the
artifact), hidden states in the end-to-end loss (--hidden-state-weight). Each layer's block-wise loss drops (the mean of its last epoch is below its first
epoch's), the end-to-end pass runs, the artifact records the run with the held-out quality before
and after, and `--heldout` is the same option as `--held-out`."""
import json
import re
import subprocess
import time

import numpy as np
import pytest
from safetensors import safe_open

from conftest import BINARY, ROOT

MINILM = ROOT / "models" / "minilm-l6"
NM24 = {"method": "dense", "layers": {"encoder.layer.*": {"method": "nm", "n": 2, "m": 4}},
        "calibration": {"samples": 48}}


def lines(name, count):
    return [l for l in (MINILM / name).read_text().splitlines() if l.strip()][:count]


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    if not (MINILM / "model.safetensors").exists():
        pytest.skip("models/minilm-l6 is absent (scripts/fetch-minilm.sh fetches it)")
    tmp = tmp_path_factory.mktemp("minilm-recovery")
    (tmp / "train.txt").write_text("\n".join(lines("calibration.txt", 48)) + "\n")
    (tmp / "held.txt").write_text("\n".join(lines("heldout.txt", 32)) + "\n")
    out = tmp / "artifact"
    started = time.time()
    r = subprocess.run([BINARY, "compress", "--model", MINILM, "--compression", json.dumps(NM24), "--out", out,
                        "--calibration", tmp / "train.txt", "--heldout", tmp / "held.txt",
                        "--recover", "--epochs", "3", "--batch-size", "8", "--end-to-end-epochs", "1", "--train-norms",
                        "--hidden-state-weight", "0.5"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    with safe_open(str(out / "model.safetensors"), "np") as f:
        meta = f.metadata()
        norm = f.get_tensor("encoder.layer.5.output.LayerNorm.weight")
    with safe_open(str(MINILM / "model.safetensors"), "np") as f:
        assert not np.array_equal(norm, f.get_tensor("encoder.layer.5.output.LayerNorm.weight")), "--train-norms: LayerNorm not stored"
    return r.stdout, json.loads(meta["recovery"]), json.loads(meta["quality"]), time.time() - started


def test_every_layer_loss_drops(recovered):
    stdout, report, _, _ = recovered
    assert report["outcome"] == "completed" and report["method"] == "block-wise distillation"
    assert report["trainingFile"].endswith("train.txt") and report["trainingSamples"] == 48
    blocks = report["blocks"]
    assert [b["layer"] for b in blocks] == [f"encoder.layer.{i}" for i in range(6)] + ["end-to-end"]
    # each layer's mean loss of its last epoch is below its first epoch's (the progress lines; a
    # single first batch can be easier than the epoch's mean)
    epochs = re.findall(r"recover: layer (\d)/6 epoch (\d)/3 .* loss ([0-9.]+)", stdout)
    for i, b in enumerate(blocks[:6]):
        means = {int(e): float(loss) for layer, e, loss in epochs if int(layer) == i + 1}
        assert b["steps"] == 3 * 6 and means[3] < means[1], (b, means)
        assert abs(b["lastLoss"] - means[3]) < 1e-5, (b, means)
    # one end-to-end epoch: too short for its mean to beat the first batch reliably
    assert blocks[6]["steps"] == 6 and 0 < blocks[6]["lastLoss"] < 1
    assert "LayerNorm gains and biases train too" in report["loss"]
    assert "plus 0.5 × the mean over layers of each layer's hidden-state MSE" in report["loss"]
    assert report["steps"] == report["stepsPlanned"] == 19 * 6
    assert stdout.count("recover: layer") == 18 and "ETA" in stdout


def test_held_out_quality_is_recorded(recovered):
    _, report, quality, _ = recovered
    held = report["heldOut"]
    assert held["metric"] == "mean cosine to dense" and held["samples"] == 32 and held["file"].endswith("held.txt")
    assert 0.5 < held["oneShot"] < 1 and 0.5 < held["recovered"] <= 1.0001
    assert held["recoveredMinimum"] <= held["recovered"]
    # the one-shot figure the compression recorded (--heldout) is the same measurement
    assert quality["samples"] == 32 and abs(quality["meanCosine"] - held["oneShot"]) < 1e-6


def test_recover_without_texts_is_refused(tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in MINILM.iterdir():
        if f.name not in ("calibration.txt", "heldout.txt", "recovery.txt"):
            (bare / f.name).symlink_to(f)
    r = subprocess.run([BINARY, "compress", "--model", bare, "--compression", json.dumps({"method": "dense", "layers": {
                        "encoder.layer.0.intermediate.dense": {"method": "nm", "n": 2, "m": 4}}}), "--out", tmp_path / "out", "--recover"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode != 0 and "needs texts" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
