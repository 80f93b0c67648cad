#!/usr/bin/env python3
"""Trains the default model, a 64-256-256-10 ReLU MLP on scikit-learn's bundled 8x8 digits.

Writes (deterministically: running it twice gives identical files)
  models/digits-mlp/model.safetensors  fc1/fc2/fc3 .weight [out, in] and .bias, FP32
  models/digits-mlp/model.json         the manifest SparseServe loads
  models/digits-mlp/test.safetensors   the held-out split: inputs F32 [n, 64] (raw pixels 0..16),
                                       labels I64 [n], probabilities F32 [n, 10] (float64 reference)
  Tests/fixtures/digits-one.json       a v2 infer request for the first test sample

The input standardisation is folded into fc1, so the served model takes raw pixel values.
Usage: .venv/bin/python scripts/train_digits.py
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # single-threaded BLAS: bit-identical reruns
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
import pathlib
import struct
import warnings

import numpy as np
from safetensors.numpy import load_file
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "digits-mlp"
FIXTURE = ROOT / "Tests" / "fixtures" / "digits-one.json"
SEED = 20240601
HIDDEN = (256, 256)


DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64", np.dtype("<i4"): "I32"}


def save_safetensors(path, tensors, metadata):
    """Writes a safetensors file with a byte-stable header (sorted keys; the `safetensors` package
    orders `__metadata__` by hash, so its files differ run to run)."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        blob = array.tobytes()
        header[name] = {"dtype": DTYPES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.chmod(path, 0o644)
    check = load_file(str(path))  # the reference reader must agree
    assert all(np.array_equal(check[k], tensors[k]) for k in tensors)


def reference_probabilities(layers, x):
    """Float64 forward pass over the stored (float32) weights: ReLU hidden layers, softmax output."""
    h = x.astype(np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ w.astype(np.float64).T + b.astype(np.float64)
        if i + 1 < len(layers):
            h = np.maximum(h, 0.0)
    h -= h.max(axis=1, keepdims=True)
    e = np.exp(h)
    return e / e.sum(axis=1, keepdims=True)


def main():
    digits = load_digits()
    x = digits.data.astype(np.float64)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, stratify=y, random_state=SEED)

    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0  # constant pixels (always 0 in the corners)

    clf = MLPClassifier(hidden_layer_sizes=HIDDEN, activation="relu", solver="adam", alpha=1e-4,
                        batch_size=64, learning_rate_init=1e-3, max_iter=200, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit((x_train - mean) / std, y_train)

    # sklearn keeps coefs_ as [in, out]; store PyTorch's [out, in]. Fold (x - mean) / std into fc1:
    # W1 ((x - mean) / std) + b1 = (W1 / std) x + (b1 - (W1 / std) mean).
    w1 = clf.coefs_[0].T / std
    b1 = clf.intercepts_[0] - w1 @ mean
    raw_layers = [(w1, b1)] + [(w.T, b) for w, b in zip(clf.coefs_[1:], clf.intercepts_[1:])]
    layers = [(np.ascontiguousarray(w, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32))
              for w, b in raw_layers]

    x_test32 = x_test.astype(np.float32)
    probabilities = reference_probabilities(layers, x_test32)
    accuracy = float((probabilities.argmax(axis=1) == y_test).mean())
    sklearn_accuracy = float(clf.score((x_test - mean) / std, y_test))

    meta = {
        "format_version": "1",
        "dataset": "sklearn.datasets.load_digits",
        "split": f"stratified 25% test, random_state={SEED}",
        "test_samples": str(len(y_test)),
        "test_accuracy": f"{accuracy:.6f}",
        "input": "raw pixel intensities 0..16 (standardisation folded into fc1)",
    }
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for i, (w, b) in enumerate(layers, start=1):
        tensors[f"fc{i}.weight"] = w
        tensors[f"fc{i}.bias"] = b
    save_safetensors(MODEL_DIR / "model.safetensors", tensors, meta)
    save_safetensors(MODEL_DIR / "test.safetensors",
                     {"inputs": x_test32, "labels": y_test, "probabilities": probabilities.astype(np.float32)}, meta)

    manifest = {
        "architecture": "mlp",
        "name": "digits-mlp",
        "description": "64-256-256-10 ReLU MLP trained on scikit-learn's 8x8 digits; "
                       "input: 64 raw pixel values 0..16 (row-major 8x8 image).",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                    {"name": "label", "datatype": "INT64", "shape": [-1]}],
        "layers": [
            {"name": "fc1", "type": "linear", "weight": "fc1.weight", "bias": "fc1.bias", "activation": "relu"},
            {"name": "fc2", "type": "linear", "weight": "fc2.weight", "bias": "fc2.bias", "activation": "relu"},
            {"name": "fc3", "type": "linear", "weight": "fc3.weight", "bias": "fc3.bias"},
            {"name": "softmax", "type": "softmax"},
        ],
        "labels": [str(d) for d in range(10)],
    }
    (MODEL_DIR / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")

    request = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                           "data": [float(v) for v in x_test32[0]]}]}
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(request) + "\n")

    print(f"trained {len(y_train)} samples, {clf.n_iter_} epochs; test samples {len(y_test)}")
    print(f"test accuracy {accuracy:.4f} (sklearn on standardised inputs: {sklearn_accuracy:.4f})")


if __name__ == "__main__":
    main()
