# Multi-stage build of the devicehub binary on Debian bookworm.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p devicehub \
 && cp target/release/devicehub /usr/local/bin/devicehub

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/devicehub --create-home devicehub
COPY --from=build /usr/local/bin/devicehub /usr/local/bin/devicehub
USER devicehub
WORKDIR /var/lib/devicehub
ENV DEVICEHUB__HTTP__BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["devicehub"]
CMD ["serve"]
