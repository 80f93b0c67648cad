"""Compressed artifacts: `sparse-serve compress` writes them, Python's safetensors reads them (and
decodes the packed forms independently), the server serves them with the outputs of compressing at
load, `inspect` reports them, and broken ones fail to load by name while the others serve."""
import json
import shutil
import subprocess

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from conftest import BINARY, ROOT, ServerProcess, write_config

DIGITS = ROOT / "models" / "digits-mlp"
SPLIT = load_file(str(DIGITS / "test.safetensors"))
SOURCE = load_file(str(DIGITS / "model.safetensors"))

COMPRESSIONS = {
    "nm24t": {"method": "nm", "n": 2, "m": 4, "mask": "transposable", "pin": True, "layers": {"fc3": {"method": "dense"}}},
    "nm48": {"method": "nm", "n": 4, "m": 8, "pin": True},
    "csr": {"method": "csr", "density": 0.4, "pin": True},
    "blast": {"method": "blast", "blocks": 4, "parameterRatio": 0.5, "iterations": 15, "pin": True, "layers": {"fc3": {"method": "dense"}}},
    "l1inf": {"method": "dense", "layers": {"fc1": {"method": "l1inf", "groups": "columns", "radiusRatio": 0.95},
                                            "fc2": {"method": "l1inf", "groups": "rows", "radiusRatio": 0.5}}},
    "timed": {"method": "nm", "n": 2, "m": 4},
}


def run(*args, timeout=120):
    return subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def compress(tmp_path, name, compression):
    out = tmp_path / f"artifact-{name}"
    r = run("compress", "--model", DIGITS, "--compression", json.dumps(compression), "--out", out)
    assert r.returncode == 0, r.stderr
    assert "compressed artifact" in r.stdout and "compression ratio" in r.stdout
    return out


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("artifacts")
    return {name: compress(tmp, name, c) for name, c in COMPRESSIONS.items()}


