#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed for the dashboard's browser
# test, from Debian's packages when it is missing. OSPREY_CHROMIUM names another binary.
set -euo pipefail

bin="${OSPREY_CHROMIUM:-chromium}"
if command -v "$bin" >/dev/null; then
    exit 0
fi
echo "[ensure-chromium] installing chromium" >&2
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
command -v "$bin" >/dev/null || { echo "[ensure-chromium] $bin is still missing" >&2; exit 1; }
