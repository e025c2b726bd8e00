#!/usr/bin/env bash
# What building llama.cpp (the generation engine, vendored in the llama-cpp-sys-2
# crate) needs besides the Rust toolchain and a C++ compiler: cmake, and libclang
# for bindgen. Installed from Debian's packages when missing.
set -euo pipefail

log() { printf '[ensure-build-tools] %s\n' "$*" >&2; }

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
# libclang itself, not libclang-cpp (which other packages bring and bindgen cannot use).
compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null \
    || compgen -G "/usr/lib/llvm-*/lib/libclang-[0-9]*.so*" >/dev/null \
    || compgen -G "/usr/lib/*/libclang.so*" >/dev/null \
    || compgen -G "/usr/lib/*/libclang-[0-9]*.so*" >/dev/null \
    || [[ -n "${LIBCLANG_PATH:-}" ]] \
    || missing+=(libclang-dev)
if ((${#missing[@]})); then
    log "installing ${missing[*]} (Debian packages)"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
log "cmake $(cmake --version | head -1 | awk '{print $3}'), libclang present"
