#!/usr/bin/env bash
# Runs the cargo-fuzz targets for a fixed time each, starting from the
# committed seeds, and prints one summary line per target.
#
#   fuzz/run.sh [policy|review|all] [seconds]     # default: all, 600 s each
#
# Exit status: 0 when no target crashed, 1 when one did (the input is in
# fuzz/artifacts/<target>/), 2 on a usage or build error. An input that runs
# longer than 10 s counts as a crash (a hang in the admission path).
#
# Environment:
#   FUZZ_TOOLCHAIN  rustup toolchain with -Z support (default: nightly)
#   FUZZ_SANITIZER  address (default) or none, which runs faster; the crate
#                   forbids unsafe code, but its dependencies do not
#   FUZZ_ARGS       extra libFuzzer flags, e.g. "-max_len=8192"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

target=${1:-all}
seconds=${2:-600}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
sanitizer=${FUZZ_SANITIZER:-address}

case $target in
  all) targets=(policy review) ;;
  policy | review) targets=("$target") ;;
  *) echo "usage: $0 [policy|review|all] [seconds]" >&2; exit 2 ;;
esac
[[ $seconds =~ ^[0-9]+$ ]] || { echo "$0: seconds must be a whole number, got '$seconds'" >&2; exit 2; }

if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
  echo "$0: needs cargo-fuzz on the $toolchain toolchain:" >&2
  echo "  rustup toolchain install $toolchain && cargo install cargo-fuzz --locked" >&2
  exit 2
fi

# Logs go under target/, which git ignores.
logs=target/logs
mkdir -p "$logs"
# Build first, so a build failure is not mistaken for a crash (exit 2), and
# so the fuzzing time below is all fuzzing.
# The policy target builds against the core crate alone; the review target
# needs the application crate, behind the `app` feature.
features_of() { if [[ $1 == review ]]; then echo "--features=app"; fi; }
for t in "${targets[@]}"; do
  # shellcheck disable=SC2046 # features_of prints zero or one flag
  if ! cargo "+$toolchain" fuzz build --sanitizer "$sanitizer" $(features_of "$t") "$t" >"$logs/build-$t.log" 2>&1; then
    tail -n 20 "$logs/build-$t.log" >&2
    echo "$0: build of $t failed; full log in fuzz/$logs/build-$t.log" >&2
    exit 2
  fi
done

status=0
for t in "${targets[@]}"; do
  # corpus/<t> collects what the fuzzer finds (git-ignored); seeds/<t> is
  # read-only input. New inputs go only to the first directory.
  mkdir -p "corpus/$t" "artifacts/$t"
  log="$logs/$t.log"
  dict=()
  [[ -f dict/$t.dict ]] && dict=("-dict=dict/$t.dict")
  echo "fuzz/run.sh: $t for ${seconds}s (sanitizer $sanitizer, log fuzz/$log)"
  started=$(date +%s)
  set +e
  # shellcheck disable=SC2086,SC2046 # FUZZ_ARGS is a list of flags
  cargo "+$toolchain" fuzz run --sanitizer "$sanitizer" $(features_of "$t") "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(($(date +%s) - started))
  runs=$(sed -nE 's/^stat::number_of_executed_units: ([0-9]+)/\1/p' "$log" | tail -n 1)
  # The last status line holds the final coverage figures; a crash on a seed
  # leaves none.
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.*corp: ([0-9]+\/[0-9a-zA-Z]+).*/\1/p' <<<"$last")
  crashes=$(find "artifacts/$t" -type f -newermt "@$started" | wc -l)
  if ((rc != 0)) && ((crashes == 0)); then crashes="? (exit $rc, see fuzz/$log)"; fi
  runs=${runs:-0}
  printf '%s: %s runs in %ss (%s exec/s), cov %s, ft %s, corpus %s, crashes %s\n' \
    "$t" "$runs" "$elapsed" "$((runs / (elapsed > 0 ? elapsed : 1)))" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes"
  if ((rc != 0)); then
    status=1
    # The panic and its message, and where the input went.
    grep -E -A1 'panicked at' "$log" | head -n 4 || true
    grep -E 'Test unit written to' "$log" | sed 's/.*Test unit/  test unit/' || true
  fi
done
exit $status
