#!/usr/bin/env python3
"""Makes the default calibration sets that `sparse-serve compress --calibration` reads, and the
held-out splits that compression never sees (the quality reports measure on those).

  models/wordnet/calibration.txt     English glosses and example sentences of WordNet 3.0 (Debian
  models/wordnet/recovery.txt        package `wordnet-base`), one text per line (recovery.txt, the
  models/wordnet/heldout.txt         training texts of `compress --recover`, is a superset of
                                     calibration.txt from the same side). Calibration and
                                     held-out texts come from disjoint synsets (a synset goes to
                                     held-out when a hash of its offset says so), so no gloss or
                                     example is shared. Used for the MiniLM text encoder.
  models/digits-mlp/calibration.safetensors
                                     the digits training split (the 75 % train_digits.py trained
                                     on): inputs F32 [1347, 64], labels I64 [1347]. Its test split
                                     (test.safetensors) is the held-out set.
  models/timeseries/calibration.safetensors
                                     GunPoint's training split as aeon bundles it: inputs F32
                                     [50, 1, 150], labels I64 [50]. test.safetensors is held out.

Deterministic: running it twice gives identical files. WordNet is read from
/usr/share/wordnet (apt-get install wordnet-base); its licence (WordNet 3.0, Princeton University:
use, copy, modify and distribute with the copyright notice kept) is copied to
models/wordnet/LICENSE.

Usage: .venv/bin/python scripts/make_calibration.py [--only wordnet|digits|timeseries]
       [--calibration-texts N] [--heldout-texts N] [--recovery-texts N] [--out-dir DIR]
(the GunPoint part re-runs itself in .build/timeseries-py, as train_timeseries.py does).
"""
import argparse
import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

WORDNET = Path("/usr/share/wordnet")
WORDNET_COPYRIGHT = Path("/usr/share/doc/wordnet-base/copyright")
POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
MIN_WORDS = 4            # shorter glosses ("a bird", "not fast") say little about a sentence encoder
HELDOUT_PERCENT = 20     # of synsets; the texts are then drawn from each side separately


def synset_texts(line):
    """(synset id, [gloss, example, ...]) of one data.* line, or None for the licence header."""
    if line.startswith("  ") or "|" not in line:
        return None
    head, gloss = line.split("|", 1)
    fields = head.split()
    synset = f"{fields[2]}{fields[0]}"                   # part of speech + byte offset: unique
    texts = []
    for part in gloss.strip().split(";"):
        part = part.strip()
        quoted = re.fullmatch(r'"(.*)"', part)
        text = (quoted.group(1) if quoted else part).strip().strip('"').strip()
        if len(text.split()) >= MIN_WORDS:
            texts.append(text[0].upper() + text[1:])
    return synset, texts


def held_out(synset):
    digest = hashlib.sha256(synset.encode()).digest()
    return int.from_bytes(digest[:4], "little") % 100 < HELDOUT_PERCENT


def wordnet_texts():
    """All glosses and examples, split into (calibration pool, held-out pool), each de-duplicated
    and in a fixed pseudo-random order (by hash of the text)."""
    if not WORDNET.is_dir():
        sys.exit(f"{WORDNET} is missing: apt-get install wordnet-base")
    calibration, heldout, seen = [], [], set()
    for name in POS_FILES:
        for line in (WORDNET / name).read_text(encoding="utf-8", errors="strict").splitlines():
            parsed = synset_texts(line)
            if parsed is None:
                continue
            synset, texts = parsed
            for text in texts:
                if text.lower() in seen:
                    continue
                seen.add(text.lower())
                (heldout if held_out(synset) else calibration).append(text)
    order = lambda t: hashlib.sha256(t.encode()).hexdigest()
    return sorted(calibration, key=order), sorted(heldout, key=order)


def heldout_text_set(path):
    return {t.lower() for t in Path(path).read_text(encoding="utf-8").splitlines()} if Path(path).exists() else set()


