#!/usr/bin/env python3
"""Recovery training of MiniLM: one-shot (calibrated) vs recovered, held-out quality and time.

For 2:4, 4:8 and transposable 2:4 on every encoder linear and BLAST b=4 at 50 % of the FFN's
parameters, it runs `sparse-serve compress` (release binary, SPARSESERVE_BINARY overrides) twice
on models/minilm-l6: calibrated one-shot, then the same with `--recover` (the binary's defaults: the
one-shot step on 4,096 calibration samples, then block-wise and end-to-end distillation on
models/minilm-l6/recovery.txt). It reads each artifact's metadata (held-out mean and minimum cosine
to dense on heldout.txt, which neither compression nor recovery sees; the recovery report with the
recovery's one-shot starting point), serves the dense model and every artifact, and measures the Lee et al.
document-similarity Spearman correlation with human scores (the set compression_quality.py uses).
Prints a markdown table with the load average before and after (the machine may be shared: times
taken under load are flagged as such).

    python3 Benchmarks/scripts/recovery_minilm.py [--rows nm24,nm48,nm24t,blast] [--epochs N]
        [--end-to-end-epochs N] [--blast-blocks B] [--recovery-data FILE] [--recover-args '...']
        [--recover-calibration-samples N] [--keep DIR] [--json OUT]

--keep DIR keeps the artifacts (DIR/NAME-oneshot, DIR/NAME-recovered) and the logs of `compress` (DIR/NAME-*.log).
"""
import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from safetensors import safe_open

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from compression_quality import lee_corpus, spearman  # noqa: E402
from minilm_endpoints import embed  # noqa: E402
from serving_bench import BINARY, ROOT, start_server  # noqa: E402

MINILM = ROOT / "models" / "minilm-l6"
ENCODER = "encoder.layer.*"
ROWS = {
    "nm24": ("2:4, all encoder linears", {"method": "dense", "layers": {ENCODER: {"method": "nm", "n": 2, "m": 4}}}),
    "nm48": ("4:8, all encoder linears", {"method": "dense", "layers": {ENCODER: {"method": "nm", "n": 4, "m": 8}}}),
    "nm24t": ("transposable 2:4, all encoder linears",
              {"method": "dense", "layers": {ENCODER: {"method": "nm", "n": 2, "m": 4, "mask": "transposable"}}}),
}


def blast_row(blocks):
    """BLAST on both FFN layers at 50 % of their parameters. `*` also matches dots: without its own
    pattern first, "encoder.layer.*.output.dense" would take the attention output too (as in
    Deploy/config.json's minilm-blast, it stays dense)."""
    return (f"BLAST b={blocks} 50 % on the FFN", {"method": "dense", "layers": {
        "encoder.layer.*.attention.output.dense": {"method": "dense"},
        **{f"encoder.layer.*.{n}.dense": {"method": "blast", "blocks": blocks, "parameterRatio": 0.5, "iterations": 30}
           for n in ("intermediate", "output")}}})


ROWS["blast"] = blast_row(2)  # main() rebuilds it from --blast-blocks


