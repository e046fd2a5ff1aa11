#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from Go
# modules into a cache outside the work tree, then (unless --no-pods) the pod
# components with build-pods.sh: kube-scheduler, kwok and metrics-server, in a
# directory of their own. Rebuilds only what changed. Prints the control
# plane's binary directory on stdout, then the pod components' one; progress
# goes to stderr. Exits 3 when a build is needed but Go is missing (tests skip
# on it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pods=1
case ${1:-} in
  "") ;;
  --no-pods) pods=0 ;;
  *) echo "usage: build.sh [--no-pods]" >&2; exit 2 ;;
esac
pods_dir() { if ((pods)); then "$here/build-pods.sh"; fi; }
k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/k8s/go.mod")
etcd_version=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")
minor=$(echo "$k8s_version" | cut -d. -f2)
cache=${SCALE_GOVERNOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scale-governor}
bin="$cache/k8s-$k8s_version-etcd-$etcd_version"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean"
# name, module dir, package, ldflags
binaries=(
  "etcd|$here/etcd|go.etcd.io/etcd/server/v3|-s -w"
  "kube-apiserver|$here/k8s|k8s.io/kubernetes/cmd/kube-apiserver|$ldflags"
  "kube-controller-manager|$here/k8s|k8s.io/kubernetes/cmd/kube-controller-manager|$ldflags"
  "kubectl|$here/k8s|k8s.io/kubernetes/cmd/kubectl|$ldflags"
)
# The stamp covers what decides the binaries: the wrapper modules, the list
# above and the build flags; not this script's text, so editing the rest of
# it (or build-pods.sh) rebuilds nothing here. The .stamp beside it is the
# one the previous build.sh wrote over its own text; it stays, so that a
# checkout still running that script keeps finding these binaries fresh.
stamp=$({
  cat "$here/k8s/go.mod" "$here/k8s/go.sum" "$here/etcd/go.mod" "$here/etcd/go.sum"
  printf '%s\n' "$CGO_ENABLED $GOTOOLCHAIN $GOFLAGS -trimpath" "${binaries[@]#*"$here"}"
} | sha256sum | cut -c1-16)

fresh() { [[ -f "$bin/.stamp-inputs" && "$(cat "$bin/.stamp-inputs")" == "$stamp" ]]; }
if fresh; then
  echo "$bin"
  pods_dir
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is required to build the control plane into $bin" >&2; exit 3; }
mkdir -p "$bin"
# Test binaries started together all call this; one builds, the rest wait.
exec 8>"$bin/.lock"
if ! flock -n 8; then
  echo "build.sh: waiting for another build of $bin ..." >&2
  flock 8
fi
if fresh; then
  echo "$bin"
  exec 8>&-
  pods_dir
  exit 0
fi

build() { # name, module dir, package, ldflags
  local start=$SECONDS
  echo "build.sh: building $1 ..." >&2
  (cd "$2" && go build -trimpath -ldflags "$4" -o "$bin/$1.tmp" "$3")
  mv "$bin/$1.tmp" "$bin/$1"
  echo "build.sh: $1 built in $((SECONDS - start))s" >&2
}

for b in "${binaries[@]}"; do
  IFS='|' read -r name module package flags <<<"$b"
  build "$name" "$module" "$package" "$flags"
done
echo "$stamp" > "$bin/.stamp-inputs"
echo "$bin"
exec 8>&-
pods_dir
