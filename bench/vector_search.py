"""Benchmarks Osprey's collections against FAISS (faiss-cpu, IndexHNSWFlat, M=16),
side by side in one run, and prints a Markdown table.

Data: N clustered vectors of DIM dimensions (seeded: gaussian clusters), cosine
similarity, and Q queries drawn from the same clusters. The truth is exact search
(float64 numpy). Osprey is the release binary, serving a fresh collection from a
temporary directory over HTTP on 127.0.0.1; FAISS is queried in process, one query
at a time, with efSearch raised until its recall matches Osprey's at Osprey's
default search settings.

Figures:
- ingest: points/s. Osprey: upserts of 1,000 points over HTTP with wait=true
  (durable and searchable: Osprey, like Qdrant, acknowledges a write before its
  vectors are in the graph), their JSON bodies encoded before the clock starts;
  FAISS: index.add of the same vectors in memory. Also Osprey's rate until
  every point is in the graph (the collection turns green), and its search
  time while points still wait for the graph.
- recall@10 against exact search.
- search time per query: Osprey's own (Server-Timing `search`, and `index`, the
  part on the blocking thread without the hand-off to it), and FAISS's.
- one client over HTTP: p50 and p99 of the whole request (keep-alive connection).
- QPS at 8 clients (8 processes, each its own keep-alive connection).
- text to results: a collection with the default model; a query by text on a
  cache miss against /embed of a text of the same length on a miss.

Each figure is taken for each storage of the graph named in --variants: float32
(the default), float16 (Qdrant's `datatype`), int8 (scalar quantization, rescored
from the stored vectors). FAISS's efSearch is matched to each one's recall.

usage: python3 bench/vector_search.py [--binary target/release/osprey] [--n 100000]
                                    [--dim 384] [--queries 1000] [--duration 10]
                                    [--variants float32,float16,int8] [--pin]

--pin: while the one client measures search time, the server is held to one
CPU and the client to the others (as when the client runs on another machine;
on two cores they otherwise take turns on the same caches). Ingest and QPS are
measured unpinned, and FAISS runs with every CPU after the server has stopped.
"""
import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method, path, body=None):
        if body is None or isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        self.c.request(method, path, body=data, headers=headers)
        r = self.c.getresponse()
        out = r.read()
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: {r.status} {out[:300]!r}")
        return json.loads(out), r.getheader("server-timing", "")


def stage(timing, name):
    for part in timing.split(","):
        part = part.strip()
        if part.startswith(name + ";dur="):
            return float(part.split("=", 1)[1]) / 1000.0
    return float("nan")


def clustered(rng, centers, n, noise):
    which = rng.integers(0, len(centers), size=n)
    return (centers[which] + noise * rng.normal(size=(n, centers.shape[1]))).astype(np.float32)


