#!/usr/bin/env python3
"""Kernel benchmark with the OpenBLAS baseline measured in the same run.

Runs `kernel-bench --json` (our dense, N:M, BLAST, CSR kernels), then times numpy's sgemm
(OpenBLAS) on the same shapes with 1 and 2 threads in fresh interpreters, and prints every
operator's time and its speed-up over OpenBLAS dense with the same thread count.

    swift build -c release --product kernel-bench
    .venv/bin/python Benchmarks/scripts/kernel_bench.py [--quick]
"""
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
BENCH = ROOT / ".build" / "release" / "kernel-bench"

NUMPY_TIMER = r"""
import json, sys, time
import numpy as np
shapes = json.loads(sys.argv[1])
out = {}
rng = np.random.default_rng(0)
for k, n, m in shapes:
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    wt = np.ascontiguousarray(w.T)
    y = np.empty((m, n), dtype=np.float32)
    np.matmul(x, wt, out=y)
    samples = []
    for _ in range(5):
        reps, start = 0, time.perf_counter()
        while True:
            np.matmul(x, wt, out=y)
            reps += 1
            now = time.perf_counter()
            if now - start > 0.04:
                break
        samples.append((now - start) / reps * 1e6)
    out[f"{k}x{n}x{m}"] = sorted(samples)[2]
print(json.dumps(out))
"""


def numpy_times(shapes, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, "-c", NUMPY_TIMER, json.dumps(shapes)], capture_output=True, text=True,
                       env=env, check=True)
    return json.loads(r.stdout)


def main():
    args = ["--json"] + (["--quick"] if "--quick" in sys.argv else [])
    out = subprocess.run([str(BENCH), *args], capture_output=True, text=True, check=True).stdout.strip().splitlines()
    rows, activations = json.loads(out[0]), json.loads(out[1])
    shapes = sorted({(r["k"], r["n"], r["m"]) for r in rows})
    blas = {t: numpy_times(shapes, t) for t in (1, 2)}
    print("# µs per call (median of 5); 'vs BLAS' = OpenBLAS dense time / this time, same thread count")
    print(f"{'op':<20} {'K':>5} {'N':>5} {'M':>4} {'thr':>3} {'µs':>9} {'GFLOP/s':>8} {'vs BLAS':>8} {'BLAS µs':>8}")
    for r in rows:
        base = blas[r["threads"]][f"{r['k']}x{r['n']}x{r['m']}"]
        print(f"{r['op']:<20} {r['k']:>5} {r['n']:>5} {r['m']:>4} {r['threads']:>3} {r['microseconds']:>9.1f} "
              f"{r['gflops']:>8.1f} {base / r['microseconds']:>8.2f} {base:>8.1f}")
    for name, ns in activations.items():
        print(f"{name:<50} {ns:.3f} ns/element")


if __name__ == "__main__":
    main()
