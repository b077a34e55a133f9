#!/usr/bin/env bash
# Print the manifests of an environment (test or prod) with the images at TAG from REGISTRY:
#   deploy/render.sh test v0.2.0        (REGISTRY defaults to ghcr.io/emailrouter)
set -euo pipefail
env=${1:?usage: render.sh test|prod TAG}; tag=${2:?usage: render.sh test|prod TAG}
case $env in test|prod) ;; *) echo "render.sh: unknown environment '$env' (test or prod)" >&2; exit 2;; esac
registry=${REGISTRY:-ghcr.io/emailrouter}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp -r "$here/k8s" "$work/"
{
  echo "resources: [../overlays/$env]"
  echo "images:"
  for image in serve dashboard train; do
    echo "  - {name: ghcr.io/emailrouter/emailrouter-$image, newName: $registry/emailrouter-$image, newTag: \"$tag\"}"
  done
} > "$work/k8s/release.yaml"
mkdir "$work/k8s/release" && mv "$work/k8s/release.yaml" "$work/k8s/release/kustomization.yaml"
kubectl kustomize "$work/k8s/release"
