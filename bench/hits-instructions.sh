#!/usr/bin/env bash
# What a layer costs per cache-hit request, in CPU instructions: the server runs
# under callgrind, which counts every instruction the server executes whatever
# else the machine is doing, so the two sides (see bench/layer-modes.sh) compare
# without the scatter of timed runs on a shared machine.
#
# The model is far too slow under callgrind to fill the cache, so a native server
# first embeds the workload's texts into a disk tier; each callgrind server fills
# its memory tier from that disk tier. Counting starts once the memory tier holds
# every text and covers exactly REQUESTS requests from 64 clients (same seed, so
# the same requests on both sides).
#
# The count is the server's own user-space work: the kernel's share (sockets) and
# the load generator's are left out, though they take the same cores, so the
# ratio overstates the layer's share of throughput. Nor does it see contention
# between cores (callgrind runs one thread at a time); bench/hits-overhead.sh
# measures throughput with both.
# With PROFILES=DIR set, the two callgrind profiles are kept there, for
# callgrind_annotate.
# Usage: bench/hits-instructions.sh metrics|auth|ip-rate [BINARY] [REQUESTS]
set -euo pipefail
source "$(dirname "$0")/layer-modes.sh"
kind="${1:?usage: bench/hits-instructions.sh metrics|auth|ip-rate [BINARY] [REQUESTS]}"
bin="${2:-target/release/osprey}"
requests="${3:-5000}"
port=18182
workload=zipf:200
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
layer_mode "$kind" off
# No deadline: admission would refuse work at the model's rate under callgrind.
common_env=(OSPREY_CACHE__DISK__PATH="$out/cache.redb" OSPREY_LIMITS__DEADLINE_MS=0)

load() {
    "$bin" bench --url "http://127.0.0.1:$port" "${client_headers[@]}" -w $workload --seed 7 -q "$@"
}

memory_misses() {
    curl -s "${curl_headers[@]}" "localhost:$port/metrics" |
        awk '/^osprey_cache_requests_total.*tier="memory".*result="miss"/ {print $2}'
}

stop() {
    kill "$1"
    wait "$1" 2>/dev/null || true
}

# The disk tier, made natively.
env "${common_env[@]}" "$bin" serve --port $port >"$out/fill.log" 2>&1 &
pid=$!
wait_ready $port 30
load -c 8 -n 20000 >/dev/null 2>&1
stop $pid

run() {
    local mode=$1
    layer_mode "$kind" "$mode"
    env "${server_env[@]}" "${common_env[@]}" \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/$mode.cg" \
        "$bin" serve "${server_args[@]}" --port $port >"$out/$mode.log" 2>&1 &
    local pid=$!
    # Uninstrumented, the model still warms up many times slower than natively.
    wait_ready $port 600
    load -c 8 -n 20000 >/dev/null 2>&1
    local misses
    misses=$(memory_misses)
    callgrind_control -i on $pid >/dev/null
    load -c 64 -n "$requests" 2>&1 | awk '/errors/ && $2 != 0 {print "errors:", $2}'
    callgrind_control -i off $pid >/dev/null
    # A miss costs many hits: the count is void with any.
    if [[ $(memory_misses) != "$misses" ]]; then
        echo "$kind $mode: memory-tier misses while counting" >&2
        exit 1
    fi
    stop $pid
    local total
    total=$(awk '/^totals:/ {print $2}' "$out/$mode.cg")
    echo "$kind $mode: $((total / requests)) instructions per request"
    echo "$total" >"$out/$mode.total"
    if [[ -n ${PROFILES:-} ]]; then cp "$out/$mode.cg" "$PROFILES/$kind-$mode.cg"; fi
}
run off
run on
awk -v off="$(cat "$out/off.total")" -v on="$(cat "$out/on.total")" -v k="$kind" \
    'BEGIN {printf "%s on/off: %+.2f%% instructions per request\n", k, (on / off - 1) * 100}'
