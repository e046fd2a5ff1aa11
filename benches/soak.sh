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
# SOAK_BINARY soaks another build of the same source (the image's static
# musl binary, `make soak-memory-musl`); SOAK_WRAPPER runs serve under a
# tool, e.g. SOAK_WRAPPER=heaptrack to find what grows; SOAK_NAME (soak)
# names the control plane's directory and every output, so two soaks can
# run side by side.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
deployments=${SOAK_DEPLOYMENTS:-10000}
namespaces=${SOAK_NAMESPACES:-100}
seconds=${SOAK_SECONDS:-3600}
rate=${SOAK_RATE:-200}
rss_target_mib=40

out=$root/target/bench
name=${SOAK_NAME:-soak}
cluster_dir=target/cluster-$name
cluster=tests/controlplane/cluster.sh
governor=${SOAK_BINARY:-$root/target/release/scale-governor}
read -ra wrapper <<<"${SOAK_WRAPPER:-}"
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
    echo "$n" >"$out/$name-churn.count"
    sleep 1
  done
}

mkdir -p "$out"
rm -f "$out/$name-rss.tsv" "$out/$name-churn.count" "$out/serve-$name.log"
build
cluster_up
"$load" seed --kubeconfig "$KUBECONFIG" --deployments "$deployments" --namespaces "$namespaces"
certs=$out/certs-$name
"$governor" certs --out-dir "$certs" --ip 127.0.0.1 --force >/dev/null 2>&1
start_serve "$name" "$deployments" ${wrapper[@]:+-- "${wrapper[@]}"}
sleep 5
fresh=$(rss_mib "$serve_pid" VmRSS)
started=$SECONDS
churn &
bench_pids+=("$!")
"$load" run --url "https://127.0.0.1:$https_port/mutate" --ca "$certs/ca.crt" \
  --mode fixed --rate "$rate" --warmup 0 --duration "$seconds" \
  --deployments "$deployments" --namespaces "$namespaces" \
  --server-pid "$serve_pid" --watch "serve=$serve_pid" --label "$name" >"$out/$name-load.log" 2>&1 &
load_pid=$!
while kill -0 "$load_pid" 2>/dev/null; do
  printf '%d\t%s\t%s\n' "$((SECONDS - started))" "$(rss_mib "$serve_pid" VmRSS)" "$(rss_mib "$serve_pid" VmHWM)" >>"$out/$name-rss.tsv"
  sleep 30
done
wait "$load_pid" || say "the load generator reported errors (see $out/$name-load.log)"
end=$(rss_mib "$serve_pid" VmRSS) end_file=$(rss_mib "$serve_pid" RssFile) end_anon=$(rss_mib "$serve_pid" RssAnon)
max=$(awk -F'\t' 'BEGIN {m = 0} $2 > m {m = $2} END {print m}' "$out/$name-rss.tsv")
verdict() { awk -v r="$1" -v t="$rss_target_mib" 'BEGIN {print (r <= t) ? "met" : "**missed**"}'; }
{
  echo "# serve under an hour of churn"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(machine_line)"
  echo "- build: $(build_line); binary ${governor#"$root"/}: $(file -b "$governor" | cut -d, -f1-2)"
  echo "- $deployments governed Deployments; $seconds s of reviews at $rate/s (the load benchmark's mixed shape) and $(cat "$out/$name-churn.count" 2>/dev/null || echo '?') changes through the apiserver (scales and policy edits)"
  echo "- load generator: $(grep -o "load: $name.*" "$out/$name-load.log" | head -n 1 | cut -c1-200)"
  echo
  echo "| serve RSS | MiB | ≤ $rss_target_mib MiB |"
  echo "|---|---|---|"
  echo "| fresh start, $deployments cached | $fresh | $(verdict "$fresh") |"
  echo "| highest sample (every 30 s) | $max | $(verdict "$max") |"
  echo "| at the end | $end | $(verdict "$end") |"
  echo
  echo "At the end: $end_file MiB of it the binary's pages (RssFile), $end_anon MiB anonymous (RssAnon: heap, stacks)."
  echo
  echo "Samples (seconds, VmRSS MiB, VmHWM MiB) are in \`target/bench/$name-rss.tsv\`."
} | tee "$out/$name-report.md"
