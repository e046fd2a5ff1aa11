#!/usr/bin/env bash
# The governor's main job, for real: run `scale-governor serve` against the
# cluster in $KUBECONFIG, register it as the cluster's admission webhooks for
# one namespace, apply the example workloads and scale them the way the HPA,
# a person or a GitOps tool would. Every change is clamped or refused with
# the rule and the numbers, in kubectl's output, an Event and a metric.
#
# Run through `make demo`, which starts the local control plane when KUBECONFIG
# is unset. The apiserver must reach this machine at DEMO_WEBHOOK_HOST
# (default 127.0.0.1, right for the local control plane).
set -euo pipefail
: "${KUBECONFIG:?set KUBECONFIG or run make demo}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
host=${DEMO_WEBHOOK_HOST:-127.0.0.1}
ns=scale-governor-demo
work=$root/target/demo
governor=${GOVERNOR:-${CARGO_TARGET_DIR:-$root/target}/debug/scale-governor}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

step "Cluster"
run kubectl version

step "Serving certificate (IP SAN $host, because Go ignores the CN)"
rm -rf "$work" && mkdir -p "$work"
ca=$("$governor" certs --out-dir "$work/certs" --ip "$host" 2>/dev/null)
echo "caBundle: ${ca:0:40}..."

step "A demand endpoint for the recommender (HTTP JSON, served from $work/stats)"
mkdir -p "$work/stats"
echo '{"orders": 20}' >"$work/stats/checkout.json"
stats_port=$(free_port)
python3 -m http.server "$stats_port" --bind 127.0.0.1 --directory "$work/stats" >"$work/stats.log" 2>&1 &
stats_pid=$!
cat >"$work/sources.yaml" <<YAML
sources:
  - name: orders
    namespaces: [$ns]
    http:
      url: http://127.0.0.1:$stats_port/{{name}}.json
YAML
cat "$work/sources.yaml"

step "scale-governor serve"
https_port=$(free_port) admin_port=$(free_port)
"$governor" serve --addr "0.0.0.0:$https_port" --admin-addr "127.0.0.1:$admin_port" \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" \
  --lease-namespace default --identity demo --webhook-configuration scale-governor-demo \
  --sources "$work/sources.yaml" --recommend-interval 1s >"$work/serve.log" 2>&1 &
