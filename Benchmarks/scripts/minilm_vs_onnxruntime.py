#!/usr/bin/env python3
"""MiniLM-L6 forward pass: ONNX Runtime (CPU EP) against our encoder, same weights, shapes and threads.

Builds an ONNX graph of all-MiniLM-L6-v2 straight from models/minilm-l6/model.safetensors with the
`onnx` helper API (no torch): embeddings + LayerNorm, 6 BERT layers (MatMul/Add projections,
masked softmax attention, erf GELU, Add + LayerNorm), masked mean pooling, L2 normalisation.
It checks the graph against the committed reference embeddings, lets ONNX Runtime's transformer
optimizer fuse it (Attention, SkipLayerNormalization, BiasGelu) when it can, and times both the
plain and the fused graph with intra_op_num_threads = 1 and 2. With --ort-int8 it also quantizes
the plain graph with onnxruntime.quantization.quantize_dynamic (int8 weights per channel, dynamic
per-tensor uint8 activations: ONNX Runtime's int8 recipe) and times it in the same rounds. Then it
runs `minilm-bench --json` (our forward pass, the same token ids) and prints the table side by
side, with every side's lowest cosine to the dense reference embeddings (ours via
`minilm-bench --cosine`).

    scripts/fetch-minilm.sh
    swift build -c release --product minilm-bench
    python3 Benchmarks/scripts/minilm_vs_onnxruntime.py [--seconds 1.0] [--rounds 3] [--bench PATH]
        [--compression nm:2:4 | nm-ffn:2:4 | pwl | blast-ffn:0.5 | int8-dynamic | nm-int8:2:4 | ...[,...]] [--ort-int8]
        [--calibrated-cosine]
    # issue 17: ours int8 (W8A8, and 2:4 + W8A8) beside ORT int8, 1 and 2 threads, 1x16 / 1x128 /
    # 8x128, alternating rounds; cosine of 2:4 with calibrated (data-aware) masks
    python3 Benchmarks/scripts/minilm_vs_onnxruntime.py --ort-int8 --compression int8-dynamic,nm-int8:2:4 --calibrated-cosine

`--compression` takes a comma-separated list: each is timed as its own column ("ours <spec>"),
and with --ort-int8 each gets a ratio column against ORT int8 (ours / ORT int8 median: < 1 is
faster). Timing runs magnitude masks (the kernels and shapes are those of calibrated masks); with
--calibrated-cosine the cosine of N:M specs is measured on calibrated one-shot masks
(`minilm-bench --cosine --calibration default`, needs models/minilm-l6/calibration.txt).

Runs in its own venv (.build/minilm-bench-venv: onnx, onnxruntime, numpy, safetensors, sympy for the
optimizer's shape inference), made on first use. Benchmarks/scripts/minilm_vs_peers.py reuses the
graph, the engines, the timing and the alternating rounds here and adds OpenVINO (fp32, bf16, NNCF
full int8).
"""
import argparse
import base64
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "minilm-l6"
VENV = ROOT / ".build" / "minilm-bench-venv"
SHAPES = [(1, 16), (1, 128), (8, 128)]
THREADS = [1, 2]


