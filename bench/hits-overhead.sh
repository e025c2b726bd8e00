#!/usr/bin/env bash
# What a layer costs on cache-hit traffic: the same release build served with the
# layer off and on, alternated ROUNDS times. The memory tier is first filled with
# the workload's 1,000 texts, then 64 closed-loop clients send Zipf-repeated
# single-text /embed requests for 12 s.
#   metrics  telemetry.metrics off against on (the access log off in both)
#   auth     no auth against an API key checked on every request plus a per-key
#            rate limit high enough never to refuse (bench/protect/auth.toml); the
#            clients send the key in both, so only the server's checks differ
# Usage: bench/hits-overhead.sh metrics|auth [BINARY] [ROUNDS]
set -euo pipefail
kind="${1:?usage: bench/hits-overhead.sh metrics|auth [BINARY] [ROUNDS]}"
bin="${2:-target/release/osprey}"
rounds="${3:-5}"
port=18181
key="osp_bench_key_0123456789abcdef"
run() {
    local mode=$1 args=() headers=()
    local metrics=true
    case "$kind:$mode" in
        metrics:off) metrics=false ;;
        auth:on) args=(--config bench/protect/auth.toml) ;;
    esac
    [[ $kind == auth ]] && headers=(--header "Authorization: Bearer $key")
    OSPREY_TELEMETRY__METRICS=$metrics OSPREY_TELEMETRY__ACCESS_LOG=false \
        "$bin" serve "${args[@]}" --port $port >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 150); do curl -sf "localhost:$port/health/ready" >/dev/null && break; sleep 0.2; done
    "$bin" bench --url "http://127.0.0.1:$port" "${headers[@]}" -w zipf:1000 -c 8 -d 20s >/dev/null 2>&1
    "$bin" bench --url "http://127.0.0.1:$port" "${headers[@]}" -w zipf:1000 -c 64 -d 12s --warmup 2s --pid $pid 2>&1 |
        awk -v m="$kind $mode" '/req\/s/ {for (i = 1; i <= NF; i++) if ($(i+1) == "req/s,") print m, $i}
                               /errors/ && $2 != 0 {print m, "errors:", $2}'
    kill $pid
    wait $pid 2>/dev/null || true
}
case "$kind" in metrics | auth) ;; *) echo "unknown layer: $kind (metrics or auth)" >&2; exit 2 ;; esac
for _ in $(seq 1 "$rounds"); do run off; run on; done
