#!/usr/bin/env bash
# The release binary (`make build`, `make run`), with llama.cpp's kernels built
# for this machine's CPU.
#
# .cargo/config.toml builds llama.cpp for x86-64-v3 (AVX2 and FMA), so that a
# binary runs on any x86 server. A binary built here to run here can use more:
# on a CPU with AVX-512 and VNNI, llamafile's int8 dot products take one
# instruction instead of three, and a batch of 8 sequences decodes 14–19% faster
# (BENCHMARKS.md). llama-cpp-python builds llama.cpp for the CPU it is installed
# on, as llama.cpp's own CMake does by default.
#
#   LLAMA_CPU=native    (default) add what /proc/cpuinfo lists
#   LLAMA_CPU=portable  x86-64-v3 only: for a binary that runs elsewhere (the
#                       container image)
#
# llama-cpp-sys-2 configures CMake only once per build directory, so a change of
# these options would be silently ignored: when the set differs from the last
# build's, that crate is cleaned first.
set -euo pipefail

log() { printf '[build-release] %s\n' "$*" >&2; }

JOBS=${JOBS:-2}
CARGO=${CARGO:-cargo}
mode=${LLAMA_CPU:-native}

flags=()
case "$mode" in
native)
    if [[ $(uname -m) == x86_64 && -r /proc/cpuinfo ]]; then
        have=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
        has() { for f; do [[ $have == *" $f "* ]] || return 1; done; }
        # ggml's GGML_AVX512 compiles for F, CD, VL, DQ and BW together.
        if has avx512f avx512cd avx512vl avx512dq avx512bw; then
            flags+=(GGML_AVX512=ON)
            has avx512vbmi && flags+=(GGML_AVX512_VBMI=ON)
            has avx512_vnni && flags+=(GGML_AVX512_VNNI=ON)
            has avx512_bf16 && flags+=(GGML_AVX512_BF16=ON)
        fi
        has avx_vnni && flags+=(GGML_AVX_VNNI=ON)
    fi
    ;;
portable) ;;
*)
    log "LLAMA_CPU must be native or portable, not '$mode'"
    exit 2
    ;;
esac

stamp=target/release/.llama-cpu
want="${flags[*]:-x86-64-v3}"
last=""
if [[ -f $stamp ]]; then
    last=$(cat "$stamp")
elif compgen -G 'target/release/build/llama-cpp-sys-2-*' >/dev/null; then
    # Built before this script kept a stamp: with the defaults.
    last=x86-64-v3
fi
if [[ -n $last && $last != "$want" ]]; then
    log "llama.cpp's CPU options changed ($last -> $want): rebuilding it"
    "$CARGO" clean --release -p llama-cpp-sys-2
fi
log "llama.cpp for: $want"
env "${flags[@]}" "$CARGO" build --release -j "$JOBS" -p osprey
mkdir -p target/release
printf '%s\n' "$want" >"$stamp"
