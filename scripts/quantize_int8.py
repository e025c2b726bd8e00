#!/usr/bin/env python3
"""Dynamically quantized int8 weights for the `speed` profile.

    quantize_int8.py FP32_ONNX OUT_ONNX

onnxruntime's `quantize_dynamic`: MatMul weights become int8, per output channel,
with activations quantized per batch at run time. `reduce_range` keeps weights to
7 bits: the AVX2 kernels without VNNI add pairs of u8×s8 products in 16 bits,
which saturate with full-range weights and cost accuracy.

The result is checked against the fp32 graph on a padded batch: Osprey reports
its own figure at start-up, this check only keeps a broken file from being written.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np


def main(src: str, out: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staged = os.path.join(tmp, "model_int8.onnx")
        quantize_dynamic(
            src,
            staged,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=["MatMul"],
        )
        low = check(src, staged)
        if low < 0.95:
            sys.exit(f"int8 graph too far from fp32: min cosine {low:.4f}")
        os.replace(staged, out)
    print(f"[quantize-int8] wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB, min cosine {low:.4f})")


def check(fp32: str, int8: str) -> float:
    import onnxruntime as ort

    rng = np.random.default_rng(7)
    lengths = [8, 17, 32, 45]
    ids = np.zeros((len(lengths), max(lengths)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1000, 29000, n)
        ids[row, 0], ids[row, n - 1] = 101, 102
        mask[row, :n] = 1
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    def pooled(path: str) -> np.ndarray:
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = {i.name for i in sess.get_inputs()}
        hidden = sess.run(None, {k: v for k, v in feed.items() if k in names})[0]
        m = mask[..., None].astype(np.float64)
        v = (hidden * m).sum(1) / m.sum(1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return float((pooled(fp32) * pooled(int8)).sum(1).min())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
