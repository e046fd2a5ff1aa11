#!/usr/bin/env bash
# Builds KEDA's operator and metrics adapter from the module source
# github.com/kedacore/keda/v2 at a pinned version, into a cache directory of
# its own beside the control plane's, with its CRDs and RBAC beside them.
# Only `cluster.sh up --with keda` calls it, so a machine that never runs the
# KEDA tests never builds KEDA; it has its own stamp, and never touches the
# control plane's or the pod components' caches.
#
# Prints the directory on stdout; progress goes to stderr. Exits 3 when a
# build is needed but Go is missing (tests skip on it).
set -euo pipefail

# v2.21.x declares Go 1.27.4; v2.20.2 declares Go 1.26.0.
keda_version=v2.20.2
module=github.com/kedacore/keda/v2
cache=${SCALE_GOVERNOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scale-governor}
bin="$cache/keda-$keda_version"
export CGO_ENABLED=0 GOTOOLCHAIN=local
ldflags="-s -w -X=$module/version.Version=$keda_version -X=$module/version.GitCommit=$keda_version"
# name, package (a directory of the module)
binaries=("keda-operator|./cmd/operator" "keda-adapter|./cmd/adapter")
# The stamp covers what decides the output: version, flags, binaries and the
# files copied; not this script's text.
stamp=$(printf '%s\n' "$keda_version $CGO_ENABLED $GOTOOLCHAIN -trimpath -mod=readonly $ldflags" \
  "${binaries[@]}" "crds: config/crd/bases/*.yaml" "rbac: config/rbac/role.yaml" | sha256sum | cut -c1-16)

fresh() { [[ -f "$bin/.stamp" && "$(cat "$bin/.stamp")" == "$stamp" ]]; }
if fresh; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build-keda.sh: Go is required to build KEDA into $bin" >&2; exit 3; }
mkdir -p "$bin"
# Test binaries started together may all call this; one builds, the rest wait.
exec 8>"$bin/.lock"
if ! flock -n 8; then
  echo "build-keda.sh: waiting for another build of $bin ..." >&2
  flock 8
fi
if fresh; then
  echo "$bin"
  exit 0
fi

# Its go.mod has replace directives (k8s.io at v0.35.5, controller-runtime
# v0.23.3), so `go install pkg@version` refuses it; building inside the
# downloaded module makes it the main module, replaces and all. Two modules
# its go.mod lists are refused by the proxy, but neither binary imports them,
# and -mod=readonly only fetches what the build needs.
echo "build-keda.sh: downloading $module@$keda_version ..." >&2
src=$(GOFLAGS=-mod=mod go mod download -json "$module@$keda_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $src ]] || { echo "build-keda.sh: go mod download gave no directory for $module@$keda_version" >&2; exit 1; }

rm -rf "$bin/.new" && mkdir -p "$bin/.new/crds"
for b in "${binaries[@]}"; do
  IFS='|' read -r name package <<<"$b"
  start=$SECONDS
  echo "build-keda.sh: building $name ..." >&2
  (cd "$src" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "$ldflags" -o "$bin/.new/$name" "$package")
  echo "build-keda.sh: $name built in $((SECONDS - start))s" >&2
done
# The module cache is read-only and `go clean -modcache` may empty it: keep
# copies of what cluster.sh applies.
cp "$src"/config/crd/bases/*.yaml "$bin/.new/crds/"
cp "$src/config/rbac/role.yaml" "$bin/.new/rbac.yaml"
chmod -R u+w "$bin/.new"
rm -rf "$bin/crds"
mv "$bin/.new"/* "$bin/"
rmdir "$bin/.new"
printf 'KEDA_VERSION=%s\n' "$keda_version" >"$bin/versions"
echo "$stamp" >"$bin/.stamp"
echo "$bin"