def write_wordnet(out_dir, calibration_count, heldout_count, recovery_count=0):
    calibration, heldout = wordnet_texts()
    if max(calibration_count, recovery_count) > len(calibration) or heldout_count > len(heldout):
        sys.exit(f"WordNet has {len(calibration)} calibration and {len(heldout)} held-out texts")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "calibration.txt").write_text("\n".join(calibration[:calibration_count]) + "\n", encoding="utf-8")
    if recovery_count:
        # recovery training's texts: the first N of the same calibration-side order (a superset of
        # calibration.txt when N is larger), so they share no synset with heldout.txt either
        (out_dir / "recovery.txt").write_text("\n".join(calibration[:recovery_count]) + "\n", encoding="utf-8")
    (out_dir / "heldout.txt").write_text("\n".join(heldout[:heldout_count]) + "\n", encoding="utf-8")
    if WORDNET_COPYRIGHT.exists():
        shutil.copyfile(WORDNET_COPYRIGHT, out_dir / "LICENSE")
    overlap = {t.lower() for t in calibration[:max(calibration_count, recovery_count)]} & {t.lower() for t in heldout[:heldout_count]}
    assert not overlap, overlap
    print(f"wordnet: {calibration_count} of {len(calibration)} calibration texts, {recovery_count} recovery texts, "
          f"{heldout_count} of {len(heldout)} held-out texts -> {out_dir}")


def write_digits():
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from train_digits import SEED, save_safetensors

    digits = load_digits()
    x = digits.data.astype(np.float64)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.25, stratify=y, random_state=SEED)
    from safetensors.numpy import load_file
    test = load_file(str(ROOT / "models" / "digits-mlp" / "test.safetensors"))
    assert np.array_equal(test["inputs"], x_test.astype(np.float32)), "train_digits.py's split changed"
    meta = {"format_version": "1", "dataset": "sklearn.datasets.load_digits",
            "split": f"the 75 % training split of train_digits.py (random_state={SEED}); test.safetensors is held out",
            "samples": str(len(y_train)), "input": "raw pixel intensities 0..16"}
    path = ROOT / "models" / "digits-mlp" / "calibration.safetensors"
    save_safetensors(path, {"inputs": x_train.astype(np.float32), "labels": y_train}, meta)
    print(f"digits: {len(y_train)} training samples -> {path}")


def write_timeseries():
    import numpy as np
    from aeon.datasets import load_gunpoint
    from train_digits import save_safetensors

    x_train, y_train = load_gunpoint(split="train")
    to_index = {label: i for i, label in enumerate(sorted(set(y_train)))}
    labels = np.array([to_index[v] for v in y_train], dtype=np.int64)
    meta = {"format_version": "1", "dataset": "GunPoint (UCR), bundled with aeon 1.6.0 (aeon.datasets.load_gunpoint)",
            "split": "the archive's training split (50 series); test.safetensors is held out",
            "samples": str(len(labels)), "input": "[channels=1, steps=150], z-normalised by the archive"}
    path = ROOT / "models" / "timeseries" / "calibration.safetensors"
    save_safetensors(path, {"inputs": np.ascontiguousarray(x_train, dtype=np.float32), "labels": labels}, meta)
    print(f"timeseries: {len(labels)} training series -> {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["wordnet", "digits", "timeseries"])
    ap.add_argument("--calibration-texts", type=int, default=4096)
    ap.add_argument("--heldout-texts", type=int, default=1024)
    ap.add_argument("--recovery-texts", type=int, default=32768, help="texts of recovery.txt (0: do not write it)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "models" / "wordnet")
    args = ap.parse_args()
    if args.only in (None, "timeseries"):
        import train_timeseries
        train_timeseries.ensure_packages()   # re-runs this script in the aeon venv when needed
    if args.only in (None, "wordnet"):
        write_wordnet(args.out_dir, args.calibration_texts, args.heldout_texts, args.recovery_texts)
    if args.only in (None, "digits"):
        write_digits()
    if args.only in (None, "timeseries"):
        write_timeseries()


if __name__ == "__main__":
    main()