def unpack(tensors, layer, record):
    """The dense weight a layer's stored form represents, decoded from the format description."""
    out_features, in_features = record["shape"]
    prefix = f"{layer}.{record['method']}"
    if record["method"] == "dense":
        return tensors[f"{prefix}.weight"]
    if record["method"] == "nm":
        n, m = record["parameters"]["n"], record["parameters"]["m"]
        values, words = tensors[f"{prefix}.values"], tensors[f"{prefix}.indices"]
        panels, groups = values.shape[0], values.shape[1]
        assert values.shape == (panels, groups, n, 16) and words.shape == (panels, groups, n)
        assert words.dtype == (np.uint32 if m == 4 else np.uint64)
        w = np.zeros((panels * 16, groups * m + m), np.float32)
        for lane in range(16):
            shift = 2 * lane if m == 4 else 32 * (lane & 1) + 4 * (lane >> 1)
            positions = (words.astype(np.uint64) >> np.uint64(shift)) & np.uint64(3 if m == 4 else 15)
            # every lane holds n distinct positions below m in every group: exactly n per group
            assert (positions < m).all()
            assert all(len(set(p)) == n for p in positions.reshape(-1, n).tolist())
            for p in range(panels):
                for g in range(groups):
                    for s in range(n):
                        w[p * 16 + lane, g * m + int(positions[p, g, s])] = values[p, g, s, lane]
        return w[:out_features, :in_features]
    if record["method"] == "csr":
        rowptr, colidx, values = tensors[f"{prefix}.rowptr"], tensors[f"{prefix}.colidx"], tensors[f"{prefix}.values"]
        w = np.zeros((out_features, in_features), np.float32)
        for r in range(out_features):
            w[r, colidx[rowptr[r]:rowptr[r + 1]]] = values[rowptr[r]:rowptr[r + 1]]
        return w
    if record["method"] == "blast":
        u, v, s = tensors[f"{prefix}.U"], tensors[f"{prefix}.V"], tensors[f"{prefix}.s"]
        b1, b2, _ = s.shape
        rows = [i * out_features // b1 for i in range(b1 + 1)]
        cols = [j * in_features // b2 for j in range(b2 + 1)]
        w = np.zeros((out_features, in_features), np.float64)
        for i in range(b1):
            for j in range(b2):
                w[rows[i]:rows[i + 1], cols[j]:cols[j + 1]] = (u[rows[i]:rows[i + 1]] * s[i, j]) @ v[cols[j]:cols[j + 1]].T
        return w
    return None  # compacted (l1inf): dropped neurons live on as constants and folded biases


def test_python_reads_artifacts_and_decodes_the_packed_forms(artifacts):
    for name, path in artifacts.items():
        with safe_open(str(path / "model.safetensors"), "np") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        assert meta["format"] == "sparse-serve-artifact" and meta["format_version"] == "1"
        assert meta["source_model"] == str(DIGITS) and json.loads(meta["compression"]) == COMPRESSIONS[name]
        manifest = json.loads((path / "model.json").read_text())
        assert manifest["compressed"] == {"format": "sparse-serve-artifact", "version": 1}
        assert (path / "test.safetensors").exists(), "other files of the model folder are copied"
        layers = json.loads(meta["layers"])
        assert [l["name"] for l in layers] == ["fc1", "fc2", "fc3"]
        for record in layers:
            assert set(record["tensors"]) <= set(tensors)
            assert record["bytes"] == sum(tensors[t].nbytes for t in record["tensors"])
            w = SOURCE[record["sourceWeight"]]
            assert record["denseBytes"] == w.nbytes + SOURCE[record["sourceBias"]].nbytes
            decoded = unpack(tensors, record["name"], record)
            if decoded is None:
                continue
            error = np.linalg.norm(w - decoded) / np.linalg.norm(w)
            assert error == pytest.approx(record["relativeError"], rel=1e-4, abs=1e-6), (name, record["name"])
            if record["method"] == "nm":
                # the kept weights are the source's, unchanged
                kept = decoded != 0
                assert np.array_equal(decoded[kept], w[kept])
                if record["parameters"]["mask"] == "transposable":
                    m = record["parameters"]["m"]
                    mask = (decoded != 0).reshape(w.shape[0] // m, m, w.shape[1] // m, m)
                    assert (mask.sum(axis=1) <= record["parameters"]["n"]).all(), "every column of every block keeps at most n"
                    assert "per column" in record["maskCheck"]
        totals = json.loads(meta["totals"])
        assert totals["storedBytes"] == sum(l["bytes"] for l in layers)
        if name in ("nm24t", "blast"):
            assert totals["compressionRatio"] > 1.7


def infer(client, model):
    inp = httpclient.InferInput("input", list(SPLIT["inputs"].shape), "FP32")
    inp.set_data_from_numpy(SPLIT["inputs"])
    return client.infer(model, [inp]).as_numpy("probabilities")


def test_artifacts_serve_what_compressing_at_load_serves(tmp_path, artifacts):
    endpoints = []
    for name, path in artifacts.items():
        endpoints.append({"name": f"{name}-load", "model": str(DIGITS), "compression": COMPRESSIONS[name]})
        endpoints.append({"name": f"{name}-artifact", "model": str(path)})
    s = ServerProcess(write_config(tmp_path, endpoints))
    try:
        client = httpclient.InferenceServerClient(s.authority)
        for name in artifacts:
            at_load, from_artifact = infer(client, f"{name}-load"), infer(client, f"{name}-artifact")
            if name == "timed":
                # each side timed its layers on its own and may run another form of the same weights
                assert np.abs(at_load - from_artifact).max() <= 1e-6
            else:
                assert np.array_equal(at_load, from_artifact), name
            a = requests.get(f"{s.url}/v2/models/{name}-load", timeout=5).json()
            b = requests.get(f"{s.url}/v2/models/{name}-artifact", timeout=5).json()
            assert a["compression"]["source"] == "config" and b["compression"]["source"] == "artifact"
            assert b["compression"]["artifact"]["compression"] == COMPRESSIONS[name]
            # served: the source folder's name only (a path would reveal the server's file system)
            assert b["compression"]["artifact"]["source_model"] == DIGITS.name
            for key in ("method", "dense_bytes", "stored_bytes", "compression_ratio"):
                assert a["compression"][key] == b["compression"][key], (name, key)
            assert a["parameters"]["compression_ratio"] == b["parameters"]["compression_ratio"] > 0
            assert b["parameters"]["compression_source"] == "artifact"
            assert json.loads(b["parameters"]["compression_report"]) == b["compression"]
            for la, lb in zip(a["compression"]["layers"], b["compression"]["layers"]):
                for key in ("name", "shape", "method", "parameters", "pinned", "stored_parameters", "bytes", "dense_bytes", "density",
                            "relative_error", "mask_check"):
                    assert la[key] == lb[key], (name, la["name"], key)
                if la["pinned"] or la["method"] in ("dense", "l1inf"):
                    assert la["timing"] is None and lb["timing"] is None
                else:
                    for t in (la["timing"], lb["timing"]):
                        assert t["compressed_us"] > 0 and t["dense_us"] > 0 and t["runs"] in ("compressed", "dense")
        meta = requests.get(f"{s.url}/v2/models/nm24t-artifact", timeout=5).json()["compression"]
        layers = {l["name"]: l for l in meta["layers"]}
        assert layers["fc1"]["method"] == "nm" and layers["fc1"]["parameters"] == {"m": 4, "mask": "transposable", "n": 2}
        assert layers["fc1"]["mask_check"].startswith("exactly 2 of every 4") and layers["fc3"]["method"] == "dense"
        assert meta["stored_bytes"] < meta["dense_bytes"] / 1.7
        metrics = requests.get(s.url + "/metrics", timeout=5).text
        assert 'sparseserve_model_info{model="nm24t-artifact",version="1",architecture="mlp",compression="nm"} 1' in metrics
    finally:
        assert s.stop() == 0


def test_inspect_reads_and_checks_an_artifact(artifacts, tmp_path):
    r = run("inspect", artifacts["nm24t"])
    assert r.returncode == 0, r.stderr
    assert "compressed artifact, format version 1" in r.stdout and str(DIGITS) in r.stdout
    assert "3 of 3 agree with the metadata" in r.stdout
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line.startswith("fc")}
    assert rows["fc1"][2] == "256x64" and rows["fc1"][3] == "nm" and rows["fc3"][3] == "dense"
    assert "mask check fc1: exactly 2 of every 4 inputs per row; exactly 2 per column of every 4×4 block" in r.stdout
    ratio = float(r.stdout.split("compression ratio ")[1].split("x")[0])
    assert ratio > 1.7
    # the source model gone: the recorded errors are shown, not re-measured
    moved = tmp_path / "moved"
    shutil.copytree(artifacts["csr"], moved)
    meta_path = moved / "model.safetensors"
    tensors, meta = load_with_metadata(meta_path)
    meta["source_model"] = str(tmp_path / "gone")
    save_file(tensors, str(meta_path), metadata=meta)
    r = run("inspect", moved)
    assert r.returncode == 0 and "not re-measured" in r.stdout and "source model not found" in r.stdout


def test_compress_errors_name_the_problem(tmp_path, artifacts):
    r = run("compress", "--model", DIGITS, "--compression", '{"method": "nm", "n": 2, "m": 5}', "--out", tmp_path / "x")
    assert r.returncode != 0 and "compression.m" in r.stderr and not (tmp_path / "x").exists()
    r = run("compress", "--model", artifacts["csr"], "--compression", '{"method": "dense"}', "--out", tmp_path / "x")
    assert r.returncode != 0 and "already a compressed artifact" in r.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    r = run("compress", "--model", DIGITS, "--compression", '{"method": "dense"}', "--out", tmp_path / "busy")
    assert r.returncode != 0 and "refusing to overwrite" in r.stderr and (tmp_path / "busy" / "keep.txt").exists()
    # a JSON file works as well as inline JSON, and an earlier artifact is replaced
    spec = tmp_path / "c.json"
    spec.write_text(json.dumps({"method": "csr", "density": 0.2}))
    target = tmp_path / "again"
    shutil.copytree(artifacts["csr"], target)
    r = run("compress", "--model", DIGITS, "--compression", spec, "--out", target)
    assert r.returncode == 0, r.stderr
    with safe_open(str(target / "model.safetensors"), "np") as f:
        assert json.loads(f.metadata()["compression"]) == {"method": "csr", "density": 0.2}


def load_with_metadata(path):
    with safe_open(str(path), "np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def broken_copy(tmp_path, source, name, change):
    """A copy of an artifact whose tensors/metadata `change(tensors, metadata)` edits in place."""
    target = tmp_path / name
    shutil.copytree(source, target)
    tensors, meta = load_with_metadata(target / "model.safetensors")
    change(tensors, meta)
    save_file(tensors, str(target / "model.safetensors"), metadata=meta)
    return target


def test_broken_artifacts_fail_by_name_and_the_others_serve(tmp_path, artifacts):
    nm48, nm24 = artifacts["nm48"], artifacts["nm24t"]

    def truncated():
        target = tmp_path / "truncated"
        shutil.copytree(nm48, target)
        data = (target / "model.safetensors").read_bytes()
        (target / "model.safetensors").write_bytes(data[:len(data) - 1000])
        return target

    def retype(t, m):
        t["fc1.nm.indices"] = t["fc1.nm.indices"].astype(np.int64)

    def reshape(t, m):
        t["fc2.nm.values"] = t["fc2.nm.values"].reshape(16, 64, 8, 4)

    def out_of_range(t, m):
        words = t["fc1.nm.indices"].copy()
        words[0, 0, 0] |= np.uint64(0xF) << np.uint64(4)  # lane 2: position 15 of m = 8
        t["fc1.nm.indices"] = words

    def not_n_per_group(t, m):
        words = t["fc2.nm.indices"].copy()
        lane0 = np.uint32(3)
        words[0, 0, 1] = (words[0, 0, 1] & ~lane0) | (words[0, 0, 0] & lane0)  # slot 1 repeats slot 0's position
        t["fc2.nm.indices"] = words

    def version(t, m):
        m["format_version"] = "99"

    def stored_parameters(t, m):
        layers = json.loads(m["layers"])
        layers[1]["storedParameters"] += 1
        m["layers"] = json.dumps(layers)

    def not_transposable(t, m):
        layers = json.loads(m["layers"])  # a magnitude 4:8 mask claimed to be transposable
        layers[0]["parameters"]["mask"] = "transposable"
        layers[0]["maskCheck"] += "; exactly 4 per column of every 8×8 block"
        m["layers"] = json.dumps(layers)

    broken = {
        "truncated": (truncated(), ["truncated"]),
        "dtype": (broken_copy(tmp_path, nm48, "dtype", retype), ["'fc1.nm.indices'", "dtype is I64", "U64"]),
        "shape": (broken_copy(tmp_path, nm48, "shape", reshape), ["'fc2.nm.values'", "shape is [16, 64, 8, 4]"]),
        "range": (broken_copy(tmp_path, nm48, "range", out_of_range), ["'fc1.nm.indices'", "position 15 is not below m = 8"]),
        "npergroup": (broken_copy(tmp_path, nm24, "npergroup", not_n_per_group), ["'fc2.nm.indices'", "used twice", "exactly 2 distinct"]),
        "version": (broken_copy(tmp_path, nm48, "version", version), ["format_version '99' is not supported"]),
        "metadata": (broken_copy(tmp_path, nm48, "metadata", stored_parameters), ["'fc2.nm.values'", "storedParameters"]),
        "maskcheck": (broken_copy(tmp_path, nm48, "maskcheck", not_transposable), ["'fc1.nm.indices'", "block (0, 0)", "transposable 4:8"]),
    }
    endpoints = [{"name": "good", "model": str(nm48)},
                 {"name": "artifact-with-compression", "model": str(nm48), "compression": {"method": "nm", "n": 2, "m": 4}}]
    endpoints += [{"name": name, "model": str(path)} for name, (path, _) in broken.items()]
    s = ServerProcess(write_config(tmp_path, endpoints, server={"exitOnModelLoadError": False}))
    try:
        index = {e["name"]: e for e in requests.post(s.url + "/v2/repository/index", timeout=5).json()}
        assert index["good"]["state"] == "READY"
        reason = index["artifact-with-compression"]["reason"]
        assert index["artifact-with-compression"]["state"] == "UNAVAILABLE" and "compressed artifact" in reason and "'compression' block" in reason
        for name, (path, fragments) in broken.items():
            assert index[name]["state"] == "UNAVAILABLE", name
            reason = index[name]["reason"]
            assert str(path / "model.safetensors") in reason, (name, reason)
            for fragment in fragments:
                assert fragment in reason, (name, fragment, reason)
            r = requests.post(f"{s.url}/v2/models/{name}/infer", json={"inputs": []}, timeout=5)
            assert r.status_code == 503 and "error" in r.json()
        client = httpclient.InferenceServerClient(s.authority)
        predicted = infer(client, "good").argmax(axis=1)
        assert (predicted == SPLIT["labels"]).mean() > 0.8
    finally:
        assert s.stop() == 0