def ensure_packages(extra=()):
    """Re-runs the script in VENV unless the packages (and `extra`, e.g. openvino) import here."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from pyvenv import run_in_venv
    packages = ["onnx", "onnxruntime", "numpy", "safetensors", "sympy", *extra]
    run_in_venv(VENV, packages, packages)


def token_ids(tokens, index):
    """The ids minilm-bench feeds: [CLS], tokens-2 word ids, [SEP]."""
    return [101] + [1000 + (i * 37 + index * 101) % 20000 for i in range(tokens - 2)] + [102]


def build_graph():
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    W = load_file(str(MODEL / "model.safetensors"))
    cfg = json.loads((MODEL / "config.json").read_text())
    H, heads, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hd, eps = H // heads, cfg["layer_norm_eps"]
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    counter = [0]

    def node(op, inputs, **attrs):
        counter[0] += 1
        out = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(x, prefix):
        w = const(prefix + ".wT", W[prefix + ".weight"].T)
        b = const(prefix + ".b", W[prefix + ".bias"])
        return node("Add", [node("MatMul", [x, w]), b])

    def layer_norm(x, prefix):
        return node("LayerNormalization", [x, const(prefix + ".g", W[prefix + ".weight"]), const(prefix + ".beta", W[prefix + ".bias"])],
                    axis=-1, epsilon=eps)

    # Embeddings.
    word = node("Gather", [const("word", W["embeddings.word_embeddings.weight"]), "input_ids"])
    length = node("Gather", [node("Shape", ["input_ids"]), const("one", np.array([1], dtype=np.int64))])  # [L]
    pos = node("Slice", [const("pos", W["embeddings.position_embeddings.weight"]), const("zero", np.array([0], dtype=np.int64)),
                         length, const("axis0", np.array([0], dtype=np.int64))])
    x = node("Add", [node("Add", [word, pos]), const("type0", W["embeddings.token_type_embeddings.weight"][0])])
    x = layer_norm(x, "embeddings.LayerNorm")
    # Additive attention mask [B, 1, 1, L]: 0 for tokens, -10000 for padding (as BERT does).
    # (Written the way the PyTorch export of BERT does, so that ORT's attention fusion recognises it.)
    expanded = node("Unsqueeze", [node("Unsqueeze", ["attention_mask", const("ax1", np.array([1], dtype=np.int64))]),
                                  const("ax2", np.array([2], dtype=np.int64))])
    additive = node("Mul", [node("Sub", [const("fone", np.array(1, dtype=np.float32)), node("Cast", [expanded], to=TensorProto.FLOAT)]),
                            const("neg", np.array(-10000.0, dtype=np.float32))])
    maskf = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    split_shape = const("split_shape", np.array([0, 0, heads, hd], dtype=np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, H], dtype=np.int64))
    for i in range(layers):
        p = f"encoder.layer.{i}."
        q = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.query"), split_shape])], perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.key"), split_shape])], perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.value"), split_shape])], perm=[0, 2, 1, 3])
        scores = node("Add", [node("Div", [node("MatMul", [q, k]), const(f"sqrt_d{i}", np.array(math.sqrt(hd), dtype=np.float32))]), additive])
        probs = node("Softmax", [scores], axis=-1)
        context = node("Reshape", [node("Transpose", [node("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_shape])
        x = layer_norm(node("Add", [linear(context, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        gelu = node("Mul", [node("Mul", [h, node("Add", [node("Erf", [node("Div", [h, const(f"sqrt2_{i}", np.array(math.sqrt(2), dtype=np.float32))])]),
                                                          const(f"one_{i}", np.array(1, dtype=np.float32))])]),
                            const(f"half_{i}", np.array(0.5, dtype=np.float32))])
        x = layer_norm(node("Add", [linear(gelu, p + "output.dense"), x]), p + "output.LayerNorm")
    # Masked mean pooling and L2 normalisation.
    m3 = node("Unsqueeze", [maskf, const("axis2", np.array([2], dtype=np.int64))])
    axis1 = const("axis1", np.array([1], dtype=np.int64))
    summed = node("ReduceSum", [node("Mul", [x, m3]), axis1], keepdims=0)
    count = node("Clip", [node("ReduceSum", [m3, axis1], keepdims=0), const("tiny", np.array(1e-9, dtype=np.float32))])
    pooled = node("Div", [summed, count])
    nodes.append(helper.make_node("LpNormalization", [pooled], ["embedding"], axis=-1, p=2))

    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", H])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model, heads, H


def fuse(path, heads, hidden):
    """ORT's BERT optimizer (Attention / SkipLayerNormalization / BiasGelu fusions), or None."""
    try:
        from onnxruntime.transformers import optimizer
        optimized = optimizer.optimize_model(str(path), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
        counts = optimized.get_fused_operator_statistics()
        out = path.with_name("minilm-fused.onnx")
        optimized.save_model_to_file(str(out))
        return out, counts
    except Exception as error:  # the optimizer is best effort
        print(f"(ORT transformer optimizer failed: {error})", file=sys.stderr)
        return None, {}


def quantize_int8(plain):
    """ORT dynamic quantization of the plain graph: int8 weights per channel (per-tensor loses far
    more: peers.md), activations quantized per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    out = plain.with_name("minilm-int8.onnx")
    quantize_dynamic(str(plain), str(out), weight_type=QuantType.QInt8, per_channel=True)
    return out


def our_cosine(bench, compression, calibrated=False):
    """(lowest, mean) cosine of our forward pass to the reference (`minilm-bench --cosine`)."""
    extra = ["--calibration", "default"] if calibrated and compression.startswith(("nm", "blast")) else []
    out = subprocess.run([str(bench), "--cosine", "--model", str(MODEL), "--compression", compression, *extra],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    row = json.loads(out)
    return row["lowestCosine"], row["meanCosine"]


def ort_engine(path):
    """An engine: threads -> run(feed) -> embeddings, here an ONNX Runtime CPU session of `path`."""
    def make(threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return lambda feed: sess.run(["embedding"], feed)[0]
    return make


def feed_of(ids):
    import numpy as np
    ids = np.array(ids, dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def check_against_reference(run):
    """Lowest and mean cosine of an engine's embeddings to the committed reference (numpy ≈
    sentence-transformers) on the first 40 fixture sentences, as `minilm-bench --cosine`."""
    import numpy as np
    cases = json.loads((ROOT / "Tests" / "fixtures" / "minilm" / "embeddings.json").read_text())["cases"][:40]
    cosines = []
    for c in cases:
        e = run(feed_of([c["ids"]]))[0]
        ref = np.frombuffer(base64.b64decode(c["embedding"]), "<f4")
        cosines.append(float(e @ ref / np.linalg.norm(e) / np.linalg.norm(ref)))
    return min(cosines), sum(cosines) / len(cosines)


def time_run(run, batch, tokens, seconds):
    """(median, min) ms of run() on batch sequences of `tokens` ids, after 3 warm-up passes."""
    feed = feed_of([token_ids(tokens, b) for b in range(batch)])
    for _ in range(3):
        run(feed)
    samples, start = [], time.perf_counter()
    while len(samples) < 5 or (time.perf_counter() - start < seconds and len(samples) < 2000):
        t0 = time.perf_counter()
        run(feed)
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return samples[len(samples) // 2], samples[0]


def ours(bench, threads, seconds, compression):
    shapes = ",".join(f"{b}x{t}" for b, t in SHAPES)
    out = subprocess.run([str(bench), "--json", "--model", str(MODEL), "--threads", str(threads), "--shapes", shapes,
                          "--seconds", str(seconds), "--compression", compression],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return {(r["batch"], r["tokens"]): (r["medianMilliseconds"], r["minMilliseconds"]) for r in map(json.loads, out.splitlines())}


def add_common_arguments(parser, compression="dense", seconds=1.0):
    parser.add_argument("--seconds", type=float, default=seconds, help="time budget per cell and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (every engine, then ours)")
    parser.add_argument("--bench", default=str(ROOT / ".build" / "release" / "minilm-bench"))
    parser.add_argument("--compression", default=compression, help="our side, comma-separated: dense, nm:2:4 (all encoder layers), nm-ffn:2:4, pwl (GELU/exp tables), blast-ffn:0.5, int8-dynamic, int8, int8:64, bf16, nm-int8:2:4")
    parser.add_argument("--calibrated-cosine", action="store_true", help="cosine of N:M / BLAST specs with calibrated masks")


def prepare(bench):
    """Checks the weights and minilm-bench (building it when missing); writes the plain graph.
    Returns (bench path, plain graph path, heads, hidden)."""
    import onnx
    if not (MODEL / "model.safetensors").exists():
        sys.exit("models/minilm-l6 is missing: run scripts/fetch-minilm.sh")
    bench = Path(bench)
    if not bench.exists():
        subprocess.run(["swift", "build", "-c", "release", "--product", "minilm-bench"], cwd=ROOT, check=True)
    work = ROOT / ".build" / "minilm-onnx"
    work.mkdir(parents=True, exist_ok=True)
    model, heads, hidden = build_graph()
    plain = work / "minilm.onnx"
    onnx.save(model, str(plain))
    return bench, plain, heads, hidden


def print_our_cosines(bench, specs, calibrated):
    """Prints and returns {"ours SPEC": (lowest, mean)} to the reference on the 40 sentences."""
    result = {}
    for spec in specs:
        label = " (calibrated masks)" if calibrated and spec.startswith(("nm", "blast")) else ""
        result[f"ours {spec}"] = our_cosine(bench, spec, calibrated)
        print(f"ours {spec}{label}: lowest cosine to the reference on 40 sentences {result[f'ours {spec}'][0]:.7f}")
    return result


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def alternate_rounds(engines, bench, specs, rounds, seconds):
    """Times every engine (name, make(threads) -> run) and then `minilm-bench` per spec, per thread
    count, `rounds` times over, so load from other processes hits every side alike. Returns
    {(name, threads, shape): (median, min) ms}, each cell's best round (the median of its runs)."""
    best = {}
    for round_index in range(rounds):
        for threads in THREADS:
            for name, make in engines:
                run = make(threads)
                for shape in SHAPES:
                    cell = time_run(run, *shape, seconds)
                    best[(name, threads, shape)] = min(best.get((name, threads, shape), cell), cell)
                del run
            for spec in specs:
                for shape, cell in ours(bench, threads, seconds, spec).items():
                    key = (f"ours {spec}", threads, shape)
                    best[key] = min(best.get(key, cell), cell)
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr)
    return best


