"""How long a large collection takes to come back after a restart: from its saved
index (a clean stop saves it), and rebuilt from the store (no snapshot, as after a
crash before the first save).

Fills a collection of N clustered vectors over HTTP (upserts of 1,000, wait=true),
stops Osprey with SIGTERM, starts it again and times readiness, then removes the
snapshot files and times readiness once more. Prints each phase's seconds, the
"collection opened" log line, and RSS after each start.

usage: python3 bench/collection_restart.py [--binary target/release/osprey]
                                         [--n 1000000] [--dim 384]
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import tempfile
import time

import numpy as np

from vector_search import ROOT, Conn, free_port, start_server


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def opened_line(log_path):
    with open(log_path) as f:
        lines = [l for l in f if "collection opened" in l]
    # The log is coloured when a terminal is around; the colours go.
    return re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]).strip() if lines else "(no line)"


def restart(binary, port, data_dir, label):
    log = os.path.join(os.path.dirname(data_dir), "osprey.log")
    t = time.perf_counter()
    server = start_server(binary, port, data_dir, ready_within=3600)
    took = time.perf_counter() - t
    line = opened_line(log)
    elapsed = re.search(r"elapsed_ms=(\d+)", line)
    print(f"{label}: ready after {took:.1f} s (collection opened in {int(elapsed.group(1)) / 1000 if elapsed else float('nan'):.1f} s), RSS {rss_mb(server.pid):,.0f} MB", flush=True)
    print(f"  {line}", flush=True)
    return server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "osprey"))
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    centers = rng.normal(size=(100, args.dim)).astype(np.float32)
    tmp = tempfile.mkdtemp(prefix="osprey-restart-bench-")
    data_dir = os.path.join(tmp, "data")
    port = free_port()
    server = start_server(args.binary, port, data_dir)
    try:
        c = Conn(port)
        c.call("PUT", "/collections/big", {"vectors": {"size": args.dim, "distance": "Cosine"}})
        t = time.perf_counter()
        for s in range(0, args.n, 1000):
            n = min(1000, args.n - s)
            v = centers[rng.integers(0, 100, size=n)] + 0.5 * rng.normal(size=(n, args.dim)).astype(np.float32)
            body = json.dumps({"points": [{"id": s + i, "vector": v[i].tolist()} for i in range(n)]}).encode()
            c.call("PUT", "/collections/big/points?wait=true", body)
        fill = time.perf_counter() - t
        print(f"filled {args.n:,} x {args.dim} in {fill:.0f} s ({args.n / fill:,.0f} points/s, encoding included); RSS {rss_mb(server.pid):,.0f} MB", flush=True)
        t = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=600)
        print(f"clean stop (saves the index): {time.perf_counter() - t:.1f} s", flush=True)

        server = restart(args.binary, port, data_dir, "restart from the saved index")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=600)
        removed = 0
        for f in glob.glob(os.path.join(data_dir, "*", "index.*")):
            os.remove(f)
            removed += 1
        print(f"removed {removed} snapshot files", flush=True)
        server = restart(args.binary, port, data_dir, "restart rebuilding the graph from the store")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=600)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
