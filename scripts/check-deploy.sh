#!/usr/bin/env bash
# Checks the deployment files under deploy/: the Prometheus rules (syntax and
# unit tests), every kustomization rendered and validated against the Kubernetes
# schemas in strict mode, and the compose file's references. Whether every metric
# they use exists in a live scrape is checked by the CLI test `deploy`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[check-deploy] %s\n' "$*" >&2; }

promtool check rules deploy/prometheus/rules.yaml
promtool test rules deploy/prometheus/rules.test.yaml
promtool check config --syntax-only deploy/prometheus/prometheus.yml

# Custom resources have no schema in kubernetes-validate; only these may be skipped.
CRDS='ServiceMonitor|ScaledObject|ServingRuntime|InferenceService'
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
for k in deploy/k8s deploy/k8s/overlays/keda deploy/k8s/overlays/kserve; do
    out="$TMP/$(echo "$k" | tr / _).yaml"
    kubectl kustomize "$k" >"$out"
    report="$("$ROOT/.venv/bin/kubernetes-validate" --strict --quiet "$out" 2>&1)" || {
        printf '%s\n' "$report" >&2
        log "FAILED: $k"
        exit 1
    }
    unexpected="$(printf '%s\n' "$report" | grep -v -E "^$|Couldn't find schema for kind ($CRDS) " || true)"
    if [[ -n "$unexpected" ]]; then
        printf '%s\n' "$unexpected" >&2
        log "FAILED: $k (unexpected warnings)"
        exit 1
    fi
    log "ok: $k ($(grep -c '^kind:' "$out") resources)"
done

"$ROOT/.venv/bin/python" - <<'PY'
# The compose file: every service the stack needs, every file it mounts present.
import os, sys, yaml
compose = yaml.safe_load(open("deploy/compose.yaml"))
services = compose["services"]
need = {"osprey-1", "osprey-2", "nginx", "redis", "prometheus", "grafana"}
missing = need - services.keys()
if missing:
    sys.exit(f"compose.yaml lacks {sorted(missing)}")
for name, svc in services.items():
    for v in svc.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("."):
            path = os.path.join("deploy", src)
            if not os.path.exists(path):
                sys.exit(f"compose.yaml: {name} mounts {src}, which does not exist")
    build = svc.get("build")
    if build and not os.path.exists(os.path.join("deploy", build["context"], build["dockerfile"])):
        sys.exit(f"compose.yaml: {name} builds from a missing Dockerfile")
print("[check-deploy] ok: deploy/compose.yaml", file=sys.stderr)
PY
