"""Osprey's collections through the official qdrant-client package, checked against
exact float64 numpy search. Usage: qdrant_check.py BASE_URL. Prints "ok" at the
end; any failed check raises."""

import sys
import time
import uuid

import httpx
import numpy as np
from qdrant_client import QdrantClient, models

BASE = sys.argv[1]
client = QdrantClient(url=BASE, check_compatibility=False, timeout=120)
rng = np.random.default_rng(7)

DIM, N, CLUSTERS = 32, 3000, 20
CITIES = ["Paris", "Lyon", "Nice", "Lille"]


CENTERS = rng.normal(size=(CLUSTERS, DIM))


def clustered(n):
    centers = CENTERS
    which = rng.integers(0, CLUSTERS, size=n)
    return centers[which] + 0.3 * rng.normal(size=(n, DIM))


def normalized(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# Collections: create, exists, get, list.
name = "qdrant-check"
if client.collection_exists(name):
    client.delete_collection(name)
assert client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
assert client.collection_exists(name)
assert not client.collection_exists("no-such-collection")
assert name in [c.name for c in client.get_collections().collections]
info = client.get_collection(name)
assert info.config.params.vectors.size == DIM, info
assert info.points_count == 0, info

# Points: integer and UUID ids, payloads with a string, a number and a list.
vectors = clustered(N)
ids = [i if i % 10 else str(uuid.UUID(int=i + 1)) for i in range(N)]
payloads = [{"city": CITIES[i % 4], "n": i, "tags": ["even" if i % 2 == 0 else "odd", f"t{i % 7}"]} for i in range(N)]
for start in range(0, N, 500):
    points = [
        models.PointStruct(id=ids[i], vector=vectors[i].astype(np.float32).tolist(), payload=payloads[i])
        for i in range(start, min(start + 500, N))
    ]
    result = client.upsert(name, points=points, wait=True)
    assert result.status == models.UpdateStatus.COMPLETED, result
assert client.get_collection(name).points_count == N
assert client.count(name).count == N

stored = normalized(vectors.astype(np.float32).astype(np.float64))


def exact(query, mask=None, k=10):
    scores = stored @ normalized(query)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores)[:k]
    return [ids[i] for i in order if np.isfinite(scores[i])]


def recall(found, truth):
    return len(set(found) & set(truth)) / max(1, len(truth))


# Writes are acknowledged before their vectors are in the graph: the collection
# is yellow until the indexer catches up, and the points waiting are searched
# exhaustively meanwhile.
info = client.get_collection(name)
assert info.status in (models.CollectionStatus.GREEN, models.CollectionStatus.YELLOW), info
assert (info.status == models.CollectionStatus.YELLOW) == (info.indexed_vectors_count < N), info

# Search: recall@10 against exact search, with and without filters, both while
# the graph is being built and once it is whole.
queries = clustered(50)


def plain_recall():
    return np.mean([recall([p.id for p in client.query_points(name, query=q.tolist(), limit=10).points], exact(q)) for q in queries])


r = plain_recall()
assert r >= 0.95, f"recall@10 while indexing {r}"
deadline = time.time() + 300
while client.get_collection(name).status != models.CollectionStatus.GREEN:
    assert time.time() < deadline, "indexing did not finish within 5 minutes"
    time.sleep(0.1)
assert client.get_collection(name).indexed_vectors_count == N


