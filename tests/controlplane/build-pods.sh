#!/usr/bin/env bash
# Builds what lets the local control plane run pods: kube-scheduler (from the
# k8s wrapper module, like kube-apiserver), kwok (fake Nodes and pod
# lifecycles) and metrics-server (resource metrics from kwok's emulated
# kubelet), into a cache directory of their own beside the control plane's.
# build.sh calls it; it has its own stamp (this script and the k8s wrapper
# module), so changing it never rebuilds etcd or kube-apiserver.
#
# Prints the binary directory on stdout; progress goes to stderr. Exits 3
# when a build is needed but Go is missing (tests skip on it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# kwok v0.8.0 and later declare Go 1.26.0; v0.7.0 builds with Go 1.25.
kwok_version=v0.7.0
metrics_server_version=v0.8.0
k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/k8s/go.mod")
minor=$(echo "$k8s_version" | cut -d. -f2)
cache=${SCALE_GOVERNOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scale-governor}
bin="$cache/pods-k8s-$k8s_version-kwok-$kwok_version-metrics-server-$metrics_server_version"
stamp=$(cat "$here/build-pods.sh" "$here/k8s/go.mod" "$here/k8s/go.sum" | sha256sum | cut -c1-16)

fresh() { [[ -f "$bin/.stamp" && "$(cat "$bin/.stamp")" == "$stamp" ]]; }
if fresh; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build-pods.sh: Go is required to build the pod components into $bin" >&2; exit 3; }
mkdir -p "$bin"
exec 8>"$bin/.lock"
if ! flock -n 8; then
  echo "build-pods.sh: waiting for another build of $bin ..." >&2
  flock 8
fi
if fresh; then
  echo "$bin"
  exit 0
fi
export CGO_ENABLED=0 GOTOOLCHAIN=local

timed() { # name, command...
  local name=$1 start=$SECONDS
  shift
  echo "build-pods.sh: building $name ..." >&2
  "$@"
  mv "$bin/.new/$name" "$bin/$name"
  echo "build-pods.sh: $name built in $((SECONDS - start))s" >&2
}
rm -rf "$bin/.new" && mkdir -p "$bin/.new"

# readonly: the wrapper's go.sum already covers the scheduler (tools.go
# imports it); a build must never rewrite the committed files.
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean"
scheduler() {
  (cd "$here/k8s" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "$k8s_ldflags" \
    -o "$bin/.new/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler)
}
timed kube-scheduler scheduler

# Neither has replace directives, so `go install pkg@version` builds them
# with the dependency versions their own go.mod pins, checked against
# sum.golang.org. kwok reads its version from the build info, metrics-server
# from client-go's version package (as its Makefile sets it).
export GOBIN=$bin/.new GOFLAGS=-mod=mod
timed kwok go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$kwok_version"
timed metrics-server go install -trimpath \
  -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$metrics_server_version" \
  "sigs.k8s.io/metrics-server/cmd/metrics-server@$metrics_server_version"

rmdir "$bin/.new"
# For cluster.sh's env file and `cluster.sh status`.
printf 'KWOK_VERSION=%s\nMETRICS_SERVER_VERSION=%s\n' "$kwok_version" "$metrics_server_version" >"$bin/versions"
echo "$stamp" >"$bin/.stamp"
echo "$bin"
