#!/usr/bin/env bash
# The dashboard under cache-hit load: its page weight, then, while 64 closed-loop
# clients send Zipf-repeated /embed requests (all memory-tier hits), one browser's
# worth of polling (the page and /dashboard/data once a second) timed by curl.
# Usage: bench/dashboard-under-load.sh [BINARY] [SECONDS]
set -euo pipefail
bin="${1:-target/release/osprey}"
secs="${2:-15}"
port=18585
base="http://127.0.0.1:$port"
OSPREY_TELEMETRY__ACCESS_LOG=false "$bin" serve --port $port >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do curl -sf "$base/health/ready" >/dev/null && break; sleep 0.2; done
echo "page: $(curl -s "$base/dashboard" | wc -c) bytes, data: $(curl -s "$base/dashboard/data" | wc -c) bytes (idle)"
"$bin" bench --url "$base" -w zipf:1000 -c 8 -d 15s >/dev/null 2>&1
"$bin" bench --url "$base" -w zipf:1000 -c 64 -d "$((secs + 2))s" 2>&1 | grep -E "req/s|latency ms" &
load=$!
sleep 2
times=()
for _ in $(seq 1 "$secs"); do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' "$base/dashboard/data")")
    curl -s -o /dev/null "$base/dashboard"
    sleep 1
done
wait $load
echo "data after the run: $(curl -s "$base/dashboard/data" | wc -c) bytes"
printf '%s\n' "${times[@]}" | sort -n | awk '{t[NR] = $1 * 1000} END {
    printf "/dashboard/data under load: %d polls, median %.1f ms, max %.1f ms\n", NR, t[int((NR + 1) / 2)], t[NR]}'
