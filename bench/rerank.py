"""Benchmarks reranking: Osprey's POST /rerank against a Python cross-encoder service
(bench/rerank_service.py: FastAPI + uvicorn + onnxruntime + tokenizers, built as
the Python baseline is), and prints a Markdown table.

Each server serves models/minilm-polarity-reranker on a free 127.0.0.1 port, one
server at a time: Osprey from a temporary config ([[models]] with the chosen
backend, result cache off), the Python service on its model.onnx
(scripts/build_reranker_onnx.py). Each request ranks the same 32 documents
(real sentences, below) against a query never sent before (a numbered variant of
one of 8 real queries), so no cache could answer it. Load is closed-loop: wrk
with N connections for D seconds, after a few seconds of warm-up.

Per server: requests/s, documents/s, p50/p99 latency, CPU, resident memory
right after ready and the peak while loaded (sampled every 0.2 s), then the
ratios Osprey / Python. "other CPU %" is what the rest of the machine used
meanwhile (wrk, and anything else running: a noise indicator; 2 cores = 200 %). Before measuring, one request goes to both servers: the
scores must agree within 1e-3 and the ranking must be the same (documents whose
scores are closer than that may swap).

usage: python3 bench/rerank.py [--binary target/release/osprey] [--backend candle|onnx|both]
                               [--duration 20] [--conc 8] [--rounds 1] [--replicas N]
                               [--py-threads 0] [--py-workers 1] [--python PY]
                               [--quiet-wait 30] [--only osprey|python] [--reference]
                               [--json out.json]
With --rounds N the servers are measured in turn N times (each started afresh),
and the table shows the median of each figure; these machines are noisy.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HZ = os.sysconf("SC_CLK_TCK")
RERANKER = os.path.join(ROOT, "models", "minilm-polarity-reranker")
TOLERANCE = 1e-3

QUERIES = [
    "how do vaccines train the immune system",
    "what causes the seasons on Earth",
    "best way to learn a new programming language",
    "why is the sky blue",
    "how does a search engine rank web pages",
    "what did the Romans build",
    "how to make good coffee at home",
    "effects of sleep on memory",
]

DOCUMENTS = [
    "Vaccines expose the immune system to a harmless piece of a pathogen so that it can respond quickly to a real infection.",
    "The seasons are caused by the tilt of the Earth's axis relative to its orbit around the Sun.",
    "Rayleigh scattering makes shorter blue wavelengths of sunlight scatter more than red ones in the atmosphere.",
    "Search engines crawl the web, build an index of pages and rank results by relevance and authority.",
    "The Romans built roads, aqueducts, bridges and amphitheatres across their empire.",
    "Freshly ground beans and water just below boiling make a noticeably better cup of coffee.",
    "During deep sleep the brain consolidates memories formed during the day.",
    "Practising small projects every day is an effective way to learn a new programming language.",
    "The Great Wall of China stretches for thousands of kilometres across northern China.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Antibiotics kill bacteria but have no effect on viruses such as the common cold.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "A balanced diet includes vegetables, fruit, whole grains and protein.",
    "Mount Everest is the highest mountain above sea level, at 8,849 metres.",
    "Electric cars convert stored battery energy into motion with few moving parts.",
    "The French Revolution began in 1789 and ended the absolute monarchy in France.",
    "Regular exercise lowers blood pressure and improves mood.",
    "Honey bees communicate the location of flowers through a waggle dance.",
    "Python is popular for data analysis because of libraries such as pandas and NumPy.",
    "The Amazon rainforest produces a large share of the world's oxygen and holds vast biodiversity.",
    "Jupiter is the largest planet in the solar system and has dozens of moons.",
    "Shakespeare wrote plays such as Hamlet, Macbeth and Romeo and Juliet.",
    "Caffeine blocks adenosine receptors, which makes people feel more alert.",
    "Compound interest means earning interest on previously earned interest.",
    "Glaciers form where snow accumulates faster than it melts over many years.",
    "The printing press made books cheaper and spread literacy across Europe.",
    "Octopuses can change the colour and texture of their skin to hide from predators.",
    "Blockchains record transactions in blocks linked together by cryptographic hashes.",
    "Reading before bed without screens can help people fall asleep faster.",
    "The human heart beats about one hundred thousand times a day.",
    "Volcanoes erupt when pressure from molten rock beneath the surface is released.",
    "Translation software uses neural networks trained on millions of sentence pairs.",
]

# POST /rerank with a query never sent before. Env: RERANK_TEXTS (a file holding
# the JSON array of documents), RERANK_QUERIES (JSON-escaped queries, one a line),
# NONCE, MODEL (optional model name). Prints one JSON line starting with RESULT.
WRK_LUA = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("RERANK_TEXTS")))
  texts = (f:read("*a"):gsub("%s+$", ""))
  f:close()
  queries = {}
  for line in io.lines(os.getenv("RERANK_QUERIES")) do
    table.insert(queries, line)
  end
  model = os.getenv("MODEL") or ""
  if model ~= "" then
    model = ',"model":"' .. model .. '"'
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  counter = 0
  nonce = (os.getenv("NONCE") or tostring(os.time())) .. "t" .. tid
end

function request()
  counter = counter + 1
  local q = queries[(counter % #queries) + 1] .. " (request " .. nonce .. "x" .. counter .. ")"
  return wrk.format(nil, "/rerank", nil, '{"query":"' .. q .. '","texts":' .. texts .. model .. '}')
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# -- processes ------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"null")


def wait_for(proc, check, what, log, limit=300):
    """Polls `check` until it holds; on failure shows the end of the server's log."""
    t0 = time.time()
    while True:
        failed = None
        if proc.poll() is not None:
            failed = f"{what} exited with {proc.returncode} before it was ready"
        else:
            try:
                if check():
                    return time.time() - t0
            except Exception:
                pass
            if time.time() - t0 > limit:
                failed = f"{what} not ready after {limit} s"
        if failed:
            stop(proc)
            with open(log.name, errors="replace") as f:
                tail = f.read()[-3000:]
            sys.exit(f"{failed}; its output ends with:\n{tail}")
        time.sleep(0.05)


