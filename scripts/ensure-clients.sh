#!/usr/bin/env bash
# Installs the official API client packages the tests use (scripts/requirements-
# clients.txt) into the project's .venv/, which scripts/fetch-onnxruntime.sh
# creates. Idempotent: pip leaves satisfied pins alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || "$ROOT/scripts/fetch-onnxruntime.sh"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    "$PY" -m pip install --quiet --only-binary=:all: -r "$ROOT/scripts/requirements-clients.txt"
"$PY" -c 'import openai; print("[ensure-clients] openai", openai.__version__)'
