#!/usr/bin/env bash
# Cost benchmark of the recommender loop (`make bench-recommender`): the real
# release `serve`, leading, against a dedicated local control plane.
#   1. builds the release `scale-governor` and the fleet seeder (benches/load);
#   2. starts a control plane in target/cluster-bench with only the namespace
#      controller and no pod components (--no-pods), so Deployments stay
#      Deployments (no ReplicaSets, no Pods);
#   3. phase "schedule": 5,000 governed schedule-only Deployments (static
#      bounds and three Berlin windows, no `recommend`), serve leading;
#   4. phase "http": 1,000 more with a `recommend` annotation naming an HTTP
#      JSON source served locally (one JSON file per Deployment);
#   5. phase "follower": all 6,000 cached, another replica holds the Lease, so
#      the loop does not run: serve's idle cost (watches, Lease reads);
#   6. writes target/bench/recommender-report.md: CPU per cycle, writes per
#      cycle once the fleet is steady (goal: 0), the first cycle's writes,
#      the cycle's wall time, and serve's RSS.
#
# Knobs (environment): BENCH_SCHEDULE (5000), BENCH_HTTP (1000),
# BENCH_INTERVAL (seconds between cycles, 10), BENCH_CYCLES (cycles measured
# per phase, 6). Goal: under 100 ms of CPU per cycle for the 5,000.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
schedule=${BENCH_SCHEDULE:-5000}
http=${BENCH_HTTP:-1000}
interval=${BENCH_INTERVAL:-10}
cycles=${BENCH_CYCLES:-6}
per_namespace=100
cpu_goal_ms=100

# shellcheck disable=SC2034 # read by benches/lib.sh
bench=recommender.sh
serve_pid="" load=""
out=$root/target/bench/recommender
report=$root/target/bench/recommender-report.md
cluster_dir=target/cluster-bench
cluster=tests/controlplane/cluster.sh
governor=$root/target/release/scale-governor
# shellcheck disable=SC1091 # benches/lib.sh, checked on its own
source "$root/benches/lib.sh"

cycles_done() { metric scale_governor_recommender_cycle_duration_seconds_count | cut -d. -f1; }

wait_cycles() { # n: until the loop has finished n more cycles
  local target=$(($(cycles_done) + $1)) started=$SECONDS
  until (($(cycles_done) >= target)); do
    ((SECONDS - started < 30 * interval + 120)) || die "the loop did not finish $1 cycles"
    sleep 0.5
  done
}

seed() { # deployments recommend
  "$load" seed --kubeconfig "$KUBECONFIG" --deployments "$1" \
    --namespaces $((($1 + per_namespace - 1) / per_namespace)) --recommend "$2"
}

# measure LABEL WORKLOADS: one row of the report from `cycles` cycles of the
# running serve (or, as a follower, the same stretch of time).
measure() {
  local label=$1 workloads=$2 leading
  leading=$(metric scale_governor_recommender_leading)
  local cpu0 n0 sum0 w0 t0 cpu1 n1 sum1 w1 t1 demand0=0 demand1=0
  cpu0=$(cpu_seconds "$serve_pid") n0=$(cycles_done) w0=$(metric scale_governor_recommender_writes_total)
  sum0=$(metric scale_governor_recommender_cycle_duration_seconds_sum) t0=$(date +%s.%N)
  [[ $demand_pid ]] && demand0=$(cpu_seconds "$demand_pid")
  if [[ ${leading%%.*} == 1 ]]; then wait_cycles "$cycles"; else sleep $((cycles * interval)); fi
  cpu1=$(cpu_seconds "$serve_pid") n1=$(cycles_done) w1=$(metric scale_governor_recommender_writes_total)
  sum1=$(metric scale_governor_recommender_cycle_duration_seconds_sum) t1=$(date +%s.%N)
  [[ $demand_pid ]] && demand1=$(cpu_seconds "$demand_pid")
  local rss hwm
  rss=$(rss_mib "$serve_pid" VmRSS) hwm=$(rss_mib "$serve_pid" VmHWM)
  awk -v label="$label" -v w="$workloads" -v c0="$cpu0" -v c1="$cpu1" -v n0="$n0" -v n1="$n1" \
    -v s0="$sum0" -v s1="$sum1" -v w0="$w0" -v w1="$w1" -v t0="$t0" -v t1="$t1" \
    -v d0="$demand0" -v d1="$demand1" -v rss="$rss" -v hwm="$hwm" -v goal="$cpu_goal_ms" \
    -v interval="$interval" -v first="$first_writes" -v tsv="$out/intervals.tsv" '
    BEGIN {
      n = n1 - n0; secs = t1 - t0; cpu = c1 - c0
      per_interval = 1000 * cpu * interval / secs
      if (n > 0) {
        per_cycle = sprintf("%.0f", 1000 * cpu / n)
        writes = sprintf("%.2f", (w1 - w0) / n)
        wall = sprintf("%.1f", 1000 * (s1 - s0) / n)
      } else { per_cycle = "-"; writes = "-"; wall = "-" }
      printf "%s\t%.1f\t%d\n", label, per_interval, (n > 0 ? n : 0) >> tsv
      verdict = ""
      if (n > 0 && label == "schedule") verdict = "< " goal " ms CPU/cycle: " (1000 * cpu / n < goal ? "met" : "**missed**")
      printf "| %s | %d | %d | %.1f | %s | %.0f | %s | %s | %s | %.0f | %s | %s | %s |\n",
        label, w, n, secs, per_cycle, per_interval, wall, writes, first, 1000 * (d1 - d0) * interval / secs, rss, hwm, verdict
    }' >>"$out/rows.md"
}