def stop(proc):
    """SIGTERM to the server's process group (it was started as a session leader)."""
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    finally:
        log = getattr(proc, "log", None)
        if log is not None:
            log.close()


def warn_if_stale(binary):
    """A note when a Rust source is newer than the binary (it may not hold the latest code)."""
    built = os.path.getmtime(binary)
    for top in ("crates",):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if (f.endswith(".rs") or f == "Cargo.toml") and os.path.getmtime(os.path.join(d, f)) > built:
                    print(f"note: {os.path.relpath(os.path.join(d, f), ROOT)} is newer than {binary}",
                          file=sys.stderr)
                    return


def osprey_config(port, models, cache=False, model_table=None):
    """TOML for `osprey serve --config`: [server], the result cache (off unless
    `cache`), [model] keys from `model_table` (settings every model shares), and
    one [[models]] table per dict of `models` (name, path, backend, replicas, task;
    None values left out)."""
    lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}", ""]
    if not cache:
        lines += ["[cache.memory]", "max_bytes = 0", ""]
    if model_table:
        lines += ["[model]"] + [f"{k} = {json.dumps(v)}" for k, v in model_table.items()] + [""]
    for m in models:
        lines.append("[[models]]")
        for k, v in m.items():
            if v is not None:
                lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    return "\n".join(lines)