def compress(name, compression, out, recover_args, calibration_samples=None):
    started = time.time()
    if calibration_samples:
        compression = dict(compression, calibration={"samples": calibration_samples})
    r = subprocess.run([BINARY, "compress", "--model", str(MINILM), "--compression", json.dumps(compression), "--out", str(out),
                        "--calibration", "default", *recover_args], capture_output=True, text=True)
    (out.parent / f"{out.name}.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"{name}: compress failed:\n{r.stdout}\n{r.stderr}")
    with safe_open(str(out / "model.safetensors"), "np") as f:
        meta = f.metadata()
    return {"wall": time.time() - started, "quality": json.loads(meta["quality"]),
            "calibration": json.loads(meta["calibration"]), "recovery": json.loads(meta["recovery"]) if "recovery" in meta else None,
            "log": r.stdout}


def spearmans(models):
    """Lee Spearman of the dense model and of every artifact, through the real server."""
    docs, human, pairs = lee_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "config.json"
        config.write_text(json.dumps({"server": {"threads": 2}, "endpoints": [{"name": n, "model": str(p)} for n, p in models.items()]}))
        proc, url = start_server(config)
        try:
            out = {}
            for name in models:
                d = embed(url, name, docs)
                d /= np.linalg.norm(d, axis=1, keepdims=True)
                out[name] = spearman(np.array([float(d[i] @ d[j]) for i, j in pairs]), human)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--blast-blocks", type=int, default=2, help="blocks b of the blast row (default 2, as Deploy/config.json's minilm-blast)")
    ap.add_argument("--epochs", type=int, help="block-wise epochs per layer (default: the binary's)")
    ap.add_argument("--end-to-end-epochs", type=int, help="end-to-end epochs (default: the binary's)")
    ap.add_argument("--recovery-data", type=pathlib.Path, help="training texts (default: the binary's, see README)")
    ap.add_argument("--recover-args", default="", help="further compress --recover options, e.g. '--lr 5e-4 --batch-size 16'")
    ap.add_argument("--recover-calibration-samples", type=int, help="calibration samples of the recovered runs' one-shot step "
                    "(compression JSON calibration.samples; default: the binary's)")
    ap.add_argument("--keep", type=pathlib.Path, help="keep the artifacts in this folder")
    ap.add_argument("--json", type=pathlib.Path, help="also write the results to this file")
    args = ap.parse_args()
    recover = ["--recover"] + (["--epochs", str(args.epochs)] if args.epochs else []) + \
        (["--end-to-end-epochs", str(args.end_to_end_epochs)] if args.end_to_end_epochs is not None else []) + \
        (["--recovery-data", str(args.recovery_data)] if args.recovery_data else []) + args.recover_args.split()
    load_before = os.getloadavg()
    folder = args.keep or pathlib.Path(tempfile.mkdtemp(prefix="recovery-minilm-"))
    folder.mkdir(parents=True, exist_ok=True)
    results, models = {}, {"dense": MINILM}
    ROWS["blast"] = blast_row(args.blast_blocks)
    for key in args.rows.split(","):
        label, compression = ROWS[key]
        oneshot = compress(key, compression, folder / f"{key}-oneshot", [])
        recovered = compress(key, compression, folder / f"{key}-recovered", recover, args.recover_calibration_samples)
        held = recovered['recovery']['heldOut']
        print(f"{key}: one-shot {oneshot['wall']:.0f} s ({oneshot['quality']['meanCosine']:.4f}), recovered {recovered['wall']:.0f} s "
              f"(from {held['oneShot']:.4f} to {held['recovered']:.4f} / min {held['recoveredMinimum']:.4f}, "
              f"training {recovered['recovery']['seconds']:.0f} s); load {os.getloadavg()[0]:.1f}", flush=True)
        results[key] = (label, oneshot, recovered)
        models[f"{key}-oneshot"], models[f"{key}-recovered"] = folder / f"{key}-oneshot", folder / f"{key}-recovered"
    rho = spearmans(models)
    load_after = os.getloadavg()
    report(results, rho, load_before, load_after)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "recovery_minilm", "load_average": [load_before, load_after], "spearman": rho,
                                         "rows": {k: {"label": l, "oneshot": {k2: v for k2, v in o.items() if k2 != "log"},
                                                      "recovered": {k2: v for k2, v in r.items() if k2 != "log"}}
                                                  for k, (l, o, r) in results.items()}}, indent=1) + "\n")


def report(results, rho, load_before, load_after):
    first = next(iter(results.values()))[2]["recovery"]
    print(f"\nMiniLM: {first['trainingSamples']} training texts ({pathlib.Path(first['trainingFile']).name}), "
          f"{first['heldOut']['samples']} held-out texts (heldout.txt); block-wise {first['epochs']} epochs per layer, "
          f"batch {first['batchSize']}, peak lr {first['learningRate']}; loss: {first['loss']}; Lee Spearman dense {rho['dense']:.4f}")
    print(f"load average before {load_before[0]:.1f} / after {load_after[0]:.1f} (1 min)\n")
    print("| compression | one-shot cos mean / min | recovery's one-shot start | recovered cos mean / min "
          "| Lee ρ one-shot / recovered (dense) | steps | recovery s | compress --recover wall s |")
    print("|---|---|---|---|---|---:|---:|---:|")
    for key, (label, oneshot, recovered) in results.items():
        q, r = oneshot["quality"], recovered["recovery"]
        h = r["heldOut"]
        print(f"| {label} | {q['meanCosine']:.4f} / {q['minCosine']:.4f} | {h['oneShot']:.4f} / {h['oneShotMinimum']:.4f} "
              f"| {h['recovered']:.4f} / {h['recoveredMinimum']:.4f} "
              f"| {rho[key + '-oneshot']:.4f} / {rho[key + '-recovered']:.4f} ({rho['dense']:.4f}) | {r['steps']} | {r['seconds']:.0f} "
              f"| {recovered['wall']:.0f} |")


if __name__ == "__main__":
    main()
