# syntax=docker/dockerfile:1
# devicehub's image: a Rust build stage and a small Debian runtime running as a non-root user.
#
# Multi-arch (amd64 and arm64, e.g. a k3s cluster of Raspberry Pi 5 nodes) with buildx; the build
# stage runs on the builder's own platform and cross-compiles (no slow emulated compiles):
#   docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/devicehub:0.1.0 --push .
# A plain `docker build .` (and docker-compose.yml) builds for the machine it runs on.
FROM --platform=$BUILDPLATFORM rust:1-bookworm AS build
ARG TARGETARCH
# The Rust target and the C/C++ compilers for it (the DuckDB and ring crates build C and C++).
RUN set -eux; \
    case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-gnu; gnu=x86-64-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu ;; \
      *) echo "unsupported architecture: $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    echo "$target" > /rust-target; \
    if [ "$(dpkg --print-architecture)" != "$TARGETARCH" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "gcc-$gnu" "g++-$gnu" "libc6-dev-$TARGETARCH-cross"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$target"
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    CXX_x86_64_unknown_linux_gnu=x86_64-linux-gnu-g++
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit); the binary is copied out of
# the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=devicehub-target-$TARGETARCH \
    target="$(cat /rust-target)" \
 && cargo build --release --locked -p devicehub --target "$target" \
 && cp "target/$target/release/devicehub" /usr/local/bin/devicehub

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/devicehub --create-home devicehub
COPY --from=build /usr/local/bin/devicehub /usr/local/bin/devicehub
# The shipped settings (config/default.toml is built in; this is the inventory's example file).
COPY config/device_metadata.csv /etc/devicehub/device_metadata.csv
USER 10001:10001
WORKDIR /var/lib/devicehub
ENV DEVICEHUB__HTTP__BIND=0.0.0.0:8080 \
    DEVICEHUB__INVENTORY__METADATA_CSV=/etc/devicehub/device_metadata.csv
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["devicehub", "healthcheck"]
ENTRYPOINT ["devicehub"]
CMD ["serve"]
