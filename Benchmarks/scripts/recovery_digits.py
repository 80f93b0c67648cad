#!/usr/bin/env python3
"""Recovery training on the digits MLP: one-shot vs recovered held-out accuracy and training time.

For every compression of README's recovery table it runs `sparse-serve compress --recover` (release
binary) on the digits training split of scripts/train_digits.py (same seed and split; made here with
scikit-learn unless the model folder ships calibration.safetensors), reads the run's report from
the artifact's `recovery` metadata and prints a markdown table with the load average before and
after (the machine may be shared: numbers taken under load are flagged as such).

    python3 Benchmarks/scripts/recovery_digits.py [--epochs 60]
"""
import argparse
import json
import os
import pathlib
import subprocess
import tempfile
import time

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("SPARSESERVE_BINARY", str(ROOT / ".build" / "release" / "sparse-serve"))
MODEL = ROOT / "models" / "digits-mlp"
FC3_DENSE = {"fc3": {"method": "dense"}}
ROWS = {
    "nm 2:4": {"method": "nm", "n": 2, "m": 4, "pin": True},
    "nm 4:8": {"method": "nm", "n": 4, "m": 8, "pin": True},
    "nm 2:4 transposable, fc3 dense": {"method": "nm", "n": 2, "m": 4, "mask": "transposable", "pin": True, "layers": FC3_DENSE},
    "BLAST b=4, 50 % params, fc3 dense": {"method": "blast", "blocks": 4, "parameterRatio": 0.5, "pin": True, "layers": FC3_DENSE},
    "l1,inf rows on fc1 and fc2, rho = 0.16": {"method": "dense", "layers": {
        "fc1": {"method": "l1inf", "groups": "rows", "radiusRatio": 0.16},
        "fc2": {"method": "l1inf", "groups": "rows", "radiusRatio": 0.16}}},
    "l1,inf columns on fc1, rho = 0.9061": {"method": "dense", "layers": {
        "fc1": {"method": "l1inf", "groups": "columns", "radiusRatio": 0.9061}}},
    "CSR 50 %": {"method": "csr", "density": 0.5, "pin": True},
}


def training_split(folder):
    shipped = MODEL / "calibration.safetensors"
    if shipped.exists():
        return shipped
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x_train, _, y_train, _ = train_test_split(digits.data, digits.target, test_size=0.25, stratify=digits.target,
                                              random_state=20240601)
    path = pathlib.Path(folder) / "train.safetensors"
    save_file({"inputs": x_train.astype(np.float32), "labels": y_train.astype(np.int64)}, str(path))
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = training_split(tmp)
        for label, compression in ROWS.items():
            out = pathlib.Path(tmp) / f"artifact-{len(rows)}"
            started = time.time()
            r = subprocess.run([BINARY, "compress", "--model", str(MODEL), "--compression", json.dumps(compression), "--out", str(out),
                                "--recover", "--epochs", str(args.epochs), "--recovery-data", str(data)],
                               capture_output=True, text=True, check=True)
            wall = time.time() - started
            with safe_open(str(out / "model.safetensors"), "np") as f:
                meta = f.metadata()
            report = json.loads(meta["recovery"])
            layers = json.loads(meta["layers"])
            density = sum(l["storedParameters"] for l in layers) / sum(l["shape"][0] * l["shape"][1] + l["shape"][0] for l in layers)
            rows.append((label, density, report, wall, r.stdout))
    load_after = os.getloadavg()
    held = rows[0][2]["heldOut"]
    print(f"digits MLP: {rows[0][2]['trainingSamples']} training samples ({data.name}), {held['samples']} held-out; "
          f"{args.epochs} epochs; dense accuracy {held['dense']:.3f}")
    print(f"load average before {load_before[0]:.1f} / after {load_after[0]:.1f} (1 min)\n")
    print("| compression | density | one-shot | recovered | steps | training s | compress --recover wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, density, report, wall, _ in rows:
        h = report["heldOut"]
        print(f"| {label} | {density:.2f} | {h['oneShot']:.3f} | {h['recovered']:.3f} | {report['steps']} | {report['seconds']:.1f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
