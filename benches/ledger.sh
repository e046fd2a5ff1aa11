#!/usr/bin/env bash
# What the ledger costs the apiserver (`make bench-ledger`): two real release
# `serve` replicas against a dedicated local control plane, counted from the
# apiserver's own request metrics.
#   1. builds the release `scale-governor` and the fleet seeder (benches/load);
#   2. starts a control plane in target/cluster-bench with only the namespace
#      controller and no pod components (--no-pods), and seeds 1,000
#      governed Deployments;
#   3. the cost of one persisted change in each candidate store, one object
#      at a time (BENCH_WRITES of each): a `history` annotation on the
#      Deployment (the earlier store), one ConfigMap per workload (the
#      store chosen), and a shard holding 625 workloads' ledgers (what a
#      sharded store holds per object at 10,000 workloads over 16 shards);
#   4. two replicas start (a leader and a follower); BENCH_CHANGED
#      Deployments are scaled once each by kubectl, so both replicas see
#      the changes land and persist them;
#   5. after a settling minute, the apiserver's write requests are counted
#      for BENCH_STEADY seconds: the steady fleet must cause no write to a
#      workload or a ledger object (Lease renewals are counted apart);
#   6. writes target/bench/ledger-report.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fleet=${BENCH_FLEET:-1000}
changed=${BENCH_CHANGED:-200}
writes=${BENCH_WRITES:-100}
steady=${BENCH_STEADY:-60}

# shellcheck disable=SC2034 # read by benches/lib.sh
bench=ledger.sh
serve_pid="" load="" other_pid="" admin_port=""
out=$root/target/bench/ledger
report=$root/target/bench/ledger-report.md
cluster_dir=target/cluster-bench
cluster=tests/controlplane/cluster.sh
governor=$root/target/release/scale-governor
# shellcheck disable=SC1091 # benches/lib.sh, checked on its own
source "$root/benches/lib.sh"

# requests FILTER: the apiserver's request count for matching series.
requests() {
  "$KUBECTL" get --raw /metrics |
    awk -v f="$1" '/^apiserver_request_total\{/ && $0 ~ f { n += $NF } END { printf "%d\n", n }'
}
# seconds FILTER: the apiserver's summed request seconds for matching series.
seconds() {
  "$KUBECTL" get --raw /metrics |
    awk -v f="$1" '/^apiserver_request_duration_seconds_sum\{/ && $0 ~ f { n += $NF } END { printf "%.6f\n", n }'
}
writes_of() { # resource: every write verb's requests to it
  requests "resource=\"$1\".*verb=\"(APPLY|CREATE|DELETE|PATCH|POST|PUT|UPDATE)\""
}

# cost LABEL RESOURCE VERB BYTES COMMAND...: runs COMMAND once per object
# (its arguments get the index appended) and reports the apiserver's mean
# time per request.
cost() {
  local label=$1 resource=$2 verb=$3 bytes=$4 n0 s0 n1 s1
  shift 4
  local filter="resource=\"$resource\".*verb=\"$verb\""
  n0=$(requests "$filter") s0=$(seconds "$filter")
  for ((i = 0; i < writes; i++)); do "$@" "$i" >/dev/null; done
  n1=$(requests "$filter") s1=$(seconds "$filter")
  awk -v l="$label" -v n=$((n1 - n0)) -v s0="$s0" -v s1="$s1" -v b="$bytes" \
    'BEGIN { printf "| %s | %d | %.2f | %s |\n", l, n, n ? 1000 * (s1 - s0) / n : 0, b }' >>"$out/cost.md"
}

ledger_json() { # n: a ledger of n changes, as the store writes it
  python3 -c 'import json,sys,time; t=int(time.time()); n=int(sys.argv[1]); print(json.dumps([[t-i,4,8,8,"kube-controller-manager (scale)"] for i in range(n)], separators=(",",":")))' "$1"
}
annotate_history() {
  "$KUBECTL" annotate deploy -n bench-000 "web-$(printf %05d "$1")" --overwrite \
    "scale-governor.io/history=$(ledger_json 3)"
}
configmap_ledger() {
  "$KUBECTL" create configmap -n bench-000 "ledger-bench-$1" --from-literal=format=1 \
    --from-literal=ledger="$(ledger_json 3)" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
}
shard_ledger() {
  "$KUBECTL" create configmap -n bench-000 "ledger-shard-$(($1 % 4))" --from-file=ledger="$out/shard.json" \
    --dry-run=client -o yaml | "$KUBECTL" apply --server-side --force-conflicts -f - >/dev/null
}

# --- build, control plane, fleet -----------------------------------------
rm -rf "$out" && mkdir -p "$out"
build
cluster_up
"$governor" certs --out-dir "$out/certs" --ip 127.0.0.1 --force >/dev/null
"$load" seed --kubeconfig "$KUBECONFIG" --deployments "$fleet" --namespaces $((fleet / 100)) >/dev/null

