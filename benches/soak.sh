#!/usr/bin/env bash
# Memory of `serve` under an hour of churn (`make soak-memory`): a dedicated
# control plane with 10,000 governed Deployments, serve watching them, and
# for SOAK_SECONDS (3600) both kinds of traffic a cluster gives it:
#   - reviews from the load generator at SOAK_RATE (200/s), the mixed shape
#     of `make bench-load` (HPA steps, some bursts clamped);
#   - changes through the apiserver that reach serve by its watch: every
#     second a few Deployments are scaled and one has its policy edited, so
#     entries, ledgers and policies come and go.
# RSS is sampled every 30 s into target/bench/soak-rss.tsv; the report is
# target/bench/soak-report.md. Target: <= 40 MiB throughout.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
deployments=${SOAK_DEPLOYMENTS:-10000}
namespaces=${SOAK_NAMESPACES:-100}
seconds=${SOAK_SECONDS:-3600}
rate=${SOAK_RATE:-200}
rss_target_mib=40

out=$root/target/bench
cluster_dir=target/cluster-soak
cluster=tests/controlplane/cluster.sh
governor=$root/target/release/scale-governor
bench=soak.sh
# shellcheck disable=SC1091 # benches/lib.sh, checked on its own
source "$root/benches/lib.sh"

# churn: until killed, every second scale three random Deployments and edit
# one's policy (max-replicas between 300 and 400), through the apiserver.
churn() {
  # Names as benches/load/fleet.rs seeds them: web-NNNNN in bench-NNN,
  # consecutive indices per namespace.
  local n=0 i per=$(((deployments + namespaces - 1) / namespaces))
  target() { i=$(((RANDOM * 32768 + RANDOM) % deployments)); printf -- '-n bench-%03d deployment/web-%05d' "$((i / per))" "$i"; }
  while :; do
    for _ in 1 2 3; do
      # shellcheck disable=SC2046 # the namespace flag and the name, split on purpose
      "$KUBECTL" scale $(target) --replicas=$((40 + RANDOM % 40)) >/dev/null 2>&1 || true
    done
    # shellcheck disable=SC2046
    "$KUBECTL" annotate --overwrite $(target) \
      "scale-governor.io/max-replicas=$((300 + RANDOM % 101))" >/dev/null 2>&1 || true
    n=$((n + 4))
    echo "$n" >"$out/soak-churn.count"
    sleep 1
  done
}

mkdir -p "$out"
rm -f "$out/soak-rss.tsv" "$out/soak-churn.count" "$out"/serve-soak.log
build
cluster_up
"$load" seed --kubeconfig "$KUBECONFIG" --deployments "$deployments" --namespaces "$namespaces"
"$governor" certs --out-dir "$out/certs" --ip 127.0.0.1 --force >/dev/null 2>&1
start_serve soak "$deployments"
sleep 5
fresh=$(rss_mib "$serve_pid" VmRSS)
started=$SECONDS
churn &
bench_pids+=("$!")
"$load" run --url "https://127.0.0.1:$https_port/mutate" --ca "$out/certs/ca.crt" \
  --mode fixed --rate "$rate" --warmup 0 --duration "$seconds" \
  --deployments "$deployments" --namespaces "$namespaces" \
  --server-pid "$serve_pid" --watch "serve=$serve_pid" --label soak >"$out/soak-load.log" 2>&1 &
load_pid=$!
while kill -0 "$load_pid" 2>/dev/null; do
  printf '%d\t%s\t%s\n' "$((SECONDS - started))" "$(rss_mib "$serve_pid" VmRSS)" "$(rss_mib "$serve_pid" VmHWM)" >>"$out/soak-rss.tsv"
  sleep 30
done
wait "$load_pid" || say "the load generator reported errors (see $out/soak-load.log)"
end=$(rss_mib "$serve_pid" VmRSS)
max=$(awk -F'\t' 'BEGIN {m = 0} $2 > m {m = $2} END {print m}' "$out/soak-rss.tsv")
verdict() { awk -v r="$1" -v t="$rss_target_mib" 'BEGIN {print (r <= t) ? "met" : "**missed**"}'; }
{
  echo "# serve under an hour of churn"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(machine_line)"
  echo "- build: $(build_line)"
  echo "- $deployments governed Deployments; $seconds s of reviews at $rate/s (the load benchmark's mixed shape) and $(cat "$out/soak-churn.count" 2>/dev/null || echo '?') changes through the apiserver (scales and policy edits)"
  echo "- load generator: $(grep -o 'load: soak.*' "$out/soak-load.log" | head -n 1 | cut -c1-200)"
  echo
  echo "| serve RSS | MiB | ≤ $rss_target_mib MiB |"
  echo "|---|---|---|"
  echo "| fresh start, $deployments cached | $fresh | $(verdict "$fresh") |"
  echo "| highest sample (every 30 s) | $max | $(verdict "$max") |"
  echo "| at the end | $end | $(verdict "$end") |"
  echo
  echo "Samples (seconds, VmRSS MiB, VmHWM MiB) are in \`target/bench/soak-rss.tsv\`."
} | tee "$out/soak-report.md"
