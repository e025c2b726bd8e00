#!/usr/bin/env python3
"""ONNX graphs of the sequence-classification test models, built without torch.

For models/minilm-polarity-reranker/ and models/minilm-polarity-classifier/
(BertForSequenceClassification on all-MiniLM-L6-v2's encoder, see
build_test_models.py) this writes model.onnx next to model.safetensors, so the
onnx backend can serve them as it serves the candle one.

The encoder is all-MiniLM-L6-v2's fp32 ONNX graph (models/all-MiniLM-L6-v2/
onnx/model.onnx, made by build_fp32_onnx.py; inputs input_ids, attention_mask,
token_type_ids, output last_hidden_state [batch, seq, 384]). Its weights are
set to the model directory's `bert.*` tensors, matched by structure as
build_fp32_onnx.py matches them: an initializer named inner.X is tensor X; a
MatMul weight is the transposed nn.Linear weight of the layer whose bias the
MatMul's Add consumes. For the test models these are all-MiniLM-L6-v2's own
weights (the script counts how many differ: none), but any fine-tuned BERT
classifier of the same shape gets its own weights. On top of it come the
nodes of BertForSequenceClassification at inference:

    cls    = Gather(last_hidden_state, 0, axis=1)            [batch, 384]
    pooled = Tanh(cls @ pooler.dense.weight^T + bias)        [batch, 384]
    logits = pooled @ classifier.weight^T + bias             [batch, labels]

`logits` (float32 [batch, num_labels]) is the graph's only output, so it is
the first; last_hidden_state is no longer an output.

Every graph is checked before it is kept: onnxruntime's logits on a padded
batch of single texts and (query, text) pairs against scripts/reference_heads.py
(float64 numpy, through its JSON interface) must agree within 1e-4.

Commands:
    build [--force] [MODEL_DIR ...]   write MODEL_DIR/model.onnx where missing
                                      (with --force: always) and check it
    verify [MODEL_DIR ...]            check existing model.onnx files

MODEL_DIR defaults to both test models. A directory that is missing is skipped
with a message by build (build_test_models.py makes them) and is an error for
verify.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
MODELS = os.path.join(ROOT, "models")
MINILM_ONNX = os.path.join(MODELS, "all-MiniLM-L6-v2", "onnx", "model.onnx")
DEFAULT_DIRS = [os.path.join(MODELS, "minilm-polarity-reranker"),
                os.path.join(MODELS, "minilm-polarity-classifier")]
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
HIDDEN_OUTPUT = "last_hidden_state"
OUTPUT = "logits"
PREFIX = "inner."  # the ONNX export's name of the BertModel module
TOLERANCE = 1e-4
MAX_TOKENS = 512  # reference_heads.py truncates at min(512, max_position_embeddings)

CHECK_INPUTS = [
    "A gripping, beautifully acted film that stays with you.",
    "The plot is thin and the jokes fall flat.",
    "hello",
    "Le garçon a mangé une crème brûlée à l'hôtel près de la forêt.",
    ["a positive movie review", "An utterly charming story, told with wit and warmth."],
    ["a negative movie review", "An utterly charming story, told with wit and warmth."],
    ["what is the capital of France?", "Paris is the capital and most populous city of France."],
    ["what is the capital of France?", "The quick brown fox jumps over the lazy dog."],
    ["how do vaccines work?", " ".join(["Vaccines train the immune system to recognise a pathogen "
                                        "without causing the disease itself."] * 6)],
]


def log(msg: str) -> None:
    print(f"[build-reranker-onnx] {msg}", file=sys.stderr, flush=True)


def rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


def head_tensors(model_dir: str):
    """(encoder tensors without the bert. prefix, head tensors, number of labels)."""
    from safetensors.numpy import load_file

    st = load_file(os.path.join(model_dir, "model.safetensors"))
    encoder = {k[len("bert."):]: v for k, v in st.items() if k.startswith("bert.")}
    for name in ("pooler.dense.weight", "pooler.dense.bias"):
        if name not in encoder:
            raise SystemExit(f"{rel(model_dir)}: model.safetensors has no bert.{name}")
    for name in ("classifier.weight", "classifier.bias"):
        if name not in st:
            raise SystemExit(f"{rel(model_dir)}: model.safetensors has no {name}")
    head = {
        "pooler_w": encoder.pop("pooler.dense.weight"),
        "pooler_b": encoder.pop("pooler.dense.bias"),
        "classifier_w": st["classifier.weight"],
        "classifier_b": st["classifier.bias"],
    }
    labels = head["classifier_w"].shape[0]
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    if "id2label" in config and len(config["id2label"]) != labels:
        raise SystemExit(f"{rel(model_dir)}: config.json has {len(config['id2label'])} labels, "
                         f"classifier.weight has {labels} rows")
    return encoder, head, labels


def compare_with_minilm(encoder: dict) -> tuple:
    """(tensors equal to all-MiniLM-L6-v2's, tensors compared) over the encoder."""
    from safetensors.numpy import load_file

    minilm = load_file(os.path.join(MODELS, "all-MiniLM-L6-v2", "model.safetensors"))
    same = sum(1 for k, v in encoder.items()
               if k in minilm and minilm[k].shape == v.shape and np.array_equal(minilm[k], v))
    return same, len(encoder)


def remap_encoder(graph, encoder: dict) -> tuple:
    """Set every weight of the encoder graph to the directory's tensor.
    Returns (initializers set, how many of them changed)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    consumers: dict = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def key_of(name: str):
        if name.startswith(PREFIX):
            return name[len(PREFIX):], False
        users = consumers.get(name, [])
        if len(users) == 1 and users[0].op_type == "MatMul" and users[0].input[1] == name:
            adds = [a for a in consumers.get(users[0].output[0], []) if a.op_type == "Add"]
            biases = [i for a in adds for i in a.input
                      if i in inits and i.startswith(PREFIX) and i.endswith(".bias")]
            assert len(biases) == 1, (name, biases)
            return biases[0][len(PREFIX):-len(".bias")] + ".weight", True
        return None, False

    used, changed, replaced = set(), 0, []
    for t in graph.initializer:
        value = numpy_helper.to_array(t)
        key, transpose = key_of(t.name)
        if key is None:
            # Shape constants and scalars of the export (val_88 ...), no weights.
            assert value.ndim < 2 or value.dtype.kind != "f", (t.name, value.shape)
            continue
        if key not in encoder:
            raise SystemExit(f"graph tensor {t.name} is {key}, which model.safetensors lacks")
        assert key not in used, f"{key} matched twice"
        used.add(key)
        want = encoder[key].T if transpose else encoder[key]
        assert want.shape == value.shape and want.dtype == value.dtype, (key, want.shape, value.shape)
        if not np.array_equal(want, value):
            changed += 1
            replaced.append((t, numpy_helper.from_array(np.ascontiguousarray(want), t.name)))
    for old, new in replaced:
        old.CopyFrom(new)
    missing = sorted(k for k, v in encoder.items() if v.dtype.kind == "f" and k not in used)
    if missing:
        raise SystemExit(f"model.safetensors tensors the encoder graph does not use: {missing}")
    return len(used), changed


def build_graph(model_dir: str):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(MINILM_ONNX)
    g = model.graph
    names = [i.name for i in g.input]
    if "token_type_ids" not in names:
        raise SystemExit(f"{rel(MINILM_ONNX)} has no token_type_ids input (inputs: {names}); "
                         "a cross-encoder needs it for text pairs")
    assert sorted(names) == sorted(INPUTS), names
    outputs = [o.name for o in g.output]
    assert HIDDEN_OUTPUT in outputs, outputs

    encoder, head, labels = head_tensors(model_dir)
    same, total = compare_with_minilm(encoder)
    log(f"{rel(model_dir)}: {same} of {total} encoder tensors equal all-MiniLM-L6-v2's")
    mapped, changed = remap_encoder(g, encoder)
    log(f"{rel(model_dir)}: {mapped} encoder weights of the graph set from model.safetensors "
        f"({changed} differed from all-MiniLM-L6-v2's graph)")

    def const(name, value):
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    g.initializer.append(numpy_helper.from_array(np.array(0, np.int64), "head.cls_index"))
    const("head.pooler.weight_t", head["pooler_w"].T)
    const("head.pooler.bias", head["pooler_b"])
    const("head.classifier.weight_t", head["classifier_w"].T)
    const("head.classifier.bias", head["classifier_b"])
    g.node.extend([
        helper.make_node("Gather", [HIDDEN_OUTPUT, "head.cls_index"], ["head.cls"], axis=1,
                         name="head_cls"),
        helper.make_node("MatMul", ["head.cls", "head.pooler.weight_t"], ["head.pooler_mm"],
                         name="head_pooler_matmul"),
        helper.make_node("Add", ["head.pooler_mm", "head.pooler.bias"], ["head.pooler_pre"],
                         name="head_pooler_add"),
        helper.make_node("Tanh", ["head.pooler_pre"], ["head.pooled"], name="head_pooler_tanh"),
        helper.make_node("MatMul", ["head.pooled", "head.classifier.weight_t"], ["head.classifier_mm"],
                         name="head_classifier_matmul"),
        helper.make_node("Add", ["head.classifier_mm", "head.classifier.bias"], [OUTPUT],
                         name="head_classifier_add"),
    ])
    batch = g.input[0].type.tensor_type.shape.dim[0].dim_param or "batch"
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [batch, labels]))
    model.doc_string = (
        f"BertForSequenceClassification ({labels} label{'s' if labels != 1 else ''}) of "
        f"{os.path.basename(model_dir)}: all-MiniLM-L6-v2's fp32 encoder graph with the weights "
        "of model.safetensors, then BERT's pooler (tanh(W h[CLS] + b)) and the classifier. "
        "Output logits [batch, num_labels].")
    onnx.checker.check_model(model, full_check=True)
    return model, labels


def reference(model_dir: str, inputs) -> dict:
    """scripts/reference_heads.py's answer for `inputs` (its JSON interface)."""
    out = subprocess.run([sys.executable, os.path.join(SCRIPTS, "reference_heads.py")],
                         input=json.dumps({"model_dir": model_dir, "inputs": inputs}),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def check(model_dir: str, onnx_path: str) -> float:
    """Max |onnxruntime - float64 reference| over CHECK_INPUTS, run as one padded batch."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    with open(os.path.join(model_dir, "config.json")) as f:
        max_positions = int(json.load(f).get("max_position_embeddings", MAX_TOKENS))
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=min(MAX_TOKENS, max_positions))
    enc = [tok.encode(x) if isinstance(x, str) else tok.encode(x[0], x[1]) for x in CHECK_INPUTS]
    longest = max(len(e.ids) for e in enc)
    ids = np.zeros((len(enc), longest), np.int64)
    types, mask = np.zeros_like(ids), np.zeros_like(ids)
    for row, e in enumerate(enc):
        n = len(e.ids)
        ids[row, :n], types[row, :n], mask[row, :n] = e.ids, e.type_ids, 1
    assert types.any(), "the pairs should have token type 1"

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in sess.get_inputs()) == sorted(INPUTS)
    assert sess.get_outputs()[0].name == OUTPUT, [o.name for o in sess.get_outputs()]
    (got,) = sess.run([OUTPUT], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})

    want = reference(model_dir, CHECK_INPUTS)
    assert want["ids"] == [e.ids for e in enc], "tokenization differs from reference_heads.py"
    want = np.asarray(want["logits"])
    assert got.dtype == np.float32 and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    return float(np.abs(got.astype(np.float64) - want).max())


def readme_note(model_dir: str, labels: int, diff: float) -> None:
    """A paragraph on model.onnx in the directory's README.md (once)."""
    path = os.path.join(model_dir, "README.md")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if "`model.onnx`" in text:
        return
    text = text.rstrip("\n") + f"""

`model.onnx` holds the same model for the onnx backend: all-MiniLM-L6-v2's fp32
encoder graph with this directory's weights, then the pooler and the classifier;
inputs input_ids, attention_mask, token_type_ids (int64 [batch, seq]), one output
`logits` (float32 [batch, {labels}]). onnxruntime matches scripts/reference_heads.py
to {diff:.1e} on single texts and pairs. Built by scripts/build_reranker_onnx.py.
"""
    with open(path + ".part", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".part", path)


def build(model_dir: str, force: bool) -> None:
    import onnx

    out = os.path.join(model_dir, "model.onnx")
    if not os.path.isdir(model_dir):
        log(f"{rel(model_dir)}/ does not exist; skipped (scripts/build_test_models.py makes it)")
        return
    if os.path.exists(out) and not force:
        log(f"{rel(out)} present; skipped")
        return
    if not os.path.exists(MINILM_ONNX):
        raise SystemExit(f"{rel(MINILM_ONNX)} is missing: run scripts/fetch-onnxruntime.sh (make onnx)")
    t0 = time.time()
    model, labels = build_graph(model_dir)
    part = out + ".part"
    try:
        onnx.save(model, part)
        diff = check(model_dir, part)
        log(f"{rel(model_dir)}: onnxruntime logits vs reference_heads.py (float64): "
            f"max |diff| {diff:.2e} over {len(CHECK_INPUTS)} texts and pairs")
        if not diff < TOLERANCE:
            raise SystemExit(f"{rel(part)}: logits differ from the reference by {diff:.2e}")
        os.chmod(part, 0o644)
        os.replace(part, out)
    finally:
        if os.path.exists(part):
            os.remove(part)
    readme_note(model_dir, labels, diff)
    log(f"wrote {rel(out)} ({os.path.getsize(out) / 1e6:.1f} MB, logits [batch, {labels}]) "
        f"in {time.time() - t0:.0f} s")


def verify(model_dir: str) -> None:
    out = os.path.join(model_dir, "model.onnx")
    if not os.path.exists(out):
        raise SystemExit(f"{rel(out)} does not exist")
    diff = check(model_dir, out)
    log(f"{rel(out)}: onnxruntime logits vs reference_heads.py (float64): max |diff| {diff:.2e}")
    if not diff < TOLERANCE:
        raise SystemExit(f"{rel(out)}: logits differ from the reference by {diff:.2e}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write model.onnx where missing, and check it")
    b.add_argument("--force", action="store_true", help="rebuild even when model.onnx exists")
    b.add_argument("model_dirs", nargs="*", metavar="MODEL_DIR")
    v = sub.add_parser("verify", help="check existing model.onnx files")
    v.add_argument("model_dirs", nargs="*", metavar="MODEL_DIR")
    args = ap.parse_args(argv)
    dirs = [os.path.abspath(d) for d in args.model_dirs] or DEFAULT_DIRS
    for d in dirs:
        if args.command == "build":
            build(d, args.force)
        else:
            verify(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
