#!/usr/bin/env python3
"""Makes the MiniLM fidelity fixtures under Tests/fixtures/minilm/ (run once; the output is committed).

  tokenizer-cases.json  >= 500 varied strings with the token ids of Hugging Face `tokenizers`
                        (tokenizer.json of all-MiniLM-L6-v2, padding and truncation off)
  embeddings.json       >= 200 sentences with the reference sentence embedding (float32, base64)
                        from a numpy forward pass that reproduces sentence-transformers to ~1.5e-7
                        (ids from `tokenizers`, truncated to 256 tokens like sentence-transformers)

Needs models/minilm-l6/ (scripts/fetch-minilm.sh). Runs in its own throwaway venv
(.build/minilm-py with tokenizers, numpy, safetensors: ~230 MB, no torch); re-executes itself
there when the packages are missing.
"""
import base64
import inspect
import json
import math
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "minilm-l6"
OUT = ROOT / "Tests" / "fixtures" / "minilm"
VENV = ROOT / ".build" / "minilm-py"
MAX_TOKENS = 256


def ensure_packages():
    sys.path.insert(0, str(ROOT / "scripts"))
    from pyvenv import run_in_venv
    run_in_venv(VENV, ["tokenizers", "numpy", "safetensors"], ["tokenizers", "numpy", "safetensors"])


# ----------------------------------------------------------------------------------------------
# Tokenizer cases
# ----------------------------------------------------------------------------------------------

HANDWRITTEN = [
    "", " ", "   \t\n  ", "hello world", "Hello, World!", "HELLO WORLD", "hello  world",
    "Don't stop—believing!!!", "e.g. i.e. etc. U.S.A.", "(parentheses) [brackets] {braces} <angles>",
    "quotes: \"double\" 'single' “curly” ‘curly’ «guillemets» „low“", "a-b_c.d,e;f:g?h!i",
    "$100 + 5% = ~€105 ^ 2 | x & y # tag @user `code` \\ back", "...", "?!?!", "--", "— – ‐ ‒ ―",
    "café naïve résumé façade Ångström", "Straße STRASSE straße", "İstanbul ISTANBUL ıi",
    "ÉCOLE École école", "Crème brûlée à la mode", "Ça va? Où êtes-vous?", "Dvořák Škoda Łódź Kraków",
    "Ελληνικά: Σίσυφος ΟΔΟΣ οδός", "Русский текст: Привет, мир!", "Українська: ґанок, їжак",
    "中文测试：你好，世界！", "日本語のテキスト、ひらがなとカタカナ。", "한국어 텍스트입니다", "混合mixed中文text",
    "東京タワー Tokyo", "𠀀𠀁 astral CJK", "⿰ ideographic description", "汉字123漢字",
    "😀 😃 😄 emoji", "I ❤️ NY", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family", "🇫🇷🇩🇪 flags", "🤗 hugging face",
    "🫠 melting", "✌️✌🏿", "★☆♠♣♥♦", "→ ← ↑ ↓ ⇒", "∑∫√∞≠≤≥±×÷", "½ ¼ ¾ ² ³ ¹", "™ © ® ℃ №",
    "ﬁ ﬂ ﬀ ligatures", "ＡＢＣ ｆｕｌｌｗｉｄｔｈ １２３", "①②③ circled", "ℌ𝔢𝔩𝔩𝔬 math letters",
    "e\u0301 combining acute", "n\u0303 a\u0308 o\u0302", "Z\u0351\u0357a\u0362l\u035fg\u0335o\u0334",
    "a\u0300\u0301\u0302\u0303\u0304b", "\u0301leading combining", "Hangul 가각 각", "ﾊﾝｶｸ halfwidth kana",
    "עברית שלום", "العربية مرحبا بالعالم", "हिन्दी नमस्ते", "தமிழ் வணக்கம்", "ไทย สวัสดี", "ქართული",
    "Tiếng Việt có dấu", "Türkçe ğüşöçı", "Íslenska þ ð æ", "Ɛʋɛ", "ǅ ǈ ǋ titlecase digraphs",
    "tab\tseparated\tvalues", "new\nline\nbreaks", "carriage\r\nreturn", "form\x0cfeed", "vertical\x0btab",
    "non\u00a0breaking\u00a0space", "em\u2003space en\u2002space", "ideographic\u3000space",
    "line\u2028separator para\u2029graph", "zero\u200bwidth\u200cjoiner\u200dnon", "bom\ufefftext",
    "soft\u00adhyphen", "nul\x00char", "bell\x07 escape\x1b[31mred\x1b[0m", "del\x7fchar",
    "next\x85line", "c1\x80\x9fcontrols", "file\x1cgroup\x1drecord\x1eunit\x1fsep",
    "replacement \ufffd char", "private \ue000\uf8ff use", "unassigned \u0378 \u0380", "nonchar \uffff \ufffe",
    "tags \U000E0001\U000E0041", "variation \ufe0f\ufe0e selectors", "bidi \u200e\u200f\u202a\u202e\u2066",
    "[CLS] [SEP] [MASK] [PAD] [UNK]", "hello[SEP]world", "[cls] lowercase specials", "[ CLS ]", "[[MASK]]",
    "[CLS][CLS]", "[MASK", "MASK]", "x[UNK]y", "[SEP ]", "\u00c5[MASK]\u00e9",
    "https://example.com/path?query=1&b=2#frag", "user.name+tag@example.co.uk", "C:\\Windows\\System32",
    "def f(x): return x**2  # python", "<div class=\"a\">HTML &amp; entities</div>", "{\"json\": [1, 2.5e-3, null]}",
    "SELECT * FROM t WHERE a >= 3;", "1,234,567.89", "3.14159 2.71828", "1e10 -5 +7", "0x1F 0b1010",
    "2024-01-15T10:30:00Z", "10:30 a.m.", "#hashtag @mention", "lol :) :-( ;P <3 xD", "A.B.C.D.E.F.G",
    "supercalifragilisticexpialidocious", "antidisestablishmentarianism", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "unbelievably unhappiness unreasonable", "tokenization tokenizer tokenized", "GPT-4 BERT-base ResNet-50",
    "COVID-19 SARS-CoV-2", "iPhone eBay macOS", "o'clock rock'n'roll", "state-of-the-art", "x" * 99, "y" * 100,
    "z" * 101, "w" * 250, "ab" * 50, "ab" * 51, "é" * 100, "é" * 101, "中" * 120, ("word " * 300).strip(),
    "a" * 100 + "!" + "b" * 101, "🙂" * 30, "##prefix ##", "##", "# # #", "...hello...", "'quoted'",
    "Mixed CASE WoRdS", "ALLCAPS SENTENCE HERE", "numbers123mixed456", "under_score_words", "dash-separated-words",
    "a", "I", "!", "é", "中", "😀", "\u0301", "\t", "\x00", "\ufeff",
]

