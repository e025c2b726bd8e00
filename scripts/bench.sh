#!/usr/bin/env bash
# The benchmarks behind BENCHMARKS.md: both backends, spawned from the release build.
# Extra arguments go to bench/run.py (for example --duration 10).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
mkdir -p bench-results
for backend in candle onnx; do
    python3 bench/run.py --backend "$backend" --json "bench-results/$backend.json" "$@"
done
