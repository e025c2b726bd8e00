#!/usr/bin/env bash
# What a layer costs on cache-hit traffic: the same release build served with the
# layer off and on (see bench/layer-modes.sh), alternated ROUNDS times. The memory
# tier is first filled with the workload's 1,000 texts, then 64 closed-loop clients
# send Zipf-repeated single-text /embed requests for 12 s.
# Usage: bench/hits-overhead.sh metrics|auth|ip-rate [BINARY] [ROUNDS]
set -euo pipefail
source "$(dirname "$0")/layer-modes.sh"
kind="${1:?usage: bench/hits-overhead.sh metrics|auth|ip-rate [BINARY] [ROUNDS]}"
bin="${2:-target/release/osprey}"
rounds="${3:-5}"
port=18181
run() {
    layer_mode "$kind" "$1"
    env "${server_env[@]}" "$bin" serve "${server_args[@]}" --port $port >/dev/null 2>&1 &
    local pid=$!
    wait_ready $port 30
    "$bin" bench --url "http://127.0.0.1:$port" "${client_headers[@]}" -w zipf:1000 -c 8 -d 20s >/dev/null 2>&1
    "$bin" bench --url "http://127.0.0.1:$port" "${client_headers[@]}" -w zipf:1000 -c 64 -d 12s --warmup 2s --pid $pid 2>&1 |
        awk -v m="$kind $1" '/req\/s/ {for (i = 1; i <= NF; i++) if ($(i+1) == "req/s,") print m, $i}
                             /errors/ && $2 != 0 {print m, "errors:", $2}'
    kill $pid
    wait $pid 2>/dev/null || true
}
layer_mode "$kind" off
for _ in $(seq 1 "$rounds"); do run off; run on; done
