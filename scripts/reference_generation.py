"""Greedy reference tokens from llama.cpp itself (llama-cpp-python), for the
generation tests: the first 8 tokens of each prompt at temperature 0.

Usage (llama-cpp-python builds llama.cpp from source, so it is installed once
per machine, outside the checkout):
    python3 -m venv ~/.cache/osprey/llama-venv
    ~/.cache/osprey/llama-venv/bin/pip install 'llama-cpp-python[server]==0.3.36'
    ~/.cache/osprey/llama-venv/bin/python scripts/reference_generation.py \
        models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf \
        > crates/osprey-generate/tests/data/greedy_reference.json
"""

import json
import sys

import llama_cpp

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
    "The three primary colors are",
    "Water boils at a temperature of",
]


def main() -> None:
    path = sys.argv[1]
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_threads=2, verbose=False, seed=0)
    out = []
    for prompt in PROMPTS:
        tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.reset()
        generated = []
        for tok in llm.generate(tokens, temp=0.0, top_k=1, reset=True):
            generated.append(int(tok))
            if len(generated) == 8:
                break
        out.append({"prompt": prompt, "prompt_tokens": [int(t) for t in tokens], "greedy": generated})
    json.dump(
        {
            "generator": f"llama-cpp-python {llama_cpp.__version__}",
            "model_sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            "cases": out,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
