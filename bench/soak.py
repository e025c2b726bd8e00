"""Soak and overload runs against `osprey serve` on 127.0.0.1, checking every answer.

Mixed traffic from closed-loop client threads: repeated sentences, unique ones,
batches of 32 and malformed bodies. Every 200 is checked against the input it
answers: each sentence of a fixed set has an expected vector, computed beforehand
with `osprey embed` (no server involved); a repeated sentence must match its vector
(cosine >= 0.9999), a unique one (the sentence plus a marker) must be nearer to its
own sentence's vector than to any other in the set (checked when its cosine with
its own is under 0.85). Malformed bodies must get their
4xx. Rejections (429/503 with Retry-After) are counted, not errors; the client then
waits as Retry-After says (or 20 ms with --no-backoff). The server's RSS
is sampled throughout.

usage: python3 bench/soak.py [--binary target/release/osprey] [--duration 600]
           [--concurrency 48] [--mix unique:3,repeat:3,batch32:2,malformed:2]
           [--serve-args "--max-queue-tokens 8192"] [--config FILE]
           [--url http://127.0.0.1:8080 --pid N] [--json out.json]

Exits 1 on any lost or mismatched answer, unexpected status, or server crash.
"""
import argparse
import http.client
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MALFORMED = [
    (b'{"inputs":', 400),
    (b'{"inputs":[1,2]}', 422),
    (b'{"inputs":[]}', 422),
    (b'{"inputs":"a","inputs":"b"}', 422),
    (b'{"inputs":' + b"[" * 40 + b'"a"' + b"]" * 40 + b"}", 400),
    (b'{"inputs":"\\ud800"}', 400),
    (b'{"inputs":"a\x00"}', 400),
    (b'{"inputs":"a","normalize":"yes"}', 422),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def expected_vectors(binary, texts, extra):
    """Vectors from `osprey embed`, in chunks to keep the command line short."""
    out = []
    for i in range(0, len(texts), 50):
        chunk = texts[i:i + 50]
        r = subprocess.run([binary, "embed", *extra, *chunk], cwd=ROOT, capture_output=True, check=True)
        out.extend(json.loads(r.stdout))
    return out


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb)


def percentile(xs, p):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_kind = {}
        self.accepted_ms = []
        self.rejected_ms = []
        self.failures = []

    def add(self, kind, status, ms):
        with self.lock:
            k = self.by_kind.setdefault(kind, {})
            k[status] = k.get(status, 0) + 1
            if status == 200:
                self.accepted_ms.append(ms)
            elif status in (429, 503):
                self.rejected_ms.append(ms)

    def fail(self, what):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)
            self.by_kind.setdefault("failures", {})
            self.by_kind["failures"]["n"] = self.by_kind["failures"].get("n", 0) + 1


