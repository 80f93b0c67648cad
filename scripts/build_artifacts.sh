#!/usr/bin/env bash
# Builds the compressed artifacts that Deploy/config.json serves, with calibrated (data-aware)
# one-shot compression: each layer compressed on the model's own activations over its calibration
# set (models/*/calibration.*, see scripts/make_calibration.py), SparseGPT-style saliency with
# compensation and a least-squares refit of kept weights and biases (the defaults). Each
# artifact's metadata records the calibration and its quality on the held-out split, which
# GET /v2/models/NAME reports. The digits artifacts are then recovery-trained (`--recover`: distillation
# from the dense model on the training split, models/digits-mlp/calibration.safetensors, structure
# fixed); their metadata's 'recovery' report gives the held-out accuracy dense / one-shot / recovered.
#
#   models/digits-2of4      digits MLP, every layer 2:4                          (committed)
#   models/digits-2of4-t    digits MLP, transposable 2:4 (fc3, 10 outputs, dense) (committed)
#   models/digits-blast     digits MLP, BLAST b=4 at 50 % of fc1/fc2's parameters (committed)
#   models/minilm-l6-2of4   MiniLM, every encoder linear 2:4       (built when models/minilm-l6 exists; not committed)
#   models/minilm-l6-blast  MiniLM, FFN BLAST b=2 at 50 %           (same)
#   models/minilm-l6-2of4-recovered  MiniLM 2:4, then --recover (block-wise, then end-to-end
#                           distillation on recovery.txt; ~20 min on 2 cores) (only with RECOVER_MINILM=1; not committed)
#   models/minilm-l6-blast-recovered MiniLM FFN BLAST, then --recover on all 122,776 calibration-side WordNet
#                           texts (.build/wordnet-all/recovery.txt, made here by make_calibration.py from the
#                           Debian package wordnet-base: apt-get install wordnet-base) with 3
#                           end-to-end epochs: ~80 min on 2 cores (only with RECOVER_MINILM=1; not committed)
#   models/minilm-l6-2of4-int8-recovered MiniLM 2:4 with int8 weights and dynamic int8 activations, then --recover
#                           (trained in fp32 under the mask, quantized again at the end; only with RECOVER_MINILM=1)
# Deploy/config.json's minilm-2of4, minilm-blast and minilm-2of4-int8 serve the recovered ones once
# they exist (their "artifact"); until then they compress one-shot at load.
#
# Usage: scripts/build_artifacts.sh [BINARY]   (default .build/release/sparse-serve)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.build/release/sparse-serve}"
FC3_DENSE='"layers": {"fc3": {"method": "dense"}}'

compress() {  # name model json [extra flags]
    echo "== $1"
    rm -rf "models/$1"
    "$BIN" compress --model "$2" --compression "$3" --out "models/$1" "${@:4}"
}

compress digits-2of4 models/digits-mlp '{"method": "nm", "n": 2, "m": 4, "pin": true, "calibration": "default"}' --recover
compress digits-2of4-t models/digits-mlp "{\"method\": \"nm\", \"n\": 2, \"m\": 4, \"mask\": \"transposable\", \"pin\": true, \"calibration\": \"default\", $FC3_DENSE}" --recover
compress digits-blast models/digits-mlp "{\"method\": \"blast\", \"blocks\": 4, \"parameterRatio\": 0.5, \"pin\": true, \"calibration\": \"default\", $FC3_DENSE}" --recover
if [ "${SKIP_MINILM:-0}" != 1 ] && [ -f models/minilm-l6/model.safetensors ]; then
    compress minilm-l6-2of4 models/minilm-l6 '{"method": "dense", "calibration": "default", "layers": {"encoder.layer.*": {"method": "nm", "n": 2, "m": 4}}}'
    if [ "${RECOVER_MINILM:-0}" = 1 ]; then
        compress minilm-l6-2of4-recovered models/minilm-l6 '{"method": "dense", "calibration": "default", "layers": {"encoder.layer.*": {"method": "nm", "n": 2, "m": 4}}}' --recover
        W8A8='"quantize": {"weights": "int8", "activations": "int8-dynamic"}'
        compress minilm-l6-2of4-int8-recovered models/minilm-l6 "{\"method\": \"dense\", \"calibration\": \"default\", $W8A8, \"layers\": {\"encoder.layer.*\": {\"method\": \"nm\", \"n\": 2, \"m\": 4, $W8A8}}}" --recover
    fi
    BLAST_FFN='{"method": "dense", "calibration": "default", "layers": {"encoder.layer.*.attention.output.dense": {"method": "dense"}, "encoder.layer.*.intermediate.dense": {"method": "blast", "blocks": 2, "parameterRatio": 0.5, "iterations": 30}, "encoder.layer.*.output.dense": {"method": "blast", "blocks": 2, "parameterRatio": 0.5, "iterations": 30}}}'
    compress minilm-l6-blast models/minilm-l6 "$BLAST_FFN"
    if [ "${RECOVER_MINILM:-0}" = 1 ]; then
        # BLAST needs more texts than the default 32,768 (held-out 0.9635 there, 0.9694 on all with 2 epochs)
        python3 scripts/make_calibration.py --only wordnet --recovery-texts 122776 --out-dir .build/wordnet-all
        compress minilm-l6-blast-recovered models/minilm-l6 "$BLAST_FFN" --recover \
            --recovery-data .build/wordnet-all/recovery.txt --end-to-end-epochs 3
    fi
else
    echo "models/minilm-l6 is missing (scripts/fetch-minilm.sh): MiniLM artifacts not built"
fi
