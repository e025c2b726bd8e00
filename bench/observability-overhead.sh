#!/usr/bin/env bash
# The metrics and timing layers' cost on cache-hit traffic: the same release build
# served with telemetry.metrics off and on (access log off in both), alternated
# ROUNDS times. Usage: bench/observability-overhead.sh [BINARY] [ROUNDS]
set -euo pipefail
bin="${1:-target/release/osprey}"
rounds="${2:-5}"
port=18181
run() {
    local mode=$1
    OSPREY_TELEMETRY__METRICS=$([[ $mode == on ]] && echo true || echo false) \
    OSPREY_TELEMETRY__ACCESS_LOG=false "$bin" serve --port $port >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 150); do curl -sf "localhost:$port/health/ready" >/dev/null && break; sleep 0.2; done
    # Fill the memory tier with the workload's texts, then measure hits only.
    "$bin" bench --url "http://127.0.0.1:$port" -w zipf:1000 -c 8 -d 20s >/dev/null 2>&1
    "$bin" bench --url "http://127.0.0.1:$port" -w zipf:1000 -c 64 -d 12s --warmup 2s --pid $pid 2>&1 |
        awk -v m="$mode" '/req\/s/ {for (i = 1; i <= NF; i++) if ($(i+1) == "req/s,") print m, $i}'
    kill $pid; wait $pid 2>/dev/null || true
}
for _ in $(seq 1 "$rounds"); do run off; run on; done
