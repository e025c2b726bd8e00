#!/usr/bin/env bash
# The memory ceiling under a long unique-text load: the release build with a 1 GiB
# memory cache tier and `self_heal.max_rss_mb` = CEILING (0: none), loaded by
# `osprey bench` with batches of 32 unique texts from 4 clients for 60 s. Prints
# the peak resident size (sampled every 200 ms), the tier's bytes and capacity
# at the end, and the actions taken.
# Usage: bench/memory-ceiling.sh CEILING_MB [BINARY]
set -euo pipefail
ceiling="${1:?usage: bench/memory-ceiling.sh CEILING_MB [BINARY]}"
bin="${2:-target/release/osprey}"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
OSPREY_CACHE__MEMORY__MAX_BYTES=1073741824 OSPREY_LIMITS__MAX_QUEUE_MS=10000 \
    OSPREY_SELF_HEAL__MAX_RSS_MB="$ceiling" OSPREY_SELF_HEAL__CHECK_INTERVAL_MS=250 \
    RUST_LOG=warn "$bin" serve --port "$port" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
until curl -sf -o /dev/null "$url/health/ready"; do sleep 0.05; done
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status"; }
echo "ceiling $ceiling MiB; ready at $(rss) MiB"
peak_file=$(mktemp)
( while kill -0 "$pid" 2>/dev/null; do rss; sleep 0.2; done ) | sort -n | tail -1 >"$peak_file" &
sampler=$!
"$bin" bench --url "$url" --workload batch:32 -c 4 --duration 60s --pid "$pid" 2>&1 |
    grep -E "items/s|errors"
curl -s "$url/admin/cache" | python3 -c 'import json, sys
t = [t for t in json.load(sys.stdin)["tiers"] if t["tier"] == "memory"][0]
print("memory tier", t.get("bytes"), "bytes of", t.get("capacity_bytes"))'
curl -s "$url/admin/actions" | python3 -c 'import collections, json, sys
print("actions", dict(collections.Counter(a["action"] for a in json.load(sys.stdin)["actions"])))'
kill "$pid"
wait "$sampler" 2>/dev/null || true
echo "peak resident $(cat "$peak_file") MiB"
rm -f "$peak_file"
