#!/usr/bin/env bash
# Renders the webhook configurations of deploy/local for one governor on
# this machine and prints their YAML (the rest of deploy/local is left out):
#
#   deploy/local/render.sh --url https://127.0.0.1:PORT [--ca-bundle B64] \
#     [--name NAME] [--namespace NS] [--failure-policy Ignore|Fail] [--timeout S] \
#     [--opt-in]
#
# --namespace limits the webhooks to that one namespace (the demo and each
# e2e test govern only their own); without it the template's exclusions
# hold. --opt-in adds deploy/namespace-opt-in: only namespaces labelled
# scale-governor.io/enabled=true are sent. Without --ca-bundle there is none, for a governor that injects its
# own (`serve --certificates=self-signed`). Needs kubectl (for `kubectl
# kustomize`).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

name=scale-governor url='' ca='' namespace='' failure='' timeout='' opt_in=''
while (($#)); do
  case $1 in
    --opt-in) opt_in=1; shift; continue ;;
    --name) name=$2 ;;
    --url) url=${2%/} ;;
    --ca-bundle) ca=$2 ;;
    --namespace) namespace=$2 ;;
    --failure-policy) failure=$2 ;;
    --timeout) timeout=$2 ;;
    *) echo "render.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -n $url ]] || { echo "render.sh: --url is required" >&2; exit 2; }

# kustomize accepts only relative paths to other kustomizations, so the
# throwaway kustomization lives beside this one (git ignores it).
work=$(mktemp -d "$here/../.render.XXXXXX")
trap 'rm -rf "$work"' EXIT
patch() { # kind, path
  echo "  - target: {kind: $1}"
  echo "    patch: |"
  echo "      - {op: replace, path: /metadata/name, value: \"$name\"}"
  if [[ -n $ca ]]; then
    echo "      - {op: replace, path: /webhooks/0/clientConfig, value: {url: \"$url/$2\", caBundle: \"$ca\"}}"
  else
    echo "      - {op: replace, path: /webhooks/0/clientConfig, value: {url: \"$url/$2\"}}"
  fi
  [[ -n $failure ]] && echo "      - {op: replace, path: /webhooks/0/failurePolicy, value: $failure}"
  [[ -n $timeout ]] && echo "      - {op: replace, path: /webhooks/0/timeoutSeconds, value: $timeout}"
  [[ -n $namespace ]] && echo "      - {op: replace, path: /webhooks/0/namespaceSelector, value: {matchLabels: {kubernetes.io/metadata.name: \"$namespace\"}}}"
  return 0
}
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources: [\"../local\"]"
  [[ -n $opt_in ]] && echo "components: [\"../namespace-opt-in\"]"
  echo "patches:"
  patch MutatingWebhookConfiguration mutate
  patch ValidatingWebhookConfiguration validate
} >"$work/kustomization.yaml"
# Only the two webhook configurations: kustomize separates documents with
# `---` lines and starts each with apiVersion, then kind.
kubectl kustomize "$work" | awk '
  /^---$/ { if (keep) printf "%s", doc; doc = ""; keep = 0; next }
  /^kind: (Mutating|Validating)WebhookConfiguration$/ { keep = 1 }
  { doc = doc $0 "\n" }
  END { if (keep) printf "%s", doc }
' | awk 'NR > 1 && /^apiVersion:/ { print "---" } { print }'
