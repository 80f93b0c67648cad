#!/usr/bin/env python3
"""Trains the time-series model, a small 1-D CNN, on GunPoint as bundled in the PyPI package aeon.

GunPoint (UCR archive; aeon ships its .ts files, nothing is downloaded): 50 train and 150 test
univariate series of 150 steps, two classes (gun drawn / pointed). The network, in numpy with
hand-written gradients (no deep-learning framework), time-major [n, steps, channels]:

  conv1  1 -> 8,  kernel 7, padding same, ReLU      maxpool 2   (150 -> 75 steps)
  conv2  8 -> 16, kernel 5, padding same, ReLU      maxpool 2   (75 -> 37)
  conv3 16 -> 32, kernel 3, dilation 2, causal, ReLU             (37)
  global average pool -> fc 32 -> 2 -> softmax

Writes (deterministically: fixed seed, single-threaded BLAS, byte-stable safetensors)
  models/timeseries/model.safetensors  conv*.weight [out, in, kernel] (PyTorch layout), fc.weight [2, 32], biases
  models/timeseries/model.json         the `sequential` manifest SparseServe loads
  models/timeseries/test.safetensors   the test split: inputs F32 [150, 1, 150], labels I64 [150],
                                       probabilities F32 [150, 2] (float64 forward over the stored weights);
                                       metadata: test accuracy and aeon's 1-NN-DTW accuracy on the same split
  Tests/fixtures/timeseries-one.json   a v2 infer request for the first test series

Usage: python3 scripts/train_timeseries.py  (makes .build/timeseries-py with aeon on first use)
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # single-threaded BLAS: bit-identical reruns
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "timeseries"
FIXTURE = ROOT / "Tests" / "fixtures" / "timeseries-one.json"
VENV = ROOT / ".build" / "timeseries-py"
SEED = 20240817
EPOCHS = 600
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
PACKAGES = ["aeon==1.6.0", "numpy", "safetensors", "scikit-learn"]

# (name, in, out, kernel, padding (left, right), dilation, maxpool after)
CONVS = [("conv1", 1, 8, 7, (3, 3), 1, 2), ("conv2", 8, 16, 5, (2, 2), 1, 2), ("conv3", 16, 32, 3, (4, 0), 2, None)]
MANIFEST_PADDING = {"conv1": "same", "conv2": "same", "conv3": "causal"}
CLASSES = ["gun", "point"]


def ensure_packages():
    sys.path.insert(0, str(ROOT / "scripts"))
    from pyvenv import run_in_venv
    run_in_venv(VENV, PACKAGES, ["aeon", "numpy", "safetensors", "sklearn"])


def conv_forward(x, w, b, padding, dilation):
    """x [n, t, cin] time-major, w [out, in, k]; returns y [n, t', out] and the im2col windows."""
    n, t, cin = x.shape
    out, _, k = w.shape
    xp = np.pad(x, ((0, 0), padding, (0, 0)))
    steps = xp.shape[1] - dilation * (k - 1)
    index = np.arange(steps)[:, None] + dilation * np.arange(k)[None, :]
    cols = xp[:, index, :].reshape(n, steps, k * cin)          # window layout [k][c]
    wmat = w.transpose(0, 2, 1).reshape(out, k * cin)
    return cols @ wmat.T + b, cols


def conv_backward(dy, cols, x_shape, w, padding, dilation):
    n, t, cin = x_shape
    out, _, k = w.shape
    wmat = w.transpose(0, 2, 1).reshape(out, k * cin)
    dw = (dy.reshape(-1, out).T @ cols.reshape(-1, k * cin)).reshape(out, k, cin).transpose(0, 2, 1)
    db = dy.sum(axis=(0, 1))
    dcols = (dy @ wmat).reshape(n, -1, k, cin)
    dxp = np.zeros((n, t + padding[0] + padding[1], cin))
    steps = dy.shape[1]
    for j in range(k):
        dxp[:, j * dilation:j * dilation + steps, :] += dcols[:, :, j, :]
    return dxp[:, padding[0]:padding[0] + t, :], dw, db


def forward(params, x, keep=False):
    """Float64 forward pass; x [n, steps, 1]. Returns logits (and the saved activations)."""
    saved = []
    h = x
    for name, _, _, _, padding, dilation, pool in CONVS:
        y, cols = conv_forward(h, params[name + ".weight"], params[name + ".bias"], padding, dilation)
        r = np.maximum(y, 0)
        entry = {"in_shape": h.shape, "cols": cols, "pre": y, "name": name, "padding": padding, "dilation": dilation}
        if pool:
            steps = r.shape[1] // pool
            windows = r[:, :steps * pool].reshape(r.shape[0], steps, pool, r.shape[2])
            entry["argmax"] = windows.argmax(axis=2)
            entry["relu_shape"] = r.shape
            r = windows.max(axis=2)
        saved.append(entry)
        h = r
    features = h.mean(axis=1)
    logits = features @ params["fc.weight"].T + params["fc.bias"]
    return (logits, saved, h, features) if keep else logits


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def gradients(params, x, y):
    logits, saved, last, features = forward(params, x, keep=True)
    n = x.shape[0]
    p = softmax(logits)
    loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
    dlogits = p.copy()
    dlogits[np.arange(n), y] -= 1
    dlogits /= n
    grads = {"fc.weight": dlogits.T @ features, "fc.bias": dlogits.sum(axis=0)}
    dh = np.repeat((dlogits @ params["fc.weight"])[:, None, :], last.shape[1], axis=1) / last.shape[1]
    for (name, _, _, _, _, _, pool), entry in zip(reversed(CONVS), reversed(saved)):
        if pool:
            dr = np.zeros(entry["relu_shape"])
            nn, steps, c = dh.shape
            i, t, ch = np.meshgrid(np.arange(nn), np.arange(steps), np.arange(c), indexing="ij")
            dr[i, t * pool + entry["argmax"], ch] = dh
        else:
            dr = dh
        dy = dr * (entry["pre"] > 0)
        dh, dw, db = conv_backward(dy, entry["cols"], entry["in_shape"], params[name + ".weight"],
                                   entry["padding"], entry["dilation"])
        grads[name + ".weight"] = dw
        grads[name + ".bias"] = db
    return loss, grads


def train(x, y, rng):
    params = {}
    for name, cin, cout, k, _, _, _ in CONVS:
        bound = np.sqrt(6.0 / (cin * k))  # He-uniform for ReLU
        params[name + ".weight"] = rng.uniform(-bound, bound, size=(cout, cin, k))
        params[name + ".bias"] = np.zeros(cout)
    bound = np.sqrt(6.0 / (32 + 2))
    params["fc.weight"] = rng.uniform(-bound, bound, size=(2, 32))
    params["fc.bias"] = np.zeros(2)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    beta1, beta2 = 0.9, 0.999
    loss = None
    for epoch in range(1, EPOCHS + 1):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 16):
            batch = order[start:start + 16]
            loss, grads = gradients(params, x[batch], y[batch])
            for key in params:
                g = grads[key] + WEIGHT_DECAY * params[key]
                m[key] = beta1 * m[key] + (1 - beta1) * g
                v[key] = beta2 * v[key] + (1 - beta2) * g * g
                step = (epoch - 1) * ((len(x) + 15) // 16) + start // 16 + 1
                mhat = m[key] / (1 - beta1 ** step)
                vhat = v[key] / (1 - beta2 ** step)
                params[key] -= LEARNING_RATE * mhat / (np.sqrt(vhat) + 1e-8)
        if epoch % 100 == 0:
            accuracy = float((forward(params, x).argmax(axis=1) == y).mean())
            print(f"epoch {epoch}: batch loss {loss:.4f}, train accuracy {accuracy:.3f}")
    return params


def one_nn_dtw_accuracy(x_train, y_train, x_test, y_test):
    """The archive's standard baseline on the same split: 1-nearest-neighbour under full-window
    DTW, as aeon implements it."""
    import warnings

    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety notes
        knn = KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw").fit(x_train, y_train)
        return float((knn.predict(x_test) == y_test).mean())


def main():
    from aeon.datasets import load_gunpoint
    from train_digits import save_safetensors

    x_train, y_train = load_gunpoint(split="train")      # numpy3d: [n, 1, 150]
    x_test, y_test = load_gunpoint(split="test")
    to_index = {label: i for i, label in enumerate(sorted(set(y_train)))}  # '1' -> gun, '2' -> point
    y_train = np.array([to_index[v] for v in y_train], dtype=np.int64)
    y_test = np.array([to_index[v] for v in y_test], dtype=np.int64)

    rng = np.random.default_rng(SEED)
    params = train(x_train.transpose(0, 2, 1).astype(np.float64), y_train, rng)
    stored = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}

    x_test32 = np.ascontiguousarray(x_test, dtype=np.float32)
    reference = {k: v.astype(np.float64) for k, v in stored.items()}
    probabilities = softmax(forward(reference, x_test32.transpose(0, 2, 1).astype(np.float64)))
    accuracy = float((probabilities.argmax(axis=1) == y_test).mean())
    train_accuracy = float((forward(reference, x_train.transpose(0, 2, 1)).argmax(axis=1) == y_train).mean())
    baseline = one_nn_dtw_accuracy(x_train, y_train, x_test, y_test)

    meta = {
        "format_version": "1",
        "dataset": "GunPoint (UCR), bundled with aeon 1.6.0 (aeon.datasets.load_gunpoint)",
        "split": "the archive's own: 50 train, 150 test",
        "seed": str(SEED),
        "test_samples": str(len(y_test)),
        "test_accuracy": f"{accuracy:.6f}",
        "baseline_1nn_dtw_accuracy": f"{baseline:.6f}",
        "input": "the series as given (z-normalised by the archive), [channels=1, steps=150]",
    }
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    save_safetensors(MODEL_DIR / "model.safetensors", stored, meta)
    save_safetensors(MODEL_DIR / "test.safetensors",
                     {"inputs": x_test32, "labels": y_test, "probabilities": probabilities.astype(np.float32)}, meta)

    layers = []
    for name, _, _, _, _, dilation, pool in CONVS:
        conv = {"name": name, "type": "conv1d", "weight": f"{name}.weight", "bias": f"{name}.bias",
                "padding": MANIFEST_PADDING[name], "activation": "relu"}
        if dilation != 1:
            conv["dilation"] = dilation
        layers.append(conv)
        if pool:
            layers.append({"name": f"pool{name[-1]}", "type": "maxpool1d", "kernelSize": pool})
    layers += [{"name": "gap", "type": "globalavgpool1d"},
               {"name": "fc", "type": "linear", "weight": "fc.weight", "bias": "fc.bias"},
               {"name": "softmax", "type": "softmax"}]
    manifest = {
        "architecture": "sequential",
        "name": "gunpoint-cnn",
        "description": "1-D CNN (3 conv layers, max pooling, global average pooling) trained on GunPoint; "
                       "input: one z-normalised series of 150 steps, [n, 1, 150] or [n, 150].",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 150]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
                    {"name": "label", "datatype": "INT64", "shape": [-1]}],
        "layers": layers,
        "labels": CLASSES,
    }
    (MODEL_DIR / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")

    request = {"inputs": [{"name": "input", "shape": [1, 1, 150], "datatype": "FP32",
                           "data": [float(v) for v in x_test32[0, 0]]}]}
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(request) + "\n")

    print(f"trained on {len(y_train)} series for {EPOCHS} epochs: train accuracy {train_accuracy:.4f}")
    print(f"test accuracy {accuracy:.4f} ({int(round(accuracy * len(y_test)))} of {len(y_test)}); "
          f"1-NN-DTW on the same split: {baseline:.4f}")


if __name__ == "__main__":
    ensure_packages()
    import json

    import numpy as np
    main()
