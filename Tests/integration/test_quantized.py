"""Quantized weights (`compression.quantize`): digits served with int8 (per channel, per group of 64,
W8A8 with dynamic activations), bf16 and 2:4 + int8 keep their held-out accuracy through the
server; an int8 artifact written by `sparse-serve compress` serves what quantizing at load serves
and metadata reports its bytes; broken scales and values fail to load by tensor name while the
other endpoints serve; a served MiniLM with int8 layers matches an independent numpy W8A8
computation of the same kernels' arithmetic far closer than it matches fp32."""
import json
import subprocess

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from safetensors.numpy import load_file

from conftest import BINARY, ROOT, ServerProcess, write_config
from test_artifacts import broken_copy

DIGITS = ROOT / "models" / "digits-mlp"
MINILM = ROOT / "models" / "minilm-l6"
SPLIT = load_file(str(DIGITS / "test.safetensors"))
W8A8 = {"weights": "int8", "activations": "int8-dynamic"}
FORMATS = {
    "int8-channel": {"method": "dense", "quantize": {"weights": "int8", "granularity": "channel"}},
    "int8-group64": {"method": "dense", "quantize": {"weights": "int8", "granularity": {"group": 64}}},
    "int8-dynamic": {"method": "dense", "quantize": W8A8},
    "bf16": {"method": "dense", "quantize": {"weights": "bf16"}},
    "2of4-int8": {"method": "nm", "n": 2, "m": 4, "pin": True, "calibration": "default", "quantize": W8A8},
    "2of4": {"method": "nm", "n": 2, "m": 4, "pin": True, "calibration": "default"},
    # with calibration data int8 weights are rounded by GPTQ (the default "rounding")
    "int8-channel-gptq": {"method": "dense", "quantize": {"weights": "int8", "granularity": "channel"}, "calibration": "default"},
    "int8-dynamic-gptq": {"method": "dense", "quantize": W8A8, "calibration": "default"},
    "int8-dynamic-nearest": {"method": "dense", "quantize": W8A8, "calibration": "default", "rounding": "nearest"},
}


def run(*args, timeout=180):
    return subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def infer(client, model):
    inp = httpclient.InferInput("input", list(SPLIT["inputs"].shape), "FP32")
    inp.set_data_from_numpy(SPLIT["inputs"])
    return client.infer(model, [inp]).as_numpy("probabilities")


@pytest.fixture(scope="module")
def int8_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("quantized") / "digits-int8"
    r = run("compress", "--model", DIGITS, "--compression", json.dumps(FORMATS["int8-dynamic"]), "--out", out)
    assert r.returncode == 0, r.stderr
    assert "weights=int8" in r.stdout and "int8 dynamic" in r.stdout, r.stdout
    return out


def test_quantized_digits_keep_accuracy_and_report_bytes(tmp_path, int8_artifact):
    endpoints = [{"name": "dense", "model": str(DIGITS)}, {"name": "artifact", "model": str(int8_artifact)}]
    endpoints += [{"name": name, "model": str(DIGITS), "compression": c} for name, c in FORMATS.items()]
    s = ServerProcess(write_config(tmp_path, endpoints))
    try:
        client = httpclient.InferenceServerClient(s.authority)
        out = {e["name"]: infer(client, e["name"]) for e in endpoints}
        acc = {name: float((p.argmax(axis=1) == SPLIT["labels"]).mean()) for name, p in out.items()}
        print("held-out accuracy:", acc)
        # bf16 keeps the dense accuracy; round-to-nearest int8 loses 1.3-1.6 points on this MLP
        # (fc1 folds the input standardisation into its columns: a few huge columns set each row's
        # scale); GPTQ on the calibration split stays within the 0.5 point of dense
        assert abs(acc["bf16"] - acc["dense"]) <= 0.005, acc
        for name in ("int8-channel", "int8-group64", "int8-dynamic", "artifact", "int8-dynamic-nearest"):
            assert abs(acc[name] - acc["dense"]) <= 0.02, (name, acc)
        for name in ("int8-channel-gptq", "int8-dynamic-gptq"):
            assert acc[name] >= acc["dense"] - 0.005, (name, acc)
            assert acc[name] > acc[name.replace("-gptq", "")], (name, acc)
        assert np.array_equal(out["int8-dynamic-nearest"], out["int8-dynamic"])  # rounding "nearest" = no GPTQ
        assert acc["2of4-int8"] >= acc["2of4"] - 0.005, acc
        assert np.array_equal(out["artifact"], out["int8-dynamic"])
        assert not np.array_equal(out["int8-dynamic"], out["dense"])  # the quantized kernels really ran
        dense_meta = requests.get(f"{s.url}/v2/models/dense", timeout=5).json()["compression"]
        for name, ratio in (("int8-channel", 0.27), ("int8-dynamic", 0.27), ("bf16", 0.51), ("2of4-int8", 0.18)):
            meta = requests.get(f"{s.url}/v2/models/{name}", timeout=5).json()["compression"]
            assert meta["stored_bytes"] < ratio * dense_meta["dense_bytes"], (name, meta["stored_bytes"])
            layer = meta["layers"][0]
            assert layer["parameters"]["weights"] == FORMATS[name]["quantize"]["weights"], layer
            assert layer["timing"] is None
        art = requests.get(f"{s.url}/v2/models/artifact", timeout=5).json()["compression"]
        assert art["source"] == "artifact" and art["layers"][0]["parameters"] == {
            "weights": "int8", "granularity": "channel", "activations": "int8-dynamic"}
        assert art["stored_bytes"] == requests.get(f"{s.url}/v2/models/int8-dynamic", timeout=5).json()["compression"]["stored_bytes"]
    finally:
        assert s.stop() == 0