def start_osprey(binary, models, workdir, cache=False, log_name="osprey.log", model_table=None):
    """`osprey serve` with a temporary config; returns (process, url, seconds to ready).
    Ready: /health/ready answers 200 and /v1/models lists every model."""
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        sys.exit(f"{binary} is missing: build it with `cargo build --release -p osprey --features onnx`")
    port = free_port()
    config = os.path.join(workdir, f"osprey-{port}.toml")
    with open(config, "w") as f:
        f.write(osprey_config(port, models, cache, model_table))
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    log = open(os.path.join(workdir, log_name), "ab")
    t0 = time.time()
    p = subprocess.Popen([binary, "serve", "--config", config], cwd=ROOT, env=env,
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    p.log = log
    url = f"http://127.0.0.1:{port}"
    names = {m["name"] for m in models}

    def loaded():
        if http("GET", url + "/health/ready", timeout=2)[0] != 200:
            return False
        listed = {m.get("name", m.get("id")) for m in http("GET", url + "/v1/models", timeout=2)[1]["data"]}
        return names <= listed

    wait_for(p, loaded, "osprey", log)
    return p, url, time.time() - t0


def default_python():
    """The baseline's venv when it has been set up, else the repository's .venv."""
    base = os.environ.get("PYBASE", os.path.join(os.environ.get("TMPDIR", "/tmp"), "osprey-baseline"))
    for py in (os.path.join(base, "venv", "bin", "python"), os.path.join(ROOT, ".venv", "bin", "python")):
        if os.access(py, os.X_OK):
            return py
    return sys.executable


def start_python(python, threads, workers, workdir):
    """bench/rerank_service.py under uvicorn, as the baseline is run."""
    onnx = os.path.join(RERANKER, "model.onnx")
    if not os.path.isfile(onnx):
        sys.exit(f"{onnx} is missing: run `python scripts/build_reranker_onnx.py build` (or make test-models)")
    port = free_port()
    env = dict(os.environ, ORT_THREADS=str(threads), MODEL_DIR=RERANKER, PYTHONDONTWRITEBYTECODE="1")
    log = open(os.path.join(workdir, "python.log"), "ab")
    t0 = time.time()
    p = subprocess.Popen([python, "-m", "uvicorn", "rerank_service:app", "--app-dir", HERE,
                          "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                          "--log-level", "warning"],
                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    p.log = log
    url = f"http://127.0.0.1:{port}"
    wait_for(p, lambda: http("GET", url + "/health", timeout=2)[0] == 200, "the python service", log)
    if workers > 1:
        time.sleep(1.0)  # let every worker come up
    return p, url, time.time() - t0


# -- measuring -----------------------------------------------------------------------

def tree(root):
    """The pids of `root` and its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        x = todo.pop()
        out.append(x)
        todo += kids.get(x, [])
    return out


def rss_mb(root):
    """Resident memory of the process tree, MB."""
    total = 0
    for pid in tree(root):
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_ticks(root):
    t = 0
    for pid in tree(root):
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
        except OSError:
            pass
    return t


def machine_busy():
    """CPU ticks all cores spent busy (not idle, not waiting for I/O)."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f) - f[3] - f[4]


def wait_quiet(max_wait, threshold=10.0):
    """Waits (at most max_wait s) until the machine is below `threshold` % busy over
    2 s, so a run does not start while something else is using the cores."""
    t0 = time.time()
    while time.time() - t0 < max_wait:
        b0 = machine_busy()
        time.sleep(2)
        if (machine_busy() - b0) / HZ / 2 * 100 < threshold:
            break
    return time.time() - t0


class CpuShare:
    """CPU % of the server's tree, and of everything else (wrk and other tenants
    of the machine: a noise indicator), over a `with` block."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.c0, self.m0, self.t0 = cpu_ticks(self.pid), machine_busy(), time.time()
        return self

    def __exit__(self, *exc):
        secs = time.time() - self.t0
        server = cpu_ticks(self.pid) - self.c0
        self.server_pct = server / HZ / secs * 100
        self.other_pct = max(0, machine_busy() - self.m0 - server) / HZ / secs * 100


class RssPeak:
    """Samples the tree's RSS every `every` seconds in a thread; .peak in MB."""

    def __init__(self, pid, every=0.2):
        self.pid, self.every, self.peak = pid, every, rss_mb(pid)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mb(self.pid))


def write_inputs(workdir, docs):
    texts = os.path.join(workdir, "texts.json")
    with open(texts, "w") as f:
        f.write(json.dumps(docs, ensure_ascii=False) + "\n")
    queries = os.path.join(workdir, "queries.txt")
    with open(queries, "w") as f:
        for q in QUERIES:
            f.write(json.dumps(q, ensure_ascii=False)[1:-1] + "\n")
    lua = os.path.join(workdir, "rerank.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    return {"RERANK_TEXTS": texts, "RERANK_QUERIES": queries, "LUA": lua}


def run_wrk(url, inputs, conc, duration, model=None):
    env = dict(os.environ, RERANK_TEXTS=inputs["RERANK_TEXTS"], RERANK_QUERIES=inputs["RERANK_QUERIES"],
               NONCE=str(time.time_ns() // 10**6 % 10**9), MODEL=model or "")
    threads = 1 if conc == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{conc}", f"-d{duration}s", "--timeout", "30s",
           "-s", inputs["LUA"], url + "/rerank"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def measure(proc, url, inputs, a, ndocs, model=None):
    time.sleep(0.5)  # loading threads finish freeing their buffers
    rss_ready = rss_mb(proc.pid)
    waited = wait_quiet(a.quiet_wait) if a.quiet_wait else 0.0
    run_wrk(url, inputs, 2, a.warmup, model)  # warm-up, not measured
    with RssPeak(proc.pid) as peak, CpuShare(proc.pid) as cpu:
        r = run_wrk(url, inputs, a.conc, a.duration, model)
    secs = r["duration_us"] / 1e6
    r.update(
        req_s=r["requests"] / secs,
        docs_s=r["requests"] * ndocs / secs,
        errors=r["err_status"] + r["err_timeout"] + r["err_read"] + r["err_connect"] + r["err_write"],
        cpu_pct=cpu.server_pct,
        other_cpu_pct=cpu.other_pct,
        rss_ready_mb=rss_ready,
        quiet_wait_s=waited,
        rss_peak_mb=peak.peak,
        rss_after_mb=rss_mb(proc.pid),
    )
    return r


def one_request(url, query, docs, model=None):
    body = {"query": query, "texts": docs, "raw_scores": False, "return_text": False}
    if model:
        body["model"] = model
    status, out = http("POST", url + "/rerank", body)
    assert status == 200, status
    return out


def reference_answer(python, query, docs):
    """The float64 reference (scripts/reference_heads.py) in /rerank's shape."""
    import math

    req = {"model_dir": RERANKER, "inputs": [[query, d] for d in docs]}
    out = subprocess.run([python, os.path.join(ROOT, "scripts", "reference_heads.py")],
                         input=json.dumps(req), capture_output=True, text=True, check=True)
    scores = [1 / (1 + math.exp(-row[0])) for row in json.loads(out.stdout)["logits"]]
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [{"index": i, "score": scores[i]} for i in order]


def compare(a_out, b_out):
    """(max |score difference| by document, same order?, order differs only among
    documents whose scores are within TOLERANCE?)"""
    sa = {r["index"]: r["score"] for r in a_out}
    sb = {r["index"]: r["score"] for r in b_out}
    assert set(sa) == set(sb), "the answers rank different documents"
    diff = max(abs(sa[i] - sb[i]) for i in sa)
    order_a = [r["index"] for r in a_out]
    order_b = [r["index"] for r in b_out]
    pos_b = {i: k for k, i in enumerate(order_b)}
    near_ties_only = all(
        abs(sa[x] - sa[y]) <= TOLERANCE
        for k, x in enumerate(order_a) for y in order_a[k + 1:] if pos_b[y] < pos_b[x])
    return diff, order_a == order_b, near_ties_only


# -- report ----------------------------------------------------------------------------

COLUMNS = [("req_s", "req/s", 1), ("docs_s", "docs/s", 0), ("p50_us", "p50 ms", 1e-3),
           ("p99_us", "p99 ms", 1e-3), ("errors", "errors", None), ("cpu_pct", "CPU %", 0),
           ("other_cpu_pct", "other CPU %", 0), ("rss_ready_mb", "RSS ready MB", 0),
           ("rss_peak_mb", "peak RSS MB", 0)]


def median_run(runs):
    return {k: statistics.median(r[k] for r in runs) for k, _, _ in COLUMNS}


def fmt(key, scale, v):
    if scale is None:
        return f"{v:.0f}"
    if key.endswith("_us"):
        return f"{v * scale:.1f}"
    return f"{v:.{scale}f}"


def table(results, a, ndocs):
    print(f"\nrerank: {ndocs} documents per request, unique queries, {a.conc} connections, "
          f"{a.duration} s per run, median of {a.rounds} run(s)\n")
    print("| server | " + " | ".join(h for _, h, _ in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    med = {}
    for label, runs in results.items():
        med[label] = m = median_run(runs)
        print(f"| {label} | " + " | ".join(fmt(k, s, m[k]) for k, _, s in COLUMNS) + " |")
    py = next((l for l in med if l.startswith("python")), None)
    if py:
        for label in med:
            if label == py:
                continue
            cells = []
            for k, _, _ in COLUMNS:
                base = med[py][k]
                cells.append(f"{med[label][k] / base:.2f}x" if base and k not in ("errors", "other_cpu_pct") else "")
            print(f"| {label} / {py} | " + " | ".join(cells) + " |")
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/osprey"))
    ap.add_argument("--backend", choices=["candle", "onnx", "both"], default="candle",
                    help="Osprey backend (both: each in turn)")
    ap.add_argument("--replicas", type=int, help="Osprey replicas of the reranker (default: Osprey's)")
    ap.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of light load before each run")
    ap.add_argument("--conc", type=int, default=8, help="concurrent connections (closed loop)")
    ap.add_argument("--docs", type=int, default=32, metavar=f"1..{len(DOCUMENTS)}",
                    help="documents per request")
    ap.add_argument("--rounds", type=int, default=1, help="measure every server this many times, in turn")
    ap.add_argument("--python", default=default_python(), help="interpreter of the Python service")
    ap.add_argument("--py-threads", type=int, default=0, help="ORT_THREADS of the Python service")
    ap.add_argument("--py-workers", type=int, default=1, help="uvicorn workers of the Python service")
    ap.add_argument("--quiet-wait", type=int, default=30,
                    help="before each run, wait up to this many seconds for the machine to be idle (0: never)")
    ap.add_argument("--only", choices=["osprey", "python"], help="measure one side only")
    ap.add_argument("--reference", action="store_true",
                    help="also check the answers against scripts/reference_heads.py (float64, a few s of CPU)")
    ap.add_argument("--json", help="write every run here")
    a = ap.parse_args()
    if not 1 <= a.docs <= len(DOCUMENTS):
        ap.error(f"--docs must be 1..{len(DOCUMENTS)}")
    if a.duration > 60:
        print("note: runs longer than 60 s load a shared machine for long", file=sys.stderr)

    if shutil.which("wrk") is None:
        sys.exit("wrk is missing (apt-get install wrk)")
    if a.only != "python":
        if not os.access(a.binary, os.X_OK):
            sys.exit(f"{a.binary} is missing: build it with `cargo build --release -p osprey --features onnx`")
        warn_if_stale(a.binary)
    docs = DOCUMENTS[:a.docs]
    backends = ["candle", "onnx"] if a.backend == "both" else [a.backend]
    servers = []
    if a.only != "python":
        servers += [f"osprey {b}" for b in backends]
    if a.only != "osprey":
        servers.append(f"python ort={a.py_threads} w={a.py_workers}")
    results = {s: [] for s in servers}
    out = {"docs": len(docs), "conc": a.conc, "duration_s": a.duration, "servers": {}, "check": {}}

    with tempfile.TemporaryDirectory(prefix="osprey-rerank-") as work:
        inputs = write_inputs(work, docs)

        def launch(label):
            if label.startswith("osprey"):
                backend = label.split()[1]
                return start_osprey(a.binary, [{"name": "reranker", "path": RERANKER, "backend": backend,
                                                "replicas": a.replicas}], work)
            return start_python(a.python, a.py_threads, a.py_workers, work)

        # The same request to every server: scores and ranking must agree.
        answers = {}
        for label in servers:
            proc, url, secs = launch(label)
            try:
                answers[label] = one_request(url, QUERIES[0], docs)
            finally:
                stop(proc)
            print(f"{label}: ready in {secs:.1f} s", file=sys.stderr)
        if a.reference:
            answers["float64 reference"] = reference_answer(a.python, QUERIES[0], docs)
        labels = list(answers)
        for other in labels[1:]:
            diff, same, near = compare(answers[labels[0]], answers[other])
            ok = diff <= TOLERANCE and (same or near)
            out["check"][f"{labels[0]} vs {other}"] = {"max_score_diff": diff, "same_order": same,
                                                        "ok": ok}
            print(f"check {labels[0]} vs {other}: max |score diff| {diff:.2e}, ranking "
                  f"{'identical' if same else 'equal up to near-ties' if near else 'DIFFERENT'}"
                  f" -> {'ok' if ok else 'MISMATCH'}", file=sys.stderr)
            if not ok:
                sys.exit("the servers disagree; not measuring")

        for rnd in range(a.rounds):
            for label in servers:
                proc, url, _ = launch(label)
                try:
                    r = measure(proc, url, inputs, a, len(docs))
                finally:
                    stop(proc)
                results[label].append(r)
                print(f"round {rnd + 1} {label}: {r['req_s']:.1f} req/s, p99 {r['p99_us'] / 1000:.0f} ms, "
                      f"errors {r['errors']}", file=sys.stderr)
                time.sleep(0.5)

    med = table(results, a, len(docs))
    if a.json:
        for label in servers:
            out["servers"][label] = {"runs": results[label], "median": med[label]}
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
