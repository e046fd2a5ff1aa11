#!/usr/bin/env bash
# Load benchmark of the real webhook, end to end (`make bench-load`):
#   1. builds the release `scale-governor` and the load generator (benches/load);
#   2. starts a dedicated local control plane in target/cluster-bench, without
#      the deployment controller, so 10,000 Deployments stay 10,000 objects
#      instead of becoming ReplicaSets and Pods;
#   3. creates the governed Deployments, a serving certificate, and starts
#      `scale-governor serve`, waiting until its cache holds every Deployment;
#   4. plays the apiserver: HTTP/2 over TLS to /mutate, first at a fixed rate
#      (open loop), then saturated (closed loop), with server and client
#      unpinned; then again with each pinned to its own core; then unpinned
#      with serve as a follower (another replica holds the Lease), which
#      leaves out the history writes to the apiserver on these same cores;
#   5. writes target/bench/load-report.md and tears everything down, also on
#      failure or Ctrl-C.
#
# Knobs (environment): BENCH_DEPLOYMENTS (10000), BENCH_NAMESPACES (100),
# BENCH_RATE (5000), BENCH_WARMUP (5 s), BENCH_DURATION (20 s),
# BENCH_CONCURRENCY (64), BENCH_CONNECTIONS (4), BENCH_PINNED (1: also run
# pinned), BENCH_FOLLOWER (1: also run as a follower). Targets: p99 <= 1 ms at 5,000/s, >= 15,000/s saturated,
# RSS <= 40 MiB with 10,000 cached.
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
pinned=${BENCH_PINNED:-1}
follower=${BENCH_FOLLOWER:-1}
rss_target_mib=40

out=$root/target/bench
report=$out/load-report.md
cluster_dir=target/cluster-bench
cluster=tests/controlplane/cluster.sh
governor=$root/target/release/scale-governor

say() { echo "load.sh: $*" >&2; }
die() { say "$*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

serve_pid="" https_port="" admin_port=""
stop_serve() {
  [[ $serve_pid ]] || return 0
  kill -TERM "$serve_pid" 2>/dev/null || true
  # serve drains for at most 20 s, then releases its Lease.
  for _ in $(seq 250); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -KILL "$serve_pid" 2>/dev/null; then
    say "serve (pid $serve_pid) did not stop within 25 s of SIGTERM; killed"
    echo "serve pid $serve_pid did not stop within 25 s of SIGTERM and was killed." >>"$out/counters.md"
  fi
  wait "$serve_pid" 2>/dev/null || true
  serve_pid=""
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_serve
  "$cluster" down --dir "$cluster_dir" >/dev/null 2>&1 || true
  ((status == 0)) || say "failed (exit $status); logs in $out and $cluster_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

metrics() { curl -fsS --max-time 5 "http://127.0.0.1:$admin_port/metrics"; }

# start_serve LABEL [taskset -c CPU]: starts serve and waits for a full cache.
start_serve() {
  local label=$1; shift
  https_port=$(free_port) admin_port=$(free_port)
  "$@" "$governor" serve --addr "127.0.0.1:$https_port" --admin-addr "127.0.0.1:$admin_port" \
    --tls-cert "$out/certs/tls.crt" --tls-key "$out/certs/tls.key" \
    --kubeconfig "$KUBECONFIG" --lease-namespace default --identity "bench-$label" \
    --log-format json >>"$out/serve-$label.log" 2>&1 &
  serve_pid=$!
  local started=$SECONDS
  until [[ $(curl -s --max-time 2 "http://127.0.0.1:$admin_port/readyz") == ok ]] &&
    metrics | grep -q "^scale_governor_cache_workloads{kind=\"deployments\"} $deployments\$"; do
    kill -0 "$serve_pid" 2>/dev/null || { tail -n 20 "$out/serve-$label.log" >&2; die "serve exited"; }
    ((SECONDS - started < 180)) || die "serve not ready with $deployments Deployments after 180 s"
    sleep 0.5
  done
  say "serve ($label, pid $serve_pid) ready with $deployments Deployments in $((SECONDS - started)) s"
}

rss_mib() { # pid field: VmRSS or VmHWM in MiB
  awk -v f="$2:" '$1 == f {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

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
    metrics | grep -E '^scale_governor_(admission_(reviews|events|bad_reviews)_total|cache_history_writes_total)' || true
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
say "building"
cargo build --release --locked --bin scale-governor
load=$(cargo bench --locked --bench load --no-run --message-format=json |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[[ -x $load ]] || die "could not find the load benchmark executable"

# --- control plane and fleet --------------------------------------------
"$cluster" down --dir "$cluster_dir" >/dev/null 2>&1 || true
# --watch-pid: even a kill -9 of this script stops the control plane.
CLUSTER_KCM_CONTROLLERS=namespace-controller "$cluster" up --dir "$cluster_dir" --watch-pid $$ >/dev/null
# shellcheck disable=SC1091 # written by cluster.sh up
source "$cluster_dir/env"
export KUBECONFIG
seed_started=$SECONDS
"$load" seed --kubeconfig "$KUBECONFIG" --deployments "$deployments" --namespaces "$namespaces"
seed_seconds=$((SECONDS - seed_started))
"$governor" certs --out-dir "$out/certs" --ip 127.0.0.1 --force >/dev/null

# --- unpinned -------------------------------------------------------------
start_serve unpinned
sleep 5
memory_row unpinned "idle, $deployments cached"
load_run unpinned fixed
load_run unpinned saturate
memory_row unpinned "after load"
counters unpinned

# --- pinned: serve on CPU 0, the load generator on CPU 1 -----------------
if [[ $pinned == 1 ]] && (($(nproc) >= 2)); then
  stop_serve
  start_serve pinned taskset -c 0
  sleep 5
  memory_row "pinned (CPU 0)" "idle, $deployments cached"
  load_run "pinned" fixed taskset -c 1
  load_run "pinned" saturate taskset -c 1
  memory_row "pinned (CPU 0)" "after load"
  counters pinned
fi

# --- follower: another replica holds the Lease, so no history writes -----
if [[ $follower == 1 ]]; then
  stop_serve
  now=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
  "$KUBECTL" apply -f - >/dev/null <<YAML
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: scale-governor-leader, namespace: default}
spec: {holderIdentity: bench-other-replica, leaseDurationSeconds: 3600, acquireTime: "$now", renewTime: "$now"}
YAML
  start_serve follower
  sleep 5
  memory_row follower "idle, $deployments cached"
  load_run follower fixed
  load_run follower saturate
  memory_row follower "after load"
  counters follower
fi

# --- report ---------------------------------------------------------------
{
  echo "# scale-governor load benchmark"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
  echo "- build: $(rustc --version), release profile; commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' with uncommitted src/ changes')"
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
