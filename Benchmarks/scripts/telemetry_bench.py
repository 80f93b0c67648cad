#!/usr/bin/env python3
"""Telemetry overhead: serving throughput of several sparse-serve builds or settings, in alternating
rounds of Benchmarks/scripts/serving_bench.py (digits, batch-1 JSON, wrk at --clients connections).

Each variant is LABEL=BINARY[,tracing|,tracing-python][,NAME=VALUE...] (NAME=VALUE: set in the
server's environment, e.g. OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2048): with `,tracing` the server exports spans at
sample ratio 1.0 to Benchmarks/scripts/otlp_sink.c (compiled here with cc), a C OTLP/HTTP sink that
reads each post and answers 200, decoding nothing, so the collector takes next to no CPU from the
cores the server and wrk share; its posts, bytes and CPU seconds are printed per round. With
`,tracing-python` the sink is a Python http.server in this process (what this script used before):
it shows what a Python collector alone costs the measurement.

    python3 Benchmarks/scripts/telemetry_bench.py --rounds 3 --duration 5 --clients 32 \\
        off=.build/release/sparse-serve traced=.build/release/sparse-serve,tracing

Rounds run the variants in turn, in reverse order every other round (A B, B A, ...), so a drift of
the machine's speed falls on both alike. Prints requests/s per round, the median of each variant
against the first, and the median of the per-round ratios to the first variant with a 95 %
bootstrap interval (the ratio of two cells run seconds apart is steadier than either), with the
load average.
"""
import argparse
import http.server
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Benchmarks" / "scripts"))
from serving_bench import bootstrap_interval  # noqa: E402


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def c_sink(workdir):
    """Compiles otlp_sink.c once into `workdir`; returns a function starting one sink (process, url)."""
    exe = pathlib.Path(workdir) / "otlp_sink"
    subprocess.run(["cc", "-O2", "-pthread", "-o", str(exe), str(ROOT / "Benchmarks" / "scripts" / "otlp_sink.c")], check=True)

    def start():
        proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True)
        port = int(proc.stdout.readline().split()[1])
        return proc, f"http://127.0.0.1:{port}"
    return start


def stop_sink(proc):
    """Stops a C sink: (posts, bytes, CPU seconds it used)."""
    with open(f"/proc/{proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    proc.send_signal(signal.SIGTERM)
    out = proc.stdout.read()
    proc.wait(timeout=10)
    m = re.search(r"posts=(\d+) bytes=(\d+)", out)
    return int(m.group(1)), int(m.group(2)), cpu


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
    ap.add_argument("variants", nargs="+", help="LABEL=BINARY[,tracing|,tracing-python][,NAME=VALUE...]")
    args = ap.parse_args()
    py_sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=py_sink.serve_forever, daemon=True).start()
    ratio = {"OTEL_TRACES_SAMPLER_ARG": "1.0"}
    workdir = tempfile.mkdtemp()
    start_c_sink = c_sink(workdir)
    variants = []
    for v in args.variants:
        label, spec = v.split("=", 1)
        binary, *options = spec.split(",")
        option = next((o for o in options if "=" not in o), "")
        extra = dict(o.split("=", 1) for o in options if "=" in o)
        variants.append((label, str(pathlib.Path(binary).resolve()), option, extra))
    results = {label: [] for label, _, _, _ in variants}
    print(f"# digits at {args.clients} clients, {args.duration} s per cell, {args.rounds} alternating rounds; "
          f"load average before: {os.getloadavg()}")
    for r in range(args.rounds):
        for label, binary, option, extra in (variants if r % 2 == 0 else variants[::-1]):
            sink, note = None, ""
            if option == "tracing":
                sink, url = start_c_sink()
                env = {**ratio, "OTEL_EXPORTER_OTLP_ENDPOINT": url}
            elif option == "tracing-python":
                env = {**ratio, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{py_sink.server_address[1]}"}
            else:
                env = {}
            plain, batched = run(binary, args.clients, args.duration, {**env, **extra})
            if sink:
                posts, size, cpu = stop_sink(sink)
                note = f"  sink: {posts} posts, {size / 1e6:.1f} MB, {cpu:.2f} s CPU"
            results[label].append((plain, batched))
            print(f"round {r + 1} {label:>14}: plain {plain:8.0f} req/s  batched {batched:8.0f} req/s  load {os.getloadavg()[0]:.1f}{note}",
                  flush=True)
    base = variants[0][0]
    bp = statistics.median(p for p, _ in results[base])
    bb = statistics.median(b for _, b in results[base])
    for label, _, _, _ in variants:
        p = statistics.median(x for x, _ in results[label])
        b = statistics.median(y for _, y in results[label])
        print(f"median {label:>14}: plain {p:8.0f} ({p / bp:.3f} of {base})  batched {b:8.0f} ({b / bb:.3f} of {base})")
    for label, _, _, _ in variants[1:]:
        cells = []
        for column in (0, 1):
            ratios = [x[column] / y[column] for x, y in zip(results[label], results[base])]
            low, high = bootstrap_interval(ratios)
            cells.append(f"{statistics.median(ratios):.3f} [{low:.3f}, {high:.3f}]")
        print(f"per-round ratio {label} / {base}: plain {cells[0]}  batched {cells[1]}  (median [95 % bootstrap interval])")
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
