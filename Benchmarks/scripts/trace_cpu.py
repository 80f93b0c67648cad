#!/usr/bin/env python3
"""Where the CPU of a request goes, per thread of the server, in user and kernel mode, with its
system calls and context switches: what the instruction count of trace_instructions.py does not
show (issue 19: the exporter's sends, wake-ups, the kernel side of every thread). Each variant is
LABEL=BINARY[,tracing]; with `,tracing` spans go at sample ratio 1.0 to Benchmarks/scripts/otlp_sink.c,
whose CPU is reported apart (a deployment's collector runs elsewhere). The server runs digits
(2 compute threads, 2 I/O queues), wrk drives --clients connections on --endpoint for --duration
seconds after a 2 s warm-up; thread CPU comes from /proc/PID/task/*/stat (user, system) and
schedstat (run and wait time), system calls and context switches from `perf stat -p` (software
events: no hardware counters needed). Variants run in alternating rounds; figures are per request
so they hold at whatever rate the shared machine allowed, and the medians over rounds are printed.

    python3 Benchmarks/scripts/trace_cpu.py --rounds 3 off=BIN traced=BIN,tracing \\
        recorded-only=BIN,tracing,OTEL_BSP_MAX_QUEUE_SIZE=1 unsampled=BIN,tracing,OTEL_TRACES_SAMPLER_ARG=0

(`OTEL_BSP_MAX_QUEUE_SIZE=1`: every span is encoded and then dropped, so nothing is exported: the
request path's share of the cost; `OTEL_TRACES_SAMPLER_ARG=0`: traces are made but not recorded.)

Thread classes: `export` (the exporter thread, `otlp-export`), `kernel` (sparse-serve-kernel pool), `compute`
(the ComputeQueue's `compute-N` threads: inference, the responder, and with tracing the server span's
encoding and the push of a request's spans to the export queue; builds before 2026-12-04 10:00 UTC
did not name them, so there they count as `other`), `dispatch` (libdispatch workers: the I/O queues
and the router) and `other` (the main thread, the signal waiter).
"""
import argparse
import json
import os
import pathlib
import re
import signal
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
TICK = os.sysconf("SC_CLK_TCK")


def threads(pid):
    """tid -> (class, user s, system s, run ns, wait ns, voluntary, involuntary switches)."""
    out = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            run, wait, _ = (int(x) for x in (task / "schedstat").read_text().split())
            status = (task / "status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        vol = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        inv = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        kind = ("export" if comm.startswith("otlp-export") else "kernel" if comm.startswith("sparse-serve-ke")
                else "compute" if comm.startswith("compute-")
                else "dispatch" if "qos" in comm or comm.startswith("dispatch") else "other")
        out[task.name] = (kind, int(fields[11]) / TICK, int(fields[12]) / TICK, run, wait, vol, inv)
    return out


def process_cpu(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy():
    """Seconds of CPU busy (all but idle and iowait) on the machine so far."""
    v = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(v) - v[3] - v[4]) / TICK


