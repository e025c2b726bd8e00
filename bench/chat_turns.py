"""A multi-turn chat, turn by turn: time to first token of each turn, Osprey
against llama-cpp-python's server on the same GGUF, thread count and turns.

Each turn sends the whole conversation so far (a long system message, every
earlier question and the server's own earlier answers) and streams a greedy
answer of up to --answer tokens, as a chat client does. A server that keeps the
conversation's KV cells reads only the new turn; one that does not reads it all
again, so its time to first token grows with the conversation.

Usage (llama-cpp-python is installed once per machine; see
scripts/reference_generation.py):
    make build
    ~/.cache/osprey/llama-venv/bin/python bench/chat_turns.py [--turns 8] [--rounds 2]
        [--binary target/release/osprey] [--also OTHER_OSPREY_BINARY]
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import ROOT, start_llama_server, start_osprey  # noqa: E402

SYSTEM = (
    "You are the support assistant of a small bookshop. "
    + " ".join(
        f"Rule {i}: answer politely, mention the shop's opening hours (nine to six) when asked, "
        f"and never promise a delivery date for orders of type {i}."
        for i in range(1, 13)
    )
)
QUESTIONS = [
    "Do you have books about lighthouses?",
    "When do you open on Saturdays?",
    "Can I order a book that is out of print?",
    "How long does a delivery take?",
    "Do you sell gift cards?",
    "Can I return a book I did not like?",
    "Do you have a reading club?",
    "Which books do you recommend for a ten-year-old?",
    "Can I pay by bank transfer?",
    "Thank you, that is all.",
]


def stream_chat(port, messages, answer_tokens, seed):
    """(time to first token in seconds, the answer's text, prompt tokens)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = {
        "model": "gemma",
        "messages": messages,
        "max_tokens": answer_tokens,
        "temperature": 0,
        "seed": seed,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    c.request("POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"{r.status} {r.read()[:300]!r}")
    first = None
    text = []
    prompt_tokens = None
    buf = b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            data = event.strip().removeprefix(b"data: ")
            if not data or data == b"[DONE]":
                continue
            v = json.loads(data)
            if v.get("usage"):
                prompt_tokens = v["usage"].get("prompt_tokens")
            for ch in v.get("choices", []):
                piece = (ch.get("delta") or {}).get("content")
                if piece:
                    first = first or time.perf_counter()
                    text.append(piece)
    return (first or time.perf_counter()) - t0, "".join(text), prompt_tokens


def conversation(port, turns, answer_tokens, seed):
    """Time to first token and prompt tokens of each turn. Each round is a
    conversation of its own: its first words differ from the other rounds'."""
    messages = [{"role": "system", "content": f"Conversation {seed}. {SYSTEM}"}]
    out = []
    for i in range(turns):
        messages.append({"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]})
        ttft, answer, prompt = stream_chat(port, messages, answer_tokens, seed)
        messages.append({"role": "assistant", "content": answer})
        out.append((ttft, prompt))
    return out


def measured(start, args):
    """The conversations of every round on the server `start` brings up."""
    proc, port = start()
    try:
        # A seed per round also keeps Osprey's answer cache out of it.
        return [conversation(port, args.turns, args.answer, 100 + r) for r in range(args.rounds)]
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--answer", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "osprey"))
    ap.add_argument("--also", help="another Osprey binary, measured in the same run")
    args = ap.parse_args()

    servers = [("Osprey", lambda: start_osprey(args.binary))]
    if args.also:
        servers.append(("Osprey (--also)", lambda: start_osprey(args.also)))
    servers.append(("llama-cpp-python server", start_llama_server))
    results = {name: measured(start, args) for name, start in servers}

    names = list(results)
    print(f"# {args.turns} turns, answers of up to {args.answer} tokens, greedy, 2 threads; "
          f"time to first token, median of {args.rounds} rounds (prompt tokens)")
    print("| turn | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for t in range(args.turns):
        cells = []
        for n in names:
            ttft = statistics.median(r[t][0] for r in results[n]) * 1e3
            prompt = results[n][0][t][1]
            cells.append(f"{ttft:.0f} ms ({prompt})")
        print(f"| {t + 1} | " + " | ".join(cells) + " |")
    later = {n: statistics.median(r[t][0] for r in results[n] for t in range(1, args.turns)) * 1e3
             for n in names}
    print("| turns 2+, median | " + " | ".join(f"{later[n]:.0f} ms" for n in names) + " |")
    print(json.dumps({n: results[n] for n in names}))


if __name__ == "__main__":
    main()