pid=$!
cleanup() {
  kubectl delete mutatingwebhookconfiguration,validatingwebhookconfiguration scale-governor-demo --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete namespace "$ns" --wait=false --ignore-not-found >/dev/null 2>&1 || true
  kill "$pid" "$stats_pid" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  [[ $(curl -s "http://127.0.0.1:$admin_port/readyz") == ok ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.2
done
echo "ready: https://$host:$https_port (logs: $work/serve.log)"

step "Webhook configurations for namespace $ns"
# The previous run deletes its namespace without waiting; a run started
# while that is under way would apply into a namespace about to vanish.
if [[ $(kubectl get namespace "$ns" -o jsonpath='{.status.phase}' 2>/dev/null) == Terminating ]]; then
  echo "waiting for the previous run's namespace $ns to be deleted"
  kubectl wait --for=delete "namespace/$ns" --timeout=180s >/dev/null
fi
kubectl get namespace "$ns" >/dev/null 2>&1 || run kubectl create namespace "$ns"
# The configuration the project ships (deploy/local), pointed at this
# governor and limited to the demo namespace.
"$root/deploy/local/render.sh" --name scale-governor-demo --namespace "$ns" \
  --url "https://$host:$https_port" --ca-bundle "$ca" --failure-policy Ignore --timeout 5 |
  kubectl apply -f -
# The apiserver picks up a new configuration a moment later: wait until the
# governor has answered a (dry-run) review.
reviews() { curl -s "http://127.0.0.1:$admin_port/metrics" | awk '/^scale_governor_admission_reviews_total[{]/ {n += $NF} END {print n + 0}'; }
for _ in $(seq 100); do
  kubectl apply -n "$ns" -f "$root/examples/web.yaml" --dry-run=server >/dev/null 2>&1 || true
  (($(reviews) > 0)) && break
  sleep 0.2
done

step "Example workloads (examples/*.yaml)"
run kubectl apply -n "$ns" -f "$root/examples/web.yaml" -f "$root/examples/payments-deny.yaml" -f "$root/examples/queue-statefulset.yaml" \
  -f "$root/examples/checkout-recommend.yaml" -f "$root/examples/queue-web.yaml"

step "A runaway autoscaler asks web for 100 replicas (enforce: clamped by the rate limit)"
run kubectl scale -n "$ns" deployment/web --replicas=100
run kubectl get -n "$ns" deployment/web -o jsonpath='{.spec.replicas}{"\n"}'

step "web's new pods start: Running at once, Ready after their start-up delay"
# On the local control plane kwok runs them on a fake Node; the delay is
# CLUSTER_POD_READY_DELAY_MS (3 s), or a pod's own
# pod-ready.stage.kwok.x-k8s.io/delay annotation.
pod_counts() { # label selector: "N pods: P Pending, R Running (Y Ready)"
  kubectl get pods -n "$ns" -l "$1" -o jsonpath='{range .items[*]}{.status.phase}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    awk '{n++; phase[$1]++; if ($2 == "True") ready++}
      END {printf "%d pods: %d Pending, %d Running (%d Ready)\n", n, phase["Pending"], phase["Running"], ready}'
}
watch_pods() { # label selector, seconds
  local last="" now end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    now=$(pod_counts "$1") || now="(kubectl failed)"
    [[ $now != "$last" ]] && printf '  %s  %s\n' "$(date -u +%H:%M:%S.%1N)" "$now" && last=$now
    sleep 0.3
  done
}
watch_pods app=web 6

step "Someone else tries again at once (the budget is shared by every actor)"
run kubectl scale -n "$ns" deployment/web --replicas=100 --as=bob --as-group=system:masters
run kubectl get -n "$ns" deployment/web -o jsonpath='{.spec.replicas}{"\n"}'

step "A dry run shows the decision and spends nothing"
run kubectl scale -n "$ns" deployment/web --replicas=1 --dry-run=server

step "payments is in deny mode: kubectl scale beyond max-replicas is refused"
run kubectl scale -n "$ns" deployment/payments --replicas=50 || true

step "StatefulSets too"
run kubectl scale -n "$ns" statefulset/queue --replicas=9
run kubectl get -n "$ns" statefulset/queue -o jsonpath='{.spec.replicas}{"\n"}'

step "A malformed policy is rejected with the parser's message"
sed 's/Mon-Fri 08:00/Mon-Fry 08:00/; s/name: web/name: web-typo/' "$root/examples/web.yaml" |
  (printf '$ kubectl apply (windows: "Mon-Fry ...")\n'; kubectl apply -n "$ns" -f - || true)

step "kubectl describe explains every decision"
sleep 1
run kubectl get events -n "$ns" --field-selector reason!=ScalingReplicaSet,involvedObject.kind!=Pod \
  -o custom-columns=REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message

step "Metrics"
curl -s "http://127.0.0.1:$admin_port/metrics" | grep '^scale_governor_admission_reviews_total' | grep -v 'outcome="ungoverned"'

step "The ledger, persisted for restarts: one ConfigMap per workload, in the governor's namespace"
echo "\$ kubectl get configmaps -n default -l scale-governor.io/ledger -o json  # this demo's workloads"
kubectl get configmaps -n default -l scale-governor.io/ledger -o json >"$work/ledgers.json"
python3 - "$ns" "$work/ledgers.json" <<'PY'
import datetime, json, sys
namespace, path = sys.argv[1], sys.argv[2]
for cm in json.load(open(path))["items"]:
    d = cm["data"]
    if d.get("namespace") != namespace:
        continue
    print(f"{cm['metadata']['name']}  {d['kind']} {d['namespace']}/{d['name']}")
    for at, frm, to, asked, actor, *rest in json.loads(d.get("ledger", "[]")):
        when = datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%H:%M:%S")
        print(f"  {when}  {frm} -> {to} (asked {asked})  by {actor}")
PY

step "The recommender loop: a window opens in 8 s and nobody scales"
opens=$(date -u -d '+8 seconds' +%Y-%m-%dT%H:%M:%S) closes=$(date -u -d '+20 seconds' +%Y-%m-%dT%H:%M:%S)
run kubectl annotate -n "$ns" deployment/queue-web --overwrite \
  "scale-governor.io/windows=$opens/$closes UTC min=5" "scale-governor.io/scale-down=1 pods/2s" 2>/dev/null ||
  true
watch_replicas() { # deployment, seconds
  local last="" now
  for _ in $(seq "$2"); do
    now=$(kubectl get -n "$ns" "deployment/$1" -o jsonpath='{.spec.replicas}')
    [[ $now != "$last" ]] && printf '  %s  %s replicas\n' "$(date -u +%H:%M:%S)" "$now" && last=$now
    sleep 1
  done
}
echo "window $opens .. $closes UTC min=5"
watch_replicas queue-web 30

step "A demand ramp: the velocity strategy scales ahead of it"
orders=20
for _ in $(seq 12); do
  orders=$((orders + 5))
  echo "{\"orders\": $orders}" >"$work/stats/checkout.json"
  sleep 1
  printf '  orders %-4s recommendation: %s\n' "$orders" \
    "$(kubectl get -n "$ns" deployment/checkout -o jsonpath='{.metadata.annotations.scale-governor\.io/recommendation}' | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["replicas"], "-", r["reason"])' 2>/dev/null)"
done
run kubectl get -n "$ns" deployment/checkout -o jsonpath='{.spec.replicas}{"\n"}'

step "scale-governor status"
run "$governor" status -n "$ns" --governor-namespace default