def measure(binary, tracing, server_env, args, workdir):
    model = str(ROOT / "models" / "digits-mlp")
    config = {"server": {"threads": 2, "ioThreads": 2, "maxConnections": 4096},
              "endpoints": [{"name": "plain", "model": model},
                            {"name": "batched", "model": model,
                             "batching": {"maxBatchSize": 32, "maxQueueDelayMicroseconds": 500, "maxQueueSize": 4096}}]}
    (workdir / "config.json").write_text(json.dumps(config))
    body = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_text().strip()
    (workdir / "post.lua").write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' % body)
    env, sink = dict(os.environ), None
    if tracing:
        sink = subprocess.Popen([str(workdir / "otlp_sink")], stdout=subprocess.PIPE, text=True)
        port = int(sink.stdout.readline().split()[1])
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_TRACES_SAMPLER_ARG": "1.0"})
    env.update(dict(kv.split("=", 1) for kv in args.env + server_env))
    proc = subprocess.Popen([binary, "serve", "--config", str(workdir / "config.json"), "--port", "0", "--host", "127.0.0.1",
                             "--log-level", "warning"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = next(m.group(1) for line in proc.stdout if (m := re.search(r"listening on (http://\S+)", line)))
        script = ["-s", str(workdir / "post.lua"), "--timeout", "10s", f"{url}/v2/models/{args.endpoint}/infer"]
        subprocess.run(["wrk", "-t", "2", "-c", str(args.clients), "-d", "2s", *script], capture_output=True, check=True)
        before, sink0, busy0 = threads(proc.pid), process_cpu(sink.pid) if sink else 0, machine_busy()
        children0 = os.times()
        perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter,context-switches,cpu-migrations",
                                 "-p", str(proc.pid), "--", "sleep", str(args.duration)], stderr=subprocess.PIPE, text=True)
        done = subprocess.run(["wrk", "-t", "2", "-c", str(args.clients), "-d", f"{args.duration}s", *script],
                              capture_output=True, text=True, check=True).stdout
        children1 = os.times()
        after, sink1, busy1 = threads(proc.pid), process_cpu(sink.pid) if sink else 0, machine_busy()
        counts = {}
        for line in perf.communicate()[1].splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[0].strip().isdigit():
                counts[parts[2]] = int(parts[0])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if sink:
            sink.send_signal(signal.SIGTERM)
            sink.wait(timeout=10)
    requests = int(re.search(r"(\d+) requests in", done).group(1))
    seconds = float(re.search(r"requests in ([\d.]+)s", done).group(1))
    us = 1e6 / requests
    row = {"req/s": requests / seconds}
    for tid, (kind, user, system, run, wait, vol, inv) in after.items():
        b = before.get(tid, (kind, 0, 0, 0, 0, 0, 0))
        row[f"{kind} user"] = row.get(f"{kind} user", 0) + (user - b[1]) * us
        row[f"{kind} sys"] = row.get(f"{kind} sys", 0) + (system - b[2]) * us
        row[f"{kind} run"] = row.get(f"{kind} run", 0) + (run - b[3]) / 1e3 / requests
        row[f"{kind} wake"] = row.get(f"{kind} wake", 0) + (vol - b[5]) / requests
    row["server run"] = sum(v for k, v in row.items() if k.endswith(" run"))
    row["syscalls"] = counts.get("raw_syscalls:sys_enter", 0) / requests
    row["switches"] = counts.get("context-switches", 0) / requests
    row["sink cpu"] = (sink1 - sink0) * us
    row["wrk cpu"] = (children1.children_user + children1.children_system - children0.children_user - children0.children_system) * us
    row["machine busy"] = (busy1 - busy0) * us
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", default="plain", choices=["plain", "batched"])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server (e.g. OTEL_BSP_SCHEDULE_DELAY=1000)")
    ap.add_argument("variants", nargs="+", help="LABEL=BINARY[,tracing][,NAME=VALUE...] (NAME=VALUE: the server's environment)")
    args = ap.parse_args()
    workdir = pathlib.Path(tempfile.mkdtemp())
    subprocess.run(["cc", "-O2", "-pthread", "-o", str(workdir / "otlp_sink"), str(ROOT / "Benchmarks" / "scripts" / "otlp_sink.c")],
                   check=True)
    variants = []
    for label, spec in (v.split("=", 1) for v in args.variants):
        binary, *options = spec.split(",")
        variants.append((label, str(pathlib.Path(binary).resolve()), "tracing" in options, [o for o in options if "=" in o]))
    rows = {label: [] for label, _, _, _ in variants}
    print(f"# {args.endpoint}, {args.clients} connections, {args.duration} s, {args.rounds} alternating rounds; "
          f"per request: CPU in µs, wake-ups (voluntary switches), system calls; load {os.getloadavg()}", flush=True)
    for r in range(args.rounds):
        for label, binary, tracing, server_env in variants:
            row = measure(binary, tracing, server_env, args, workdir)
            rows[label].append(row)
            print(f"round {r + 1} {label:>10}: {row['req/s']:8.0f} req/s  server {row['server run']:6.1f} µs  "
                  f"syscalls {row['syscalls']:5.2f}  sink {row['sink cpu']:5.2f} µs  load {os.getloadavg()[0]:.1f}", flush=True)
    keys = sorted({k for rs in rows.values() for row in rs for k in row})
    print(f"{'median per request':>22} | " + " | ".join(f"{label:>10}" for label in rows))
    for k in keys:
        print(f"{k:>22} | " + " | ".join(f"{statistics.median(row.get(k, 0) for row in rs):10.2f}" for rs in rows.values()))
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
