#!/usr/bin/env python3
"""Start-up time: compressing the dense model at load vs loading the compressed artifact.

For each case (a model folder and a compression block) it runs `sparse-serve compress` once
(timed), then starts the release server alternately with an endpoint that compresses the dense
model at load and with one that loads the artifact, `--rounds` times each, and prints the median
time to ready (process start → "listening", which includes loading and the warm-up inference),
the endpoint's own load time from its log line, both ratios, and the file sizes. Compressed
layers are timed against dense at load in both cases (pinned methods are not).

    python3 Benchmarks/scripts/artifact_load.py [--rounds 3] [--case 'NAME=MODEL_DIR={...json...}' ...]
"""
import argparse
import json
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serving_bench import BINARY, ROOT  # noqa: E402

DIGITS, MINILM = ROOT / "models" / "digits-mlp", ROOT / "models" / "minilm-l6"
CASES = [
    ("digits nm 2:4 transposable", DIGITS, {"method": "nm", "n": 2, "m": 4, "mask": "transposable", "layers": {"fc3": {"method": "dense"}}}),
    ("digits blast b=4 50%", DIGITS, {"method": "blast", "blocks": 4, "parameterRatio": 0.5, "layers": {"fc3": {"method": "dense"}}}),
    ("minilm nm 2:4 transposable", MINILM, {"method": "nm", "n": 2, "m": 4, "mask": "transposable"}),
    ("minilm blast b=4 50% intermediate", MINILM, {"method": "dense", "layers": {"*.intermediate.dense": {"method": "blast", "blocks": 4,
                                                                                                      "parameterRatio": 0.5}}}),
    ("minilm csr 0.3 FFN", MINILM, {"method": "dense", "layers": {"*.intermediate.dense": {"method": "csr", "density": 0.3},
                                                                  "*.output.dense": {"method": "csr", "density": 0.3}}}),
]


def start(config_path):
    """Seconds from process start to the listening line, the endpoint's logged load ms, and the process."""
    started = time.perf_counter()
    proc = subprocess.Popen([BINARY, "serve", "--config", str(config_path), "--port", "0", "--host", "127.0.0.1", "--threads", "2",
                             "--log-level", "info"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if "listening on" in line:
            ready = time.perf_counter() - started
            break
    else:
        raise SystemExit("server did not start: " + proc.stderr.read()[-2000:])
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    m = re.search(r"ms=(\d+).*loaded endpoint|loaded endpoint.*ms=(\d+)", err)
    logged = float(next(g for g in m.groups() if g)) / 1000 if m else float("nan")
    return ready, logged


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--case", action="append", default=[], help="NAME=MODEL_DIR=JSON (replaces the default cases)")
    args = ap.parse_args()
    cases = [(c.split("=", 2)[0], pathlib.Path(c.split("=", 2)[1]), json.loads(c.split("=", 2)[2])) for c in args.case] or CASES
    print(f"load average {os.getloadavg()[0]:.2f} (2-core machine; other work on it slows every column alike)")
    print(f"{'case':32} {'compress s':>10} {'at load s':>10} {'artifact s':>10} {'ratio':>6}   {'(logged load s: at load / artifact)':>36}  sizes")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for name, model, compression in cases:
            if not (model / "model.safetensors").exists():
                print(f"{name:32} skipped: {model} is absent")
                continue
            out = tmp / re.sub(r"\W+", "-", name)
            started = time.perf_counter()
            subprocess.run([BINARY, "compress", "--model", str(model), "--compression", json.dumps(compression), "--out", str(out)],
                           check=True, capture_output=True)
            compress_s = time.perf_counter() - started
            configs = {}
            for mode, endpoint in (("load", {"model": str(model), "compression": compression}), ("artifact", {"model": str(out)})):
                path = tmp / f"{mode}.json"
                path.write_text(json.dumps({"server": {"threads": 2, "ioThreads": 1}, "endpoints": [{"name": "m", **endpoint}]}))
                configs[mode] = path
            results = {"load": [], "artifact": []}
            for _ in range(args.rounds):
                for mode in ("load", "artifact"):
                    results[mode].append(start(configs[mode]))
            ready = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
            logged = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
            sizes = f"{(model / 'model.safetensors').stat().st_size / 1e6:.1f} MB dense, {(out / 'model.safetensors').stat().st_size / 1e6:.1f} MB artifact"
            print(f"{name:32} {compress_s:10.2f} {ready['load']:10.2f} {ready['artifact']:10.2f} {ready['load'] / ready['artifact']:5.1f}x"
                  f"   {logged['load']:15.2f} / {logged['artifact']:.2f} ({logged['load'] / logged['artifact']:.1f}x)  {sizes}")


if __name__ == "__main__":
    main()
