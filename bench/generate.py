"""Generation side by side with llama.cpp itself, on the same GGUF and thread count.

Measures, in one run:
  - llama.cpp in process (llama-cpp-python's Llama): time to first token and
    decode tokens/s, one stream;
  - Osprey over HTTP (streamed /v1/completions): the same, one stream;
  - Osprey at 8 concurrent streams: aggregate tokens/s, and its peak RSS against
    model file + KV budget + 150 MB (Osprey serves the generation model alone, so
    the RSS is the whole process's);
  - llama-cpp-python's own server (python -m llama_cpp.server) at 8 clients.

Usage (llama-cpp-python is installed once per machine; see
scripts/reference_generation.py):
    make build
    ~/.cache/osprey/llama-venv/bin/python bench/generate.py [--tokens 128] [--rounds 3]
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = os.path.join(ROOT, "models", "gemma-3-270m", "gemma-3-270m-q4_k_m.gguf")
PROMPT = "Here is a long story about a lighthouse keeper and the sea:"


def round_prompt(i):
    """The single stream's prompt of round `i`: its start differs from every
    other round's, so neither engine finds it cached and each round measures the
    prompt's processing."""
    return f"({i}) {PROMPT}"
PROMPTS8 = [f"Story number {i}: once upon a time, a traveller named {n}" for i, n in enumerate(
    ["Ada", "Brahim", "Chen", "Dana", "Emil", "Fatou", "Gus", "Hana"])]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(port, path, within=120):
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"server on {port} did not become ready")


def start_osprey(binary):
    """Osprey serving the GGUF alone as `gemma` (so its RSS is all generation's),
    2 threads, ready; (process, port)."""
    port = free_port()
    tmp = tempfile.mkdtemp()
    config = os.path.join(tmp, "osprey.toml")
    with open(config, "w") as f:
        f.write(f'[[models]]\nname = "gemma"\npath = {json.dumps(GGUF)}\ntask = "generate"\n')
    env = dict(os.environ)
    env.pop("OSPREY_GENERATION__MODEL", None)
    env.update({
        "OSPREY_SERVER__PORT": str(port),
        "OSPREY_GENERATION__THREADS": "2",
        "OSPREY_TELEMETRY__ACCESS_LOG": "false",
        "OSPREY_COLLECTIONS__PATH": os.path.join(tmp, "collections"),
        "OSPREY_LIMITS__MAX_QUEUE_MS": "0",
    })
    log = open(os.path.join(tmp, "osprey.log"), "w")
    p = subprocess.Popen([binary, "serve", "--config", config],
                         env=env, stdout=log, stderr=log, cwd=ROOT)
    wait_ready(port, "/health/ready")
    return p, port


def start_llama_server():
    """llama-cpp-python's server on the same GGUF, 2 threads, ready; (process, port)."""
    port = free_port()
    srv = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", GGUF,
                            "--n_threads", "2", "--n_threads_batch", "2", "--n_ctx", "4096",
                            "--port", str(port), "--host", "127.0.0.1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, "/v1/models")
    return srv, port


SERVER_TTFT = []


