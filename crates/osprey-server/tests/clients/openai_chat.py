"""The official openai package against Osprey's generation routes: legacy
completions, chat, streamed chat, and a session through extra_body. Prints what
it saw as JSON for the Rust test to check."""

import json
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
seen = {}

c = client.completions.create(
    model="gemma", prompt="The capital of France is", max_tokens=8, temperature=0
)
seen["completion"] = {
    "text": c.choices[0].text,
    "finish": c.choices[0].finish_reason,
    "usage": [c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens],
    "object": c.object,
}

chat = client.chat.completions.create(
    model="gemma",
    messages=[
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    max_tokens=16,
    temperature=0,
)
seen["chat"] = {
    "content": chat.choices[0].message.content,
    "role": chat.choices[0].message.role,
    "finish": chat.choices[0].finish_reason,
    "usage": [chat.usage.prompt_tokens, chat.usage.completion_tokens, chat.usage.total_tokens],
    "object": chat.object,
}

# A chat's next turn sends the conversation back; only its new part is read,
# and the usage says how much came from the cache, as OpenAI's does.
history = [
    {"role": "system", "content": "You answer questions about geography in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
turns = []
for follow_up in ["And the capital of Italy?", None]:
    r = client.chat.completions.create(model="gemma", messages=history, max_tokens=12, temperature=0)
    turns.append([r.usage.prompt_tokens, r.usage.prompt_tokens_details.cached_tokens])
    if follow_up:
        history += [
            {"role": "assistant", "content": r.choices[0].message.content},
            {"role": "user", "content": follow_up},
        ]
seen["turns"] = turns

pieces = []
finish = None
usage = None
stream = client.chat.completions.create(
    model="gemma",
    messages=[{"role": "user", "content": "Count from one to five."}],
    max_tokens=12,
    temperature=0.7,
    seed=7,
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.usage is not None:
        usage = [chunk.usage.prompt_tokens, chunk.usage.completion_tokens]
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
seen["stream"] = {"pieces": pieces, "finish": finish, "usage": usage}

for text in ["My name is Ada.", "What is my name?"]:
    r = client.chat.completions.create(
        model="gemma",
        messages=[{"role": "user", "content": text}],
        max_tokens=8,
        temperature=0,
        extra_body={"session_id": "client-session"},
    )
    seen.setdefault("session_answers", []).append(r.choices[0].message.content)

try:
    client.chat.completions.create(model="gemma", messages=[], max_tokens=4)
    seen["empty"] = "accepted"
except openai.BadRequestError as e:
    seen["empty"] = f"{e.status_code} {e.message}"

print(json.dumps(seen))
