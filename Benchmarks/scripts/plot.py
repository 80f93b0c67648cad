#!/usr/bin/env python3
"""Draws the benchmark figures from the JSON files the benchmark scripts write (no number lives here).

- quality-vs-throughput.svg: held-out quality against throughput for every compression endpoint,
  digits MLP (test-split accuracy, `compression_quality.py --json`) and MiniLM (cosine to the
  sentence-transformers reference vectors, `minilm_endpoints.py --json`), with the Pareto front.
- kernel-speedup-vs-batch.svg: speed-up over our dense kernel against batch size M for every
  compressed format and shape, one thread (`kernel_bench.py --json`).

The load average recorded in each file goes into the figure's caption.

    .build/bench-venv/bin/python Benchmarks/scripts/plot.py [--results Benchmarks/results] [--out Benchmarks/figures]

Benchmarks/scripts/figures.sh runs the benchmarks and then this script.
"""
import argparse
import json
import pathlib
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
FAMILIES = [  # (pattern on the endpoint or operator name, legend label, colour, marker)
    (r"blast", "BLAST", "tab:purple", "D"),
    (r"l1inf", "l1,inf", "tab:brown", "v"),
    (r"csr", "CSR", "tab:gray", "s"),
    (r"pwl", "PWL activations", "tab:olive", "P"),
    (r"int8", "int8", "tab:cyan", "X"),
    (r"bf16", "bf16", "tab:pink", "h"),
    (r"(of|:)\d+.*-t$|transposable", "N:M transposable", "tab:orange", "^"),
    (r"\d+(of|:)\d+", "N:M", "tab:blue", "o"),
    (r"dense|^minilm$", "dense", "black", "*"),
]


def family(name):
    for pattern, label, colour, marker in FAMILIES:
        if re.search(pattern, name):
            return label, colour, marker
    return "other", "tab:red", "x"


def load_note(*reports):
    """'load average 3.1-7.9 (1-min)' over every load average the reports recorded."""
    ones = [sample[0] for r in reports for sample in r["load_average"] if sample]
    return f"shared machine, 1-min load average {min(ones):.1f}-{max(ones):.1f} while measuring"


def pareto(points):
    """The points no other point beats in both throughput and quality, by throughput."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return sorted(front)


def scatter_panel(ax, rows, title, xlabel, ylabel):
    """rows: (name, throughput, quality); one marker per row, labelled, with the Pareto front."""
    seen = set()
    for i, (name, x, y) in enumerate(sorted(rows, key=lambda r: (r[1], r[2]))):
        label, colour, marker = family(name)
        ax.scatter([x], [y], color=colour, marker=marker, s=90 if marker == "*" else 45, zorder=3,
                   label=None if label in seen else label)
        seen.add(label)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4 if i % 2 else -10), fontsize=7,
                    alpha=0.8)
    front = pareto([(x, y) for _, x, y in rows])
    ax.plot([p[0] for p in front], [p[1] for p in front], color="tab:green", lw=1, ls="--", zorder=2,
            label="Pareto front")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def minilm_rows(report):
    rows = []
    for name, e in report["endpoints"].items():
        if not e["load"]:
            continue
        busiest = max(e["load"], key=lambda cell: cell["clients"])
        rows.append((name, busiest["rps"], e["cosine_to_reference"][0]))
    clients = max(cell["clients"] for e in report["endpoints"].values() for cell in e["load"])
    return rows, clients


def quality_figure(digits, minilm, out):
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    scatter_panel(left, [(r["endpoint"], r["samples_per_second"], r["accuracy"]) for r in digits["rows"]],
                  f"digits MLP: {digits['samples']} held-out test samples, one client",
                  "throughput (samples/s, whole-split v2 requests)", "test accuracy")
    rows, clients = minilm_rows(minilm)
    scatter_panel(right, rows, f"MiniLM-L6: {minilm['sentences']} reference sentences, {clients} clients",
                  "throughput (requests/s, one sentence each, /v1/embeddings)",
                  "mean cosine to sentence-transformers")
    fig.suptitle("Held-out quality against throughput, per compression endpoint\n"
                 f"({load_note(digits, minilm)}; numbers are indicative, not a quiet-machine measurement)",
                 fontsize=10)
    fig.tight_layout()
    save(fig, out)


def operator_name(op):
    """'blast 50% r=152' -> 'blast 50%': the rank differs by shape, the format does not."""
    return re.sub(r" r=\d+$", "", op)


def speedup_figure(kernels, out, threads=1):
    rows = [dict(r, op=operator_name(r["op"])) for r in kernels["rows"] if r["threads"] == threads]
    shapes = sorted({(r["k"], r["n"]) for r in rows})
    ops = sorted({r["op"] for r in rows if r["op"] != "dense"})
    palette = plt.get_cmap("tab10").colors  # past ten operators the colours repeat with dashed lines
    styles = {op: (palette[i % 10], "-" if i < 10 else "--") for i, op in enumerate(ops)}
    fig, axes = plt.subplots((len(shapes) + 1) // 2, 2, figsize=(11, 3.6 * ((len(shapes) + 1) // 2) + 1),
                             squeeze=False)
    for ax, (k, n) in zip(axes.flat, shapes):
        for op in ops:
            cells = sorted((r["m"], r["vs_dense"]) for r in rows if (r["k"], r["n"], r["op"]) == (k, n, op))
            colour, line = styles[op]
            ax.plot([m for m, _ in cells], [s for _, s in cells], marker=family(op)[2], color=colour, ls=line, label=op)
        ax.axhline(1.0, color="black", lw=1, label="our dense kernel")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_title(f"K={k} -> N={n}", fontsize=10)
        ax.set_xlabel("batch size M (rows)")
        ax.set_ylabel("speed-up over our dense kernel")
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[len(shapes):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8)
    fig.suptitle(f"Kernel speed-up over our dense kernel against batch size, {threads} thread, {kernels['isa']}\n"
                 f"(transposable N:M runs the N:M kernel on the same pack; {load_note(kernels)})", fontsize=10)
    fig.tight_layout(rect=(0, 0.03 * ((len(labels) + 5) // 6), 1, 1))
    save(fig, out)


def save(fig, path):
    # Reproducible SVG: no date, fixed id salt, text kept as text.
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=pathlib.Path, default=ROOT / "Benchmarks" / "results")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "Benchmarks" / "figures")
    args = ap.parse_args()
    plt.rcParams.update({"svg.hashsalt": "sparse-serve", "svg.fonttype": "none"})
    args.out.mkdir(parents=True, exist_ok=True)

    def read(name):
        return json.loads((args.results / name).read_text())

    quality_figure(read("digits-quality.json"), read("minilm-endpoints.json"), args.out / "quality-vs-throughput.svg")
    speedup_figure(read("kernels.json"), args.out / "kernel-speedup-vs-batch.svg")


if __name__ == "__main__":
    main()