def test_weight_only_sparse_artifacts_serve_what_load_time_compression_serves(tmp_path):
    """Weight-only int8 with N:M (group scales) and CSR: `compress` writes the int8 packs and their
    scales, the artifact serves exactly what compressing at load serves, and a zero or NaN scale
    in either pack fails that endpoint's load naming the tensor while the others serve."""
    formats = {"nm": {"method": "nm", "n": 4, "m": 8, "pin": True, "quantize": {"weights": "int8", "granularity": {"group": 64}}},
               "csr": {"method": "csr", "density": 0.5, "pin": True, "quantize": {"weights": "int8", "granularity": "channel"}}}
    artifacts = {}
    for name, c in formats.items():
        out = tmp_path / f"digits-{name}-int8w"
        r = run("compress", "--model", DIGITS, "--compression", json.dumps(c), "--out", out)
        assert r.returncode == 0, r.stderr
        artifacts[name] = out
    t = load_file(str(artifacts["nm"] / "model.safetensors"))
    assert t["fc1.nm.values"].dtype == np.int8 and t["fc2.nm.scales"].shape == (256, 4)  # 256 inputs / group 64
    assert load_file(str(artifacts["csr"] / "model.safetensors"))["fc2.csr.scales"].shape == (256, 1)

    def set_scale(tensor, value):
        def change(t, _):
            scales = t[tensor].copy()
            scales[5, 0] = value
            t[tensor] = scales
        return change
    broken = {"nm-zero": ("nm", "fc2.nm.scales", 0.0), "csr-nan": ("csr", "fc1.csr.scales", np.nan)}
    paths = {n: broken_copy(tmp_path, artifacts[src], n, set_scale(tensor, v)) for n, (src, tensor, v) in broken.items()}
    endpoints = [{"name": f"{n}-artifact", "model": str(p)} for n, p in artifacts.items()]
    endpoints += [{"name": f"{n}-load", "model": str(DIGITS), "compression": c} for n, c in formats.items()]
    endpoints += [{"name": n, "model": str(p)} for n, p in paths.items()]
    s = ServerProcess(write_config(tmp_path, endpoints, server={"exitOnModelLoadError": False}))
    try:
        index = {e["name"]: e for e in requests.post(s.url + "/v2/repository/index", timeout=5).json()}
        for name, (_, tensor, _) in broken.items():
            assert index[name]["state"] == "UNAVAILABLE", name
            reason = index[name]["reason"]
            assert f"'{tensor}'" in reason and "finite and positive" in reason, reason
        client = httpclient.InferenceServerClient(s.authority)
        for name in formats:
            assert np.array_equal(infer(client, f"{name}-artifact"), infer(client, f"{name}-load")), name
            meta = requests.get(f"{s.url}/v2/models/{name}-artifact", timeout=5).json()["compression"]
            assert meta["layers"][0]["parameters"]["weights"] == "int8", meta["layers"][0]
    finally:
        assert s.stop() == 0


