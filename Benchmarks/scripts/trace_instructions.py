#!/usr/bin/env python3
"""Instructions per request under valgrind's callgrind: a count that does not depend on the load of
a shared machine, for telemetry costs too small for throughput rounds to show (issue 19: tracing
at ratio 1.0 against untraced). Each variant is LABEL=BINARY[,tracing]; the server runs under
callgrind (`apt-get install valgrind`; debug info is stripped from a copy first, which valgrind
3.19 cannot read), wrk drives digits for --duration seconds at --clients connections after a
warm-up, and the count covers every thread of the server from the end of the warm-up to the end
of the run. With `,tracing` spans go at sample ratio 1.0 to Benchmarks/scripts/otlp_sink.c.

    python3 Benchmarks/scripts/trace_instructions.py --endpoint plain off=BIN traced=BIN,tracing

Prints instructions per request per variant and each against the first; `--keep DIR` keeps each
dump as DIR/LABEL.callgrind, to read per function with `callgrind_annotate` (its counts are for
the whole run: divide by the request count printed).
"""
import argparse
import glob
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def start_sink(workdir):
    exe = pathlib.Path(workdir) / "otlp_sink"
    if not exe.exists():
        subprocess.run(["cc", "-O2", "-pthread", "-o", str(exe), str(ROOT / "Benchmarks" / "scripts" / "otlp_sink.c")], check=True)
    sink = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True)
    return sink, f"http://127.0.0.1:{int(sink.stdout.readline().split()[1])}"


def total_instructions(path):
    """Sum of the Ir counts of a callgrind output file (self costs; call lines are inclusive and skipped)."""
    total, skip = 0, False
    for line in open(path):
        if line.startswith("calls="):
            skip = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if len(parts) >= 2:
                total += 0 if skip else int(parts[1])
                skip = False
    return total


def measure(binary, tracing, args, workdir):
    stripped = pathlib.Path(workdir) / (pathlib.Path(binary).name + ".nodebug")
    subprocess.run(["objcopy", "--strip-debug", binary, str(stripped)], check=True)
    model = str(ROOT / "models" / "digits-mlp")
    config = {"server": {"threads": 2, "ioThreads": 2, "maxConnections": 4096},
              "endpoints": [{"name": "plain", "model": model},
                            {"name": "batched", "model": model,
                             "batching": {"maxBatchSize": 32, "maxQueueDelayMicroseconds": 500, "maxQueueSize": 4096}}]}
    run = pathlib.Path(tempfile.mkdtemp(dir=workdir))
    (run / "config.json").write_text(json.dumps(config))
    body = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_text().strip()
    (run / "post.lua").write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' % body)
    env, sink = dict(os.environ), None
    if tracing:
        sink, url = start_sink(workdir)
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_TRACES_SAMPLER_ARG": "1.0"})
    out = run / "callgrind.out"
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(stripped), "serve", "--config",
                             str(run / "config.json"), "--port", "0", "--host", "127.0.0.1", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        url = next(m.group(1) for line in proc.stdout if (m := re.search(r"listening on (http://\S+)", line)))
        target = f"{url}/v2/models/{args.endpoint}/infer"
        script = ["-s", str(run / "post.lua"), "--timeout", "30s", target]
        subprocess.run(["wrk", "-t", "1", "-c", "8", "-d", "5s", *script], capture_output=True)  # warm-up
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True)
        done = subprocess.run(["wrk", "-t", "2", "-c", str(args.clients), "-d", f"{args.duration}s", *script], capture_output=True, text=True)
        time.sleep(0.5)
        subprocess.run(["callgrind_control", "--dump=run", str(proc.pid)], capture_output=True)
        m = re.search(r"(\d+) requests in", done.stdout)
        if not m:
            raise SystemExit(f"wrk did not finish against {binary}: {(done.stdout + done.stderr)[-500:]}")
        requests = int(m.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
        if sink:
            sink.send_signal(signal.SIGTERM)
            sink.wait(timeout=10)
    dump = max(glob.glob(str(out) + "*"), key=os.path.getsize)
    return total_instructions(dump) / requests, requests, dump


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", default="plain", choices=["plain", "batched"])
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--keep", metavar="DIR", help="copy each variant's callgrind dump to DIR/LABEL.callgrind (for callgrind_annotate)")
    ap.add_argument("variants", nargs="+", help="LABEL=BINARY[,tracing]")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp()
    base = None
    for v in args.variants:
        label, spec = v.split("=", 1)
        binary, _, option = spec.partition(",")
        per_request, requests, dump = measure(str(pathlib.Path(binary).resolve()), option == "tracing", args, workdir)
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            shutil.copy(dump, os.path.join(args.keep, f"{label}.callgrind"))
        base = base or per_request
        print(f"{label:>12} {args.endpoint}: {per_request:9.0f} instructions/request ({requests} requests)  {per_request / base:.3f} of the first",
              flush=True)


if __name__ == "__main__":
    main()
