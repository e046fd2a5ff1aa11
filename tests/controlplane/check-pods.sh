#!/usr/bin/env bash
# Checks by hand that the local control plane runs pods (until the e2e suite
# has tests for it): a plain Deployment scaled 1 -> 3 has 3 Ready pods within
# 60 s; pods are Running but not Ready during the start-up delay; a pod's
# pod-ready.stage.kwok.x-k8s.io/delay annotation changes the delay; a
# scale-down removes pods; `kubectl top pods` answers; the namespace deletion
# completes. Prints what it measured; exits 1 at the first failed check.
#
#   tests/controlplane/check-pods.sh [--dir D]
#
# Uses the cluster running in D (default target/cluster), or starts one there
# and stops it at the end.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cluster=$root/tests/controlplane/cluster.sh
dir=target/cluster
case ${1:-} in
  "") ;;
  --dir) dir=${2:?--dir needs a value} ;;
  *) echo "usage: check-pods.sh [--dir D]" >&2; exit 2 ;;
esac
[[ $dir == /* ]] || dir=$root/$dir

say() { printf 'check-pods: %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }
started="" ns=""
cleanup() {
  if [[ $ns ]]; then k delete namespace "$ns" --wait=false >/dev/null 2>&1 || true; fi
  if [[ $started ]]; then "$cluster" down --dir "$dir" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
if ! "$cluster" status --dir "$dir" >/dev/null 2>&1; then
  "$cluster" up --dir "$dir" --watch-pid $$ >/dev/null
  started=1
fi
# shellcheck disable=SC1091 # written by cluster.sh up
source "$dir/env"
[[ ${PODS:-0} == 1 ]] || fail "the cluster in $dir runs without pods (--no-pods)"
export KUBECONFIG
k() { "$KUBECTL" "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

# "<phase>/<Ready>" of each pod of app $1, one per line, sorted.
states() {
  k get pods -n "$ns" -l "app=$1" \
    -o jsonpath='{range .items[*]}{.status.phase}/{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | sort
}
count() { states "$1" | grep -c "^$2\$" || true; } # app, state
wait_count() { # app, state, n, timeout seconds[, "all": and no other pods]
  local end=$((SECONDS + $4))
  until [[ $(count "$1" "$2") == "$3" && (${5:-} != all || $(states "$1" | grep -c .) == "$3") ]]; do
    ((SECONDS < end)) || fail "$1: not $3 pods $2 after $4 s: $(states "$1" | tr '\n' ' ')"
    sleep 0.2
  done
}
deployment() { # name, replicas, ready delay annotation (or "")
  local annotations="{}"
  [[ $3 ]] && annotations="{pod-ready.stage.kwok.x-k8s.io/delay: \"$3\", kwok.x-k8s.io/usage-cpu: 150m}"
  k apply -n "$ns" -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1}
spec:
  replicas: $2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}, annotations: $annotations}
    spec:
      containers: [{name: app, image: registry.k8s.io/pause:3.10, resources: {requests: {cpu: 100m}}}]
YAML
}

ns=check-pods-$RANDOM
k create namespace "$ns" >/dev/null
say "cluster $dir, node $NODE, default start-up delay ${POD_READY_DELAY_MS} ms"

deployment plain 1 ""
wait_count plain Running/True 1 60 all
t=$(now)
k scale -n "$ns" deployment/plain --replicas=3 >/dev/null
wait_count plain Running/False 2 30
running=$(since "$t")
wait_count plain Running/True 3 60 all
say "plain 1 -> 3: 2 new pods Running (not Ready) after ${running} s, 3 Ready after $(since "$t") s"

t=$(now)
deployment slow 2 8s
wait_count slow Running/False 2 30
sleep 4
[[ $(count slow Running/False) == 2 ]] || fail "slow: a pod with delay 8s was Ready within 4 s"
wait_count slow Running/True 2 30 all
say "slow (annotation delay 8s): Running, still not Ready 4 s later, Ready after $(since "$t") s"
t=$(now)
deployment quick 2 0s
wait_count quick Running/True 2 30 all
say "quick (annotation delay 0s): 2 Ready after $(since "$t") s"

t=$(now)
k scale -n "$ns" deployment/plain --replicas=1 >/dev/null
wait_count plain Running/True 1 30 all
say "plain 3 -> 1: 2 pods deleted after $(since "$t") s"

t=$(now)
end=$((SECONDS + 60))
until top=$(k top pods -n "$ns" -l app=slow --no-headers 2>&1) && [[ $(grep -c . <<<"$top") == 2 ]]; do
  ((SECONDS < end)) || fail "kubectl top pods: $top"
  sleep 1
done
say "kubectl top pods answered after $(since "$t") s:"
printf "  %s\n" "${top//$'\n'/$'\n  '}"
k top node "$NODE" --no-headers | sed 's/^/  /'

t=$(now)
k delete namespace "$ns" --timeout=60s >/dev/null || fail "namespace $ns not deleted within 60 s"
say "namespace $ns deleted in $(since "$t") s"
ns=""
say "all checks passed"
