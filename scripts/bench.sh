#!/usr/bin/env bash
# The benchmarks behind BENCHMARKS.md: both backends, spawned from the release
# build, loaded by `osprey bench` with bench/scenarios/embed.toml. Reports go to
# bench-results/ (JSON and HTML per backend).
#
# Extra arguments go to `osprey bench` (for example --duration 10s).
# COLD_STARTS=N   cold starts measured per backend (process start to ready), default 5.
# BASELINE_URL=http://127.0.0.1:8000 [BASELINE_PID=N]: also measure the Python
#                 baseline with bench/scenarios/python-baseline.toml and compare.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN=${OSPREY_BIN:-target/release/osprey}
OUT=bench-results
COLD_STARTS=${COLD_STARTS:-5}
mkdir -p "$OUT"
status=0
server=""
trap '[[ -n $server ]] && kill "$server" 2>/dev/null || true' EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# Starts `osprey serve` on a free port; sets server (pid), url and ready_ms.
start() {
    local backend=$1 port t0
    port=$(free_port)
    url="http://127.0.0.1:$port"
    t0=$(now_ms)
    RUST_LOG=${RUST_LOG:-warn} "$BIN" serve --port "$port" --backend "$backend" >/dev/null 2>&1 &
    server=$!
    until curl -sf -o /dev/null "$url/health/ready"; do
        kill -0 "$server" 2>/dev/null || { echo "osprey serve --backend $backend exited" >&2; exit 1; }
        (( $(now_ms) - t0 < 120000 )) || { echo "not ready after 120 s" >&2; exit 1; }
        sleep 0.005
    done
    ready_ms=$(( $(now_ms) - t0 ))
}

stop() {
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
}

for backend in candle onnx; do
    colds=()
    for _ in $(seq "$COLD_STARTS"); do
        start "$backend"
        colds+=("$ready_ms")
        stop
        sleep 0.3
    done
    if (( ${#colds[@]} )); then
        median=$(printf '%s\n' "${colds[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        echo "osprey $backend cold start to ready: median $median ms (runs: ${colds[*]})"
    fi
    start "$backend"
    "$BIN" bench --scenario bench/scenarios/embed.toml --url "$url" --pid "$server" \
        --label "osprey $backend" --json "$OUT/$backend.json" --html "$OUT/$backend.html" "$@" || status=$?
    stop
done

if [[ -n ${BASELINE_URL:-} ]]; then
    "$BIN" bench --scenario bench/scenarios/python-baseline.toml --url "$BASELINE_URL" \
        ${BASELINE_PID:+--pid "$BASELINE_PID"} \
        --json "$OUT/baseline.json" --html "$OUT/baseline.html" "$@" || status=$?
    for backend in candle onnx; do
        "$BIN" bench --compare "$OUT/baseline.json" "$OUT/$backend.json"
    done
fi
exit "$status"
