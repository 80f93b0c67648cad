#!/usr/bin/env python3
"""Recovery training of GunPoint's 1-D CNN (models/timeseries): held-out accuracy one-shot
(weight-only and calibrated) and after `compress --recover` from each, for compressions of the conv
layers.

Each row runs the release binary's `sparse-serve compress` on models/timeseries twice with
`--recover`: from the weight-only one-shot compression, and with `--calibration default` from the
calibrated one (both calibrate and train on the same 50 training series; each run's report, with
the one-shot and recovered held-out accuracy, is the artifact's `recovery` metadata). Held-out: the 150-series test split, never trained or calibrated on.
Prints a markdown table and the 1-minute load average before and after (numbers taken on a
shared machine are flagged as such).

    python3 Benchmarks/scripts/recovery_timeseries.py [--epochs N] [--rows nm24,blast50]
"""
import argparse
import json
import os
import pathlib
import subprocess
import tempfile

from safetensors import safe_open

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("SPARSESERVE_BINARY", str(ROOT / ".build" / "release" / "sparse-serve"))
MODEL = ROOT / "models" / "timeseries"


def conv(method):
    return {"method": "dense", "layers": {"conv*": {**method, "pin": True}}}


ROWS = {
    "nm24": ("nm 2:4 on conv1-3", conv({"method": "nm", "n": 2, "m": 4})),
    "nm48": ("nm 4:8 on conv1-3", conv({"method": "nm", "n": 4, "m": 8})),
    "blast50": ("BLAST 50 % on conv1-3 (conv1 b=1, conv2-3 b=4)",
                {"method": "dense", "layers": {"conv1": {"method": "blast", "blocks": 1, "parameterRatio": 0.5, "pin": True},
                                               "conv*": {"method": "blast", "blocks": 4, "parameterRatio": 0.5, "pin": True}}}),
    "csr50": ("CSR 50 % on conv1-3", conv({"method": "csr", "density": 0.5})),
}


def compress(out, compression, *extra):
    r = subprocess.run([BINARY, "compress", "--model", str(MODEL), "--compression", json.dumps(compression), "--out", str(out), *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"compress failed for {compression}:\n{r.stderr}")
    with safe_open(str(out / "model.safetensors"), "np") as f:
        return f.metadata()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--rows", default=",".join(ROWS))
    args = ap.parse_args()
    extra = ["--epochs", str(args.epochs)] if args.epochs else []
    before = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.rows.split(","):
            label, compression = ROWS[key]
            calibrated = json.loads(compress(pathlib.Path(tmp) / f"{key}-cal", compression, "--recover", "--calibration", "default",
                                             *extra)["recovery"])
            meta = compress(pathlib.Path(tmp) / f"{key}-rec", compression, "--recover", *extra)
            report, layers = json.loads(meta["recovery"]), json.loads(meta["layers"])
            stored = sum(l["storedParameters"] for l in layers)
            dense = sum(l["shape"][0] * l["shape"][1] + l["shape"][0] for l in layers)
            results.append((label, stored / dense, report, calibrated))
    after = os.getloadavg()[0]
    held = results[0][3]["heldOut"]
    r0 = results[0][3]
    print(f"GunPoint CNN: {r0['trainingSamples']} training series, {held['samples']} held-out; dense accuracy {held['dense']:.4f}; "
          f"recovery {r0['epochs']} epochs, batch {r0['batchSize']}, peak lr {r0['learningRate']:g}")
    print(f"load average (1 min) before {before:.1f} / after {after:.1f}\n")
    print("| compression | model density | weight-only one-shot → recovered | training s | calibrated one-shot → recovered | training s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, density, plain, cal in results:
        a, b = plain["heldOut"], cal["heldOut"]
        print(f"| {label} | {density:.2f} | {a['oneShot']:.4f} → {a['recovered']:.4f} | {plain['seconds']:.1f} "
              f"| {b['oneShot']:.4f} → {b['recovered']:.4f} | {cal['seconds']:.1f} |")


if __name__ == "__main__":
    main()