def test_inspect_reports_quantized_bytes(int8_artifact):
    r = run("inspect", int8_artifact)
    assert r.returncode == 0, r.stderr
    assert "weights=int8" in r.stdout and "activations=int8-dynamic" in r.stdout
    # fc1 256x64: 16384 int8 values + 256 fp32 scales + 256 fp32 biases
    assert any(line.startswith("fc1") and " 18432 " in line for line in r.stdout.splitlines()), r.stdout


def test_broken_quantized_artifacts_fail_by_tensor_and_the_others_serve(tmp_path, int8_artifact):
    def set_scale(value):
        def change(t, _):
            scales = t["fc2.dense.scales"].copy()
            scales[3, 0] = value
            t["fc2.dense.scales"] = scales
        return change

    def reshape(t, _):
        t["fc1.dense.scales"] = t["fc1.dense.scales"].reshape(128, 2)

    def minus_128(t, _):
        w = t["fc3.dense.weight"].copy()
        w[1, 2] = -128
        t["fc3.dense.weight"] = w

    broken = {
        "nan-scale": (set_scale(np.nan), ["'fc2.dense.scales'", "scale 3 is nan"]),
        "zero-scale": (set_scale(0.0), ["'fc2.dense.scales'", "scale 3 is 0.0", "finite and positive"]),
        "scale-shape": (reshape, ["'fc1.dense.scales'", "shape is [128, 2], expected [256, 1]"]),
        "out-of-range": (minus_128, ["'fc3.dense.weight'", "is -128", "-127...127"]),
    }
    paths = {name: broken_copy(tmp_path, int8_artifact, name, change) for name, (change, _) in broken.items()}
    endpoints = [{"name": "good", "model": str(int8_artifact)}] + [{"name": n, "model": str(p)} for n, p in paths.items()]
    s = ServerProcess(write_config(tmp_path, endpoints, server={"exitOnModelLoadError": False}))
    try:
        index = {e["name"]: e for e in requests.post(s.url + "/v2/repository/index", timeout=5).json()}
        assert index["good"]["state"] == "READY"
        for name, (_, fragments) in broken.items():
            assert index[name]["state"] == "UNAVAILABLE", name
            reason = index[name]["reason"]
            assert str(paths[name] / "model.safetensors") in reason, (name, reason)
            for fragment in fragments:
                assert fragment in reason, (name, fragment, reason)
            r = requests.post(f"{s.url}/v2/models/{name}/infer", json={"inputs": []}, timeout=5)
            assert r.status_code == 503 and "error" in r.json()
        predicted = infer(httpclient.InferenceServerClient(s.authority), "good").argmax(axis=1)
        assert (predicted == SPLIT["labels"]).mean() > 0.95
    finally:
        assert s.stop() == 0


# ---- MiniLM: the served int8 model against a numpy computation of the kernels' arithmetic ----

def quantize_rows(x):
    """Symmetric int8 per row as the kernels do it: scale = absmax / 127, q = rint(x * 127 / absmax)."""
    absmax = np.abs(x).max(axis=1, keepdims=True).astype(np.float32)
    safe = np.where(absmax > 0, absmax, np.float32(127))
    scale = (safe / np.float32(127)).astype(np.float32)
    return np.clip(np.rint(x * (np.float32(127) / safe)), -127, 127), scale


def quantize_weight(w):
    """Weights: scale = absmax / 127 per output row, q = rint(w / scale)."""
    absmax = np.abs(w).max(axis=1, keepdims=True)
    scale = np.where(absmax > 0, absmax / np.float32(127), np.float32(1)).astype(np.float32)
    return np.clip(np.rint(w / scale), -127, 127), scale


