#!/usr/bin/env bash
# Builds the image with no daemon and no registry: the `runtime` stage of
# the Dockerfile (FROM scratch), with buildah, from a static musl binary
# built on this machine; then starts that binary from the image's own root
# filesystem and checks it. Base images cannot be pulled here, and need not
# be: the `build` stage is replaced by a directory holding what it would
# have produced (buildah's --build-context).
#
#   deploy/image/build.sh            # writes target/image/scale-governor.tar
#
# The musl target, musl-gcc and buildah come from .ci/tools.sh; the build's
# own target directory lives in the tools cache, so dependencies compile
# once per machine. Prints the image and binary sizes. Where the musl target
# cannot be installed (or IMAGE_LIBC=gnu), it says so and builds the image
# from the glibc binary plus the shared libraries it links, as distroless/cc
# does.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
PATH="$(.ci/tools.sh buildah):$PATH"
cache=${SCALE_GOVERNOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scale-governor}
target=x86_64-unknown-linux-musl
if [[ ${IMAGE_LIBC:-musl} == gnu ]] || ! .ci/tools.sh musl >/dev/null; then
  echo "image: WARNING: no musl target here: building from the glibc binary plus the shared libraries it links" >&2
  target=x86_64-unknown-linux-gnu
fi
tag=${IMAGE_TAG:-scale-governor:dev}
out=$root/target/image
storage=(--root "$cache/containers/storage" --runroot "$cache/containers/run" --storage-driver vfs)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

echo "image: building the static binary (target $target, profile dist)" >&2
started=$SECONDS
SCALE_GOVERNOR_REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
  CARGO_TARGET_DIR="$cache/image-target" \
  cargo build --locked --quiet --profile dist --target "$target" --bin scale-governor
binary=$cache/image-target/$target/dist/scale-governor
echo "image: binary built in $((SECONDS - started)) s" >&2

# What the Dockerfile's build stage leaves in /out, the image's root: the
# binary and the CA certificates, and for a glibc binary the loader and
# libraries it links.
context=$out/build-stage
rm -rf "$context" && mkdir -p "$context/out/etc/ssl/certs"
cp "$binary" "$context/out/scale-governor"
cp /etc/ssl/certs/ca-certificates.crt "$context/out/etc/ssl/certs/"
if [[ $target == *-musl ]]; then
  # Static: no program interpreter, so it runs in an empty image.
  if readelf -l "$binary" | grep -q 'program interpreter'; then
    echo "image: $binary is dynamically linked" >&2
    exit 1
  fi
else
  for lib in $(ldd "$binary" | grep -oE '/[^ ]+'); do
    mkdir -p "$context/out$(dirname "$lib")"
    cp -L "$lib" "$context/out$lib"
  done
fi
mkdir -p "$out/empty"
buildah "${storage[@]}" build --quiet --isolation chroot --target runtime \
  --build-context "build=$context" -f Dockerfile -t "$tag" "$out/empty" >/dev/null
rm -f "$out/scale-governor.tar"
buildah "${storage[@]}" push --quiet "$tag" "oci-archive:$out/scale-governor.tar"

# Run the binary inside the image's root filesystem, as its user, as a
# container would: chroot, so nothing of this machine's is found instead.
container=$(buildah "${storage[@]}" from --quiet "$tag")
trap 'buildah "${storage[@]}" rm "$container" >/dev/null 2>&1 || true' EXIT
rootfs=$(buildah "${storage[@]}" mount "$container")
got=$(chroot --userspec=65532:65532 "$rootfs" /scale-governor --version)
[[ $got == "scale-governor $version" ]] || { echo "image: --version printed '$got', not 'scale-governor $version'" >&2; exit 1; }
user=$(buildah "${storage[@]}" inspect --format '{{.OCIv1.Config.User}}' "$tag")
entrypoint=$(buildah "${storage[@]}" inspect --format '{{.OCIv1.Config.Entrypoint}}' "$tag")
[[ $user == 65532:65532 && $entrypoint == "[/scale-governor]" ]] ||
  { echo "image: user '$user', entrypoint '$entrypoint'" >&2; exit 1; }
files=$(cd "$rootfs" && find . -type f | sort | tr '\n' ' ')
buildah "${storage[@]}" umount "$container" >/dev/null
size=$(buildah "${storage[@]}" images --format '{{.Size}}' "$tag" | head -1)
echo "image: $tag ($size; binary $(($(stat -c %s "$binary") / 1024 / 1024)) MiB, $target; files: $files) runs as $user: $got"
echo "image: OCI archive $out/scale-governor.tar ($(($(stat -c %s "$out/scale-governor.tar") / 1024 / 1024)) MiB)"
