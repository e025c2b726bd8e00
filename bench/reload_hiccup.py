"""What a live model reload costs the requests in flight, and prints Markdown tables.

One Osprey server serves all-MiniLM-L6-v2 ("minilm") and paraphrase-MiniLM-L3-v2
("para") from a temporary [[models]] config (the chosen backend on both, result
cache off, a free 127.0.0.1 port). C clients (threads, each with its own
keep-alive connection) send POST /embed closed-loop for D seconds, after a few
seconds of unmeasured warm-up: one input per request, every input never sent
before (a sentence of bench/sentences.txt and a counter), to minilm, a share of
them to para. Meanwhile POST /admin/models/minilm/reload is called N times, one
after another, at D/(2N), 2D/(2N), ..., D/2 into the measured run (D/4 and D/2
by default), and each call is timed: it answers once the new copy is loaded,
warmed and swapped in; the old copy drains in the background.

Every request's start, latency, status and answering model (x-osprey-model) is
kept. A reload window is [reload call start, reload call end + --settle s]; a
request is in a window when its [start, end] overlaps it, and quiet when it
overlaps none. Reported:
  - requests, non-2xx answers and failed connections (these must be 0; the first
    few are printed), answers from another model than the one asked for (x-osprey-model is name@version);
  - p50/p99/max latency over the quiet requests and over each window;
  - per window: the reload call's duration, the "hiccup" (the window's worst
    latency / the quiet p99) and how many of its requests took longer than the
    quiet p99;
  - the server's resident memory right after ready, just before each reload,
    after the load, a few seconds later (the old copies drained), and the peak
    (sampled every 100 ms), so memory kept across reloads would show.
"other CPU %" is what the rest of the machine used during the run (these
clients and anything else: 2 cores = 200 %); the clients are Python threads and
share the cores with the server, so latencies include some client time.

usage: python3 bench/reload_hiccup.py [--binary target/release/osprey] [--backend candle|onnx]
                                      [--conc 16] [--duration 40] [--reloads 2]
                                      [--para-share 0.25] [--warmup 3] [--settle 1]
                                      [--quiet-wait 30] [--json out.json]
"""
import argparse
import http.client
import json
import math
import os
import random
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__/ in bench/ from the import below
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rerank as rr  # noqa: E402  (server start/stop, idle machine, /proc helpers)

ROOT = rr.ROOT
MODELS = os.path.join(ROOT, "models")
TARGET = ("minilm", "all-MiniLM-L6-v2")
OTHER = ("para", "paraphrase-MiniLM-L3-v2")
SHOW_FAILURES = 5


def vm_rss_mb(pid):
    """Resident memory of one process, MB (cheap enough to sample every 100 ms;
    the server runs as one process)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssTrace:
    """The server's RSS every `every` s in a thread: .samples [(t, MB)], .peak."""

    def __init__(self, pid, t0, every=0.1):
        self.pid, self.t0, self.every = pid, t0, every
        self.samples = [(time.perf_counter() - t0, vm_rss_mb(pid))]
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            self.samples.append((time.perf_counter() - self.t0, vm_rss_mb(self.pid)))

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.samples.append((time.perf_counter() - self.t0, vm_rss_mb(self.pid)))

    @property
    def peak(self):
        return max(mb for _, mb in self.samples)


