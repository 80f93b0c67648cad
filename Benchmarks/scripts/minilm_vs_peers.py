#!/usr/bin/env python3
"""MiniLM-L6 forward pass: ours beside ONNX Runtime and OpenVINO (fp32, bf16, full int8), same graph.

The peers of Benchmarks/scripts/minilm_vs_onnxruntime.py (whose graph, engines, timing and
alternating rounds this script reuses) plus OpenVINO on the same ONNX graph:

  ORT fp32           ONNX Runtime CPU EP, the plain graph (ORT_ENABLE_ALL)
  ORT int8           quantize_dynamic, int8 weights per channel, dynamic uint8 activations
  OV fp32            OpenVINO CPU, INFERENCE_PRECISION_HINT f32
  OV default (bf16)  OpenVINO CPU, its default precision (bf16 on a CPU with AVX512_BF16)
  OV int8            nncf.quantize(model, calibration, model_type=TRANSFORMER): full int8 (weights
                     and activations, static scales, NNCF's SmoothQuant for transformers), compiled
                     with the default precision for what stays in floating point

OpenVINO runs with PERFORMANCE_HINT LATENCY and INFERENCE_NUM_THREADS 1 / 2, ORT with
intra_op_num_threads 1 / 2, ours with 1 / 2 kernel threads (`minilm-bench --json`), at 1x16, 1x128
and 8x128 tokens, in alternating rounds. NNCF calibrates on sentences of
models/minilm-l6/calibration.txt (WordNet glosses, packed to 16-128 tokens), none of which is one
of the fixture sentences the cosines are measured on. Prints a compact table: ms per engine, shape
and threads (median of the best round), every engine's lowest / mean cosine to the dense
reference embeddings on 40 fixture sentences, and ours / OpenVINO full int8 (< 1: ours faster).

    scripts/fetch-minilm.sh && swift build -c release --product minilm-bench
    python3 Benchmarks/scripts/minilm_vs_peers.py --rounds 2 [--seconds 0.5] [--bench PATH]
        [--compression dense,int8-dynamic,nm-int8:2:4] [--calibrated-cosine] [--json PATH]

Runs in the venv of minilm_vs_onnxruntime.py (.build/minilm-bench-venv) with openvino and nncf
added (from PyPI; nncf needs no torch).
"""
import argparse
import json
import re
import sys
import time
import unicodedata

from minilm_vs_onnxruntime import (MODEL, ROOT, SHAPES, THREADS, add_common_arguments, alternate_rounds,
                                   check_against_reference, ensure_packages, feed_of, load_average, ort_engine,
                                   prepare, print_our_cosines, quantize_int8)

CALIBRATION_SAMPLES = 200
CALIBRATION_LENGTHS = (16, 32, 64, 128)
TARGET = "OV int8"
SPECIAL = re.compile(r"(\[(?:CLS|SEP|MASK|PAD|UNK)\])")


def is_punctuation(c):
    o = ord(c)
    return 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126 or unicodedata.category(c).startswith("P")


def basic_words(text):
    """BERT's uncased basic tokenizer: lower case, accents stripped, punctuation split off."""
    text = "".join(c for c in text if c in "\t\n\r" or not unicodedata.category(c).startswith("C"))
    text = re.sub(r"([\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff])", r" \1 ", text)
    words = []
    for word in unicodedata.normalize("NFD", text.lower()).split():
        current = ""
        for c in word:
            if unicodedata.category(c) == "Mn":
                continue
            if is_punctuation(c):
                words += [current, c] if current else [c]
                current = ""
            else:
                current += c
        if current:
            words.append(current)
    return words


def wordpiece_ids(text, vocab):
    """Word ids of `text` (without [CLS] / [SEP] around it): special tokens written in the text
    kept whole, the rest greedy longest-match WordPiece over vocab.txt."""
    ids = []
    for part in SPECIAL.split(text):
        ids += [vocab[part]] if SPECIAL.fullmatch(part) else word_ids(part, vocab)
    return ids


def word_ids(text, vocab):
    ids = []
    for word in basic_words(text):
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start and (word[start:end] if start == 0 else "##" + word[start:end]) not in vocab:
                end -= 1
            if end == start or len(word) > 100:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(vocab[word[start:end] if start == 0 else "##" + word[start:end]])
            start = end
        ids += pieces
    return ids


def check_tokenizer(vocab, fixture):
    """Our WordPiece must give the fixture's ids (those of the real tokenizer) for its sentences."""
    limit = fixture["maxTokens"] - 2
    wrong = [c["text"] for c in fixture["cases"] if [101] + wordpiece_ids(c["text"], vocab)[:limit] + [102] != c["ids"]]
    if wrong:
        sys.exit(f"the calibration tokenizer disagrees with the fixture on {len(wrong)} sentences, e.g. {wrong[0]!r}")


