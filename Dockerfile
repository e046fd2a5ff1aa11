# syntax=docker/dockerfile:1
# Static musl build on a distroless base: no shell, no libc, non-root.
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev gcc make perl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin scale-governor

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/scale-governor /scale-governor
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/scale-governor"]
CMD ["serve"]
