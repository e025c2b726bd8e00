"""Benchmarks an embedding server with wrk on 127.0.0.1 and prints a Markdown table.

Either spawns `osprey serve` (and then also measures cold start: process start to
`/health/ready` 200), or drives a server that is already running (--url, with --pid
for its memory), such as the Python baseline.

usage: python3 bench/run.py [--binary target/release/osprey] [--backend candle|onnx]
                            [--duration 20] [--cold-starts 5] [--soak 0]
                            [--workloads unique:1,unique:64,batch32:8]
                            [--url http://127.0.0.1:8000 --pid N] [--json out.json]
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(url):
    try:
        with urllib.request.urlopen(url + "/health/ready", timeout=1) as r:
            return r.status == 200
    except Exception:
        return False


def start(binary, backend, port, extra):
    cmd = [binary, "serve", "--port", str(port), "--backend", backend] + extra
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while not ready(url):
        if p.poll() is not None:
            sys.exit(f"server exited with {p.returncode}: {' '.join(cmd)}")
        if time.perf_counter() - t0 > 120:
            sys.exit("server not ready after 120 s")
        time.sleep(0.005)
    return p, url, time.perf_counter() - t0


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()


def rss_mb(pid):
    total = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            total = int(line.split()[1])
    return total / 1024


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def wrk(url, workload, conc, duration):
    kind, batch = ("batch", 32) if workload == "batch32" else ("unique", 1)
    env = dict(os.environ, BATCH=str(batch), SENTENCES=os.path.join(HERE, "sentences.txt"),
               NONCE=str(time.time_ns() // 10**6 % 10**6))
    threads = 1 if conc == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{conc}", f"-d{duration}s", "--timeout", "30s",
           "-s", os.path.join(HERE, "wrk", "embed.lua"), url + "/embed"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    r["batch"] = batch
    r["kind"] = kind
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/osprey"))
    ap.add_argument("--backend", default="candle")
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--cold-starts", type=int, default=5)
    ap.add_argument("--soak", type=int, default=0, help="seconds of sustained load, RSS sampled")
    ap.add_argument("--soak-workload", default="batch32:8")
    ap.add_argument("--workloads", default="unique:1,unique:64,batch32:8")
    ap.add_argument("--url")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--label")
    ap.add_argument("--server-args", default="", help="extra flags for osprey serve")
    ap.add_argument("--json")
    a = ap.parse_args()
    label = a.label or (a.url or f"osprey {a.backend}")
    extra = a.server_args.split()
    result = {"label": label, "runs": []}

    if not a.url:
        colds = []
        for _ in range(a.cold_starts):
            p, _, dt = start(a.binary, a.backend, free_port(), extra)
            colds.append(dt)
            stop(p)
            time.sleep(0.3)
        if colds:
            result["cold_start_s"] = colds
            print(f"cold start to ready: median {statistics.median(colds) * 1000:.0f} ms "
                  f"(runs: {', '.join(f'{c * 1000:.0f}' for c in colds)})")
        proc, url, _ = start(a.binary, a.backend, free_port(), extra)
        pid = proc.pid
    else:
        proc, url, pid = None, a.url.rstrip("/"), a.pid

    # Warm-up: a few seconds of light load so first-touch costs are not measured.
    wrk(url, "unique", 2, 3)
    print(f"| {label} | workload | conc | req/s | sent/s | p50 ms | p90 ms | p99 ms | max ms | errors | CPU % | RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    try:
        for spec in a.workloads.split(","):
            workload, conc = spec.split(":")
            c0, t0 = (cpu_ticks(pid) if pid else 0), time.time()
            r = wrk(url, workload, int(conc), a.duration)
            secs = r["duration_us"] / 1e6
            r.update(workload=workload, conc=int(conc), req_s=r["requests"] / secs,
                     sent_s=r["requests"] * r["batch"] / secs,
                     errors=r["err_status"] + r["err_timeout"] + r["err_read"] + r["err_connect"] + r["err_write"],
                     cpu_pct=((cpu_ticks(pid) - c0) / HZ / (time.time() - t0) * 100) if pid else None,
                     rss_mb=rss_mb(pid) if pid else None)
            result["runs"].append(r)
            print(f"| {label} | {workload} | {conc} | {r['req_s']:.1f} | {r['sent_s']:.1f} | "
                  f"{r['p50_us'] / 1000:.1f} | {r['p90_us'] / 1000:.1f} | {r['p99_us'] / 1000:.1f} | "
                  f"{r['max_us'] / 1000:.1f} | {r['errors']} | "
                  f"{r['cpu_pct'] or 0:.0f} | {r['rss_mb'] or 0:.0f} |", flush=True)
        if a.soak:
            samples = []
            t_end = time.time() + a.soak
            soak_kind, soak_conc = a.soak_workload.split(":")
            env = dict(os.environ, BATCH="32" if soak_kind == "batch32" else "1",
                       SENTENCES=os.path.join(HERE, "sentences.txt"), NONCE=str(time.time_ns() // 10**6 % 10**6))
            w = subprocess.Popen(["wrk", "-t2", f"-c{soak_conc}", f"-d{a.soak}s", "--timeout", "30s", "-s",
                                  os.path.join(HERE, "wrk", "embed.lua"), url + "/embed"],
                                 env=env, stdout=subprocess.PIPE, text=True)
            while time.time() < t_end:
                time.sleep(min(30, max(0.1, t_end - time.time())))
                samples.append(round(rss_mb(pid), 1))
            out = w.communicate()[0]
            line = next(l for l in out.splitlines() if l.startswith("RESULT "))
            soak = json.loads(line[len("RESULT "):])
            soak["rss_mb_samples"] = samples
            result["soak"] = soak
            print(f"soak {a.soak} s {a.soak_workload}: {soak['requests'] / (soak['duration_us'] / 1e6):.1f} req/s, "
                  f"p99 {soak['p99_us'] / 1000:.1f} ms, errors {soak['err_status'] + soak['err_timeout']}, "
                  f"RSS MB every 30 s: {samples}")
    finally:
        if proc:
            stop(proc)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
