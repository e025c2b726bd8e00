#!/usr/bin/env bash
# The tools the deployment checks and the load-balancer test use: promtool
# (Debian's prometheus package) and nginx, installed when missing. kubectl with
# kustomize is expected on the machine; kubernetes-validate comes with the
# clients (scripts/requirements-clients.txt).
set -euo pipefail

log() { printf '[ensure-deploy-tools] %s\n' "$*" >&2; }

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
if ((${#missing[@]})); then
    log "installing ${missing[*]} (Debian packages)"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    # The packages' services are not wanted: the tests start their own.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v kubectl >/dev/null || { log "kubectl (with kustomize) is needed: https://kubernetes.io/docs/tasks/tools/"; exit 1; }
log "promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}'), nginx $( (nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1) | sed 's/.*nginx\///'), kubectl $(kubectl version --client 2>/dev/null | head -1 | awk '{print $3}')"
