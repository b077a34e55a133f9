#!/usr/bin/env bash
# Start the GPU training Job (train) or the Optuna workers (tune) of an environment and wait for it to finish. A
# finished Job of the same name is replaced; a running one is left running and this script says so.
#   KUBECONFIG_DATA=... deploy/run-job.sh test train
set -euo pipefail
env=${1:?usage: run-job.sh test|prod train|tune}; job=${2:?usage: run-job.sh test|prod train|tune}
case $job in train|tune) ;; *) echo "run-job.sh: unknown job '$job' (train or tune)" >&2; exit 2;; esac
here=$(cd "$(dirname "$0")" && pwd)
ns=emailrouter-$env; name=emailrouter-$job
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
kc() { if [ "${DRY_RUN:-}" = 1 ]; then echo "kubectl $*"; else kubectl "$@"; fi; }
if [ -n "${KUBECONFIG_DATA:-}" ]; then printf '%s' "$KUBECONFIG_DATA" > "$work/kubeconfig"; export KUBECONFIG="$work/kubeconfig"; fi
"$here/render.sh" "$env" "${TAG:-latest}" > "$work/manifests.yaml"
if [ "${DRY_RUN:-}" != 1 ] && [ "$(kubectl -n "$ns" get job "$name" -o jsonpath='{.status.active}' 2>/dev/null)" != "" ]; then
  echo "run-job.sh: $name is running in $ns; wait for it or delete it first" >&2; exit 1
fi
kc -n "$ns" delete job "$name" --ignore-not-found
kc apply -f "$work/manifests.yaml" -l "app.kubernetes.io/component in (config)"
kc apply -f "$work/manifests.yaml" -l "app.kubernetes.io/name=$name"
kc -n "$ns" patch job "$name" --type=merge -p '{"spec":{"suspend":false}}'
kc -n "$ns" wait --for=condition=complete "job/$name" --timeout=24h