def calibration_feeds():
    """CALIBRATION_SAMPLES feeds (batch 1) from calibration.txt: every other one a single sentence
    as it is (short inputs), the others sentences packed to 16..128 tokens (the timed lengths);
    sentences that are also fixture (evaluation) sentences are skipped."""
    vocab = {line: i for i, line in enumerate((MODEL / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    fixture = json.loads((ROOT / "Tests" / "fixtures" / "minilm" / "embeddings.json").read_text())
    check_tokenizer(vocab, fixture)
    evaluation = {c["text"].strip().lower() for c in fixture["cases"]}
    lines = [line.strip() for line in (MODEL / "calibration.txt").read_text(encoding="utf-8").splitlines()]
    sentences = iter(line for line in lines if line and line.lower() not in evaluation)
    feeds = []
    for index in range(CALIBRATION_SAMPLES):
        length = CALIBRATION_LENGTHS[index // 2 % len(CALIBRATION_LENGTHS)] if index % 2 else 128
        ids = wordpiece_ids(next(sentences), vocab)
        while index % 2 and len(ids) < length - 2:
            ids += wordpiece_ids(next(sentences), vocab)
        feeds.append(feed_of([[101] + ids[:length - 2] + [102]]))
    return feeds


def openvino_engine(model, precision=None):
    """An engine (threads -> run) compiling `model` for the CPU with the LATENCY hint, the thread
    count and, when given, INFERENCE_PRECISION_HINT."""
    import openvino as ov
    core = ov.Core()

    def make(threads):
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads)}
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        compiled = core.compile_model(model, "CPU", config)
        request, output = compiled.create_infer_request(), compiled.output(0)
        return lambda feed: request.infer(feed)[output]
    return make


def quantize_full_int8(model):
    """NNCF post-training quantization of the OpenVINO model (weights and activations int8)."""
    import nncf
    feeds = calibration_feeds()
    start = time.perf_counter()
    quantized = nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds))
    print(f"nncf {nncf.__version__}: quantized on {len(feeds)} calibration samples in {time.perf_counter() - start:.1f} s")
    return quantized


def peer_engines(plain):
    """[(name, make)] of the ORT and OpenVINO engines on the plain graph."""
    import openvino as ov
    model = ov.Core().read_model(str(plain))
    engines = [("ORT fp32", ort_engine(plain)), ("ORT int8", ort_engine(quantize_int8(plain))),
               ("OV fp32", openvino_engine(model, "f32")), ("OV default (bf16)", openvino_engine(model)),
               (TARGET, openvino_engine(quantize_full_int8(model)))]
    probe = ov.Core().compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    print(f"OpenVINO {ov.__version__}: default INFERENCE_PRECISION_HINT on this CPU = {probe.get_property('INFERENCE_PRECISION_HINT')}")
    return engines


def print_compact_table(best, names, cosines, specs, rounds):
    """Rows: engines (ms median of the best round per shape x threads, cosine min / mean), then
    ours / OpenVINO full int8 per spec."""
    cells = [(threads, shape) for threads in THREADS for shape in SHAPES]
    header = "".join(f"{f'{b}x{t} {threads}t':>10}" for threads, (b, t) in cells)
    print(f"\nMiniLM-L6 forward pass, ms per pass (median of the best of {rounds} rounds); load average after: {load_average()}")
    print(f"{'engine':<26}{header}   cos min / mean")
    for name in names:
        low, mean = cosines[name]
        print(f"{name:<26}" + "".join(f"{best[(name, th, sh)][0]:10.2f}" for th, sh in cells) + f"   {low:.4f} / {mean:.4f}")
    print(f"{'ratio to ' + TARGET + ' (< 1: faster)':<26}")
    for spec in specs:
        print(f"{'ours ' + spec:<26}" + "".join(f"{best[('ours ' + spec, th, sh)][0] / best[(TARGET, th, sh)][0]:10.2f}" for th, sh in cells))


def write_json(path, best, cosines, rounds):
    rows = [{"engine": name, "threads": threads, "batch": b, "tokens": t, "medianMilliseconds": cell[0],
             "minMilliseconds": cell[1], "lowestCosine": cosines[name][0], "meanCosine": cosines[name][1]}
            for (name, threads, (b, t)), cell in sorted(best.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2]))]
    with open(path, "w") as out:
        json.dump({"rounds": rounds, "loadAverage": load_average(), "rows": rows}, out, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser, compression="dense,int8-dynamic,nm-int8:2:4", seconds=0.5)
    parser.add_argument("--json", help="also write every cell to this JSON file")
    args = parser.parse_args()
    ensure_packages(extra=("openvino", "nncf"))
    import onnxruntime as ort

    bench, plain, _, _ = prepare(args.bench)
    print(f"onnxruntime {ort.__version__}, graph {plain.stat().st_size / 1e6:.1f} MB")
    engines = peer_engines(plain)
    cosines = {name: check_against_reference(make(1)) for name, make in engines}
    for name, (low, mean) in cosines.items():
        print(f"{name}: cosine to the reference on 40 sentences, lowest {low:.7f}, mean {mean:.7f}")
    specs = args.compression.split(",")
    cosines.update(print_our_cosines(bench, specs, args.calibrated_cosine))
    print(f"load average before timing: {load_average()}")
    best = alternate_rounds(engines, bench, specs, args.rounds, args.seconds)
    print_compact_table(best, [name for name, _ in engines] + [f"ours {s}" for s in specs], cosines, specs, args.rounds)
    if args.json:
        write_json(args.json, best, cosines, args.rounds)


if __name__ == "__main__":
    main()
