#!/usr/bin/env bash
# Installs the tools the checks and tests need, once, into a cache outside the
# work tree, and prints the directory to put on PATH. CI and developers call
# the same helper, so a missing install step shows up on a fresh machine.
#
#   PATH="$(.ci/tools.sh cargo-deny shellcheck prometheus):$PATH"
#
# Tools: cargo-deny (built from crates.io, pinned); helm (built from its Go
# module, pinned, about a minute); shellcheck, prometheus (with promtool),
# buildah and faketime (libfaketime, for the clock-skew tests) (Debian
# packages); musl (rustup's x86_64-unknown-linux-musl target
# and Debian's musl-gcc, for the image's static binary). Progress goes to
# stderr.
set -euo pipefail

cache=${SCALE_GOVERNOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scale-governor}
bin="$cache/tools/bin"
mkdir -p "$bin"

CARGO_DENY_VERSION=0.20.2
HELM_VERSION=v3.19.0

apt_install() {
  local sudo_cmd
  sudo_cmd=$(command -v sudo || true)
  echo "tools.sh: installing Debian packages: $*" >&2
  # `update` only when the package lists were never fetched: it is slow.
  if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
    $sudo_cmd apt-get update -qq >&2
  fi
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 ||
    { $sudo_cmd apt-get update -qq >&2 && $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2; }
}

ensure() {
  case $1 in
    cargo-deny)
      if [[ ! -x $bin/cargo-deny ]] || [[ $("$bin/cargo-deny" --version 2>/dev/null) != "cargo-deny $CARGO_DENY_VERSION" ]]; then
        echo "tools.sh: building cargo-deny $CARGO_DENY_VERSION (about 4 minutes, cached in $bin)" >&2
        cargo install --quiet --locked --version "$CARGO_DENY_VERSION" --root "$cache/tools/cargo-deny" cargo-deny >&2
        ln -sf "$cache/tools/cargo-deny/bin/cargo-deny" "$bin/cargo-deny"
      fi
      ;;
    shellcheck)
      command -v shellcheck >/dev/null || apt_install shellcheck
      ;;
    prometheus)
      if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
        apt_install prometheus
      fi
      ;;
    helm)
      if [[ ! -x $cache/tools/helm-$HELM_VERSION/helm ]]; then
        echo "tools.sh: building helm $HELM_VERSION from its Go module (about a minute, cached in $cache/tools)" >&2
        GOTOOLCHAIN=local GOFLAGS=-mod=mod GOBIN="$cache/tools/helm-$HELM_VERSION" \
          go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
      fi
      ln -sf "$cache/tools/helm-$HELM_VERSION/helm" "$bin/helm"
      ;;
    buildah)
      command -v buildah >/dev/null || apt_install buildah
      ;;
    faketime)
      command -v faketime >/dev/null || apt_install faketime
      ;;
    musl)
      command -v musl-gcc >/dev/null || apt_install musl-tools
      if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        echo "tools.sh: adding the Rust target x86_64-unknown-linux-musl" >&2
        rustup target add x86_64-unknown-linux-musl >&2 || {
          echo "tools.sh: cannot install the Rust target x86_64-unknown-linux-musl" >&2
          exit 1
        }
      fi
      ;;
    *)
      echo "tools.sh: unknown tool $1" >&2
      exit 2
      ;;
  esac
}

for tool in "$@"; do
  ensure "$tool"
done
echo "$bin"
