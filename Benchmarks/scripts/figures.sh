#!/usr/bin/env bash
# Regenerates Benchmarks/figures/*.svg from real runs: builds the release binary and kernel-bench,
# runs the three benchmarks with --json into Benchmarks/results/, then draws the figures.
#   Benchmarks/scripts/figures.sh            # everything (about 10 minutes on a quiet 2-core machine)
#   PLOT_ONLY=1 Benchmarks/scripts/figures.sh  # redraw from the committed Benchmarks/results/*.json
# Needs wrk (apt) and models/minilm-l6 (scripts/fetch-minilm.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
VENV=.build/bench-venv
RESULTS=Benchmarks/results
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import matplotlib, numpy, safetensors' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r Benchmarks/requirements.txt
fi
if [ "${PLOT_ONLY:-0}" != 1 ]; then
    swift build -c release --product sparse-serve --static-swift-stdlib
    swift build -c release --product kernel-bench --static-swift-stdlib
    scripts/fetch-minilm.sh
    mkdir -p "$RESULTS"
    "$VENV/bin/python" Benchmarks/scripts/kernel_bench.py --bench .build/release/kernel-bench --rounds 2 \
        --rows 1,2,4,8,16,32,64,128 --json "$RESULTS/kernels.json"
    "$VENV/bin/python" Benchmarks/scripts/compression_quality.py --json "$RESULTS/digits-quality.json"
    # MiniLM: Deploy/config.json's variants (dense, 2:4 on the encoder, BLAST FFN, PWL) and more patterns.
    "$VENV/bin/python" Benchmarks/scripts/minilm_endpoints.py --clients 8 --duration 3 --rounds 3 --json "$RESULTS/minilm-endpoints.json" \
        --extra 'minilm-4of8={"method": "dense", "layers": {"encoder.layer.*": {"method": "nm", "n": 4, "m": 8}}}' \
        --extra 'minilm-2of4-t={"method": "dense", "layers": {"encoder.layer.*": {"method": "nm", "n": 2, "m": 4, "mask": "transposable"}}}' \
        --extra 'minilm-csr-50={"method": "dense", "layers": {"encoder.layer.*": {"method": "csr", "density": 0.5}}}'
fi
"$VENV/bin/python" Benchmarks/scripts/plot.py --results "$RESULTS" --out Benchmarks/figures
