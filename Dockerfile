# syntax=docker/dockerfile:1
# A static musl binary in an otherwise empty image, running as 65532.
#
#   docker build -t scale-governor .
#
# deploy/image/build.sh builds the `runtime` stage of this file with buildah
# and no daemon, from a binary built on the host (CI does that on every
# run), so both images are the same but for where the binary was compiled.

FROM docker.io/library/rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev ca-certificates
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when the
# manifests or the lock file change, not on every source change.
COPY Cargo.toml Cargo.lock ./
COPY crates/scale-governor-core/Cargo.toml crates/scale-governor-core/
RUN mkdir -p src benches/load crates/scale-governor-core/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs crates/scale-governor-core/src/lib.rs \
 && for b in decide quality simulate; do echo 'fn main() {}' > benches/$b.rs; done \
 && echo 'fn main() {}' > benches/load/main.rs \
 && cargo build --locked --profile dist --bin scale-governor \
 && rm -rf src crates/scale-governor-core/src
COPY src src
COPY crates crates
# The stubs' timestamps are older than the real sources, so cargo rebuilds
# only the two workspace crates here.
RUN touch src/main.rs src/lib.rs crates/scale-governor-core/src/lib.rs \
 && cargo build --locked --profile dist --bin scale-governor \
 && mkdir -p /out/etc/ssl/certs && cp target/dist/scale-governor /out/scale-governor \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/

# /out is the image's whole root: the binary, and the CA certificates for
# metric sources over HTTPS (the apiserver's CA comes with the
# ServiceAccount token).
FROM scratch AS runtime
COPY --from=build /out/ /
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/scale-governor"]
CMD ["serve"]
