#!/usr/bin/env python3
"""Telemetry overhead: serving throughput of several sparse-serve builds or settings, in alternating
rounds of Benchmarks/scripts/serving_bench.py (digits, batch-1 JSON, wrk at --clients connections).

Each variant is LABEL=BINARY[,tracing]: with `,tracing` the server exports spans at sample ratio 1.0
to a minimal OTLP/HTTP sink on loopback (it reads each post and answers 200, decoding nothing).

    python3 Benchmarks/scripts/telemetry_bench.py --rounds 3 --duration 5 --clients 32 \\
        main=/tmp/main/sparse-serve new=.build/release/sparse-serve new-traced=.build/release/sparse-serve,tracing

Prints requests/s per round and the median of each variant against the first, with the load average.
"""
import argparse
import http.server
import os
import pathlib
import re
import statistics
import subprocess
import sys
import threading

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def run(binary, clients, duration, env_extra):
    env = {**os.environ, "SPARSESERVE_BINARY": binary, **env_extra}
    out = subprocess.run([sys.executable, str(ROOT / "Benchmarks" / "scripts" / "serving_bench.py"), "--clients", str(clients),
                          "--duration", str(duration)], capture_output=True, text=True, env=env, check=True).stdout
    m = re.search(rf"^\s*{clients} \|\s+([\d.]+)\s+\S+\s+\S+ \|\s+([\d.]+)", out, re.M)
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("variants", nargs="+", help="LABEL=BINARY[,tracing]")
    args = ap.parse_args()
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}", "OTEL_TRACES_SAMPLER_ARG": "1.0"}
    variants = []
    for v in args.variants:
        label, spec = v.split("=", 1)
        binary, _, option = spec.partition(",")
        variants.append((label, str(pathlib.Path(binary).resolve()), traced if option == "tracing" else {}))
    results = {label: [] for label, _, _ in variants}
    print(f"# digits at {args.clients} clients, {args.duration} s per cell, {args.rounds} alternating rounds; "
          f"load average before: {os.getloadavg()}")
    for r in range(args.rounds):
        for label, binary, env in variants:
            plain, batched = run(binary, args.clients, args.duration, env)
            results[label].append((plain, batched))
            print(f"round {r + 1} {label:>14}: plain {plain:8.0f} req/s  batched {batched:8.0f} req/s  load {os.getloadavg()[0]:.1f}",
                  flush=True)
    base = variants[0][0]
    bp = statistics.median(p for p, _ in results[base])
    bb = statistics.median(b for _, b in results[base])
    for label, _, _ in variants:
        p = statistics.median(x for x, _ in results[label])
        b = statistics.median(y for _, y in results[label])
        print(f"median {label:>14}: plain {p:8.0f} ({p / bp:.3f} of {base})  batched {b:8.0f} ({b / bb:.3f} of {base})")
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