def print_wide_table(best, names, specs, baseline, rounds):
    """One row per shape and thread count, a column per engine: median (min) ms, ours / baseline."""
    mine = [f"ours {spec}" for spec in specs]
    print(f"\nMiniLM-L6 forward pass, ms: median (min) of the best of {rounds} rounds; ours = SparseServe; "
          f"ratio = ours / {baseline or 'best ORT'} median (< 1: ours faster); load average after: {load_average()}")
    print(f"{'batch x tokens':>14} {'threads':>7} " + " ".join(f"{n:>20}" for n in names + mine)
          + " ".join(f"{'ratio ' + spec:>20}" for spec in specs))
    for threads in THREADS:
        for b, t in SHAPES:
            cells = [best[(n, threads, (b, t))] for n in names + mine]
            reference = best[(baseline, threads, (b, t))][0] if baseline else min(c[0] for c in cells[:len(names)])
            print(f"{b:>6} x {t:<6} {threads:>7} " + " ".join(f"{c[0]:10.2f} ({c[1]:7.2f})" for c in cells)
                  + " ".join(f"{c[0] / reference:20.2f}" for c in cells[len(names):]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--ort-int8", action="store_true", help="also time ORT's quantize_dynamic int8 graph")
    args = parser.parse_args()
    ensure_packages()
    import onnxruntime as ort

    bench, plain, heads, hidden = prepare(args.bench)
    fused, counts = fuse(plain, heads, hidden)
    graphs = [("ORT", plain)] + ([("ORT fused", fused)] if fused else [])
    if args.ort_int8:
        graphs.append(("ORT int8", quantize_int8(plain)))
    fused_ops = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"
    print(f"onnxruntime {ort.__version__}, graph {plain.stat().st_size / 1e6:.1f} MB; fused operators: {fused_ops}")
    engines = [(name, ort_engine(path)) for name, path in graphs]
    for name, make in engines:
        print(f"{name}: lowest cosine to the reference on 40 sentences {check_against_reference(make(1))[0]:.7f}")
    specs = args.compression.split(",")
    print_our_cosines(bench, specs, args.calibrated_cosine)
    print(f"load average before timing: {load_average()}")
    best = alternate_rounds(engines, bench, specs, args.rounds, args.seconds)
    print_wide_table(best, [name for name, _ in engines], specs, "ORT int8" if args.ort_int8 else None, args.rounds)


if __name__ == "__main__":
    main()
