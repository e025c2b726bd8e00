"""A Python cross-encoder rerank service, built as the Python baseline embedding
service is built, to measure Osprey's /rerank against: FastAPI + uvicorn +
onnxruntime + tokenizers, no cache, no dynamic batching across requests.

POST /rerank takes and answers text-embeddings-inference's shapes, as Osprey does:

    {"query": "...", "texts": ["...", ...], "raw_scores": false, "return_text": false,
     "truncate": true, "model": "..."}
 -> [{"index": 3, "score": 0.91}, ...]        highest score first (ties keep order)

All texts of one request run as one padded onnxruntime batch of
[CLS] query [SEP] text [SEP] pairs (token type 1 for "text [SEP]"); the score is
sigmoid(logit), or the logit with raw_scores. "model" is accepted and ignored.
GET /health answers 200 once the model is loaded (at import).

The graph is the reranker's model.onnx (scripts/build_reranker_onnx.py), run
with the baseline's onnxruntime settings: ORT_THREADS intra-op threads (0 = ORT's
default, the physical cores), one inter-op thread, all graph optimizations.

Env:
  MODEL_DIR       the reranker (default models/minilm-polarity-reranker)
  MODEL_PATH      ONNX file (default MODEL_DIR/model.onnx)
  TOKENIZER_PATH  tokenizer.json (default MODEL_DIR/tokenizer.json)
  ORT_THREADS     onnxruntime intra-op threads (0 = ORT default)
  MAX_BATCH       most texts per request (default 256, Osprey's server.max_inputs)
  MAX_LEN         tokens per pair after truncation (default 512)

Run (from the repository root):
  .venv/bin/python bench/rerank_service.py --port 8000
or, as the baseline runs, with N worker processes:
  .venv/bin/uvicorn rerank_service:app --app-dir bench --port 8000 --workers N
"""
import argparse
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL_DIR = os.environ.get("MODEL_DIR", os.path.join(ROOT, "models", "minilm-polarity-reranker"))
MODEL_PATH = os.environ.get("MODEL_PATH", os.path.join(MODEL_DIR, "model.onnx"))
TOKENIZER_PATH = os.environ.get("TOKENIZER_PATH", os.path.join(MODEL_DIR, "tokenizer.json"))
ORT_THREADS = int(os.environ.get("ORT_THREADS", "0"))
MAX_BATCH = int(os.environ.get("MAX_BATCH", "256"))
MAX_LEN = int(os.environ.get("MAX_LEN", "512"))  # BERT's position limit
MODEL_ID = os.path.basename(os.path.normpath(MODEL_DIR))

# ---- model -----------------------------------------------------------------
so = ort.SessionOptions()
if ORT_THREADS > 0:
    so.intra_op_num_threads = ORT_THREADS
so.inter_op_num_threads = 1
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(MODEL_PATH, sess_options=so, providers=["CPUExecutionProvider"])
INPUT_NAMES = {i.name for i in session.get_inputs()}
if "token_type_ids" not in INPUT_NAMES:
    raise SystemExit(f"{MODEL_PATH} has no token_type_ids input: it cannot read text pairs")
OUTPUT = session.get_outputs()[0].name  # logits [batch, 1]
tokenizer = Tokenizer.from_file(TOKENIZER_PATH)
tokenizer.enable_truncation(max_length=MAX_LEN)  # longest side of a pair first
tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest pair of the batch


def logits(query, texts):
    enc = tokenizer.encode_batch([(query, t) for t in texts])
    ids = np.asarray([e.ids for e in enc], dtype=np.int64)
    feed = {"input_ids": ids,
            "attention_mask": np.asarray([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in enc], dtype=np.int64)}
    (out,) = session.run([OUTPUT], feed)
    return out[:, 0]


# ---- app -------------------------------------------------------------------
app = FastAPI()


class RerankRequest(BaseModel):
    query: str
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool = True
    model: str | None = None


@app.get("/health")
def health():
    return {"status": "ok", "model": MODEL_ID}


@app.post("/rerank")
def rerank(req: RerankRequest):  # sync def: FastAPI runs it in its threadpool
    if not req.texts or len(req.texts) > MAX_BATCH:
        raise HTTPException(400, f"texts must have 1..{MAX_BATCH} strings")
    z = logits(req.query, req.texts)
    scores = z if req.raw_scores else 1.0 / (1.0 + np.exp(-z))
    order = np.argsort(-scores, kind="stable")
    out = []
    for i in order.tolist():
        item = {"index": i, "score": float(scores[i])}
        if req.return_text:
            item["text"] = req.texts[i]
        out.append(item)
    return out


def main():
    import uvicorn

    ap = argparse.ArgumentParser(description="Python cross-encoder rerank service (FastAPI + onnxruntime); "
                                 "several workers: run it with the uvicorn command (see the top of the file)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--log-level", default="warning")
    a = ap.parse_args()
    uvicorn.run(app, host=a.host, port=a.port, log_level=a.log_level)


if __name__ == "__main__":
    main()
