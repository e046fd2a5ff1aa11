#!/usr/bin/env bash
# Load benchmark of the real webhook, end to end (`make bench-load`):
#   1. builds the release `scale-governor` and the load generator (benches/load);
#   2. starts a dedicated local control plane in target/cluster-bench, without
#      the deployment controller or the pod components (--no-pods), so 10,000
#      Deployments stay 10,000 objects instead of becoming ReplicaSets and Pods;
#   3. creates the governed Deployments, a serving certificate, and starts
#      `scale-governor serve`, waiting until its cache holds every Deployment;
#   4. plays the apiserver: HTTP/2 over TLS to /mutate, first at a fixed rate
#      (open loop), then saturated (closed loop), with server and client
#      unpinned; then again with each pinned to its own core; then unpinned
#      with serve as a follower (another replica holds the Lease), which
#      leaves out the recommender loop and the ledger cleanup on these cores;
#   5. with PEERS=1, measures the governor side by side with two peers on
#      the same TLS stack (benches/peer): a minimal webhook written the way
#      kube-rs's admission example is, and a static responder (the
#      transport's floor); each pinned to CPU 0 with the load generator on
#      CPU 1, over HTTP/2 and HTTP/1.1, saturated in BENCH_ROTATIONS
#      alternating rounds and at a fixed 5,000/s, every review a clamp with
#      a unique uid; CPU per review is the primary figure;
#   6. writes target/bench/load-report.md and tears everything down, also on
#      failure or Ctrl-C.
#
# Knobs (environment): BENCH_DEPLOYMENTS (10000), BENCH_NAMESPACES (100),
# BENCH_RATE (5000), BENCH_WARMUP (5 s), BENCH_DURATION (20 s),
# BENCH_CONCURRENCY (64), BENCH_CONNECTIONS (4), BENCH_PINNED (1: also run
# pinned), BENCH_FOLLOWER (1: also run as a follower), PEERS (0; 1: the side
# by side runs, and unless set otherwise BENCH_UNPINNED=0 BENCH_FOLLOWER=0),
# BENCH_ROTATIONS (3), BENCH_PEER_SECONDS (10). Targets: p99 <= 1 ms at
# 5,000/s, >= 15,000/s saturated, RSS <= 40 MiB with 10,000 cached; side by
# side, CPU per review over HTTP/2 <= 0.75x the kube-rs peer and <= 2x the
# static one, over HTTP/1.1 <= 1x the kube-rs peer.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
deployments=${BENCH_DEPLOYMENTS:-10000}
namespaces=${BENCH_NAMESPACES:-100}
rate=${BENCH_RATE:-5000}
warmup=${BENCH_WARMUP:-5}
duration=${BENCH_DURATION:-20}
concurrency=${BENCH_CONCURRENCY:-64}
connections=${BENCH_CONNECTIONS:-4}
peers=${PEERS:-0}
pinned=${BENCH_PINNED:-1}
unpinned=${BENCH_UNPINNED:-$((1 - peers))}
follower=${BENCH_FOLLOWER:-$((1 - peers))}
rotations=${BENCH_ROTATIONS:-3}
peer_seconds=${BENCH_PEER_SECONDS:-10}
rss_target_mib=40

out=$root/target/bench
report=$out/load-report.md
cluster_dir=target/cluster-bench
cluster=tests/controlplane/cluster.sh
governor=$root/target/release/scale-governor

bench=load.sh
# shellcheck disable=SC1091 # benches/lib.sh, checked on its own
source "$root/benches/lib.sh"

memory_row() { # label when
  local rss hwm verdict=met
  rss=$(rss_mib "$serve_pid" VmRSS) hwm=$(rss_mib "$serve_pid" VmHWM)
  awk -v r="$rss" -v t="$rss_target_mib" 'BEGIN {exit !(r > t)}' && verdict="**missed**"
  echo "| $1 | $2 | $rss | $hwm | ≤ $rss_target_mib MiB: $verdict |" >>"$out/memory.md"
}

