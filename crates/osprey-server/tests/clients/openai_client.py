"""Osprey through the official openai Python client: embeddings (base64, the
client's default, and float), the models list, one model, and an unknown model.

usage: openai_client.py BASE_URL   (prints one JSON object of what it saw)
"""
import json
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0)

texts = ["Osprey speaks OpenAI.", "a second text"]
default = client.embeddings.create(model="minilm", input=texts)
floats = client.embeddings.create(model="para", input=texts[0], encoding_format="float")
models = client.models.list()
one = client.models.retrieve("polarity")
try:
    client.embeddings.create(model="nope", input="x")
    unknown = "no error"
except openai.NotFoundError as e:
    unknown = f"404 {e.message}"

json.dump({
    "minilm": [list(map(float, d.embedding)) for d in default.data],
    "minilm_model": default.model,
    "minilm_tokens": default.usage.total_tokens,
    "para": list(map(float, floats.data[0].embedding)),
    "models": sorted(m.id for m in models.data),
    "polarity": one.id,
    "unknown": unknown,
}, sys.stdout)