def normalized(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(data, queries, k=10):
    d = normalized(data.astype(np.float64))
    q = normalized(queries.astype(np.float64))
    out = []
    for i in range(0, len(q), 100):
        s = q[i : i + 100] @ d.T
        out.extend(np.argsort(-s, axis=1)[:, :k])
    return np.array(out)


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def start_server(binary, port, data_dir, ready_within=120):
    env = dict(os.environ)
    env.update(
        {
            "OSPREY_COLLECTIONS__PATH": data_dir,
            "OSPREY_SERVER__PORT": str(port),
            "OSPREY_TELEMETRY__ACCESS_LOG": "false",
            "OSPREY_LIMITS__MAX_QUEUE_MS": "0",
        }
    )
    log = open(os.path.join(os.path.dirname(data_dir), "osprey.log"), "w")
    p = subprocess.Popen([binary, "serve", "--model", os.path.join(ROOT, "models", "all-MiniLM-L6-v2")], env=env, stdout=log, stderr=log, cwd=ROOT)
    deadline = time.time() + ready_within
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health/ready")
            if c.getresponse().status == 200:
                return p
        except OSError:
            pass
        time.sleep(0.1)
    p.kill()
    sys.exit("Osprey did not become ready")


VARIANTS = {
    "float32": {},
    "float16": {"datatype": "float16"},
    "int8": {"quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}},
}


def create_body(dim, variant):
    extra = VARIANTS[variant]
    vectors = {"size": dim, "distance": "Cosine"}
    if "datatype" in extra:
        vectors["datatype"] = extra["datatype"]
    body = {"vectors": vectors}
    if "quantization_config" in extra:
        body["quantization_config"] = extra["quantization_config"]
    return body


def client_loop(port, name, queries, deadline, out):
    c = Conn(port)
    n, i = 0, 0
    while time.time() < deadline:
        c.call("POST", f"/collections/{name}/points/query", {"query": queries[i % len(queries)], "limit": 10})
        n += 1
        i += 1
    out.put(n)


class Pinned:
    """Holds every thread of process `pid` to the first CPU and this process to
    the others, then gives both all of them back."""

    def __init__(self, pid):
        self.pid = pid
        self.cpus = sorted(os.sched_getaffinity(0))

    def _set(self, server, own):
        subprocess.run(["taskset", "-a", "-p", "-c", server, str(self.pid)], check=True, stdout=subprocess.DEVNULL)
        os.sched_setaffinity(0, own)

    def __enter__(self):
        if self.pid is not None:
            self._set(str(self.cpus[0]), self.cpus[1:])

    def __exit__(self, *exc):
        if self.pid is not None:
            self._set(",".join(map(str, self.cpus)), self.cpus)


def measure_osprey(c, port, name, data, queries, truth, duration, pin=None):
    n = len(data)
    bodies = [
        json.dumps({"points": [{"id": i, "vector": data[i].tolist()} for i in range(s, min(s + 1000, n))]}).encode()
        for s in range(0, n, 1000)
    ]
    t = time.perf_counter()
    for body in bodies:
        c.call("PUT", f"/collections/{name}/points?wait=true", body)
    acked = time.perf_counter() - t
    ingest = n / acked
    qs = [q.tolist() for q in queries]
    # Searches while the graph is still being built (the points waiting are
    # compared exhaustively).
    during, waiting = [], None
    for q in qs[:50]:
        info, _ = c.call("GET", f"/collections/{name}")
        if info["result"]["status"] == "green":
            break
        waiting = info["result"]["points_count"] - info["result"]["indexed_vectors_count"] if waiting is None else waiting
        _, timing = c.call("POST", f"/collections/{name}/points/query", {"query": q, "limit": 10})
        during.append(stage(timing, "search"))
    while True:
        info, _ = c.call("GET", f"/collections/{name}")
        if info["result"]["status"] == "green":
            break
        time.sleep(0.05)
    indexed = n / (time.perf_counter() - t)
    found, search_s, index_s, total_s = [], [], [], []
    with Pinned(pin):
        for q in qs:
            t = time.perf_counter()
            body, timing = c.call("POST", f"/collections/{name}/points/query", {"query": q, "limit": 10})
            total_s.append(time.perf_counter() - t)
            search_s.append(stage(timing, "search"))
            index_s.append(stage(timing, "index"))
            found.append([p["id"] for p in body["result"]["points"]])
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    deadline = time.time() + duration
    procs = [ctx.Process(target=client_loop, args=(port, name, qs, deadline, out)) for _ in range(8)]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return {
        "ingest": ingest,
        "ingest_indexed": indexed,
        "waiting_at_ack": waiting or 0,
        "search_while_indexing_p50_ms": statistics.median(during) * 1000 if during else float("nan"),
        "recall": recall(found, truth),
        "search_p50_ms": statistics.median(search_s) * 1000,
        "index_p50_ms": statistics.median(index_s) * 1000,
        "http_p50_ms": statistics.median(total_s) * 1000,
        "http_p99_ms": float(np.percentile(total_s, 99)) * 1000,
        "qps8": total / duration,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "osprey"))
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--variants", default="float32,float16,int8")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="while one client measures search time, hold the server to one CPU and the "
        "client to the others, as when the client runs on another machine",
    )
    args = ap.parse_args()
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        sys.exit("--pin needs two CPUs")
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v}; known: {', '.join(VARIANTS)}")
    import faiss

    rng = np.random.default_rng(42)
    centers = rng.normal(size=(100, args.dim))
    data = clustered(rng, centers, args.n, 0.5)
    queries = clustered(rng, centers, args.queries, 0.5)
    truth = exact_top(data, queries)
    print(f"# {args.n} x {args.dim} clustered vectors, {args.queries} queries; cores: {os.cpu_count()}")

    tmp = tempfile.mkdtemp(prefix="osprey-collections-bench-")
    port = free_port()
    server = start_server(args.binary, port, os.path.join(tmp, "data"))
    rows = {}
    try:
        c = Conn(port)
        for v in variants:
            name = f"bench-{v}"
            c.call("PUT", f"/collections/{name}", create_body(args.dim, v))
            pin = server.pid if args.pin else None
            rows[v] = measure_osprey(c, port, name, data, queries, truth, args.duration, pin)
            # One collection in memory at a time.
            c.call("DELETE", f"/collections/{name}")
            print(f"# {v}: {json.dumps(rows[v])}", flush=True)

        # Text to results on a cache miss, against the embedding alone.
        c.call("PUT", "/collections/texts", {"vectors": {"distance": "Cosine"}, "model": "default"})
        c.call("PUT", "/collections/texts/points?wait=true", {"points": [{"id": i, "text": f"document number {i} about topic {i % 17}"} for i in range(2000)]})
        text_total, embed_total = [], []
        for i in range(200):
            t = time.perf_counter()
            c.call("POST", "/collections/texts/points/query", {"query": {"text": f"a question about topic {i} never asked before {i * 7919}"}, "limit": 10})
            text_total.append(time.perf_counter() - t)
            t = time.perf_counter()
            c.call("POST", "/embed", {"inputs": f"a question about topic {i} never embedded before {i * 7919}"})
            embed_total.append(time.perf_counter() - t)
        rows["text"] = {"query_p50_ms": statistics.median(text_total) * 1000, "embed_p50_ms": statistics.median(embed_total) * 1000}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)

    # FAISS in process, one query at a time, efSearch raised to each variant's recall.
    faiss.omp_set_num_threads(os.cpu_count())
    index = faiss.IndexHNSWFlat(args.dim, 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 128
    d = normalized(data).astype(np.float32)
    t = time.perf_counter()
    index.add(d)
    faiss_ingest = args.n / (time.perf_counter() - t)
    qn = normalized(queries).astype(np.float32)
    faiss.omp_set_num_threads(1)
    matched = {}
    for v in variants:
        chosen = None
        for ef in [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]:
            index.hnsw.efSearch = ef
            _, ids = index.search(qn, 10)
            r = recall(ids, truth)
            if r >= rows[v]["recall"] - 1e-9:
                chosen = (ef, r)
                break
        if chosen is None:
            chosen = (ef, r)
        index.hnsw.efSearch = chosen[0]
        times = []
        for q in qn:
            t = time.perf_counter()
            index.search(q[None, :], 10)
            times.append(time.perf_counter() - t)
        matched[v] = {"recall": chosen[1], "ef": chosen[0], "search_p50_ms": statistics.median(times) * 1000}
    rows["faiss"] = {"ingest": faiss_ingest, "matched": matched}

    f, tx = rows["faiss"], rows["text"]
    print()
    print("| figure | " + " | ".join(f"Osprey {v}" for v in variants) + " | FAISS HNSWFlat |")
    print("|---|" + "---|" * len(variants) + "---|")
    print("| ingest, points/s (Osprey: HTTP, durable; FAISS: in memory) | " + " | ".join(f"{rows[v]['ingest']:,.0f} ({rows[v]['ingest'] / f['ingest']:.2f}x)" for v in variants) + f" | {f['ingest']:,.0f} |")
    print("| until indexed (all points in the graph), points/s | " + " | ".join(f"{rows[v]['ingest_indexed']:,.0f} ({rows[v]['ingest_indexed'] / f['ingest']:.2f}x)" for v in variants) + " | |")
    print("| search p50 while indexing (points waiting at the last ack) | " + " | ".join(f"{rows[v]['search_while_indexing_p50_ms']:.2f} ms ({rows[v]['waiting_at_ack']:,})" for v in variants) + " | |")
    print("| recall@10, default settings | " + " | ".join(f"{rows[v]['recall']:.3f}" for v in variants) + " | " + ", ".join(f"{matched[v]['recall']:.3f} (efSearch {matched[v]['ef']})" for v in variants) + " |")
    print("| search per query, p50 (Osprey: Server-Timing) | " + " | ".join(f"{rows[v]['search_p50_ms']:.3f} ms ({rows[v]['search_p50_ms'] / matched[v]['search_p50_ms']:.2f}x)" for v in variants) + " | " + ", ".join(f"{matched[v]['search_p50_ms']:.3f} ms" for v in variants) + " |")
    print("| of which on the search thread (Server-Timing `index`) | " + " | ".join(f"{rows[v]['index_p50_ms']:.3f} ms ({rows[v]['index_p50_ms'] / matched[v]['search_p50_ms']:.2f}x)" for v in variants) + " | |")
    print("| one client over HTTP, p50 / p99 | " + " | ".join(f"{rows[v]['http_p50_ms']:.2f} / {rows[v]['http_p99_ms']:.2f} ms" for v in variants) + " | |")
    print("| QPS at 8 clients | " + " | ".join(f"{rows[v]['qps8']:,.0f}" for v in variants) + " | |")
    print()
    print(f"text query on a miss, p50 (embed + search): {tx['query_p50_ms']:.2f} ms; /embed alone: {tx['embed_p50_ms']:.2f} ms ({tx['query_p50_ms'] / tx['embed_p50_ms']:.2f}x)")
    print()
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