def worker(port, deadline, mix, texts, expected, stats, seed, batch_size, no_backoff):
    rnd = random.Random(seed)
    conn = None
    n = 0
    kinds = [k for k, w in mix for _ in range(w)]
    while time.time() < deadline:
        kind = rnd.choice(kinds)
        n += 1
        want_status = 200
        if kind == "repeat":
            idx = [rnd.randrange(len(texts))]
            inputs = [texts[i] for i in idx]
        elif kind == "unique":
            idx = [rnd.randrange(len(texts))]
            inputs = [f"{texts[idx[0]]} (soak {seed}-{n})"]
        elif kind.startswith("batch"):
            idx = [rnd.randrange(len(texts)) for _ in range(batch_size)]
            # Half unique, half repeated, in one request.
            inputs = [t if j % 2 else f"{t} (soak {seed}-{n}-{j})" for j, t in enumerate(texts[i] for i in idx)]
        else:
            body, want_status = rnd.choice(MALFORMED)
        if kind != "malformed":
            body = json.dumps({"inputs": inputs}).encode()
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/embed", body, {"content-type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            retry_after = resp.getheader("retry-after")
        except Exception as e:  # a lost answer: the connection failed or timed out
            stats.fail(f"{kind}: lost ({type(e).__name__}: {e})")
            conn = None
            time.sleep(0.05)
            continue
        ms = (time.perf_counter() - t0) * 1000
        stats.add(kind, status, ms)
        if status in (429, 503):
            if retry_after is None:
                stats.fail(f"{kind}: {status} without Retry-After")
            # A well-behaved client waits as told; --no-backoff hammers.
            time.sleep(0.02 if no_backoff else float(retry_after or 1))
            continue
        if status != want_status:
            stats.fail(f"{kind}: status {status}, expected {want_status}: {data[:200]!r}")
            continue
        if status != 200:
            try:
                err = json.loads(data)["error"]
                assert err["type"] and err["message"]
            except Exception:
                stats.fail(f"{kind}: error body not in the error shape: {data[:200]!r}")
            continue
        try:
            vectors = json.loads(data)
        except ValueError:
            stats.fail(f"{kind}: 200 with a body that is not JSON")
            continue
        if len(vectors) != len(inputs):
            stats.fail(f"{kind}: {len(vectors)} vectors for {len(inputs)} inputs")
            continue
        for j, (v, i) in enumerate(zip(vectors, idx)):
            exact = inputs[j] == texts[i]
            c = cosine(v, expected[i])
            if exact and c < 0.9999:
                stats.fail(f"{kind}: input {j} cosine {c:.5f} with its expected vector")
            elif not exact and c < 0.85:
                # Far from its own sentence: then no other may be nearer.
                best = max(range(len(expected)), key=lambda k: cosine(v, expected[k]))
                if best != i and cosine(v, expected[best]) > c + 1e-6:
                    stats.fail(f"{kind}: input {j} is nearer to sentence {best} than to its own {i}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/osprey"))
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--concurrency", type=int, default=48)
    ap.add_argument("--mix", default="unique:3,repeat:3,batch32:2,malformed:2")
    ap.add_argument("--sentences", type=int, default=120, help="size of the checked sentence set")
    ap.add_argument("--serve-args", default="", help="extra `osprey serve` arguments")
    ap.add_argument("--config", help="osprey.toml for the server")
    ap.add_argument("--url", help="use a running server instead of starting one")
    ap.add_argument("--pid", type=int, help="its pid, for RSS")
    ap.add_argument("--sample-every", type=float, default=10.0)
    ap.add_argument("--no-backoff", action="store_true", help="retry after 20 ms instead of Retry-After")
    ap.add_argument("--json")
    a = ap.parse_args()

    mix = []
    for part in a.mix.split(","):
        name, weight = part.split(":")
        mix.append((name, int(weight)))
    batch_size = next((int(k[5:]) for k, _ in mix if k.startswith("batch")), 32)

    lines = [l.strip() for l in open(os.path.join(HERE, "sentences.txt")) if l.strip()]
    texts = random.Random(7).sample(lines, a.sentences)
    extra = ["--config", a.config] if a.config else []
    t0 = time.time()
    expected = expected_vectors(a.binary, texts, extra)
    print(f"expected vectors for {len(texts)} sentences from `osprey embed` in {time.time() - t0:.1f} s", flush=True)

    proc = None
    if a.url:
        port = int(a.url.rsplit(":", 1)[1].strip("/"))
        pid = a.pid
    else:
        port = free_port()
        cmd = [a.binary, "serve", "--port", str(port), *extra, *a.serve_args.split()]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = proc.pid
        for _ in range(1200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.1)
        else:
            proc.kill()
            sys.exit("server not ready after 120 s")

    stats = Stats()
    start = time.time()
    deadline = start + a.duration
    threads = [
        threading.Thread(target=worker, args=(port, deadline, mix, texts, expected, stats, s, batch_size, a.no_backoff), daemon=True)
        for s in range(a.concurrency)
    ]
    for t in threads:
        t.start()
    samples = []
    crashed = False
    while any(t.is_alive() for t in threads):
        time.sleep(min(a.sample_every, max(0.1, deadline - time.time() + 0.5)))
        if proc is not None and proc.poll() is not None:
            crashed = True
            print(f"server exited with {proc.returncode}", flush=True)
            break
        if pid:
            elapsed = time.time() - start
            samples.append((round(elapsed, 1), round(rss_mb(pid), 1)))
            with stats.lock:
                done = sum(sum(v.values()) for k, v in stats.by_kind.items() if k != "failures")
            print(f"  t={elapsed:6.1f}s rss={samples[-1][1]:7.1f} MB answers={done}", flush=True)
    for t in threads:
        t.join(timeout=70)
    wall = time.time() - start
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    elif proc is not None:
        crashed = True

    def rss_at(t):
        near = [r for (s, r) in samples if s >= t]
        return near[0] if near else None

    r2 = rss_at(min(120, a.duration * 0.2))
    rend = samples[-1][1] if samples else None
    statuses = {}
    for kind, counts in stats.by_kind.items():
        if kind == "failures":
            continue
        for s, n in counts.items():
            statuses[s] = statuses.get(s, 0) + n
    server_errors = {s: n for s, n in statuses.items() if s >= 500 and s != 503}
    ok = statuses.get(200, 0)
    items_per_req = {"repeat": 1, "unique": 1}
    items = sum(
        counts.get(200, 0) * (batch_size if kind.startswith("batch") else items_per_req.get(kind, 0))
        for kind, counts in stats.by_kind.items()
    )
    summary = {
        "duration_s": round(wall, 1),
        "concurrency": a.concurrency,
        "mix": a.mix,
        "by_kind": {k: {str(s): n for s, n in v.items()} for k, v in stats.by_kind.items()},
        "statuses": {str(s): n for s, n in sorted(statuses.items())},
        "answered_per_s": round(sum(statuses.values()) / wall, 1),
        "embedded_items_per_s": round(items / wall, 1),
        "accepted_p50_ms": round(percentile(stats.accepted_ms, 50), 1),
        "accepted_p99_ms": round(percentile(stats.accepted_ms, 99), 1),
        "accepted_max_ms": round(max(stats.accepted_ms, default=0), 1),
        "rejected_p50_ms": round(percentile(stats.rejected_ms, 50), 2),
        "rejected_p99_ms": round(percentile(stats.rejected_ms, 99), 2),
        "rss_mb_at_20pct": r2,
        "rss_mb_end": rend,
        "rss_mb_max": max((r for _, r in samples), default=None),
        "rss_growth_pct": round((rend - r2) / r2 * 100, 2) if r2 and rend else None,
        "rss_samples": samples,
        "failures": stats.failures,
        "failure_count": stats.by_kind.get("failures", {}).get("n", 0),
        "server_errors": {str(k): v for k, v in server_errors.items()},
        "crashed": crashed,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rss_samples"}, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
    bad = crashed or summary["failure_count"] or server_errors or ok == 0
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
