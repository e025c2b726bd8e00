"""Benchmarks Osprey's result cache with `osprey bench` and prints a Markdown table.

Runs, each against a fresh `osprey serve` on 127.0.0.1:
  hits     Zipf-repeated set of 1,000 sentences, all cached in memory, 64 connections
  l2, l3   the same set served only from the disk tier, then only from Redis (memory
           off); server-side lookup latency read from /metrics
  miss     unique sentences (every request a miss), 64 connections, memory tier on
           and off, alternated, to show what the tier costs on a miss
  baseline (with --pybase DIR) the Python baseline, 2 workers, on the hits workload

usage: python3 bench/cache.py [--binary target/release/osprey] [--duration 20]
                              [--pybase $PYBASE] [--only hits,l2,l3,miss]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HZ = os.sysconf("SC_CLK_TCK")
CORPUS = os.path.join(HERE, "sentences.txt")
ZIPF = "zipf:1000:1.0"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def wait_ready(url, p, path="/health/ready"):
    t0 = time.time()
    while time.time() - t0 < 120:
        if p.poll() is not None:
            sys.exit(f"server exited with {p.returncode}")
        try:
            if get(url + path)[0] == 200:
                return
        except Exception:
            pass
        time.sleep(0.02)
    sys.exit("server not ready after 120 s")


def start_osprey(binary, env_extra):
    port = free_port()
    env = dict(os.environ, RUST_LOG="warn", **env_extra)
    p = subprocess.Popen([binary, "serve", "--port", str(port)], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, p)
    return p, url


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM) if getattr(p, "group", False) else p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def tree_ticks(pid):
    """CPU ticks of a process and its children (uvicorn workers)."""
    total = cpu_ticks(pid)
    try:
        for c in open(f"/proc/{pid}/task/{pid}/children").read().split():
            total += tree_ticks(int(c))
    except OSError:
        pass
    return total


def zipf_texts():
    # The texts `osprey bench -w zipf:1000` sends: corpus line i (cycled) + " z{i}".
    lines = [l.rstrip("\n") for l in open(CORPUS) if l.strip()]
    return [f"{lines[i % len(lines)]} z{i}" for i in range(1000)]


def warm(url):
    texts = zipf_texts()
    for i in range(0, len(texts), 32):
        body = json.dumps({"inputs": texts[i:i + 32]}).encode()
        req = urllib.request.Request(url + "/embed", data=body, headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=120).read()


def bench(binary, url, workload, conc, duration, pid, warmup="0s"):
    """Runs `osprey bench`; returns its JSON run plus the CPU shares of server and generator."""
    out = tempfile.mktemp(suffix=".json")
    cmd = [binary, "bench", "--url", url + "/embed", "-c", str(conc), "-d", f"{duration}s",
           "-w", workload, "--corpus", CORPUS, "--warmup", warmup, "-q", "--json", out]
    s0, t0 = tree_ticks(pid), time.time()
    err = tempfile.TemporaryFile()
    g = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(g.pid, 0)
    wall = time.time() - t0
    s1 = tree_ticks(pid)
    if not os.path.exists(out):
        err.seek(0)
        sys.exit(f"osprey bench failed ({status}): {err.read().decode(errors='replace')}")
    run = json.load(open(out))
    os.unlink(out)
    run = run["runs"][0] if "runs" in run else run
    run["server_cpu"] = (s1 - s0) / HZ / wall
    run["bench_cpu"] = (usage.ru_utime + usage.ru_stime) / wall
    return run


def summary(run):
    lat = run["latency_ms"]
    return {
        "rps": run["requests_per_s"],
        "p50": lat.get("p50"), "p99": lat.get("p99"),
        "errors": run.get("error_count"),
        "server_cpu": run["server_cpu"], "bench_cpu": run["bench_cpu"],
    }


def buckets(text, metric, tier):
    pat = re.compile(rf'^{metric}_bucket{{tier="{tier}",le="([^"]+)"}} (\S+)$', re.M)
    return {float("inf") if le == "+Inf" else float(le): float(v) for le, v in pat.findall(text)}


def quantile(before, after, q):
    diff = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = diff[-1][1] if diff else 0
    for le, n in diff:
        if total and n >= q * total:
            return le * 1000, int(total)
    return None, int(total)


def tier_run(binary, env, tier, duration):
    p, url = start_osprey(binary, env)
    try:
        warm(url)
        time.sleep(1.5)  # write-behind reaches disk and Redis
        _, before = get(url + "/metrics")
        run = bench(binary, url, ZIPF, 8, duration, p.pid)
        _, after = get(url + "/metrics")
        b = buckets(before, "osprey_cache_lookup_duration_seconds", tier)
        a = buckets(after, "osprey_cache_lookup_duration_seconds", tier)
        p50, n = quantile(b, a, 0.50)
        p99, _ = quantile(b, a, 0.99)
        s = summary(run)
        s.update(lookups=n, lookup_p50_le_ms=p50, lookup_p99_le_ms=p99)
        return s
    finally:
        stop(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/osprey"))
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--pybase", help="the Python baseline's work directory (after its setup.sh)")
    ap.add_argument("--only", default="hits,l2,l3,miss,baseline")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    a = ap.parse_args()
    only = set(a.only.split(","))
    results = {}

    if "hits" in only:
        p, url = start_osprey(a.binary, {})
        try:
            warm(url)
            results["hits"] = summary(bench(a.binary, url, ZIPF, 64, a.duration, p.pid, "2s"))
            note("hits", results["hits"])
        finally:
            stop(p)

    if "l2" in only:
        with tempfile.TemporaryDirectory() as d:
            results["l2"] = tier_run(a.binary, {
                "OSPREY_CACHE__MEMORY__MAX_BYTES": "0",
                "OSPREY_CACHE__DISK__PATH": os.path.join(d, "cache.redb")}, "disk", a.duration // 2)
            note("l2", results["l2"])

    if "l3" in only:
        prefix = f"osprey-bench:{time.time_ns()}:"
        results["l3"] = tier_run(a.binary, {
            "OSPREY_CACHE__MEMORY__MAX_BYTES": "0",
            "OSPREY_CACHE__REDIS__URL": a.redis_url,
            "OSPREY_CACHE__REDIS__KEY_PREFIX": prefix}, "redis", a.duration // 2)
        note("l3", results["l3"])
        subprocess.run(["redis-cli", "-u", a.redis_url, "--scan", "--pattern", prefix + "*"],
                       capture_output=True)

    if "miss" in only:
        for label, env in [("miss, memory on", {}), ("miss, memory off", {"OSPREY_CACHE__MEMORY__MAX_BYTES": "0"})] * 2:
            p, url = start_osprey(a.binary, env)
            try:
                s = summary(bench(a.binary, url, "unique", 64, a.duration, p.pid, "2s"))
            finally:
                stop(p)
            results.setdefault(label, []).append(s)
            note(label, s)

    if "baseline" in only and a.pybase:
        env = dict(os.environ, REDIS_URL=a.redis_url + "/0", ORT_THREADS="1", PYBASE=a.pybase,
                   PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp())
        port = free_port()
        p = subprocess.Popen([f"{a.pybase}/venv/bin/uvicorn", "app:app", "--host", "127.0.0.1",
                              "--port", str(port), "--workers", "2", "--log-level", "warning"],
                             cwd=a.pybase, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        p.group = True
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, p, "/health")
            time.sleep(1.0)
            warm(url)
            results["baseline hits"] = summary(bench(a.binary, url, ZIPF, 64, a.duration, p.pid, "5s"))
            note("baseline hits", results["baseline hits"])
        finally:
            stop(p)

    print(json.dumps(results, indent=1))
    table(results)


def note(name, r):
    print(f"{name}: {json.dumps(r)}", file=sys.stderr, flush=True)


def table(results):
    print("\n| run | req/s | p50 ms | p99 ms | errors | server CPU | generator CPU | lookup p50 / p99 (≤ bucket) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rs in results.items():
        for r in (rs if isinstance(rs, list) else [rs]):
            lk = ""
            if "lookup_p99_le_ms" in r:
                lk = f"≤ {r['lookup_p50_le_ms']} / ≤ {r['lookup_p99_le_ms']} ms ({r['lookups']} lookups)"
            print(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} | "
                  f"{r['server_cpu']*100:.0f}% | {r['bench_cpu']*100:.0f}% | {lk} |")


if __name__ == "__main__":
    main()
