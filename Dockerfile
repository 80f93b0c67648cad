# syntax=docker/dockerfile:1
# SparseServe: multi-stage build. Stage 1 compiles a release binary with the Swift stdlib linked
# statically; stage 2 is a slim Debian with only libssl3, zlib1g and CA certificates.

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
WORKDIR /src
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev zlib1g-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY Package.swift ./
RUN swift package resolve
# Every target directory Package.swift names must exist for the manifest to load, including the
# test, benchmark and fuzz targets (only sparse-serve is built).
COPY Sources ./Sources
COPY Tests ./Tests
COPY Benchmarks ./Benchmarks
COPY Fuzz ./Fuzz
RUN swift build -c release --product sparse-serve --static-swift-stdlib \
    && install -D "$(swift build -c release --show-bin-path)/sparse-serve" /out/sparse-serve

FROM ${RUNTIME_IMAGE}
# Runtime libraries only (kept in step with Tests/integration/test_deploy.py's ldd check).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sparseserve
WORKDIR /app
COPY --from=build /out/sparse-serve /usr/local/bin/sparse-serve
COPY models/digits-mlp /app/models/digits-mlp
# Calibrated one-shot compressed digits artifacts (scripts/build_artifacts.sh; Deploy/config.json serves them)
COPY models/digits-2of4 /app/models/digits-2of4
COPY models/digits-2of4-t /app/models/digits-2of4-t
COPY models/digits-blast /app/models/digits-blast
COPY models/timeseries/model.json models/timeseries/model.safetensors /app/models/timeseries/
COPY Deploy/config.json /app/Deploy/config.json
# Mount another config or model folder over these paths (or set SPARSESERVE_CONFIG) to serve your own.
ENV SPARSESERVE_CONFIG=/app/Deploy/config.json \
    SPARSESERVE_LOG_LEVEL=info
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
    CMD ["sparse-serve", "probe", "--url", "http://127.0.0.1:8000/v2/health/live"]
ENTRYPOINT ["sparse-serve", "serve"]
CMD ["--host", "0.0.0.0"]
