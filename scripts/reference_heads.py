#!/usr/bin/env python3
"""Reference logits of a BERT sequence classifier or cross-encoder, in float64 numpy.

For a `BertForSequenceClassification` directory in Hugging Face layout
(config.json, tokenizer.json, model.safetensors with `bert.*` encoder and pooler
tensors and `classifier.weight`/`classifier.bias`), as built by
scripts/build_test_models.py. The encoder is reference_embeddings.BertReference
(an independent float64 forward pass, no torch, no onnxruntime); on top of it
this adds what transformers' BertForSequenceClassification does at inference:

    pooled = tanh(pooler.dense(h[CLS]))      logits = classifier(pooled)

Tokenization uses the model's tokenizer.json without padding, truncated at
min(512, max_position_embeddings) tokens. A pair [a, b] is encoded as
[CLS] a [SEP] b [SEP] with token type 0 for "[CLS] a [SEP]" and 1 for "b [SEP]";
a pair that is too long loses tokens from its longer side first.

Reads JSON on stdin, writes JSON on stdout:

    {"model_dir": "models/minilm-polarity-classifier",
     "inputs": ["a text", ["a query", "a passage"]]}
 -> {"logits": [[l0, l1], [l0, l1]],   one row of num_labels float64 per input
     "tokens": [7, 9],                 token count of each input after truncation
     "ids":    [[101, ...], [...]]}    the token ids themselves

With "embed": true the directory is a sentence-transformers model and the
answer is {"embeddings": [[...]], "tokens": [...], "chunks": [...]}: mean-pooled,
L2-normalized vectors from the same float64 encoder. With "chunk": true as well,
texts longer than the model's window are embedded whole (see `chunked`).

A relative model_dir is taken from the current directory.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__/ in scripts/ from the imports below
from reference_embeddings import BertReference  # noqa: E402

MAX_TOKENS = 512


def load(model_dir: str, head: bool = True) -> BertReference:
    """The encoder, with truncation at the model's own limit (at most 512);
    with head=True the pooler and classifier tensors must be there too."""
    ref = BertReference(model_dir)
    needed = ("pooler.dense.weight", "classifier.weight") if head else ("pooler.dense.weight",)
    for name in needed:
        if name not in ref.w:
            raise SystemExit(f"{model_dir}: model.safetensors has no {name}")
    ref.tokenizer.enable_truncation(max_length=min(MAX_TOKENS, ref.max_positions))
    return ref


def encode(ref: BertReference, item):
    """(ids, type_ids) of a text or of a [first, second] pair."""
    if isinstance(item, str):
        enc = ref.tokenizer.encode(item)
    elif isinstance(item, list) and len(item) == 2 and all(isinstance(s, str) for s in item):
        enc = ref.tokenizer.encode(item[0], item[1])
    else:
        raise SystemExit(f"an input is a string or a [string, string] pair, not {item!r}")
    return np.array(enc.ids, np.int64), np.array(enc.type_ids, np.int64)


def pad(encodings):
    """Right-padded ids, type ids and mask [B, T] for a list of (ids, type_ids)."""
    longest = max(len(ids) for ids, _ in encodings)
    ids = np.zeros((len(encodings), longest), np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for row, (i, t) in enumerate(encodings):
        ids[row, :len(i)], types[row, :len(t)], mask[row, :len(i)] = i, t, 1
    return ids, types, mask


def pooler_output(ref: BertReference, encodings) -> np.ndarray:
    """tanh(W h_CLS + b) [B, H] for one padded batch; padding never reaches h_CLS
    because the attention mask hides it from every real token."""
    ids, types, mask = pad(encodings)
    cls = ref.forward(ids, types, mask)[:, 0]
    return np.tanh(cls @ ref.w["pooler.dense.weight"].T + ref.w["pooler.dense.bias"])


def logits(ref: BertReference, encodings) -> np.ndarray:
    """Classifier logits [B, num_labels], each input run on its own (no padding)."""
    pooled = np.concatenate([pooler_output(ref, [e]) for e in encodings])
    return pooled @ ref.w["classifier.weight"].T + ref.w["classifier.bias"]


def chunked(ref: BertReference, text: str) -> dict:
    """A text of any length embedded whole, by hand: its tokens (no truncation)
    between [CLS] and [SEP] are cut into windows of max_seq_length - 2 tokens,
    each starting max_seq_length // 8 tokens before the previous one ends; each
    window, wrapped in [CLS] ... [SEP], is mean-pooled; the window vectors are
    averaged weighted by each window's token count, then L2-normalized."""
    ids = ref.untruncated.encode(text).ids
    if len(ids) <= ref.max_seq_length:
        out = ref.embed(text)
        out["chunks"] = 1
        return out
    head, content, tail = ids[:1], ids[1:-1], ids[-1:]
    width = ref.max_seq_length - 2
    stride = width - ref.max_seq_length // 8
    windows, start = [], 0
    while True:
        end = min(start + width, len(content))
        windows.append(head + content[start:end] + tail)
        if end == len(content):
            break
        start += stride
    total = np.zeros(ref.hidden)
    weight = 0
    for w in windows:
        w = np.array(w, np.int64)
        mask = np.ones_like(w)
        total += ref.mean_pool(ref.forward(w, None, mask), mask)[0] * len(w)
        weight += len(w)
    return {
        "embedding": ref.l2_normalize(total / weight),
        "token_count": weight,
        "chunks": len(windows),
    }


def main() -> int:
    req = json.load(sys.stdin)
    if req.get("embed"):
        # A sentence-transformers model: mean-pooled, L2-normalized embeddings.
        ref = BertReference(req["model_dir"])
        if req.get("chunk"):
            out = [chunked(ref, text) for text in req["inputs"]]
        else:
            out = [ref.embed(text) for text in req["inputs"]]
        json.dump({
            "embeddings": [o["embedding"].tolist() for o in out],
            "tokens": [o["token_count"] for o in out],
            "chunks": [o.get("chunks", 1) for o in out],
        }, sys.stdout)
        sys.stdout.write("\n")
        return 0
    ref = load(req["model_dir"])
    encodings = [encode(ref, item) for item in req["inputs"]]
    out = logits(ref, encodings) if encodings else np.zeros((0, 0))
    json.dump({
        "logits": out.tolist(),
        "tokens": [len(ids) for ids, _ in encodings],
        "ids": [ids.tolist() for ids, _ in encodings],
    }, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
