#!/usr/bin/env python3
"""Compression quality through the real server: the digits MLP and (when fetched) MiniLM.

Starts the release binary with one endpoint per compression method over models/digits-mlp (dense,
2:4 magnitude, 4:8 magnitude, 2:4 and 4:8 transposable, BLAST at ~50 % of the parameters, l1,inf
on the input columns at the radius that keeps ~50 % of them and at radiusRatio 0.95, CSR 50 %), sends the test split
(models/digits-mlp/test.safetensors, 450 samples) to each as one v2 request, and prints a markdown
table: density, accuracy, its difference to the dense endpoint (same run), agreement with the dense
endpoint's predictions, and each layer's relative weight error and storage as the server reports
them (GET /v2/models/{name}).

The l1,inf radius is found by bisection on radiusRatio with `sparse-serve inspect`, which reports
the compacted shape of fc1 ("dense 256xK of 256x64").

    python3 Benchmarks/scripts/compression_quality.py [--keep 0.5] [--json OUT [--rounds 3]]

--json OUT also measures each endpoint's throughput (test-split requests per second, one client, the
endpoints taken in turn for --rounds rounds of 1 s, best round kept) and writes every row as JSON
with the load average (read by plot.py).
"""
import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serving_bench import BINARY, ROOT, start_server  # noqa: E402

MODEL = ROOT / "models" / "digits-mlp"
FC3_DENSE = {"fc3": {"method": "dense"}}  # 10 outputs: not divisible by 4 (transposable blocks, BLAST b=4)


def l1inf_plan(ratio):
    return {"method": "dense", "layers": {"fc1": {"method": "l1inf", "groups": "columns", "radiusRatio": ratio}}}


def kept_inputs(ratio):
    out = subprocess.run([BINARY, "inspect", str(MODEL), "--compression", json.dumps(l1inf_plan(ratio))],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"dense 256x(\d+) of 256x64", out)
    if not m:
        raise SystemExit(f"inspect did not report fc1's compacted shape:\n{out}")
    return int(m.group(1))


def radius_keeping(fraction, inputs=64):
    """Smallest radiusRatio (to 1e-4) whose projection keeps at least fraction x inputs columns."""
    want = round(fraction * inputs)
    lo, hi = 0.0, 1.0
    while hi - lo > 1e-4:
        mid = (lo + hi) / 2
        if kept_inputs(mid) >= want:
            hi = mid
        else:
            lo = mid
    return round(hi, 4), kept_inputs(round(hi, 4))


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def infer(url, name, x):
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}],
            "outputs": [{"name": "probabilities"}]}
    req = urllib.request.Request(f"{url}/v2/models/{name}/infer", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        out = json.loads(r.read())["outputs"][0]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def throughputs(url, names, x, rounds):
    """Samples per second of back-to-back whole-split requests, per endpoint: best of rounds of 1 s."""
    best = {n: 0.0 for n in names}
    for _ in range(rounds):
        for name in names:
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < 1.0:
                infer(url, name, x)
                count += 1
            best[name] = max(best[name], count * len(x) / (time.perf_counter() - start))
    return best


def write_json(path, results, labels, dense_predicted, speeds, loads):
    rows = [{"endpoint": name, "label": label, "density": meta["density"],
             "accuracy": float((predicted == labels).mean()),
             "agreement_with_dense": float((predicted == dense_predicted).mean()),
             "samples_per_second": speeds[name]} for name, label, predicted, meta in results]
    path.write_text(json.dumps({"benchmark": "compression_quality", "model": "digits-mlp", "samples": len(labels),
                                "load_average": loads, "rows": rows}, indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=float, default=0.5, help="fraction of fc1's 64 input columns l1,inf keeps")
    ap.add_argument("--json", type=pathlib.Path, help="also measure throughput and write the results to this file")
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds (with --json)")
    args = ap.parse_args()
    ratio, kept = radius_keeping(args.keep)
    endpoints = [
        ("dense", "dense", {"method": "dense"}),
        ("nm-2of4", "nm 2:4 magnitude", {"method": "nm", "n": 2, "m": 4, "mask": "magnitude", "pin": True}),
        ("nm-4of8", "nm 4:8 magnitude", {"method": "nm", "n": 4, "m": 8, "mask": "magnitude", "pin": True}),
        ("nm-2of4-t", "nm 2:4 transposable, fc3 dense",
         {"method": "nm", "n": 2, "m": 4, "mask": "transposable", "pin": True, "layers": FC3_DENSE}),
        ("nm-4of8-t", "nm 4:8 transposable, fc3 dense",
         {"method": "nm", "n": 4, "m": 8, "mask": "transposable", "pin": True, "layers": FC3_DENSE}),
        ("blast", "BLAST b=4, 50 % params, fc3 dense",
         {"method": "blast", "blocks": 4, "parameterRatio": 0.5, "pin": True, "layers": FC3_DENSE}),
        ("l1inf", f"l1,inf columns on fc1, ρ = {ratio} ({kept}/64 inputs kept)", l1inf_plan(ratio)),
        ("l1inf-95", f"l1,inf columns on fc1, ρ = 0.95 ({kept_inputs(0.95)}/64 inputs kept)", l1inf_plan(0.95)),
        ("csr-50", "CSR 50 % (magnitude)", {"method": "csr", "density": 0.5, "pin": True}),
    ]
    endpoints = [(n, label, c, False) for n, label, c in endpoints] + [
        (n + "-cal", label.replace("magnitude", "data-aware"), calibrated(c), True) for n, label, c in endpoints[1:] if "l1inf" not in n]
    split = load_file(str(MODEL / "test.safetensors"))
    x, labels = split["inputs"], split["labels"]
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "config.json"
        config.write_text(json.dumps({"server": {"threads": 2},
                                      "endpoints": [{"name": n, "model": str(MODEL), "compression": c} for n, _, c, _ in endpoints]}))
        proc, url = start_server(config)
        try:
            results = []
            for name, label, _, cal in endpoints:
                predicted = infer(url, name, x).argmax(axis=1)
                meta = get(f"{url}/v2/models/{name}")["compression"]
                results.append((name, label, predicted, meta, cal))
            if args.json:
                loads = [list(os.getloadavg())]
                speeds = throughputs(url, [n for n, _, _ in endpoints], x, args.rounds)
                loads.append(list(os.getloadavg()))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    dense_predicted = results[0][2]
    dense_accuracy = float((dense_predicted == labels).mean())
    print(f"digits MLP test split: {len(labels)} samples; l1,inf radiusRatio {ratio} keeps {kept} of fc1's 64 inputs\n")
    print("| compression | calibrated | recovery | density | accuracy | vs dense | agrees with dense | rel. error fc1 / fc2 / fc3 | storage fc1 / fc2 / fc3 |")
    print("|---|---|---|---:|---:|---:|---:|---|---|")
    for name, label, predicted, meta, cal in results:
        accuracy = float((predicted == labels).mean())
        agreement = float((predicted == dense_predicted).mean())
        layers = {l["name"]: l for l in meta["layers"]}
        errors = " / ".join(f"{layers[n]['relative_error']:.3f}" for n in ("fc1", "fc2", "fc3"))
        storage = " / ".join(layers[n]["storage"] for n in ("fc1", "fc2", "fc3"))
        print(f"| {label} | {'yes' if cal else 'no'} | no | {meta['density']:.2f} | {accuracy:.3f} | {100 * (accuracy - dense_accuracy):+.1f} pts "
              f"| {agreement:.3f} | {errors} | {storage} |")
    if args.json:
        write_json(args.json, results, labels, dense_predicted, speeds, loads)


MINILM = ROOT / "models" / "minilm-l6"
ENCODER = "encoder.layer.*"
# the attention output first: `*` also matches dots, so "encoder.layer.*.output.dense" alone would take it too
FFN = {"encoder.layer.*.attention.output.dense": {"method": "dense"},
       **{f"encoder.layer.*.{n}.dense": {"method": "blast", "blocks": 4, "parameterRatio": 0.5, "iterations": 30}
          for n in ("intermediate", "output")}}


def lee_corpus():
    """The Lee et al. document-similarity data from gensim's test data: 50 documents and the 1,225
    human similarity ratings of their pairs (upper triangle)."""
    import glob
    import zipfile
    folder = ROOT / ".build" / "lee"
    if not (folder / "similarities0-1.txt").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), "gensim==4.4.0"], check=True)
        with zipfile.ZipFile(glob.glob(str(folder / "gensim-*.whl"))[0]) as z:
            for name in ("lee.cor", "similarities0-1.txt"):
                (folder / name).write_bytes(z.read(f"gensim/test/test_data/{name}"))
    docs = [l.strip() for l in (folder / "lee.cor").read_text(encoding="latin-1").splitlines() if l.strip()]
    human = np.loadtxt(folder / "similarities0-1.txt")
    pairs = [(i, j) for i in range(len(docs)) for j in range(i + 1, len(docs))]
    return docs, np.array([human[i, j] for i, j in pairs]), pairs


def spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def minilm_table():
    from minilm_endpoints import cosines, embed
    variants = [
        ("dense", "dense", None),
        ("nm24", "2:4, all encoder linears", {"method": "dense", "layers": {ENCODER: {"method": "nm", "n": 2, "m": 4}}}),
        ("nm48", "4:8, all encoder linears", {"method": "dense", "layers": {ENCODER: {"method": "nm", "n": 4, "m": 8}}}),
        ("nm24t", "transposable 2:4, all encoder linears",
         {"method": "dense", "layers": {ENCODER: {"method": "nm", "n": 2, "m": 4, "mask": "transposable"}}}),
        ("blast", "BLAST b=4 50 % on the FFN", {"method": "dense", "layers": FFN}),
    ]
    endpoints = [("dense", "dense", None, False)]
    for name, label, c in variants[1:]:
        endpoints += [(name, label, c, False), (name + "-cal", label, calibrated(c), True)]
    held = [l for l in (ROOT / "models" / "wordnet" / "heldout.txt").read_text().splitlines() if l.strip()]
    docs, human, pairs = lee_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "config.json"
        config.write_text(json.dumps({"server": {"threads": 2}, "endpoints": [
            {"name": n, "model": str(MINILM), **({"compression": c} if c else {})} for n, _, c, _ in endpoints]}))
        proc, url = start_server(config)
        try:
            rows = []
            for name, label, _, cal in endpoints:
                e, d = embed(url, name, held), embed(url, name, docs)
                sims = np.array([float(d[i] @ d[j] / (np.linalg.norm(d[i]) * np.linalg.norm(d[j]))) for i, j in pairs])
                rows.append((label, cal, e, spearman(sims, human)))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    dense_e, dense_rho = rows[0][2], rows[0][3]
    print(f"\nMiniLM: {len(held)} held-out WordNet texts; Lee corpus {len(docs)} documents, {len(pairs)} human-rated pairs\n")
    print("| compression | calibrated | recovery | cosine to dense: mean | min | Lee Spearman ρ | vs dense |")
    print("|---|---|---|---:|---:|---:|---:|")
    for label, cal, e, rho in rows:
        c = cosines(e, dense_e)
        print(f"| {label} | {'yes' if cal else 'no'} | no | {c.mean():.4f} | {c.min():.4f} | {rho:.4f} | {rho / dense_rho:.1%} |")


if __name__ == "__main__":
    main()