def client(port, sentences, cid, share, t0, t_end, records, failures, lock):
    """One closed-loop client: requests back to back on one keep-alive connection
    until t_end. Appends (start, latency, status, asked, answered) to records."""
    rng = random.Random(cid)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    mine, n = [], 0
    while time.perf_counter() < t_end:
        n += 1
        model = OTHER[0] if rng.random() < share else TARGET[0]
        text = f"{sentences[(cid * 7919 + n) % len(sentences)]} c{cid} n{n}"
        body = json.dumps({"inputs": [text], "model": model})
        s = time.perf_counter()
        try:
            conn.request("POST", "/embed", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            e = time.perf_counter()
            status, answered = r.status, r.getheader("x-osprey-model", "")
            if not 200 <= status < 300:
                with lock:
                    failures.append({"t": s - t0, "model": model, "status": status,
                                     "body": data[:300].decode(errors="replace")})
        except (OSError, http.client.HTTPException) as ex:
            e = time.perf_counter()
            status, answered = 0, ""
            with lock:
                failures.append({"t": s - t0, "model": model, "status": 0, "body": repr(ex)})
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine.append((s - t0, e - s, status, model, answered))
    conn.close()
    with lock:
        records.extend(mine)


def reloader(port, at, t0, out):
    """Calls POST /admin/models/minilm/reload at each time of `at` (s after t0), one
    after another; appends {start, end, status, ...} to out."""
    for k, t in enumerate(at):
        wait = t0 + t - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        s = time.perf_counter()
        try:
            conn.request("POST", f"/admin/models/{TARGET[0]}/reload", b"", {"Content-Length": "0"})
            r = conn.getresponse()
            data = r.read()
            status = r.status
        except (OSError, http.client.HTTPException) as ex:
            status, data = 0, repr(ex).encode()
        e = time.perf_counter()
        conn.close()
        try:
            card = json.loads(data)
        except ValueError:
            card = data[:300].decode(errors="replace")
        out.append({"reload": k + 1, "planned_s": t, "start_s": s - t0, "end_s": e - t0,
                    "duration_s": e - s, "status": status, "card": card})


def pct(xs, p):
    """Nearest-rank percentile of a sorted list."""
    if not xs:
        return None
    return xs[min(len(xs), max(1, math.ceil(p / 100 * len(xs)))) - 1]


def stats(lat):
    lat = sorted(lat)
    return {"n": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": lat[-1] if lat else None}


def analyse(records, reloads, settle):
    """Quiet and per-window latency figures (ms) over the successful requests."""
    windows = [(r["start_s"], r["end_s"] + settle) for r in reloads]
    ok = [r for r in records if 200 <= r[2] < 300]

    def overlaps(rec, w):
        return rec[0] <= w[1] and rec[0] + rec[1] >= w[0]

    def figures(recs):
        out = {"all": stats([r[1] * 1000 for r in recs])}
        for m in (TARGET[0], OTHER[0]):
            out[m] = stats([r[1] * 1000 for r in recs if r[3] == m])
        return out

    quiet = [r for r in ok if not any(overlaps(r, w) for w in windows)]
    q = figures(quiet)
    qp99 = q["all"]["p99_ms"]
    res = {"quiet": q, "windows": []}
    for rl, w in zip(reloads, windows):
        inside = [r for r in ok if overlaps(r, w)]
        f = figures(inside)
        worst = f["all"]["max_ms"]
        f.update(reload=rl["reload"], from_s=w[0], to_s=w[1], reload_s=rl["duration_s"],
                 reload_status=rl["status"],
                 hiccup=(worst / qp99) if worst is not None and qp99 else None,
                 over_quiet_p99=sum(1 for r in inside if qp99 is not None and r[1] * 1000 > qp99))
        res["windows"].append(f)
    return res


def ms(v):
    return "-" if v is None else f"{v:.1f}"


def report(a, out):
    r, an = out["run"], out["latency"]
    print(f"\nlive reload of {TARGET[0]} ({a.backend}) under load: /embed, 1 unique input per request, "
          f"{a.conc} closed-loop clients, {round(a.para_share * 100)} % of requests to {OTHER[0]}, "
          f"{a.duration} s measured, {a.reloads} reload(s); window = reload call + {a.settle:g} s\n")
    print("| requests | req/s | non-2xx | failed connections | other model answered | CPU % | other CPU % |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {r['requests']} | {r['req_s']:.1f} | {r['non_2xx']} | {r['conn_failed']} | {r['wrong_model']} | "
          f"{r['cpu_pct']:.0f} | {r['other_cpu_pct']:.0f} |")

    print("\n| period | reload call s | requests | p50 ms | p99 ms | max ms | hiccup (max / quiet p99) "
          "| requests > quiet p99 |")
    print("|---|---|---|---|---|---|---|---|")
    q = an["quiet"]["all"]
    print(f"| quiet | | {q['n']} | {ms(q['p50_ms'])} | {ms(q['p99_ms'])} | {ms(q['max_ms'])} | | |")
    for w in an["windows"]:
        f = w["all"]
        status = "" if w["reload_status"] == 200 else f" (HTTP {w['reload_status']})"
        print(f"| reload {w['reload']} ({w['from_s']:.1f}-{w['to_s']:.1f} s) | {w['reload_s']:.2f}{status} | "
              f"{f['n']} | {ms(f['p50_ms'])} | {ms(f['p99_ms'])} | {ms(f['max_ms'])} | "
              f"{'-' if w['hiccup'] is None else format(w['hiccup'], '.1f') + 'x'} | {w['over_quiet_p99']} |")

    print("\nby model (p50 / p99 / max ms, requests)\n")
    print("| period | " + " | ".join(m for m in (TARGET[0], OTHER[0])) + " |")
    print("|---|---|---|")
    rows = [("quiet", an["quiet"])] + [(f"reload {w['reload']}", w) for w in an["windows"]]
    for label, f in rows:
        cells = [f"{ms(f[m]['p50_ms'])} / {ms(f[m]['p99_ms'])} / {ms(f[m]['max_ms'])} ({f[m]['n']})"
                 for m in (TARGET[0], OTHER[0])]
        print(f"| {label} | " + " | ".join(cells) + " |")

    m = out["rss"]
    print("\nserver resident memory, MB\n")
    heads = ["ready"] + [f"before reload {k + 1}" for k in range(len(m["before_reload_mb"]))] + \
            ["after load", f"{a.drain_wait:g} s later", "peak"]
    vals = [m["ready_mb"]] + m["before_reload_mb"] + [m["after_load_mb"], m["after_drain_mb"], m["peak_mb"]]
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    print("| " + " | ".join(f"{v:.0f}" for v in vals) + " |")
    if m["before_reload_mb"]:
        print(f"\nafter the load ({a.drain_wait:g} s later) minus before the first reload: "
              f"{m['after_drain_mb'] - m['before_reload_mb'][0]:+.0f} MB")

    if out["failures"]:
        print(f"\nfirst failures of {len(out['failures'])}:")
        for f in out["failures"][:SHOW_FAILURES]:
            print(f"  t={f['t']:.2f} s {f['model']}: status {f['status']}: {f['body']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/osprey"))
    ap.add_argument("--backend", choices=["candle", "onnx"], default="candle", help="backend of both models")
    ap.add_argument("--conc", type=int, default=16, help="concurrent clients (closed loop)")
    ap.add_argument("--duration", type=float, default=40, help="seconds of measured load")
    ap.add_argument("--reloads", type=int, default=2, help="reloads of minilm, spread over the first half")
    ap.add_argument("--para-share", type=float, default=0.25, help="share of requests to para (0..1)")
    ap.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured load first")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds after a reload call still in its window")
    ap.add_argument("--drain-wait", type=float, default=3.0,
                    help="seconds after the load before the last memory reading")
    ap.add_argument("--quiet-wait", type=int, default=30,
                    help="before the run, wait up to this many seconds for the machine to be idle (0: never)")
    ap.add_argument("--json", help="write every figure (and every request) here")
    a = ap.parse_args()
    if a.conc < 1 or a.duration <= 0 or a.reloads < 0 or not 0 <= a.para_share <= 1:
        ap.error("--conc >= 1, --duration > 0, --reloads >= 0 and 0 <= --para-share <= 1")
    if a.duration > 60:
        print("note: runs longer than 60 s load a shared machine for long", file=sys.stderr)
    if not os.access(a.binary, os.X_OK):
        sys.exit(f"{a.binary} is missing: build it with `cargo build --release -p osprey --features onnx`")
    rr.warn_if_stale(a.binary)
    entries = [{"name": n, "path": os.path.join(MODELS, d), "backend": a.backend} for n, d in (TARGET, OTHER)]
    for e in entries:
        if not os.path.isdir(e["path"]):
            sys.exit(f"{e['path']} is missing")
    with open(os.path.join(HERE, "sentences.txt")) as f:
        sentences = [l.strip() for l in f if l.strip()]

    at = [a.duration * k / (2 * a.reloads) for k in range(1, a.reloads + 1)]
    with tempfile.TemporaryDirectory(prefix="osprey-reload-") as work:
        proc, url, ready_s = rr.start_osprey(a.binary, entries, work)
        port = int(url.rsplit(":", 1)[1])
        try:
            time.sleep(1.0)  # loading threads finish freeing their buffers
            rss_ready = vm_rss_mb(proc.pid)
            waited = rr.wait_quiet(a.quiet_wait) if a.quiet_wait else 0.0
            print(f"ready in {ready_s:.1f} s, RSS {rss_ready:.0f} MB; waited {waited:.0f} s for an idle machine; "
                  f"measuring {a.duration:g} s, reloads at {', '.join(f'{t:.1f}' for t in at)} s", file=sys.stderr)
            records, failures, reloads, lock = [], [], [], threading.Lock()
            t0 = time.perf_counter() + a.warmup
            t_end = t0 + a.duration
            clients = [threading.Thread(target=client, daemon=True,
                                        args=(port, sentences, c, a.para_share, t0, t_end, records, failures, lock))
                       for c in range(a.conc)]
            for c in clients:
                c.start()
            while time.perf_counter() < t0:
                time.sleep(0.01)
            before = []
            with rr.CpuShare(proc.pid) as cpu, RssTrace(proc.pid, t0) as trace:
                rl = threading.Thread(target=reloader, args=(port, at, t0, reloads), daemon=True)
                rl.start()
                for c in clients:
                    c.join()
                rl.join()
            rss_after = vm_rss_mb(proc.pid)
            time.sleep(a.drain_wait)
            rss_drained = vm_rss_mb(proc.pid)
            alive = proc.poll() is None
        finally:
            rr.stop(proc)
            with open(os.path.join(work, "osprey.log"), errors="replace") as f:
                log_tail = f.read()[-3000:]
    if not alive:
        print(f"the server exited during the run; its output ends with:\n{log_tail}", file=sys.stderr)

    for rl in reloads:  # the last sample taken before the call started
        before.append(max(((t, mb) for t, mb in trace.samples if t <= rl["start_s"]), default=(0, rss_ready))[1])
    measured = [r for r in records if r[0] >= 0]
    failures = [f for f in failures if f["t"] >= 0]
    failures.sort(key=lambda f: f["t"])
    secs = max((r[0] + r[1] for r in measured), default=a.duration)
    out = {
        "backend": a.backend, "conc": a.conc, "duration_s": a.duration, "reloads_at_s": at,
        "para_share": a.para_share, "settle_s": a.settle, "ready_s": ready_s, "quiet_wait_s": waited,
        "run": {"requests": len(measured), "req_s": len(measured) / secs,
                "non_2xx": sum(1 for r in measured if r[2] != 0 and not 200 <= r[2] < 300),
                "conn_failed": sum(1 for r in measured if r[2] == 0),
                "wrong_model": sum(1 for r in measured if 200 <= r[2] < 300 and r[4].split("@")[0] != r[3]),
                "cpu_pct": cpu.server_pct, "other_cpu_pct": cpu.other_pct},
        "reloads": reloads,
        "latency": analyse(measured, reloads, a.settle),
        "rss": {"ready_mb": rss_ready, "before_reload_mb": before, "after_load_mb": rss_after,
                "after_drain_mb": rss_drained, "peak_mb": max(trace.peak, rss_after, rss_drained),
                "samples": [(round(t, 2), round(mb, 1)) for t, mb in trace.samples]},
        "failures": failures,
    }
    report(a, out)
    if a.json:
        out["requests"] = [{"start_s": round(s, 4), "latency_ms": round(l * 1000, 2), "status": st,
                            "model": m, "answered_by": by} for s, l, st, m, by in sorted(measured)]
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    bad = out["run"]["non_2xx"] + out["run"]["conn_failed"] + sum(1 for r in reloads if r["status"] != 200)
    if bad or not alive:
        sys.exit(1)


if __name__ == "__main__":
    main()
