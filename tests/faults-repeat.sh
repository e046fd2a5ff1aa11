#!/usr/bin/env bash
# Runs the fault-injection test (tests/e2e/faults.rs) over and over: RUNS
# times with SEED, then RANDOM_RUNS times with fresh random seeds; stops at
# the first failure and names its seed. `make faults-repeat` calls it with
# the control plane up; it is not part of `make test` or CI (about 35 s a
# run).
#   tests/faults-repeat.sh SEED RUNS RANDOM_RUNS
set -uo pipefail
seed=${1:?usage: faults-repeat.sh SEED RUNS RANDOM_RUNS}
runs=${2:-10}
random_runs=${3:-20}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
logs=target/faults-repeat
mkdir -p "$logs"
cargo test --locked --test e2e --no-run || exit 2

seeds=()
for ((i = 0; i < runs; i++)); do seeds+=("$seed"); done
for ((i = 0; i < random_runs; i++)); do
  seeds+=("$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')")
done

n=0
for s in "${seeds[@]}"; do
  n=$((n + 1))
  log=$logs/run-$n.log
  SCALE_GOVERNOR_REQUIRE_CLUSTER=1 SCALE_GOVERNOR_FAULT_SEED=$s \
    cargo test --locked --test e2e -- --include-ignored --nocapture faults:: >"$log" 2>&1
  status=$?
  summary=$(grep -o '[0-9]* kills, [0-9]* stored changes' "$log")
  # A filter that matched nothing would pass too.
  if ((status != 0)) || [[ -z $summary ]]; then
    cat "$log"
    echo "faults-repeat: run $n of ${#seeds[@]} FAILED with SCALE_GOVERNOR_FAULT_SEED=$s ($log)"
    exit 1
  fi
  echo "faults-repeat: run $n of ${#seeds[@]} passed, SCALE_GOVERNOR_FAULT_SEED=$s: $summary"
done
echo "faults-repeat: all ${#seeds[@]} runs passed ($runs with $seed, $random_runs random)"
