#!/usr/bin/env python3
"""MiniLM endpoints through the real server: fidelity of every variant and /v1/embeddings throughput.

Starts the release binary with the MiniLM endpoints of Deploy/config.json (dense `minilm` and its
compressed / approximated variants, same compression blocks, and their recovered artifacts where
scripts/build_artifacts.sh RECOVER_MINILM=1 has built them; `--extra NAME=JSON` adds more, e.g. a
BLAST variant), then

1. embeds the committed reference sentences (Tests/fixtures/minilm/embeddings.json, the 237 non-empty texts)
   through POST /v1/embeddings on every endpoint and prints, per endpoint, the cosine to the dense
   endpoint's vectors and to the sentence-transformers reference (mean and min);
2. drives POST /v1/embeddings (one short sentence per request) with wrk at 1, 8 and 32
   concurrent clients per endpoint and prints requests/s and p50/p99 latency.

    python3 Benchmarks/scripts/minilm_endpoints.py [--duration 5] [--clients 1,8,32] [--skip-load]
        [--extra 'minilm-blast={"method": "dense", "layers": {...}}'] [--rounds 1] [--json OUT]
        [--endpoints minilm,minilm-2of4] [--text 'a twelve word sentence ...'] [--binary LABEL=PATH ...]

--endpoints keeps only these endpoints (dense `minilm` is always kept: the baseline). --text is the
sentence every load request posts (default: the first reference sentence, 'hello world').
--binary (repeatable) starts one server per binary, all at once, and alternates them within each
round (binary after binary, endpoint after endpoint), so before/after builds are compared in the
same run; each round also prints every endpoint's req/s over dense's of the same binary and round.
--json OUT also writes every endpoint's fidelity and throughput cells with the load average as JSON
(read by plot.py).
"""
import argparse
import base64
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serving_bench import BINARY, LUA, ROOT, run_wrk, start_server  # noqa: E402


