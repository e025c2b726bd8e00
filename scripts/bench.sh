#!/usr/bin/env bash
# The benchmarks behind BENCHMARKS.md: Osprey in several configurations, spawned
# from the release build, loaded by `osprey bench` with bench/scenarios/embed.toml.
# Reports go to bench-results/ (JSON and HTML per configuration).
#
# Extra arguments go to `osprey bench` (for example --duration 10s).
# CONFIGS="name=serve flags;..."  the configurations, by default the default
#                 (onnx, balanced), the speed and throughput profiles, and candle.
# SCENARIO=FILE   the scenario run per configuration (default bench/scenarios/embed.toml).
# COLD_STARTS=N   cold starts measured per configuration (process start to ready), default 5.
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

CONFIGS=${CONFIGS:-"onnx=;speed=--profile speed;throughput=--profile throughput;candle=--backend candle"}

# Starts `osprey serve FLAGS` on a free port; sets server (pid), url and ready_ms.
start() {
    local flags=$1 port t0
    port=$(free_port)
    url="http://127.0.0.1:$port"
    t0=$(now_ms)
    # shellcheck disable=SC2086 # the flags are words
    RUST_LOG=${RUST_LOG:-warn} "$BIN" serve --port "$port" $flags >/dev/null 2>&1 &
    server=$!
    until curl -sf -o /dev/null "$url/health/ready"; do
        kill -0 "$server" 2>/dev/null || { echo "osprey serve $flags exited" >&2; exit 1; }
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

IFS=';' read -ra configs <<<"$CONFIGS"
names=()
for config in "${configs[@]}"; do
    name=${config%%=*}
    flags=${config#*=}
    names+=("$name")
    colds=()
    for _ in $(seq "$COLD_STARTS"); do
        start "$flags"
        colds+=("$ready_ms")
        stop
        sleep 0.3
    done
    if (( ${#colds[@]} )); then
        median=$(printf '%s\n' "${colds[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        echo "osprey $name cold start to ready: median $median ms (runs: ${colds[*]})"
    fi
    start "$flags"
    "$BIN" bench --scenario "${SCENARIO:-bench/scenarios/embed.toml}" --url "$url" --pid "$server" \
        --label "osprey $name" --json "$OUT/$name.json" --html "$OUT/$name.html" "$@" || status=$?
    # What the server changed on its own during the run (replicas, batch budgets).
    curl -sf -o "$OUT/$name-actions.json" "$url/admin/actions" || true
    stop
done

if [[ -n ${BASELINE_URL:-} ]]; then
    "$BIN" bench --scenario bench/scenarios/python-baseline.toml --url "$BASELINE_URL" \
        ${BASELINE_PID:+--pid "$BASELINE_PID"} \
        --json "$OUT/baseline.json" --html "$OUT/baseline.html" "$@" || status=$?
    for name in "${names[@]}"; do
        "$BIN" bench --compare "$OUT/baseline.json" "$OUT/$name.json"
    done
fi
exit "$status"
