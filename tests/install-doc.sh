#!/usr/bin/env bash
# Runs the steps of docs/install.md between its install-doc markers, every
# ```sh block in order, as one bash script from the repository root, so the
# page and what is tested cannot drift apart. tests/e2e/install_doc.rs calls it
# with KUBECONFIG set to a fresh control plane and its kubectl on PATH.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
script=$(awk '
  /<!-- install-doc:begin -->/ { inside = 1; next }
  /<!-- install-doc:end -->/ { inside = 0 }
  inside && /^```sh$/ { code = 1; next }
  inside && /^```$/ { code = 0; next }
  inside && code { print }
' docs/install.md)
[[ -n $script ]] || { echo "install-doc.sh: no steps between the markers in docs/install.md" >&2; exit 1; }
# Whatever the steps leave running stops with them.
cleanup() {
  local running
  mapfile -t running < <(jobs -p)
  ((${#running[@]} == 0)) || kill "${running[@]}" 2>/dev/null || true
}
trap cleanup EXIT
set -x
eval "$script"
