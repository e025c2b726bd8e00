#!/usr/bin/env bash
# cargo deny over the whole dependency graph (deny.toml): licences, bans and
# sources always; advisories where the RustSec database is on the machine (it is
# fetched from GitHub, which not every build machine reaches). cargo-deny itself
# comes from crates.io, once per machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[deny] %s\n' "$*" >&2; }

if ! command -v cargo-deny >/dev/null; then
    log "installing cargo-deny from crates.io (once per machine)"
    cargo install cargo-deny --locked -j "${JOBS:-2}"
fi

cargo deny --all-features check licenses bans sources

DB="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if [[ -d "$DB" ]] && [[ -n "$(ls -A "$DB" 2>/dev/null)" ]]; then
    cargo deny --all-features check --disable-fetch advisories
elif timeout 10 git ls-remote --exit-code https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
    cargo deny --all-features check advisories
else
    log "advisories NOT checked: the RustSec database is not on this machine and GitHub cannot be reached"
fi
