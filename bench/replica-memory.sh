#!/usr/bin/env bash
# What a second replica costs in resident memory: the release build on the
# default shared pool, ready with one replica, then asked for two through
# `PUT /admin/config` (autoscale.min_replicas = 2) and given a few requests so
# both replicas have run. Prints resident memory before and after.
# Usage: bench/replica-memory.sh [BINARY]
set -euo pipefail
bin="${1:-target/release/osprey}"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
OSPREY_AUTOSCALE__ENABLED=true OSPREY_AUTOSCALE__MAX_REPLICAS=2 \
    RUST_LOG=warn "$bin" serve --port "$port" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
until curl -sf -o /dev/null "$url/health/ready"; do sleep 0.05; done
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status"; }
replicas() { curl -sf "$url/info" | python3 -c 'import json, sys; print(json.load(sys.stdin)["replicas"])'; }
embed() {
    for i in $(seq 20); do
        curl -sf -o /dev/null "$url/embed" -H 'content-type: application/json' \
            -d "{\"inputs\": [\"replica memory $1 $i\"]}"
    done
}
embed one
sleep 1
one=$(rss)
curl -sf -o /dev/null -X PUT "$url/admin/config" -H 'content-type: application/json' \
    -d '{"autoscale": {"min_replicas": 2}}'
for _ in $(seq 150); do [[ $(replicas) == 2 ]] && break; sleep 0.2; done
[[ $(replicas) == 2 ]] || { echo "no second replica" >&2; exit 1; }
embed two
sleep 1
two=$(rss)
echo "one replica: $one MiB; two replicas: $two MiB; the second: $((two - one)) MiB"