# Pools for random strings: (weight, generator).
WORDS = ("the quick brown fox jumps over lazy dog model server sparse dense kernel tensor matrix "
         "embedding sentence transformer attention layer norm query key value hello world "
         "running jumped happily unbelievable tokenization international cooperation "
         "café naïve über façade jalapeño smørrebrød Zürich Ærø").split()
RANGES = [
    (0x0021, 0x007E), (0x00A0, 0x00FF), (0x0100, 0x017F), (0x0180, 0x024F), (0x0300, 0x036F), (0x0370, 0x03FF),
    (0x0400, 0x04FF), (0x0590, 0x05FF), (0x0600, 0x06FF), (0x0900, 0x097F), (0x0E00, 0x0E7F), (0x1100, 0x11FF),
    (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x20A0, 0x20CF), (0x2100, 0x214F), (0x2190, 0x21FF), (0x2200, 0x22FF),
    (0x2E00, 0x2E7F), (0x3000, 0x303F), (0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
    (0xF900, 0xFAFF), (0xFB00, 0xFB4F), (0xFE00, 0xFE6F), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF), (0x1F300, 0x1FAFF),
    (0x20000, 0x2A6DF), (0x2F800, 0x2FA1F), (0xE0000, 0xE007F), (0x0000, 0x001F), (0x007F, 0x009F),
    (0x1DA80, 0x1DAAF), (0x1E900, 0x1E95F), (0x11A00, 0x11A4F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x0890, 0x08FF),
]
SPACES = [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2009", "\u200b", "\u2028", "\x0b", "\x85"]


def random_char(rng):
    lo, hi = rng.choice(RANGES)
    while True:
        c = rng.randint(lo, hi)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def random_string(rng):
    parts = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.45:
            w = rng.choice(WORDS)
            r = rng.random()
            w = w.upper() if r < 0.15 else w.capitalize() if r < 0.35 else w
            parts.append(w)
        elif kind < 0.75:
            parts.append("".join(random_char(rng) for _ in range(rng.randint(1, 6))))
        elif kind < 0.85:
            parts.append(rng.choice(WORDS) + random_char(rng) + rng.choice(WORDS))
        else:
            parts.append(rng.choice(["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "##", "...", "'s", "n't", "!?"]))
        parts.append(rng.choice(SPACES))
    return "".join(parts)


def tokenizer_cases(tok):
    rng = random.Random(20261125)
    strings = list(dict.fromkeys(HANDWRITTEN))
    while len(strings) < 620:
        s = random_string(rng)
        if s not in strings:
            strings.append(s)
    cases = []
    for s in strings:
        enc = tok.encode(s)
        cases.append({"text": s, "ids": enc.ids})
    return cases


# ----------------------------------------------------------------------------------------------
# Embedding sentences and the numpy reference
# ----------------------------------------------------------------------------------------------

WRITTEN_SENTENCES = [
    "hello world",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome",
    "The cat sits outside",
    "I love pasta",
    "Do you like pizza?",
    "The quick brown fox jumps over the lazy dog.",
    "Sparse matrices store only their non-zero entries.",
    "Structured N:M sparsity keeps n weights in every group of m.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "How do I reset my password?",
    "Click 'Forgot password' on the sign-in page and follow the e-mail link.",
    "Le chat est assis sur le tapis.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "El rápido zorro marrón salta sobre el perro perezoso.",
    "今日はいい天気ですね。",
    "我喜欢吃苹果和香蕉。",
    "오늘 날씨가 좋네요.",
    "Привет, как дела?",
    "Emoji are fun 🎉🎉 🚀",
    "ALL CAPS SENTENCE WITH SHOUTING!!!",
    "tHiS iS wEiRd CaSiNg",
    "café, naïve, résumé",
    "",
    "   ",
    "a",
    "?",
    "The price rose from $3.50 to $4.25 (a 21% increase) on 2024-03-01.",
    "Call me at +1 (555) 010-9999 or mail info@example.org.",
    "def add(a, b):\n    return a + b",
    "<p>Some <b>bold</b> HTML</p>",
    "Tabs\tand\nnewlines\r\nmixed in.",
    "Zero\u200bwidth and non\u00a0breaking spaces.",
    "[CLS] special [SEP] tokens [MASK] inside text",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 150,
]


def docstring_sentences():
    """Natural English sentences from the standard library's docstrings (varied lengths)."""
    import collections, json as _json, textwrap, string, random as _random, pathlib, argparse, logging, itertools, functools
    out = []
    for module in (collections, _json, textwrap, string, _random, pathlib, argparse, logging, itertools, functools, math, os):
        for name, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if not name.startswith("_") else None
            if not doc:
                continue
            para = " ".join(doc.split("\n\n")[0].split())
            if 20 <= len(para) <= 400 and para not in out:
                out.append(para)
    return out


def long_texts():
    """Texts past 256 tokens (sentence-transformers truncates them)."""
    zen = ("Beautiful is better than ugly. Explicit is better than implicit. Simple is better than complex. "
           "Complex is better than complicated. Flat is better than nested. Sparse is better than dense. "
           "Readability counts. ")
    return [zen * 6, ("Sparse kernels and dense kernels; " * 60).strip(), " ".join(f"token{i}" for i in range(200))]


def reference_embedder():
    import numpy as np
    from safetensors.numpy import load_file

    W = load_file(str(MODEL / "model.safetensors"))
    cfg = json.loads((MODEL / "config.json").read_text())
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = H // nh
    eps = cfg["layer_norm_eps"]
    erf = np.vectorize(math.erf, otypes=[np.float32])

    def ln(x, g, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + eps) * g + b

    def lin(x, p):
        return x @ W[p + ".weight"].T + W[p + ".bias"]

    def embed(ids):
        ids = np.array(ids)
        L = len(ids)
        x = (W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:L]
             + W["embeddings.token_type_embeddings.weight"][0])
        x = ln(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"])
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q, k, v = (lin(x, p + "attention.self." + n).reshape(L, nh, hd).transpose(1, 0, 2)
                       for n in ("query", "key", "value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(L, H)
            x = ln(x + lin(ctx, p + "attention.output.dense"),
                   W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"])
            h = lin(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
            x = ln(x + lin(h, p + "output.dense"), W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"])
        e = x.mean(0)
        return (e / np.linalg.norm(e)).astype(np.float32)

    return embed


def main():
    ensure_packages()
    import numpy as np
    from tokenizers import Tokenizer

    if not (MODEL / "tokenizer.json").exists():
        sys.exit(f"{MODEL} is missing: run scripts/fetch-minilm.sh first")
    OUT.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()

    cases = tokenizer_cases(tok)
    doc = {
        "source": "Hugging Face tokenizers %s, all-MiniLM-L6-v2 tokenizer.json, no padding, no truncation"
                  % __import__("tokenizers").__version__,
        "cases": cases,
    }
    (OUT / "tokenizer-cases.json").write_text(json.dumps(doc, ensure_ascii=True, indent=0) + "\n")
    print(f"tokenizer-cases.json: {len(cases)} cases")

    sentences = list(dict.fromkeys(WRITTEN_SENTENCES + docstring_sentences()[:190] + long_texts()))
    tok.enable_truncation(MAX_TOKENS)
    embed = reference_embedder()
    rows = []
    for s in sentences:
        ids = tok.encode(s).ids
        e = embed(ids)
        rows.append({"text": s, "ids": ids, "embedding": base64.b64encode(e.astype("<f4").tobytes()).decode()})
    doc = {
        "source": "numpy float32 forward pass of all-MiniLM-L6-v2 (mean pooling over all tokens, L2-normalised), "
                  "ids from tokenizers truncated to %d tokens; embedding = base64 little-endian float32[384]" % MAX_TOKENS,
        "maxTokens": MAX_TOKENS,
        "cases": rows,
    }
    (OUT / "embeddings.json").write_text(json.dumps(doc, ensure_ascii=True, indent=0) + "\n")
    print(f"embeddings.json: {len(rows)} sentences, lengths {min(len(r['ids']) for r in rows)}..{max(len(r['ids']) for r in rows)}")


if __name__ == "__main__":
    main()