def stream_completion(port, body):
    """(ttft seconds, decode seconds after the first token, completion tokens).
    Osprey's own ttft (its Server-Timing) is kept in SERVER_TTFT."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", json.dumps(body), {"content-type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"{r.status} {r.read()[:200]!r}")
    timing = r.getheader("server-timing") or ""
    if timing.startswith("ttft;dur="):
        SERVER_TTFT.append(float(timing.split("=", 1)[1]) / 1e3)
    first = None
    last = None
    usage = None
    pieces = 0
    buf = b""
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            data = event.removeprefix(b"data: ")
            if data == b"[DONE]":
                continue
            v = json.loads(data)
            if v.get("usage"):
                usage = v["usage"]["completion_tokens"]
            for ch in v.get("choices", []):
                if ch.get("text"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    pieces += 1
    tokens = usage if usage is not None else pieces
    return first - t0, (last - first), tokens


def llama_in_process(tokens, rounds):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=GGUF, n_ctx=2048, n_threads=2, n_threads_batch=2,
                          verbose=False)
    out = []
    for i in range(rounds + 1):
        prompt = llm.tokenize(round_prompt(i).encode(), add_bos=True, special=True)
        llm.reset()
        t0 = time.perf_counter()
        first = None
        n = 0
        for _tok in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
            n += 1
            if first is None:
                first = time.perf_counter()
            if n == tokens:
                break
        end = time.perf_counter()
        out.append((first - t0, (tokens - 1) / (end - first)))
    del llm
    return out[1:]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def eight_clients(port, body_of):
    results = [None] * 8
    def run(i):
        results[i] = stream_completion(port, body_of(i))
    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    total = sum(r[2] for r in results)
    return total / wall, [r[0] for r in results], total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "osprey"))
    args = ap.parse_args()
    n = args.tokens

    print(f"# llama.cpp in process (llama-cpp-python), 2 threads, {n} tokens greedy")
    ll = llama_in_process(n, args.rounds)
    ll_ttft = statistics.median(x[0] for x in ll)
    ll_tps = statistics.median(x[1] for x in ll)
    print(f"llama.cpp: ttft {ll_ttft*1e3:.1f} ms, decode {ll_tps:.1f} tok/s")

    p, port = start_osprey(args.binary)
    try:
        body = {"max_tokens": n, "temperature": 0, "ignore_eos": True,
                "stream": True, "stream_options": {"include_usage": True}}
        single = []
        SERVER_TTFT.clear()
        for i in range(args.rounds + 1):
            # A prompt of its own per round keeps the result cache and the
            # prompt cache out of it.
            b = dict(body, prompt=round_prompt(i))
            ttft, decode_s, toks = stream_completion(port, b)
            single.append((ttft, (toks - 1) / decode_s))
        single = single[1:]
        o_ttft = statistics.median(x[0] for x in single)
        o_tps = statistics.median(x[1] for x in single)
        s_ttft = statistics.median(SERVER_TTFT[1:]) if len(SERVER_TTFT) > 1 else float("nan")
        print(f"osprey: ttft {o_ttft*1e3:.1f} ms (server-side {s_ttft*1e3:.1f} ms), decode "
              f"{o_tps:.1f} tok/s ({o_tps/ll_tps:.2f}x llama.cpp's decode, ttft {o_ttft/ll_ttft:.2f}x)")

        peak = [0.0]
        stop = threading.Event()
        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mb(p.pid))
                time.sleep(0.05)
        sampler = threading.Thread(target=sample)
        sampler.start()
        agg, ttfts, total = eight_clients(port, lambda i: {
            "prompt": PROMPTS8[i], "max_tokens": n, "temperature": 0.8, "seed": 10_000 + i,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}})
        stop.set()
        sampler.join()
        print(f"osprey 8 streams: {agg:.1f} tok/s aggregate ({agg/o_tps:.2f}x its single stream), "
              f"{total} tokens, ttft median {statistics.median(ttfts)*1e3:.0f} ms")
        m = http.client.HTTPConnection("127.0.0.1", port)
        m.request("GET", "/v1/models")
        info = next(d for d in json.loads(m.getresponse().read())["data"] if d["task"] == "generate")
        budget = info["details"]["kv_budget_tokens"]
    finally:
        p.terminate()
        p.wait()

    import llama_cpp
    meta = llama_cpp.Llama(model_path=GGUF, vocab_only=True, verbose=False).metadata
    arch = meta["general.architecture"]
    layers = int(meta[f"{arch}.block_count"])
    kv_heads = int(meta[f"{arch}.attention.head_count_kv"])
    head = int(meta.get(f"{arch}.attention.key_length", 256))
    kv_mb = budget * layers * 2 * kv_heads * head * 2 / 2**20
    file_mb = os.path.getsize(GGUF) / 2**20
    bound = file_mb + kv_mb + 150
    print(f"osprey RSS peak at 8 streams: {peak[0]:.0f} MB (the whole process); bound file "
          f"{file_mb:.0f} + KV {budget} tokens {kv_mb:.0f} + 150 = {bound:.0f} MB")

    srv, port2 = start_llama_server()
    try:
        # It has no ignore_eos: a bias keeps the end-of-generation tokens out, so
        # both servers write the same number of tokens.
        eog = {str(int(meta["tokenizer.ggml.eos_token_id"])): -100}
        eot = llama_cpp.Llama(model_path=GGUF, vocab_only=True, verbose=False).tokenize(
            b"<end_of_turn>", add_bos=False, special=True)
        if len(eot) == 1:
            eog[str(eot[0])] = -100
        agg2, ttfts2, total2 = eight_clients(port2, lambda i: {
            "prompt": PROMPTS8[i], "max_tokens": n, "temperature": 0.8, "seed": 10_000 + i,
            "logit_bias": eog, "stream": True})
        print(f"llama-cpp-python server, 8 clients: {agg2:.1f} tok/s aggregate, {total2} tokens, "
              f"ttft median {statistics.median(ttfts2)*1e3:.0f} ms (Osprey {agg/agg2:.2f}x)")
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    main()