counters() { # label: the server's own view of what it did
  {
    echo "**$1**:"
    echo '```'
    metrics | grep -E '^scale_governor_(admission_(reviews|events|bad_reviews)_total|cache_ledger_writes_total)' || true
    # Time inside the handler (parse, decide, respond), without TLS, HTTP/2
    # or queueing: the part of the latency that is the governor's own.
    # Buckets are cumulative; p50/p99 are the upper bounds of the buckets
    # that reach them.
    metrics | grep -E '^scale_governor_admission_duration_seconds_(sum|count|bucket)\{[^}]*endpoint="mutate"' |
      awk '/_sum/ {s = $2} /_count/ {c = $2}
        /_bucket/ {match($0, /le="[^"]*"/); n++; le[n] = substr($0, RSTART + 4, RLENGTH - 5); cum[n] = $2}
        END {
          if (!c) exit
          for (i = 1; i <= n; i++) {
            if (!p50 && cum[i] >= 0.5 * c) p50 = le[i]
            if (!p99 && cum[i] >= 0.99 * c) p99 = le[i]
          }
          printf "# time in the handler: mean %.1f µs, p50 <= %s s, p99 <= %s s, over %d reviews\n", 1e6 * s / c, p50, p99, c
        }'
    echo '```'
  } >>"$out/counters.md"
}

failures=0
run_id=0
load_run() { # label mode [taskset -c CPU]
  local label=$1 mode=$2; shift 2
  run_id=$((run_id + 1))
  local status=0
  "$@" "$load" run --url "https://127.0.0.1:$https_port/mutate" --ca "$out/certs/ca.crt" \
    --mode "$mode" --rate "$rate" --concurrency "$concurrency" --connections "$connections" \
    --warmup "$warmup" --duration "$duration" \
    --deployments "$deployments" --namespaces "$namespaces" \
    --run-id "$run_id" --state "$out/fleet-state.json" \
    --server-pid "$serve_pid" --watch "serve=$serve_pid" \
    --watch "apiserver=$APISERVER_PID" --watch "etcd=$ETCD_PID" \
    --label "$label" --report "$out/runs.md" || status=$?
  ((status == 0)) || { failures=$((failures + 1)); say "run $label $mode failed (exit $status)"; }
  sleep 3
}

# --- build ---------------------------------------------------------------
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$out"
rm -f "$out"/{runs,memory,counters}.md "$out"/serve-*.log "$out/fleet-state.json"
build

# --- control plane and fleet --------------------------------------------
cluster_up
seed_started=$SECONDS
"$load" seed --kubeconfig "$KUBECONFIG" --deployments "$deployments" --namespaces "$namespaces"
seed_seconds=$((SECONDS - seed_started))
"$governor" certs --out-dir "$out/certs" --ip 127.0.0.1 --force >/dev/null

# --- unpinned -------------------------------------------------------------
if [[ $unpinned == 1 ]]; then
  start_serve unpinned "$deployments"
  sleep 5
  memory_row unpinned "idle, $deployments cached"
  load_run unpinned fixed
  load_run unpinned saturate
  memory_row unpinned "after load"
  counters unpinned
fi

# --- pinned: serve on CPU 0, the load generator on CPU 1 -----------------
if [[ $pinned == 1 ]] && (($(nproc) >= 2)); then
  stop_serve || echo "serve did not stop within 25 s of SIGTERM and was killed." >>"$out/counters.md"
  start_serve pinned "$deployments" -- taskset -c 0
  sleep 5
  memory_row "pinned (CPU 0)" "idle, $deployments cached"
  load_run "pinned" fixed taskset -c 1
  load_run "pinned" saturate taskset -c 1
  memory_row "pinned (CPU 0)" "after load"
  counters pinned
fi

# --- follower: another replica holds the Lease, so the loop and the ledger cleanup do not run ---
if [[ $follower == 1 ]]; then
  stop_serve || echo "serve did not stop within 25 s of SIGTERM and was killed." >>"$out/counters.md"
  hold_lease bench-other-replica
  start_serve follower "$deployments"
  sleep 5
  memory_row follower "idle, $deployments cached"
  load_run follower fixed
  load_run follower saturate
  memory_row follower "after load"
  counters follower
fi

# --- side by side: the governor and its peers, each pinned to CPU 0 -------
# peer_run SERVER PORT PID CHECK PROTO MODE SECONDS: one run of clamp reviews
# from CPU 1, its figures appended to side.tsv.
peer_run() {
  local server=$1 port=$2 pid=$3 check=$4 proto=$5 mode=$6 seconds=$7 flags=() status=0
  # HTTP/1.1 carries one request at a time: as many connections as requests
  # in flight, as the apiserver's client would open.
  if [[ $proto == h1 ]]; then flags=(--http1 --connections "$concurrency"); else flags=(--connections "$connections"); fi
  run_id=$((run_id + 1))
  taskset -c 1 "$load" run --url "https://127.0.0.1:$port/mutate" --ca "$out/certs/ca.crt" \
    --mode "$mode" --rate "$rate" --concurrency "$concurrency" \
    --warmup 3 --duration "$seconds" --deployments "$deployments" --namespaces "$namespaces" \
    --shape clamp --check "$check" --server "$server" "${flags[@]}" --run-id "$run_id" \
    --server-pid "$pid" --watch "serve=$pid" \
    --watch "apiserver=$APISERVER_PID" --watch "etcd=$ETCD_PID" \
    --label "$server $proto" --report "$out/runs.md" --tsv "$out/side.tsv" || status=$?
  ((status == 0)) || { failures=$((failures + 1)); say "side-by-side run $server $proto $mode failed (exit $status)"; }
  sleep 1
}

if [[ $peers == 1 ]]; then
  stop_serve || echo "serve did not stop within 25 s of SIGTERM and was killed." >>"$out/counters.md"
  peer=$(bench_exe peer)
  [[ -x $peer ]] || die "could not find the peer webhooks (benches/peer)"
  rm -f "$out/side.tsv"
  start_serve side "$deployments" -- taskset -c 0
  memory_row "side by side (CPU 0)" "idle, $deployments cached"
  declare -A port pid check
  port[governor]=$https_port pid[governor]=$serve_pid check[governor]=full
  for kind in kube static; do
    port[$kind]=$(free_port)
    taskset -c 0 "$peer" "$kind" --addr "127.0.0.1:${port[$kind]}" \
      --cert "$out/certs/tls.crt" --key "$out/certs/tls.key" >>"$out/peer-$kind.log" 2>&1 &
    pid[$kind]=$! bench_pids+=("$!")
  done
  check[kube]=uid check[static]=status
  sleep 1
  for r in $(seq "$rotations"); do
    for server in governor kube static; do
      for proto in h2 h1; do
        say "side by side: round $r of $rotations, $server $proto saturated"
        peer_run "$server" "${port[$server]}" "${pid[$server]}" "${check[$server]}" "$proto" saturate "$peer_seconds"
      done
    done
  done
  for server in governor kube static; do
    for proto in h2 h1; do
      peer_run "$server" "${port[$server]}" "${pid[$server]}" "${check[$server]}" "$proto" fixed "$peer_seconds"
    done
  done
  memory_row "side by side (CPU 0)" "after load"
  counters side
fi

# side_by_side: medians per server, protocol and load, and the ratios.
side_by_side() {
  awk -F'\t' '
    function median(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
      k = $1 SUBSEP $2 SUBSEP $3
      if (!(k in seen)) { seen[k] = 1; order[++n] = k }
      rps[k] = rps[k] " " $4; p50[k] = p50[k] " " $5; p99[k] = p99[k] " " $6
      cpu[k] = cpu[k] " " $7; rss[k] = $8; api[k] = api[k] " " $9; runs[k]++
    }
    END {
      print "| server | protocol | load | runs | reviews/s | p50 ms | p99 ms | CPU µs/review (= ms per 1,000) | RSS MiB | apiserver cores |"
      print "|---|---|---|---|---|---|---|---|---|---|"
      for (i = 1; i <= n; i++) {
        k = order[i]; split(k, f, SUBSEP)
        printf "| %s | %s | %s | %d | %.0f | %.2f | %.2f | %.1f | %s | %.3f |\n", f[1], f[2], f[3], runs[k], median(rps[k]), median(p50[k]), median(p99[k]), median(cpu[k]), rss[k], median(api[k])
        c[f[1], f[2], f[3]] = median(cpu[k]); q[f[1], f[2], f[3]] = median(p99[k])
      }
      print ""
      print "| ratio | HTTP/2 | HTTP/1.1 | goal |"
      print "|---|---|---|---|"
      s = "saturated"
      printf "| CPU per review, governor ÷ kube-rs minimal | %.2f | %.2f | ≤ 0.75 (h2), ≤ 1 (h1) |\n", c["governor", "h2", s] / c["kube", "h2", s], c["governor", "h1", s] / c["kube", "h1", s]
      printf "| CPU per review, governor ÷ static | %.2f | %.2f | ≤ 2 (h2) |\n", c["governor", "h2", s] / c["static", "h2", s], c["governor", "h1", s] / c["static", "h1", s]
      fx = "fixed " rate "/s"
      printf "| p99 at %s/s, governor ÷ static | %.2f | %.2f | ≤ 1.2 |\n", rate, q["governor", "h2", fx] / q["static", "h2", fx], q["governor", "h1", fx] / q["static", "h1", fx]
    }' rate="$rate" "$out/side.tsv"
}

# --- report ---------------------------------------------------------------
{
  echo "# scale-governor load benchmark"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine_line)"
  echo "- build: $(build_line)"
  echo "- control plane: $K8S_VERSION (etcd, kube-apiserver, kube-controller-manager with only namespace-controller), same machine"
  echo "- fleet: $deployments governed Deployments in $namespaces namespaces, created in $seed_seconds s"
  echo "- load average before the build: $loadavg_start (other work on the machine; see \"others\" in the CPU column)"
  echo "- load: HTTP/2 over TLS, $connections connections, $warmup s warm-up then $duration s measured per run; reviews are autoscaling/v1 Scale UPDATEs on deployments/scale, each with a unique uid"
  echo
  echo "## Runs"
  echo
  echo "Latency in ms. Open loop: from each request's scheduled send time; closed loop: from its send time."
  echo "\"service p99\" is from the actual send; \"gen. lag\" is how late the generator sent. CPU is in cores (1.00 = one core busy)."
  echo
  echo "| run | load | reviews/s | p50 | p90 | p99 | max | service p99 | gen. lag p99 | unchanged/clamped | errors | serve RSS MiB: start → end | CPU cores | target |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  cat "$out/runs.md" 2>/dev/null || true
  echo
  if [[ -s $out/side.tsv ]]; then
    echo "## Side by side"
    echo
    echo "Each server pinned to CPU 0, the load generator to CPU 1; every review a clamp of a \`/scale\` (asking 10,000 replicas), each with a unique uid; $rotations alternating saturated rounds of $peer_seconds s per server and protocol (medians shown), then one run at a fixed $rate/s. CPU per review is the server's user+system time over the run (warm-up included) divided by the reviews it answered: it is stable on a noisy machine, throughput and latency are not. \"apiserver cores\" is the control plane's CPU during the run: the governor's Events and ledger writes show up there."
    echo
    side_by_side
    echo
  fi
  echo "## Memory of serve"
  echo
  echo "| serve | when | VmRSS MiB | VmHWM MiB | target |"
  echo "|---|---|---|---|---|"
  cat "$out/memory.md"
  echo
  echo "## Server counters at the end of each phase"
  echo
  cat "$out/counters.md"
} >"$report"
cat "$report"
say "report: $report"
((failures == 0)) || die "$failures run(s) had errors; their figures are invalid"
