#!/usr/bin/env python3
"""The TEI-compatible API and the batch token budget on MiniLM, through the real server and wrk.

throughput: POST /embed against POST /v1/embeddings on the same inputs (one sentence, or --texts N
    per request), alternating which goes first each round, wrk at --clients connections; prints
    requests/s per route and round and the ratio /embed ÷ /v1/embeddings (target: within 5 %).
budget: p99 latency of short requests (12 tokens with [CLS]/[SEP]) while --flood connections post
    256-token documents to the same endpoint without pause, on a server without a token budget and
    one with `batching.maxBatchTokens` = --budget (rounds alternate the two servers); prints
    p50/p99 of the short requests and the documents' throughput (target: ≥ 2× lower short p99).

    python3 Benchmarks/scripts/tei_bench.py throughput [--rounds 3] [--duration 8] [--clients 8] [--texts 1]
    python3 Benchmarks/scripts/tei_bench.py budget [--rounds 2] [--duration 20] [--flood 16] [--short 4] [--budget 300]

Every result line carries the load average (`uptime`) at its start: numbers taken on a busy machine
are flagged by it.
"""
import argparse
import json
import os
import pathlib
import shutil
import signal
import statistics
import sys
import tempfile
import threading

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serving_bench import LUA, ROOT, bootstrap_interval, run_wrk, start_server  # noqa: E402

MINILM = ROOT / "models" / "minilm-l6"
WORDS = "the quick brown fox jumps over the lazy dog while a small cat sleeps near".split()


def words(n):
    """n single-token words (each is one MiniLM word piece), so the text has n + 2 tokens."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


def load():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def serve(tmp, name, batching):
    path = tmp / f"{name}.json"
    path.write_text(json.dumps({"server": {"threads": 2, "maxQueueSize": 4096}, "endpoints": [
        {"name": "minilm", "model": str(MINILM), "batching": {"maxQueueSize": 4096, **batching}}]}))
    return start_server(path)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def lua(tmp, name, body):
    path = tmp / f"{name}.lua"
    path.write_text(LUA % json.dumps(body))
    return path


def throughput(args, tmp):
    proc, url = serve(tmp, "throughput", {"maxBatchSize": 32})
    texts = [words(10 + i) for i in range(args.texts)]
    inputs = texts[0] if args.texts == 1 else texts
    scripts = {"/embed": lua(tmp, "embed", {"inputs": inputs}),
               "/v1/embeddings": lua(tmp, "openai", {"model": "minilm", "input": inputs})}
    rps = {route: [] for route in scripts}
    try:
        for route, script in scripts.items():  # warm-up
            run_wrk(url + route, script, args.clients, 2)
        for r in range(args.rounds):
            order = list(scripts) if r % 2 == 0 else list(reversed(scripts))
            for route in order:
                started = load()
                cell = run_wrk(url + route, scripts[route], args.clients, args.duration)
                assert cell["errors"] == 0 and cell["non2xx"] == 0, cell
                rps[route].append(cell["rps"])
                print(f"round {r + 1} {route:16s} {cell['rps']:8.1f} req/s  p50 {cell['p50_ms']:.1f} ms  "
                      f"p99 {cell['p99_ms']:.1f} ms  ({started})", flush=True)
    finally:
        stop(proc)
    ratios = [e / o for e, o in zip(rps["/embed"], rps["/v1/embeddings"])]
    low, high = bootstrap_interval(ratios)
    print(f"/embed ÷ /v1/embeddings per round: {', '.join(f'{x:.3f}' for x in ratios)}; "
          f"median {statistics.median(ratios):.3f}, 95 % bootstrap interval [{low:.3f}, {high:.3f}] "
          f"({args.texts} text(s) per request, {args.clients} clients; {load()})")
    return {"rps": rps, "ratios": ratios}


def budget_round(args, tmp, name, batching):
    proc, url = serve(tmp, name, batching)
    doc = lua(tmp, "doc", {"inputs": words(254)})
    short = lua(tmp, "short", {"inputs": words(10)})
    cells = {}
    try:
        run_wrk(url + "/embed", short, 1, 1)  # warm-up
        flood = threading.Thread(target=lambda: cells.__setitem__("doc", run_wrk(url + "/embed", doc, args.flood, args.duration + 4)))
        flood.start()
        threading.Event().wait(2)  # let the flood fill the queue
        started = load()
        cells["short"] = run_wrk(url + "/embed", short, args.short, args.duration)
        flood.join()
    finally:
        stop(proc)
    s, d = cells["short"], cells["doc"]
    assert s["errors"] == s["non2xx"] == d["errors"] == d["non2xx"] == 0, cells
    print(f"{name:10s} short p50 {s['p50_ms']:8.1f} ms  p99 {s['p99_ms']:8.1f} ms  ({s['rps'] * args.duration:.0f} short requests)  "
          f"documents {d['rps']:.1f}/s  ({started})", flush=True)
    return cells


def budget(args, tmp):
    without = {"maxBatchSize": 32}
    with_budget = {"maxBatchSize": 32, "maxBatchTokens": args.budget}
    results = {"without": [], "with": []}
    for r in range(args.rounds):
        order = [("without", without), ("with", with_budget)]
        for name, batching in (order if r % 2 == 0 else list(reversed(order))):
            results[name].append(budget_round(args, tmp, name, batching))
    p99 = {k: statistics.median(c["short"]["p99_ms"] for c in v) for k, v in results.items()}
    print(f"short-request p99 (median of rounds): without budget {p99['without']:.1f} ms, with maxBatchTokens={args.budget} "
          f"{p99['with']:.1f} ms: {p99['without'] / p99['with']:.2f}x lower ({args.flood} flooding connections; {load()})")
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["throughput", "budget"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8, help="seconds per wrk cell")
    ap.add_argument("--clients", type=int, default=8, help="throughput: wrk connections")
    ap.add_argument("--texts", type=int, default=1, help="throughput: texts per request")
    ap.add_argument("--flood", type=int, default=16, help="budget: connections posting 256-token documents")
    ap.add_argument("--short", type=int, default=4, help="budget: connections posting 12-token requests")
    ap.add_argument("--budget", type=int, default=300, help="budget: maxBatchTokens of the budgeted server")
    ap.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    if not (MINILM / "model.safetensors").exists():
        raise SystemExit("models/minilm-l6 is absent: run scripts/fetch-minilm.sh")
    with tempfile.TemporaryDirectory() as d:
        result = (throughput if args.mode == "throughput" else budget)(args, pathlib.Path(d))
    if args.json:
        args.json.write_text(json.dumps({"mode": args.mode, "args": vars(args) | {"json": str(args.json)}, "result": result,
                                         "load": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