def post(url, payload):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def embed(url, name, texts, batch=16):
    out = []
    for i in range(0, len(texts), batch):
        # The reference truncates at 256 tokens as sentence-transformers does; the server does so only when asked.
        body = post(f"{url}/v1/embeddings", {"model": name, "input": texts[i:i + batch], "encoding_format": "base64",
                                             "truncate": True})
        for d in sorted(body["data"], key=lambda d: d["index"]):
            out.append(np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4"))
    return np.array(out, dtype=np.float64)


def cosines(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def endpoints_of(args, model):
    deploy = json.loads((ROOT / "Deploy" / "config.json").read_text())
    endpoints = [dict(e, model=str(model), optional=False) for e in deploy["endpoints"] if e["model"].endswith("minilm-l6")]
    for e in endpoints:  # a recovered artifact (scripts/build_artifacts.sh RECOVER_MINILM=1) is served when built
        if "artifact" in e:
            e["artifact"] = str((ROOT / "Deploy" / e["artifact"]).resolve())
    for extra in args.extra:
        name, _, compression = extra.partition("=")
        endpoints.append({"name": name, "model": str(model), "compression": json.loads(compression),
                          "batching": endpoints[0].get("batching", {})})
    if args.endpoints:
        keep = set(args.endpoints.split(",")) | {"minilm"}
        endpoints = [e for e in endpoints if e["name"] in keep]
    assert "minilm" in [e["name"] for e in endpoints], "Deploy/config.json has no dense 'minilm' endpoint"
    return endpoints


def fidelity(url, names, texts, ref, endpoints, report, label):
    vectors = {n: embed(url, n, texts) for n in names}
    print(f"\n[{label}] | endpoint | served from | cosine to dense: mean | min | cosine to sentence-transformers: mean | min |")
    print("|---|---|---:|---:|---:|---:|")
    for n in names:
        d, r = cosines(vectors[n], vectors["minilm"]), cosines(vectors[n], ref)
        with urllib.request.urlopen(f"{url}/v2/models/{n}", timeout=30) as m:
            source = json.loads(m.read())["parameters"].get("compression_source", "-")
        print(f"| {n} | {source} | {d.mean():.6f} | {d.min():.6f} | {r.mean():.6f} | {r.min():.6f} |")
        report["endpoints"].setdefault(n, {"compression": next(e.get("compression") for e in endpoints if e["name"] == n),
                                           "load": []})
        report["endpoints"][n].setdefault("cosine_to_dense", [d.mean(), d.min()])
        report["endpoints"][n].setdefault("cosine_to_reference", [r.mean(), r.min()])


def drive(args, servers, names, tmp, report):
    """Alternating rounds: server after server, endpoint after endpoint; best round per cell."""
    clients = [int(x) for x in args.clients.split(",")]
    best, ratios = {}, {}
    for round_ in range(args.rounds):
        load = os.getloadavg()
        for label, (_, url) in servers.items():
            for n in names:
                for c in clients:
                    r = run_wrk(f"{url}/v1/embeddings", tmp / f"{n}.lua", c, args.duration)
                    r["round"], r["load_before"] = round_, load[0]
                    report.setdefault("cells", []).append(dict(r, binary=label, endpoint=n, clients=c))
                    if (label, n, c) not in best or r["rps"] > best[(label, n, c)]["rps"]:
                        best[(label, n, c)] = r
                    if n != "minilm":
                        dense = next(x for x in report["cells"][::-1] if x["binary"] == label and x["endpoint"] == "minilm"
                                     and x["clients"] == c and x["round"] == round_)
                        ratios.setdefault((label, n, c), []).append(r["rps"] / dense["rps"])
        print(f"# round {round_ + 1}: load average {load[0]:.2f} -> {os.getloadavg()[0]:.2f}; "
              + "; ".join(f"{label} {n} {c}c {ratios[(label, n, c)][-1]:.2f}x" for (label, n, c) in ratios))
        report["load_average"].append(list(os.getloadavg()))
    return best, ratios


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk cell")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--threads", type=int, default=2, help="compute threads of the server")
    ap.add_argument("--skip-load", action="store_true", help="fidelity only")
    ap.add_argument("--extra", action="append", default=[], help="NAME=COMPRESSION_JSON: another MiniLM endpoint")
    ap.add_argument("--endpoints", help="comma-separated endpoint names to keep (minilm always kept)")
    ap.add_argument("--text", help="the sentence each load request posts (default: the first reference sentence)")
    ap.add_argument("--binary", action="append", default=[], help="LABEL=PATH: a server binary (repeatable; default the release build)")
    ap.add_argument("--json", type=pathlib.Path, help="also write the results to this file")
    ap.add_argument("--rounds", type=int, default=1, help="load rounds, endpoints in turn; best round per cell")
    args = ap.parse_args()
    model = ROOT / "models" / "minilm-l6"
    if not (model / "model.safetensors").exists():
        raise SystemExit("models/minilm-l6 is absent: run scripts/fetch-minilm.sh")
    endpoints = endpoints_of(args, model)
    names = [e["name"] for e in endpoints]
    reference = json.loads((ROOT / "Tests" / "fixtures" / "minilm" / "embeddings.json").read_text())["cases"]
    reference = [c for c in reference if c["text"]]  # the API refuses empty strings, as OpenAI's does
    texts = [c["text"] for c in reference]
    ref = np.array([np.frombuffer(base64.b64decode(c["embedding"]), dtype="<f4") for c in reference], dtype=np.float64)
    binaries = dict(b.partition("=")[::2] for b in args.binary) or {"release": BINARY}
    text = args.text or texts[0]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        config = {"server": {"threads": args.threads, "ioThreads": 2, "maxConnections": 4096}, "endpoints": endpoints}
        (tmp / "config.json").write_text(json.dumps(config))
        servers = {}
        try:
            for label, path in binaries.items():
                servers[label] = start_server(tmp / "config.json", binary=path)
            report = {"benchmark": "minilm_endpoints", "model": "minilm-l6", "sentences": len(texts), "text": text,
                      "binaries": binaries, "load_average": [list(os.getloadavg())], "endpoints": {}}
            for label, (_, url) in servers.items():
                print(f"# [{label}] binary {binaries[label]}; {len(texts)} reference sentences; server threads={args.threads}")
                fidelity(url, names, texts, ref, endpoints, report, label)
            if not args.skip_load:
                if shutil.which("wrk") is None:
                    raise SystemExit("wrk is not installed (apt-get install wrk)")
                print(f"\n# /v1/embeddings, one sentence per request ({text!r}), {args.duration} s per cell, "
                      "wrk on the same machine")
                for n in names:
                    (tmp / f"{n}.lua").write_text(LUA % json.dumps({"model": n, "input": text}))
                best, ratios = drive(args, servers, names, tmp, report)
                print("| binary | endpoint | clients | req/s (best round) | p50 ms | p99 ms | ÷ dense per round (median) |")
                print("|---|---|---:|---:|---:|---:|---|")
                for (label, n, c), r in best.items():
                    warn = f" ({r['errors']} errors, {r['non2xx']} non-2xx)" if r["errors"] or r["non2xx"] else ""
                    per = ratios.get((label, n, c))
                    rs = f"{', '.join(f'{x:.2f}' for x in per)} ({statistics.median(per):.2f})" if per else "1"
                    print(f"| {label} | {n} | {c} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {rs} |{warn}")
                    report["endpoints"][n]["load"].append(dict(r, clients=c, binary=label))
            if args.json:
                args.json.write_text(json.dumps(report, indent=1) + "\n")
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)


if __name__ == "__main__":
    main()
