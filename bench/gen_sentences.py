"""Writes bench/sentences.txt: 1,000 deterministic English-like sentences of 6 to 40
words (about 10 to 50 tokens), the texts the wrk workloads send."""
import pathlib
import random

random.seed(7)
WORDS = (
    "the a an model server request latency vector embedding search query user data fast slow "
    "cache memory network token batch input output service rust system engineer team deploy "
    "scale cloud machine learning semantic similar document text sentence meaning quick brown "
    "fox jumps over lazy dog river mountain city music guitar play read write book paper result "
    "measure throughput customer product order price support ticket email weather morning "
    "evening coffee garden window street train station market bridge winter summer light"
).split()
out = pathlib.Path(__file__).with_name("sentences.txt")
with out.open("w") as f:
    for _ in range(1000):
        n = random.choice([6, 8, 10, 12, 15, 20, 25, 30, 40])
        f.write(" ".join(random.choice(WORDS) for _ in range(n)).capitalize() + ".\n")