# --- build ---------------------------------------------------------------
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
rm -rf "$out" && mkdir -p "$out/demand"
build

# --- control plane, demand endpoint, sources ----------------------------
cluster_up
"$governor" certs --out-dir "$out/certs" --ip 127.0.0.1 --force >/dev/null
total=$((schedule + http))
# Demand under what the replicas already are (40..80 of them), so the
# recommendation is a floor that never has to lift anything: a steady fleet.
for ((i = schedule; i < total; i++)); do
  printf '{"orders": %d}\n' $((100 + i % 300)) >"$out/demand/$(printf 'web-%05d' "$i").json"
done
demand_port=$(free_port)
python3 -m http.server "$demand_port" --bind 127.0.0.1 --directory "$out/demand" >"$out/demand.log" 2>&1 &
demand_pid=$!
bench_pids+=("$demand_pid")
cat >"$out/sources.yaml" <<YAML
sources:
  - name: bench
    namespaces: ["*"]
    http:
      url: http://127.0.0.1:$demand_port/{{name}}.json
YAML
flags=(--sources "$out/sources.yaml" --recommend-interval "${interval}s")
first_writes=""

# --- schedule only: 5,000 ------------------------------------------------
seed_started=$SECONDS
seed "$schedule" 0
start_serve schedule "$schedule" "${flags[@]}"
wait_cycles 1
first_writes=$(metric scale_governor_recommender_writes_total | cut -d. -f1)
wait_cycles 1
measure schedule "$schedule"
stop_serve || true

# --- 5,000 schedule-only and 1,000 HTTP JSON -----------------------------
# The same 5,000 plus 1,000 more: a namespace holds the same Deployments
# whatever the fleet's size, so this seed only adds.
seed "$total" "$http"
seed_seconds=$((SECONDS - seed_started))
start_serve http "$total" "${flags[@]}"
wait_cycles 1
first_writes=$(metric scale_governor_recommender_writes_total | cut -d. -f1)
wait_cycles 1
measure "schedule + http" "$total"
samples_ok=$(metric scale_governor_recommender_samples_total 'result="ok"' | cut -d. -f1)
samples_all=$(metric scale_governor_recommender_samples_total | cut -d. -f1)
written=$("$KUBECTL" get deploy -A -o json |
  python3 -c 'import json,sys; print(sum(1 for d in json.load(sys.stdin)["items"] if "scale-governor.io/recommendation" in d["metadata"].get("annotations", {})))')
{
  echo '```'
  metrics | grep -E '^scale_governor_recommender_(writes|samples|expirations)_total' || true
  echo '```'
} >"$out/counters.md"
stop_serve || true

# --- follower: the loop's absence, for serve's idle cost -----------------
hold_lease bench-other-replica
first_writes=-
start_serve follower "$total" "${flags[@]}"
measure "follower (loop idle)" "$total"
stop_serve || true

# --- report ---------------------------------------------------------------
{
  echo "# scale-governor recommender cost benchmark"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine_line)"
  echo "- build: $(build_line)"
  echo "- control plane: $K8S_VERSION (etcd, kube-apiserver, kube-controller-manager with only namespace-controller), same machine"
  echo "- fleet: $schedule schedule-only Deployments (min 2, max 400, three Europe/Berlin windows, scale-up and scale-down rules) and $http with \`recommend\` on an HTTP JSON source (python3 http.server, one file each), $per_namespace per namespace; $total created in $seed_seconds s"
  echo "- loop: every ${interval} s (jittered), 8 evaluations at once; $cycles cycles measured per phase after the first two"
  echo "- load average before the build: $loadavg_start"
  echo "- HTTP JSON samples in the last phase: $samples_ok ok of $samples_all; Deployments carrying a recommendation at the end: $written"
  echo
  echo "CPU is serve's user + system time from /proc. \"per interval\" is the CPU spent in one ${interval} s interval, background included (watches, Lease reads); the follower row is that background alone. \"wall\" is the cycle's duration from serve's own histogram. \"first writes\" are the loop's writes in its first cycle (recommendations and trend state, and any replicas moved into bounds)."
  echo
  echo "| phase | workloads | cycles | seconds | CPU ms/cycle | CPU ms per interval | wall ms/cycle | writes/cycle (steady) | first writes | demand server CPU ms per interval | RSS MiB | HWM MiB | goal |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  cat "$out/rows.md"
  echo
  echo "The loop's own CPU per cycle, with serve's background (the follower row) taken out:"
  echo
  awk -F '\t' -v goal="$cpu_goal_ms" '
    { per[$1] = $2 }
    END {
      base = per["follower (loop idle)"]
      for (l in per) if (l != "follower (loop idle)")
        printf "- %s: %.0f ms%s\n", l, per[l] - base, l == "schedule" ? sprintf(" (goal < %d ms: %s)", goal, per[l] - base < goal ? "met" : "**missed**") : ""
    }' "$out/intervals.tsv" | sort
  echo
  echo "## The loop's counters at the end"
  echo
  cat "$out/counters.md"
} >"$report"
cat "$report"
say "report: $report"
