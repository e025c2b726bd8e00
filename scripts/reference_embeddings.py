#!/usr/bin/env python3
"""Reference sentence embeddings for all-MiniLM-L6-v2, computed in float64 numpy.

An independent implementation of the BERT encoder forward pass, read straight
from model.safetensors (no torch, no onnxruntime): word + position + token-type
embeddings, LayerNorm, N x (self-attention, LayerNorm, erf-GELU feed-forward,
LayerNorm), then mean pooling over the attention mask and L2 normalisation,
as sentence-transformers does for this model.

Tokenization uses the `tokenizers` package with the model's tokenizer.json,
overriding its shipped settings (which pad to 128 and truncate at 128):
no padding, truncation at max_seq_length (256, from sentence_bert_config.json).

Usage:
    .venv/bin/python scripts/reference_embeddings.py [MODEL_DIR] [--out PATH]

Defaults: MODEL_DIR = models/all-MiniLM-L6-v2 and
PATH = crates/osprey-models/tests/data/reference.json, both under the
repository root. The functions here are also imported by build_fp32_onnx.py
to check the ONNX export.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL_DIR = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
DEFAULT_OUT = os.path.join(ROOT, "crates", "osprey-models", "tests", "data", "reference.json")
MODEL_NAME = "all-MiniLM-L6-v2"

_erf = np.vectorize(math.erf, otypes=[np.float64])


class BertReference:
    """float64 BERT encoder + mean pooling, from a sentence-transformers model dir."""

    def __init__(self, model_dir: str):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        assert cfg.get("model_type", "bert") == "bert", cfg.get("model_type")
        assert cfg.get("hidden_act", "gelu") == "gelu", "only erf GELU is implemented"
        assert cfg.get("position_embedding_type", "absolute") == "absolute"
        self.hidden = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg["layer_norm_eps"])
        self.max_positions = int(cfg["max_position_embeddings"])
        assert self.hidden % self.heads == 0

        self.max_seq_length = 512
        sbert = os.path.join(model_dir, "sentence_bert_config.json")
        if os.path.exists(sbert):
            with open(sbert) as f:
                self.max_seq_length = int(json.load(f)["max_seq_length"])
        pooling = os.path.join(model_dir, "1_Pooling", "config.json")
        if os.path.exists(pooling):
            with open(pooling) as f:
                pc = json.load(f)
            assert pc.get("pooling_mode_mean_tokens") and not pc.get("pooling_mode_cls_token") \
                and not pc.get("pooling_mode_max_tokens"), "only mean pooling is implemented"

        raw = load_file(os.path.join(model_dir, "model.safetensors"))
        # Some exports prefix every tensor with "bert."; accept both spellings.
        self.w = {}
        for k, v in raw.items():
            k = k[len("bert."):] if k.startswith("bert.") else k
            if v.dtype.kind == "f":
                self.w[k] = v.astype(np.float64)

        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.untruncated = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.untruncated.no_padding()
        self.untruncated.no_truncation()

    # -- tokenization ---------------------------------------------------------
    def tokenize(self, text: str):
        """(ids, type_ids) after truncation, and the untruncated token count."""
        enc = self.tokenizer.encode(text)
        full = len(self.untruncated.encode(text).ids)
        return np.array(enc.ids, np.int64), np.array(enc.type_ids, np.int64), full

    # -- model ----------------------------------------------------------------
    def _ln(self, x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _linear(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def forward(self, ids, type_ids=None, mask=None):
        """last_hidden_state [B, T, H] for ids [B, T] (or [T]); mask 1 = real token."""
        ids = np.atleast_2d(np.asarray(ids, np.int64))
        B, T = ids.shape
        assert T <= self.max_positions, f"{T} tokens > {self.max_positions} positions"
        type_ids = np.zeros_like(ids) if type_ids is None else np.atleast_2d(type_ids)
        mask = np.ones_like(ids) if mask is None else np.atleast_2d(mask)
        H, nh = self.hidden, self.heads
        dh = H // nh

        x = (self.w["embeddings.word_embeddings.weight"][ids]
             + self.w["embeddings.position_embeddings.weight"][np.arange(T)][None]
             + self.w["embeddings.token_type_embeddings.weight"][type_ids])
        x = self._ln(x, "embeddings.LayerNorm")
        # additive attention bias: 0 for real tokens, very negative for padding
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e30)
        for l in range(self.layers):
            p = f"encoder.layer.{l}."

            def heads(n):
                return self._linear(x, p + "attention.self." + n).reshape(B, T, nh, dh).transpose(0, 2, 1, 3)

            q, k, v = heads("query"), heads("key"), heads("value")
            s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
            x = self._ln(self._linear(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            inter = self._linear(x, p + "intermediate.dense")
            inter = 0.5 * inter * (1.0 + _erf(inter / math.sqrt(2.0)))
            x = self._ln(self._linear(inter, p + "output.dense") + x, p + "output.LayerNorm")
        return x

    @staticmethod
    def mean_pool(hidden, mask):
        m = np.atleast_2d(mask).astype(np.float64)[..., None]
        return (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)

    @staticmethod
    def l2_normalize(e):
        n = np.linalg.norm(e, axis=-1, keepdims=True)
        return e / np.clip(n, 1e-12, None)

    def embed(self, text: str):
        """dict with token counts, pooled (unnormalized) and normalized embedding."""
        ids, type_ids, full = self.tokenize(text)
        mask = np.ones_like(ids)
        pooled = self.mean_pool(self.forward(ids, type_ids, mask), mask)[0]
        return {
            "ids": ids,
            "token_count": int(len(ids)),
            "untruncated_token_count": int(full),
            "embedding_unnormalized": pooled,
            "embedding": self.l2_normalize(pooled),
        }


# -- test sentences -------------------------------------------------------------

_LONG_PARAGRAPHS = [
    "Sentence embeddings map a piece of text to a single dense vector, so that texts with "
    "similar meanings end up close to each other in the vector space.",
    "A search engine can then compare a query with millions of stored documents by computing "
    "cosine similarities, which is far cheaper than running a large model over every pair.",
    "The model used here is a small transformer with six layers, twelve attention heads and a "
    "hidden size of three hundred and eighty-four, trained on over one billion sentence pairs.",
    "Because attention cost grows with the square of the sequence length, inputs longer than "
    "the configured maximum are truncated, and only the first tokens contribute to the result.",
    "An inference server batches concurrent requests together, pads them to a common length, "
    "and keeps the processor busy without letting any single request wait for too long.",
    "Caching identical inputs avoids recomputation entirely, which matters a great deal for "
    "workloads where the same popular queries arrive again and again throughout the day.",
    "Latency percentiles, not averages, describe what users actually experience, so a careful "
    "benchmark reports the ninety-ninth percentile alongside throughput and memory usage.",
    "Numerical precision also matters: single precision arithmetic is usually close enough, "
    "but every implementation should be checked against a trusted reference on varied inputs.",
    "Unicode text brings its own surprises, from accented letters and combining marks to "
    "Chinese characters, right-to-left scripts, emoji and invisible control characters.",
    "Finally, an honest evaluation compares the new system with the old one on the same "
    "machine, under the same load, and publishes the scripts needed to reproduce the numbers.",
]


def _long_text(paragraphs: int, start: int = 0) -> str:
    n = len(_LONG_PARAGRAPHS)
    return " ".join(_LONG_PARAGRAPHS[(start + i) % n] for i in range(paragraphs))


def _text_with_tokens(ref: BertReference, target: int, start: int = 0) -> str:
    """A text of prose whose untruncated token count (with [CLS]/[SEP]) is exactly target."""
    words = _long_text(40, start).split(" ")
    count = lambda ws: ref.tokenize(" ".join(ws))[2]
    lo, hi = 0, len(words)
    while lo < hi:  # longest prefix with <= target tokens
        mid = (lo + hi + 1) // 2
        if count(words[:mid]) <= target:
            lo = mid
        else:
            hi = mid - 1
    words = words[:lo]
    while count(words) < target:  # top up with one-token words
        words.append("and")
    assert count(words) == target, (count(words), target)
    return " ".join(words)


def test_sentences(ref: BertReference) -> list[str]:
    return [
        "The quick brown fox jumps over the lazy dog.",
        "What is the capital of France?",
        "Osprey serves sentence embeddings over HTTP with dynamic batching.",
        "Version 2.4.6 costs $1,299.99 (about 12% off) -- order #42, qty: 3; ok?!",
        "MiXeD CaSe TeXt ShOuLd Be LoWeRcAsEd By ThE tOkEnIzEr",
        "我喜欢在周末读书和喝茶。",
        "東京は日本の首都です。今日はいい天気ですね。",
        "اللغة العربية جميلة جدا",
        "Le garçon a mangé une crème brûlée à l'hôtel près de la forêt.",
        "Die Straße in München ist schön, aber übermäßig laut.",
        "I love pizza 🍕🍕 and coffee ☕! 😀👍🏽🎉",
        "🚀🔥💯",
        "",
        "   ",
        "a",
        "fn main() { let v: Vec<i32> = (0..10).map(|x| x * x).collect(); println!(\"{:?}\", v); }",
        "https://example.com/path/to/page?query=embedding&lang=en#section-2",
        "buffalo buffalo buffalo buffalo buffalo buffalo buffalo buffalo",
        "first line\tafter a tab\nsecond line\r\nthird line",
        "A man is playing a guitar on the street.",
        "Résumé naïve café coöperate façade jalapeño Ångström",
        "\u00e9 vs e\u0301 (precomposed vs combining accent)",
        "zero\u200bwidth space and non\u00a0breaking space",
        "Привет, как дела? Это тест на русском языке.",
        # Truncation boundary: 256 tokens fit exactly; 257 lose their last word,
        # which leaves the same tokens as the 256 case (same embedding).
        _text_with_tokens(ref, 256),
        _text_with_tokens(ref, 257),
        _text_with_tokens(ref, 300, start=3),
        _long_text(14, start=6),
    ]


# -- output ---------------------------------------------------------------------

def _sig(x: float, digits: int = 8) -> float:
    return float(f"{x:.{digits}g}")


def _dumps(doc: dict) -> str:
    """JSON with one line per field of a case (vectors on one line each)."""
    d = lambda v: json.dumps(v, ensure_ascii=False)
    cases = []
    for c in doc["cases"]:
        fields = [f'  "{k}": {d(v)}' for k, v in c.items()]
        cases.append(" {\n" + ",\n".join(fields) + "\n }")
    head = [f' "{k}": {d(v)}' for k, v in doc.items() if k != "cases"]
    return "{\n" + ",\n".join(head) + ',\n "cases": [\n' + ",\n".join(cases) + "\n ]\n}\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", nargs="?", default=DEFAULT_MODEL_DIR)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    t0 = time.time()
    ref = BertReference(args.model_dir)
    assert ref.max_seq_length == 256, ref.max_seq_length
    cases = []
    for text in test_sentences(ref):
        r = ref.embed(text)
        assert len(r["embedding"]) == ref.hidden
        cases.append({
            "text": text,
            "token_count": r["token_count"],
            "untruncated_token_count": r["untruncated_token_count"],
            "embedding": [_sig(v) for v in r["embedding"]],
            "embedding_unnormalized": [_sig(v) for v in r["embedding_unnormalized"]],
        })
        print(f"{r['token_count']:4d}/{r['untruncated_token_count']:4d} tokens  "
              f"|e|={np.linalg.norm(r['embedding_unnormalized']):.4f}  {text[:60]!r}", file=sys.stderr)

    doc = {"model": MODEL_NAME, "max_seq_length": ref.max_seq_length, "cases": cases}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(_dumps(doc))
    os.replace(tmp, args.out)
    print(f"wrote {len(cases)} cases to {args.out} in {time.time() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
