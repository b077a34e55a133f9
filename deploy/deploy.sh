#!/usr/bin/env bash
# Deploy emailrouter to an environment: namespace, the Secret `emailrouter-secrets` from SECRETS_ENV (KEY=value lines,
# the keys listed in README.md), the API and dashboard at TAG; then wait for the rollout. The training and tuning Jobs
# are left alone (they are immutable and may be running): deploy/run-job.sh starts them.
#   KUBECONFIG_DATA=... SECRETS_ENV=... deploy/deploy.sh test v0.2.0
# With DRY_RUN=1 it prints the kubectl commands and manifests instead of running them.
set -euo pipefail
env=${1:?usage: deploy.sh test|prod TAG}; tag=${2:?usage: deploy.sh test|prod TAG}
here=$(cd "$(dirname "$0")" && pwd)
ns=emailrouter-$env
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
kc() { if [ "${DRY_RUN:-}" = 1 ]; then echo "kubectl $*"; else kubectl "$@"; fi; }
# `kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`: create or update an object kubectl generates
apply_generated() {
  if [ "${DRY_RUN:-}" = 1 ]; then echo "kubectl $* --dry-run=client -o yaml | kubectl apply -f -"
  else kubectl "$@" --dry-run=client -o yaml | kubectl apply -f -; fi
}
if [ -n "${KUBECONFIG_DATA:-}" ]; then printf '%s' "$KUBECONFIG_DATA" > "$work/kubeconfig"; export KUBECONFIG="$work/kubeconfig"; fi
"$here/render.sh" "$env" "$tag" > "$work/manifests.yaml"
if [ "${DRY_RUN:-}" = 1 ]; then cat "$work/manifests.yaml"; fi
apply_generated create namespace "$ns"
if [ -n "${SECRETS_ENV:-}" ]; then
  printf '%s\n' "$SECRETS_ENV" > "$work/secrets.env"
  # the values never reach the log: kubectl reads them from the file
  apply_generated -n "$ns" create secret generic emailrouter-secrets --from-env-file="$work/secrets.env"
elif [ "${DRY_RUN:-}" != 1 ] && ! kubectl -n "$ns" get secret emailrouter-secrets >/dev/null 2>&1; then
  echo "deploy.sh: no Secret emailrouter-secrets in $ns and no SECRETS_ENV to create it from" >&2; exit 2
fi
kc apply -f "$work/manifests.yaml" -l 'app.kubernetes.io/component notin (training,tuning)'
kc -n "$ns" rollout status deployment/emailrouter-serve --timeout=10m
kc -n "$ns" rollout status deployment/emailrouter-dashboard --timeout=5m
