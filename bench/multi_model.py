"""What serving several models in one Osprey process costs, and prints Markdown tables.

1. Throughput: /embed on all-MiniLM-L6-v2 ("minilm") with unique texts (every
   input a cache miss; bench/run.py's unique workload: 1 input per request, 64
   connections, closed loop, by default) against
     A  a server of minilm alone, and
     B  a server of minilm + paraphrase-MiniLM-L3-v2 + the polarity classifier +
        the reranker (+ with --with-tensor the two scikit-learn ONNX models),
        the load still on minilm only (requests name it: "model": "minilm").
   Runs alternate A, B, A, B, ... (--rounds pairs; these machines are noisy), each
   on a freshly started server; the table shows medians and the ratio B / A of
   throughput, p50/p99 latency and resident memory (right after ready, and after
   the load). "other CPU %" is what the rest of the machine used meanwhile (wrk,
   and anything else running: a noise indicator; 2 cores = 200 %).
2. Memory per model: the servers of the first 1, 2, ... models of B, started one
   after another; resident memory right after ready against the size of each
   added model's weight file (model.safetensors on candle, the ONNX file on
   onnx and for tensor models).
3. Replicas: minilm alone with replicas = 1 and 2, memory right after ready and
   after a short load (replicas share their weights on both backends, unless
   onnx_prepack is on).
4. Prepack (--only prepack, onnx): minilm alone, replicas reading one copy of the
   weights against `onnx_prepack = true`, A/B like the throughput part.

Every server is `osprey serve --config` with a temporary [[models]] config on a
free 127.0.0.1 port, result cache off; one server runs at a time.

usage: python3 bench/multi_model.py [--binary target/release/osprey] [--backend candle|onnx]
                                    [--duration 20] [--conc 64] [--batch 1] [--rounds 2]
                                    [--with-tensor] [--replicas N] [--quiet-wait 30]
                                    [--only throughput,memory,replicas] [--json out.json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__/ in bench/ from the import below
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rerank as rr  # noqa: E402  (server start/stop, wrk, /proc helpers)

ROOT = rr.ROOT
MODELS = os.path.join(ROOT, "models")
TEXT_MODELS = [  # (name, directory): the order the memory table adds them in
    ("minilm", "all-MiniLM-L6-v2"),
    ("paraphrase", "paraphrase-MiniLM-L3-v2"),
    ("classifier", "minilm-polarity-classifier"),
    ("reranker", "minilm-polarity-reranker"),
]
TENSOR_MODELS = [("breast-cancer-risk", "breast-cancer-risk"), ("digits-classifier", "digits-classifier")]
TARGET = "minilm"

# POST /embed with never-seen-before sentences, naming the model (MODEL).
EMBED_LUA = os.path.join(HERE, "wrk", "embed.lua")


def model_entries(a, tensor):
    """[[models]] tables of configuration B, in order."""
    out = [{"name": n, "path": os.path.join(MODELS, d), "backend": a.backend, "replicas": a.replicas}
           for n, d in TEXT_MODELS]
    if tensor:
        out += [{"name": n, "path": os.path.join(MODELS, d)} for n, d in TENSOR_MODELS]
    return out


def weights_file(entry, backend):
    """The file the backend loads for the model: what its memory should grow by."""
    d = entry["path"]
    if "backend" not in entry:  # a tensor model
        return os.path.join(d, "model.onnx")
    names = ["model.safetensors"] if backend == "candle" else ["onnx/model.onnx", "model.onnx"]
    for n in names:
        if os.path.isfile(os.path.join(d, n)):
            return os.path.join(d, n)
    sys.exit(f"{d} has no {' or '.join(names)} (make test-models builds the test models)")


def wrk_embed(url, lua, conc, duration, batch):
    env = dict(os.environ, BATCH=str(batch), SENTENCES=os.path.join(HERE, "sentences.txt"),
               NONCE=str(time.time_ns() // 10**6 % 10**9), MODEL=TARGET)
    threads = 1 if conc == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{conc}", f"-d{duration}s", "--timeout", "30s", "-s", lua, url + "/embed"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    secs = r["duration_us"] / 1e6
    r.update(req_s=r["requests"] / secs, sent_s=r["requests"] * batch / secs,
             errors=r["err_status"] + r["err_timeout"] + r["err_read"] + r["err_connect"] + r["err_write"])
    return r


def settled_rss(pid, wait=1.0):
    """RSS a moment after ready (loading threads finish freeing their buffers)."""
    time.sleep(wait)
    return rr.rss_mb(pid)


def throughput(a, work, lua, configs):
    """A/B runs of `configs` (label: ([[models]] entries, [model] keys or None))."""
    runs = {k: [] for k in configs}
    for rnd in range(a.rounds):
        for label, (entries, model_table) in configs.items():
            proc, url, secs = rr.start_osprey(a.binary, entries, work, model_table=model_table)
            try:
                rss_ready = settled_rss(proc.pid)
                waited = rr.wait_quiet(a.quiet_wait) if a.quiet_wait else 0.0
                wrk_embed(url, lua, 2, a.warmup, a.batch)  # warm-up, not measured
                with rr.RssPeak(proc.pid) as peak, rr.CpuShare(proc.pid) as cpu:
                    r = wrk_embed(url, lua, a.conc, a.duration, a.batch)
                r.update(cpu_pct=cpu.server_pct, other_cpu_pct=cpu.other_pct,
                         rss_ready_mb=rss_ready, rss_after_mb=rr.rss_mb(proc.pid), rss_peak_mb=peak.peak,
                         ready_s=secs, quiet_wait_s=waited)
            finally:
                rr.stop(proc)
            runs[label].append(r)
            print(f"round {rnd + 1} {label}: {r['sent_s']:.1f} inputs/s, p99 {r['p99_us'] / 1000:.0f} ms, "
                  f"errors {r['errors']}, RSS {r['rss_ready_mb']:.0f} -> {r['rss_after_mb']:.0f} MB",
                  file=sys.stderr)
            time.sleep(0.5)

    cols = [("req_s", "req/s"), ("sent_s", "inputs/s"), ("p50_us", "p50 ms"), ("p99_us", "p99 ms"),
            ("errors", "errors"), ("cpu_pct", "CPU %"), ("other_cpu_pct", "other CPU %"),
            ("rss_ready_mb", "RSS ready MB"),
            ("rss_after_mb", "RSS after load MB"), ("rss_peak_mb", "peak RSS MB")]
    print(f"\n/embed on {TARGET} ({a.backend}), unique texts, {a.batch} input(s) per request, "
          f"{a.conc} connections, {a.duration} s per run; runs alternate A/B, median of {a.rounds} each\n")
    print("| server | " + " | ".join(h for _, h in cols) + " | runs (inputs/s) |")
    print("|---|" + "---|" * (len(cols) + 1))
    med = {}
    for label, rs in runs.items():
        med[label] = m = {k: statistics.median(r[k] for r in rs) for k, _ in cols}
        cells = [f"{m[k] / 1000:.1f}" if k.endswith("_us") else f"{m[k]:.1f}" if k.endswith("_s")
                 else f"{m[k]:.0f}" for k, _ in cols]
        print(f"| {label} | " + " | ".join(cells) + " | " + ", ".join(f"{r['sent_s']:.0f}" for r in rs) + " |")
    a_, b_ = list(med)
    ratio = [f"{med[b_][k] / med[a_][k]:.2f}x" if med[a_][k] and k not in ("errors", "other_cpu_pct") else ""
             for k, _ in cols]
    print(f"| B / A | " + " | ".join(ratio) + " | |")
    return {"runs": runs, "median": med}


def memory(a, work, entries_b):
    rows, prev = [], None
    for k in range(1, len(entries_b) + 1):
        proc, url, secs = rr.start_osprey(a.binary, entries_b[:k], work)
        added = entries_b[k - 1]
        try:
            rss = settled_rss(proc.pid)
            cards = rr.http("GET", url + "/v1/models")[1]["data"]
            reps = next((c.get("details", {}).get("replicas") for c in cards
                         if c.get("name") == added["name"]), None)
        finally:
            rr.stop(proc)
        f = weights_file(added, a.backend)
        size = os.path.getsize(f) / 2**20
        rows.append({"models": k, "added": added["name"], "replicas": reps, "weights_file": os.path.relpath(f, ROOT),
                     "weights_mb": size, "rss_mb": rss, "ready_s": secs,
                     "delta_mb": None if prev is None else rss - prev})
        prev = rss
        print(f"{k} model(s), + {added['name']}: RSS {rss:.0f} MB, ready in {secs:.1f} s", file=sys.stderr)
        time.sleep(0.5)
    print(f"\nresident memory right after ready, models added one at a time ({a.backend}; "
          "a tensor model is always onnx)\n")
    print("| models | added | its replicas | its weights file | file MB | RSS MB | RSS increase MB | increase / file |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = r["delta_mb"]
        print(f"| {r['models']} | {r['added']} | {r['replicas'] if r['replicas'] is not None else '-'} | "
              f"{r['weights_file']} | {r['weights_mb']:.1f} | {r['rss_mb']:.0f} | "
              f"{'(first)' if d is None else f'{d:+.0f}'} | "
              f"{'' if d is None or r['weights_mb'] < 1 else format(d / r['weights_mb'], '.2f')} |")
    if a.backend == "onnx":
        print("\nonnx replicas read one copy of the weights (onnx_prepack off): the increase counts every replica.")
    if any("backend" not in e for e in entries_b) and a.backend == "candle":
        print("\nThe first tensor model also loads the onnxruntime library, which the candle "
              "text models do not use: its increase is mostly that library, not the model.")
    return rows


def replicas(a, work, lua):
    rows = []
    base = {"name": TARGET, "path": os.path.join(MODELS, TEXT_MODELS[0][1]), "backend": a.backend}
    for n in (1, 2):
        proc, url, _ = rr.start_osprey(a.binary, [dict(base, replicas=n)], work)
        try:
            ready = settled_rss(proc.pid)
            with rr.RssPeak(proc.pid) as peak:
                r = wrk_embed(url, lua, 8, a.warmup, a.batch)
            rows.append({"replicas": n, "rss_ready_mb": ready, "rss_after_mb": rr.rss_mb(proc.pid),
                         "rss_peak_mb": peak.peak, "sent_s": r["sent_s"]})
        finally:
            rr.stop(proc)
        time.sleep(0.5)
    print(f"\n{TARGET} alone ({a.backend}) by replicas: memory right after ready and after "
          f"{a.warmup} s of load at 8 connections\n")
    print("| replicas | RSS ready MB | RSS after load MB | peak RSS MB | inputs/s (short run) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['replicas']} | {r['rss_ready_mb']:.0f} | {r['rss_after_mb']:.0f} | {r['rss_peak_mb']:.0f} | "
              f"{r['sent_s']:.0f} |")
    if len(rows) == 2:
        print(f"\nsecond replica: {rows[1]['rss_ready_mb'] - rows[0]['rss_ready_mb']:+.0f} MB right after ready, "
              f"{rows[1]['rss_after_mb'] - rows[0]['rss_after_mb']:+.0f} MB after load")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/osprey"))
    ap.add_argument("--backend", choices=["candle", "onnx"], default="candle", help="backend of the text models")
    ap.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of light load before each run")
    ap.add_argument("--conc", type=int, default=64, help="concurrent connections (closed loop)")
    ap.add_argument("--batch", type=int, default=1, help="inputs per request")
    ap.add_argument("--rounds", type=int, default=2, help="A/B pairs of throughput runs")
    ap.add_argument("--with-tensor", action="store_true",
                    help="B also serves models/breast-cancer-risk and models/digits-classifier")
    ap.add_argument("--replicas", type=int,
                    help="replicas of every text model in the throughput and memory parts "
                         "(default: Osprey's batching.replicas)")
    ap.add_argument("--quiet-wait", type=int, default=30,
                    help="before each throughput run, wait up to this many seconds for the machine "
                         "to be idle (0: never)")
    ap.add_argument("--only", default="throughput,memory,replicas",
                    help="comma-separated parts to run: throughput, memory, replicas, and prepack "
                         "(onnx only: shared weights against onnx_prepack = true; not run by default)")
    ap.add_argument("--json", help="write every figure here")
    a = ap.parse_args()
    parts = [p.strip() for p in a.only.split(",") if p.strip()]
    unknown = set(parts) - {"throughput", "memory", "replicas", "prepack"}
    if unknown or not parts:
        ap.error(f"--only takes throughput, memory, replicas, prepack (got {a.only!r})")
    if "prepack" in parts and a.backend != "onnx":
        ap.error("--only prepack compares onnxruntime settings: use --backend onnx")
    if a.rounds < 1 or a.conc < 1 or a.batch < 1:
        ap.error("--rounds, --conc and --batch must be at least 1")
    if a.duration > 60:
        print("note: runs longer than 60 s load a shared machine for long", file=sys.stderr)
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing (apt-get install wrk)")

    if not os.access(a.binary, os.X_OK):
        sys.exit(f"{a.binary} is missing: build it with `cargo build --release -p osprey --features onnx`")
    rr.warn_if_stale(a.binary)
    entries_b = model_entries(a, a.with_tensor)
    for e in entries_b:
        weights_file(e, a.backend)  # every model is there before anything starts
    out = {"backend": a.backend, "conc": a.conc, "batch": a.batch, "duration_s": a.duration,
           "models": [e["name"] for e in entries_b]}
    with tempfile.TemporaryDirectory(prefix="osprey-multi-model-") as work:
        lua = EMBED_LUA
        if "throughput" in parts:
            out["throughput"] = throughput(a, work, lua, {"A: minilm": (entries_b[:1], None),
                                                          f"B: {len(entries_b)} models": (entries_b, None)})
        if "prepack" in parts:
            print("\nminilm alone on onnx: replicas reading one copy of the weights (A) against "
                  "onnx_prepack = true (B)", file=sys.stderr)
            out["prepack"] = throughput(a, work, lua, {"A: shared weights": (entries_b[:1], None),
                                                       "B: onnx_prepack": (entries_b[:1], {"onnx_prepack": True})})
        if "memory" in parts:
            out["memory"] = memory(a, work, entries_b)
        if "replicas" in parts:
            out["replicas"] = replicas(a, work, lua)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
