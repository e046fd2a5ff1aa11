#!/usr/bin/env bash
# Fails when the pure core crate depends, directly or not, on anything that
# does I/O or knows Kubernetes client types. The crate boundary is what makes
# "the core is pure" true; this keeps it true.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

forbidden='^(kube|kube-[a-z-]+|k8s-openapi|tokio|tokio-[a-z-]+|hyper|hyper-[a-z-]+|axum|axum-[a-z-]+|tower|tower-[a-z-]+|tracing|tracing-[a-z-]+|reqwest|rustls|mio) '
tree=$(cargo tree --locked -p scale-governor-core -e normal,build --prefix none)
if found=$(grep -E "$forbidden" <<<"$tree" | sort -u) && [[ -n $found ]]; then
  echo "check-core-deps: scale-governor-core must stay pure, but depends on:" >&2
  echo "$found" >&2
  echo "(cargo tree -p scale-governor-core -i <crate> shows the path)" >&2
  exit 1
fi
echo "check-core-deps: scale-governor-core has $(sort -u <<<"$tree" | wc -l) crates in its tree, none of them I/O or Kubernetes"