def gauge(metric):
    text = httpx.get(f"{BASE}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith(f'{metric}{{collection="{name}"}} '):
            return float(line.split()[-1])
    raise AssertionError(f"{metric} for {name} not in /metrics")


assert gauge("osprey_collection_points") == N
assert gauge("osprey_collection_unindexed_points") == 0
r = plain_recall()
assert r >= 0.95, f"recall@10 {r}"

paris = np.array([p["city"] == "Paris" for p in payloads])
r = np.mean(
    [
        recall(
            [
                p.id
                for p in client.query_points(
                    name,
                    query=q.tolist(),
                    limit=10,
                    query_filter=models.Filter(must=[models.FieldCondition(key="city", match=models.MatchValue(value="Paris"))]),
                ).points
            ],
            exact(q, paris),
        )
        for q in queries
    ]
)
assert r >= 0.95, f"filtered recall@10 {r}"

# A selective filter: range, list membership, must_not.
mask = np.array([100 <= p["n"] < 400 and "t3" in p["tags"] and p["city"] != "Nice" for p in payloads])
flt = models.Filter(
    must=[models.FieldCondition(key="n", range=models.Range(gte=100, lt=400)), models.FieldCondition(key="tags", match=models.MatchAny(any=["t3"]))],
    must_not=[models.FieldCondition(key="city", match=models.MatchValue(value="Nice"))],
)
q = queries[0]
got = client.query_points(name, query=q.tolist(), limit=10, query_filter=flt, with_payload=True).points
assert [p.id for p in got] == exact(q, mask), (got, exact(q, mask))
for p in got:
    assert 100 <= p.payload["n"] < 400 and "t3" in p.payload["tags"] and p.payload["city"] != "Nice"
assert client.count(name, count_filter=flt).count == int(mask.sum())

# Scores are cosine similarities, best first.
top = client.query_points(name, query=q.tolist(), limit=5, with_vectors=True).points
for p in top:
    assert abs(p.score - float(normalized(np.array(p.vector)) @ normalized(q))) < 1e-4
assert all(a.score >= b.score for a, b in zip(top, top[1:]))

# Retrieve and scroll.
got = client.retrieve(name, ids=[ids[3], ids[10]], with_vectors=True)
assert sorted(map(str, [p.id for p in got])) == sorted(map(str, [ids[3], ids[10]]))
for p in got:
    i = ids.index(p.id)
    assert np.allclose(p.vector, stored[i], atol=1e-5)
    assert p.payload == payloads[i]
seen, offset = [], None
while True:
    page, offset = client.scroll(name, limit=700, offset=offset)
    seen += [p.id for p in page]
    if offset is None:
        break
assert len(seen) == N and len(set(map(str, seen))) == N

# Delete by ids and by filter.
client.delete(name, points_selector=models.PointIdsList(points=[ids[1], ids[2]]), wait=True)
assert client.count(name).count == N - 2
lille = int(sum(1 for i, p in enumerate(payloads) if p["city"] == "Lille" and i not in (1, 2)))
client.delete(name, points_selector=models.FilterSelector(filter=models.Filter(must=[models.FieldCondition(key="city", match=models.MatchValue(value="Lille"))])), wait=True)
assert client.count(name).count == N - 2 - lille

# Errors in Qdrant's shape: wrong size, unknown collection, malformed filter.
http = httpx.Client(base_url=BASE, timeout=60)
r = http.put(f"/collections/{name}/points?wait=true", json={"points": [{"id": 1, "vector": [0.1, 0.2]}]})
assert r.status_code == 400 and "error" in r.json()["status"], r.text
r = http.post("/collections/no-such-collection/points/query", json={"query": [0.0] * DIM})
assert r.status_code == 404 and "error" in r.json()["status"], r.text
r = http.post(f"/collections/{name}/points/query", json={"query": [0.0] * DIM, "filter": {"must": [{"key": "n", "range": {"gte": "x"}}]}})
assert r.status_code == 400, r.text
r = http.put(f"/collections/{name}/points?wait=true", content=b'{"points": [{"id": 5, "vector": [NaN' + b", 0.0" * (DIM - 1) + b"]}]}", headers={"content-type": "application/json"})
assert r.status_code == 400, r.text

# Payloads come back from a query only when asked for (Qdrant's default).
r = http.post(f"/collections/{name}/points/query", json={"query": queries[1].tolist(), "limit": 3})
assert r.status_code == 200 and all("payload" not in p for p in r.json()["result"]["points"]), r.text

# Texts: a collection that embeds with the default model, queried by text.
texts = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A kitten naps on a rug.", "Interest rates rose again."]
r = http.put("/collections/texts", json={"vectors": {"distance": "Cosine"}, "model": "default"})
assert r.status_code == 200, r.text
r = http.put("/collections/texts/points?wait=true", json={"points": [{"id": i, "text": t, "payload": {"text": t}} for i, t in enumerate(texts)]})
assert r.status_code == 200, r.text
r = http.post("/collections/texts/points/query", json={"query": {"text": "a sleeping cat"}, "limit": 2, "with_payload": True})
assert r.status_code == 200, r.text
assert {p["id"] for p in r.json()["result"]["points"]} == {0, 2}, r.text
assert "embed;dur=" in r.headers.get("server-timing", "") and "search;dur=" in r.headers["server-timing"]
embedded = np.array(http.post("/embed", json={"inputs": texts[1]}).json()[0])
stored_vec = np.array(client.retrieve("texts", ids=[1], with_vectors=True)[0].vector)
assert float(normalized(embedded) @ normalized(stored_vec)) > 0.9999

# Quantization: int8 codes in the graph, rescored from the stored vectors, and a
# float16 graph; both through qdrant-client's own models.
for qname, extra in [
    ("int8", {"quantization_config": models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True))}),
    ("float16", {}),
]:
    params = models.VectorParams(size=DIM, distance=models.Distance.COSINE, datatype=models.Datatype.FLOAT16 if qname == "float16" else None)
    assert client.create_collection(f"q-{qname}", vectors_config=params, **extra)
    info = client.get_collection(f"q-{qname}")
    if qname == "int8":
        assert info.config.quantization_config.scalar.type == models.ScalarType.INT8, info
    else:
        assert info.config.params.vectors.datatype == models.Datatype.FLOAT16, info
    client.upsert(f"q-{qname}", points=[models.PointStruct(id=ids[i], vector=vectors[i].astype(np.float32).tolist()) for i in range(N)], wait=True)
    # Isotropic noise leaves the nearest neighbours nearly equidistant here,
    # closer than int8 codes resolve, so more candidates are rescored.
    search = models.SearchParams(quantization=models.QuantizationSearchParams(rescore=True, oversampling=10.0))
    qr = np.mean([recall([p.id for p in client.query_points(f"q-{qname}", query=q.tolist(), limit=10, search_params=search).points], exact(q)) for q in queries])
    assert qr >= 0.95, (qname, qr)
    top = client.query_points(f"q-{qname}", query=queries[2].tolist(), limit=3, with_vectors=True, search_params=search).points
    for p in top:
        i = ids.index(p.id)
        want = float(stored[i] @ normalized(queries[2]))
        assert abs(p.score - want) < (1e-4 if qname == "int8" else 5e-3), (qname, p.score, want)
        # int8 answers carry the stored vector, not its codes.
        assert np.allclose(p.vector, stored[i], atol=1e-5 if qname == "int8" else 2e-3), qname
    assert client.delete_collection(f"q-{qname}")
r = http.put("/collections/q-bad", json={"vectors": {"size": 4, "distance": "Dot"}, "quantization_config": {"product": {"compression": "x16"}}})
assert r.status_code == 400 and "scalar" in r.json()["status"]["error"], r.text
r = http.put("/collections/q-bad", json={"vectors": {"size": 4, "distance": "Dot", "datatype": "uint8"}})
assert r.status_code == 400, r.text
r = http.post("/collections/texts/points/query", json={"query": [0.0] * 384, "params": {"quantization": {"oversampling": 0.5}}})
assert r.status_code == 400 and "oversampling" in r.text, r.text

# The dashboard's collections table: points and the last minute's searches.
rows = {c["name"]: c for c in http.get("/dashboard/data").json()["collections"]}
assert rows[name]["points"] == client.count(name).count, rows
assert rows[name]["searches"] > 0 and rows[name]["p50_ms"] > 0, rows
assert "q-int8" not in rows, rows

assert client.delete_collection(name)
assert client.delete_collection("texts")
assert not client.collection_exists(name)
print("ok")