# --- the cost of one persisted change in each store ----------------------
python3 -c 'import json; print(json.dumps({"w%04d" % i: [[1795428000,4,8,8,"kube-controller-manager (scale)"]]*3 for i in range(625)}, separators=(",",":")))' >"$out/shard.json"
deploy_bytes=$("$KUBECTL" get deploy -n bench-000 web-00000 -o json | wc -c)
ledger_bytes=$(($(ledger_json 3 | wc -c) + 400))
shard_bytes=$(wc -c <"$out/shard.json")
# Each store's objects exist already: what is measured is a change persisted.
for ((i = 0; i < writes; i++)); do configmap_ledger "$i"; done
cost "annotation on the Deployment" deployments PATCH "$deploy_bytes (the whole Deployment)" annotate_history
cost "one ConfigMap per workload" configmaps PATCH "~$ledger_bytes" configmap_ledger
cost "a shard of 625 workloads" configmaps APPLY "$shard_bytes" shard_ledger
# The annotations written above would be migrated when serve starts: gone.
for ((i = 0; i < writes; i++)); do
  "$KUBECTL" annotate deploy -n bench-000 "web-$(printf %05d "$i")" scale-governor.io/history- >/dev/null
done

# --- two replicas, some changes, then a steady fleet ---------------------
c_start=$(writes_of configmaps)
start_serve a "$fleet" --persist-interval-ms 1000
a_pid=$serve_pid a_admin=$admin_port
start_serve b "$fleet" --persist-interval-ms 1000
other_pid=$serve_pid b_admin=$admin_port serve_pid=$a_pid
bench_pids+=("$other_pid")
# shellcheck disable=SC2016 # expanded by the inner shell
for ((i = 0; i < changed; i++)); do printf 'bench-%03d web-%05d\n' $((i / 100)) "$i"; done |
  xargs -P 8 -n 2 sh -c '"$0" scale -n "$1" "deploy/$2" --replicas=9 >/dev/null' "$KUBECTL"
for _ in $(seq 60); do
  objects=$("$KUBECTL" get configmaps -A -l scale-governor.io/ledger --no-headers 2>/dev/null | wc -l)
  ((objects >= changed)) && break
  sleep 1
done
ledger_writes() { admin_port=$1 metric scale_governor_cache_ledger_writes_total "$2"; }
first_writes=$(($(writes_of configmaps) - c_start))
by_verb=$(for verb in POST PUT PATCH APPLY DELETE; do printf '%s %s, ' "$(requests "resource=\"configmaps\".*verb=\"$verb\"")" "$verb"; done)
a_ok=$(ledger_writes "$a_admin" 'result="ok"' | cut -d. -f1) b_ok=$(ledger_writes "$b_admin" 'result="ok"' | cut -d. -f1)
conflicts=$(($(ledger_writes "$a_admin" 'result="conflict"' | cut -d. -f1) + $(ledger_writes "$b_admin" 'result="conflict"' | cut -d. -f1)))
sleep 35 # past the window in which a change may still be confirmed
d0=$(writes_of deployments) c0=$(writes_of configmaps) l0=$(writes_of leases) t0=$SECONDS
sleep "$steady"
d1=$(writes_of deployments) c1=$(writes_of configmaps) l1=$(writes_of leases) t1=$SECONDS
a_rss=$(rss_mib "$a_pid" VmRSS) b_rss=$(rss_mib "$other_pid" VmRSS)
kill "$other_pid" 2>/dev/null || true
other_pid=""
stop_serve || true

# --- report ---------------------------------------------------------------
per_minute() { awk -v d="$1" -v s="$2" 'BEGIN { printf "%.1f", 60 * d / s }'; }
secs=$((t1 - t0))
{
  echo "# scale-governor ledger cost benchmark"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine_line)"
  echo "- build: $(build_line)"
  echo "- control plane: $K8S_VERSION (etcd, kube-apiserver, kube-controller-manager with only namespace-controller), same machine; no webhook registered"
  echo "- fleet: $fleet governed Deployments (the documented five-annotation policy), 100 per namespace"
  echo
  echo "## One persisted change, by store"
  echo
  echo "$writes writes of each, one object at a time, through kubectl; the apiserver's mean time per request from apiserver_request_duration_seconds. With the webhooks registered, a write to the Deployment also passes the governor's two webhooks, and the deployment controller copies the annotation onto the ReplicaSet (one more write); a ConfigMap write does neither."
  echo
  echo "| store | requests | apiserver ms/request | bytes per write |"
  echo "|---|---|---|---|"
  cat "$out/cost.md"
  echo
  echo "## Two replicas, $changed Deployments scaled once, then a steady fleet"
  echo
  echo "- ledger objects written for the $changed changes: $first_writes ConfigMap writes (leader $a_ok, follower $b_ok; $conflicts refused as conflicts, re-read and merged); every ConfigMap request since the start by verb: ${by_verb%, }"
  echo "- then, over $secs s with nothing changing:"
  echo "  - writes to Deployments: $((d1 - d0)) ($(per_minute $((d1 - d0)) "$secs")/min; goal 0)"
  echo "  - writes to ledger ConfigMaps: $((c1 - c0)) ($(per_minute $((c1 - c0)) "$secs")/min; goal 0)"
  echo "  - Lease writes (renewals by the leader, tries by the follower): $((l1 - l0)) ($(per_minute $((l1 - l0)) "$secs")/min)"
  echo "- RSS: leader $a_rss MiB, follower $b_rss MiB"
} >"$report"
cat "$report"
say "report: $report"
((d1 == d0 && c1 == c0)) || die "a steady fleet caused writes"
