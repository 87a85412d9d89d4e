# syntax=docker/dockerfile:1
# The wa-pairing service: the runner, the health and metrics endpoint and, when configured,
# the HTTP API and the device page. See docs/operations.md ("Container image").
#
#   docker build -t wa-pairing-service:0.1.0 .
#
# deploy/kubernetes/deployment.yaml runs this image by that name: push it to your registry
# and name it there.
#
# BuildKit's cache mounts keep the crates.io downloads and the build directory between
# builds, so a change to the sources rebuilds only the workspace's crates.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
# --locked: exactly the dependencies of Cargo.lock. The product build never enables the
# service's test-only `insecure-sim` feature.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p wa-pairing-service \
    && install -D -m 0755 target/release/wa-pairing-service /out/wa-pairing-service

# glibc, libgcc and CA certificates, no shell, no package manager, no build tools; the
# same Debian release as the builder. UID 65532 is the image's `nonroot` user.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /out/wa-pairing-service /usr/local/bin/wa-pairing-service
USER 65532:65532
# The health port listens on every address in a container (the service's own default is
# loopback): probes and Prometheus reach it over the container's address.
ENV WA_PAIRING_HEALTH_ADDR=0.0.0.0:9464 \
    WA_PAIRING_LOG_FORMAT=json
# 9464: /livez, /readyz, /metrics (keep it private). 3000: the HTTP API when
# WA_PAIRING_HTTP_ADDR=0.0.0.0:3000.
EXPOSE 9464 3000
# The binary asks its own /livez: the image has no HTTP client.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/wa-pairing-service", "healthcheck"]
# SIGTERM starts the graceful shutdown (sessions closed, leases released); give it 30 s
# (`docker stop -t 30`).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wa-pairing-service"]
