#!/usr/bin/env python3
"""Serving benchmark: dynamic batching on vs off under 1, 8, 32 and 64 concurrent clients.

Starts the release binary on loopback with two endpoints over the same model — `plain` (no
batching) and `batched` (dynamic batching) — and drives each with wrk (Debian package) posting
batch-1 v2 JSON requests over keep-alive connections. Prints requests/s, p50 and p99 latency and
the batched/plain throughput ratio measured in the same run.

    python3 Benchmarks/scripts/serving_bench.py [--duration 10] [--model models/digits-mlp]
        [--max-batch 32] [--delay-us 500] [--threads 2]
"""
import argparse
import json
import os
import pathlib
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("SPARSESERVE_BINARY", str(ROOT / ".build" / "release" / "sparse-serve"))

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%%d errors=%%d non2xx=%%d seconds=%%f p50=%%f p99=%%f\\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""


def bootstrap_interval(values, draws=10000, seed=1):
    """The 2.5th and 97.5th percentiles of the median of `values` resampled with replacement."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def start_server(config_path, binary=None):
    proc = subprocess.Popen([binary or BINARY, "serve", "--config", str(config_path), "--port", "0", "--host", "127.0.0.1",
                             "--log-level", "warning"], stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return proc, m.group(1)
    raise SystemExit("server did not start")


def run_wrk(url, script, connections, duration):
    out = subprocess.run(["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{duration}s",
                          "--timeout", "10s", "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"RESULT requests=(\d+) errors=(\d+) non2xx=(\d+) seconds=([\d.]+) p50=([\d.]+) p99=([\d.]+)", out)
    requests, errors, non2xx, seconds, p50, p99 = m.groups()
    return {"rps": int(requests) / float(seconds), "errors": int(errors), "non2xx": int(non2xx),
            "p50_ms": float(p50), "p99_ms": float(p99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--model", default=str(ROOT / "models" / "digits-mlp"))
    ap.add_argument("--input", default=str(ROOT / "Tests" / "fixtures" / "digits-one.json"))
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--delay-us", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2, help="compute threads of the server")
    ap.add_argument("--clients", default="1,8,32,64")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    body = pathlib.Path(args.input).read_text().strip()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        config = {"server": {"threads": args.threads, "ioThreads": 2, "maxConnections": 4096},
                  "endpoints": [
                      {"name": "plain", "model": args.model},
                      {"name": "batched", "model": args.model,
                       "batching": {"maxBatchSize": args.max_batch, "maxQueueDelayMicroseconds": args.delay_us,
                                    "maxQueueSize": 4096}}]}
        (tmp / "config.json").write_text(json.dumps(config))
        script = tmp / "post.lua"
        script.write_text(LUA % body)
        proc, url = start_server(tmp / "config.json")
        try:
            print(f"# {pathlib.Path(args.model).name}: batch-1 JSON requests, {args.duration} s per cell, "
                  f"server threads={args.threads}, batching maxBatchSize={args.max_batch} "
                  f"maxQueueDelay={args.delay_us} us; wrk on the same 2-core machine")
            print(f"{'clients':>7} | {'plain req/s':>11} {'p50 ms':>7} {'p99 ms':>7} | "
                  f"{'batched req/s':>13} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>5}")
            for c in [int(x) for x in args.clients.split(",")]:
                plain = run_wrk(f"{url}/v2/models/plain/infer", script, c, args.duration)
                batched = run_wrk(f"{url}/v2/models/batched/infer", script, c, args.duration)
                for r in (plain, batched):
                    if r["errors"] or r["non2xx"]:
                        print(f"  warning: {r['errors']} socket errors, {r['non2xx']} non-2xx", file=sys.stderr)
                print(f"{c:>7} | {plain['rps']:>11.0f} {plain['p50_ms']:>7.3f} {plain['p99_ms']:>7.3f} | "
                      f"{batched['rps']:>13.0f} {batched['p50_ms']:>7.3f} {batched['p99_ms']:>7.3f} | "
                      f"{batched['rps'] / plain['rps']:>5.2f}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
