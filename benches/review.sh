#!/usr/bin/env bash
# Instructions and heap allocations per review in the webhook's handler
# (`make bench-review`): benches/review.rs under valgrind, twice, with 2,000
# and 4,000 measured reviews of the same 4,000 bodies; the difference
# divided by 2,000 leaves out the setup (cache, bodies). valgrind counts, it does not time, so the figures
# repeat on a busy machine. Writes target/bench/review-report.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
command -v valgrind >/dev/null || { echo "review.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
bench=review.sh
# shellcheck disable=SC1091 # benches/lib.sh, checked on its own
source "$root/benches/lib.sh"
bin=$(bench_exe review)
[[ -x $bin ]] || { echo "review.sh: could not build benches/review.rs" >&2; exit 1; }
out=$root/target/bench
mkdir -p "$out"
count() { # tool reviews: the tool's total
  local log=$out/review-$1-$2.log
  valgrind --tool="$1" --"$1"-out-file=/dev/null "$bin" --reviews "$2" --workloads 1000 >/dev/null 2>"$log"
  case $1 in
    callgrind) sed -n 's/.*I *refs: *//p' "$log" | tr -d , ;;
    dhat) sed -n 's/.*Total: .* in \([0-9,]*\) blocks.*/\1/p' "$log" | tr -d , ;;
  esac
}
i1=$(count callgrind 2000) i2=$(count callgrind 4000)
a1=$(count dhat 2000) a2=$(count dhat 4000)
{
  echo "# One review through the handler"
  echo
  echo "- commit $(git rev-parse --short HEAD), $(rustc --version)"
  echo "- a clamp of a \`/scale\` with its own uid, 1,000 cached workloads, reported (metrics, log gate, Event series)"
  echo
  echo "| per review | count |"
  echo "|---|---|"
  echo "| instructions (callgrind) | $(((i2 - i1) / 2000)) |"
  echo "| heap allocations (dhat) | $(((a2 - a1) / 2000)) |"
} | tee "$out/review-report.md"