class Reference:
    """A BERT encoder forward in numpy (float64 outside the linear layers); the linear layers in `q`
    (all of them with int8, none without) W8A8, the others fp32."""

    def __init__(self, tensors, int8):
        self.t, self.int8 = tensors, int8
        # every 2-D encoder tensor is a linear layer's weight
        self.q = {k[:-len(".weight")]: quantize_weight(v) for k, v in tensors.items() if int8 and k.startswith("encoder.") and v.ndim == 2}

    def linear(self, name, x):
        b = self.t[name + ".bias"].astype(np.float64)
        if name not in self.q:
            return x @ self.t[name + ".weight"].astype(np.float64).T + b
        wq, ws = self.q[name]
        xq, xs = quantize_rows(x.astype(np.float32))
        return (xq.astype(np.float64) @ wq.astype(np.float64).T) * xs.astype(np.float64) * ws.T.astype(np.float64) + b

    def norm(self, name, x):
        mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * self.t[name + ".weight"] + self.t[name + ".bias"]

    def embed(self, ids):
        from scipy.special import erf
        t, n = self.t, len(ids)
        x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:n] + t["embeddings.token_type_embeddings.weight"][0]
        x = self.norm("embeddings.LayerNorm", x.astype(np.float64))
        for i in range(6):
            p = f"encoder.layer.{i}."
            q, k, v = (self.linear(p + f"attention.self.{s}", x).reshape(n, 12, 32).transpose(1, 0, 2) for s in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(32)
            weights = np.exp(scores - scores.max(axis=2, keepdims=True))
            context = (weights / weights.sum(axis=2, keepdims=True) @ v).transpose(1, 0, 2).reshape(n, 384)
            x = self.norm(p + "attention.output.LayerNorm", x + self.linear(p + "attention.output.dense", context))
            h = self.linear(p + "intermediate.dense", x)
            h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
            x = self.norm(p + "output.LayerNorm", x + self.linear(p + "output.dense", h))
        pooled = x.mean(axis=0)
        return pooled / np.linalg.norm(pooled)


def test_served_minilm_int8_matches_the_w8a8_arithmetic(tmp_path):
    """Layer 0 or layer 5 quantized (the others fp32) matches numpy's W8A8 to fp32 rounding, far
    closer than fp32 does. With every layer quantized the match holds only to ~4e-3: per-token
    activation scales make W8A8 sensitive to the last bits of its inputs (a rounding flip of a row's
    largest value rescales the whole row), so numpy's float64 LayerNorm/attention and our fp32 ones
    part ways after a few quantized layers — as far apart as either is from fp32."""
    if not (MINILM / "model.safetensors").exists():
        pytest.skip("models/minilm-l6 is absent (scripts/fetch-minilm.sh fetches it)")
    cases = json.loads((ROOT / "Tests" / "fixtures" / "minilm" / "tokenizer-cases.json").read_text())["cases"]
    ids = [c["ids"] for c in cases if 8 <= len(c["ids"]) <= 40][:5]
    layers = {"minilm-int8-l0": 0, "minilm-int8-l5": 5}
    endpoints = [{"name": name, "model": str(MINILM), "compression": {"method": "dense", "layers": {
        f"encoder.layer.{i}.*": {"method": "dense", "quantize": W8A8}}}} for name, i in layers.items()]
    endpoints.append({"name": "minilm-int8", "model": str(MINILM), "compression": {"method": "dense", "quantize": W8A8}})
    s = ServerProcess(write_config(tmp_path, endpoints))
    try:
        served = {}
        for e in endpoints:
            r = requests.post(s.url + "/v1/embeddings", json={"model": e["name"], "input": ids}, timeout=120)
            assert r.status_code == 200, r.text
            served[e["name"]] = np.array([d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])])
    finally:
        assert s.stop() == 0
    tensors = load_file(str(MINILM / "model.safetensors"))
    fp32 = np.array([Reference(tensors, int8=False).embed(x) for x in ids])
    for name, layer in layers.items():
        reference = Reference(tensors, int8=True)
        reference.q = {k: v for k, v in reference.q.items() if k.startswith(f"encoder.layer.{layer}.")}
        w8a8 = np.array([reference.embed(x) for x in ids])
        to_w8a8, to_fp32 = 1 - (served[name] * w8a8).sum(axis=1), 1 - (served[name] * fp32).sum(axis=1)
        print(name, "1 - cosine to numpy W8A8", to_w8a8, "to fp32", to_fp32)
        assert to_w8a8.max() < 1e-6, (name, to_w8a8)
        assert (to_w8a8 * 20 < to_fp32).all(), (name, to_w8a8, to_fp32)
    cosine = (served["minilm-int8"] * fp32).sum(axis=1)
    print("minilm-int8 cosine to fp32", cosine)
    assert 0.99 < cosine.min() and cosine.max() < 1 - 1e-4, cosine
