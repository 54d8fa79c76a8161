# streamscore image: the worker binary, libxgboost.so, the Avro schemas and the shipped models
# on debian:bookworm-slim, running as user 10001. The Helm chart (helm/streamscore) mounts its
# own properties at /etc/streamscore; the image's default there is config/primary.properties
# with metrics on 0.0.0.0:9464.
#   docker build -t streamscore:0.1.0 .
#   docker run --rm streamscore:0.1.0 --help
# Without Docker (mmdebstrap makes the base, buildah builds this file unchanged and runs it):
#   scripts/image build; scripts/image run --help          (docs/image.md)

# ---- build: the project's own setup (build-only) and the same CMake build as `make build`
FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# Debian build packages, the xgboost-cpu wheel (libxgboost.so), XGBoost's C API header, and
# librdkafka and hiredis (with hiredis_ssl) built from Debian 13's sources into .deps.
# Only what setup --build-only reads is copied: a change to another script keeps this layer
# in buildah's cache (scripts/image build).
COPY scripts/setup scripts/lib.sh scripts/requirements.txt scripts/
RUN scripts/setup --build-only && rm -rf /var/lib/apt/lists/*
# What CMake configures from: the schemas (compiled in as the defaults), the worker, and the
# tests and bench folders it adds (their programs are not built here).
COPY CMakeLists.txt ./
COPY schemas/ schemas/
COPY tests/ tests/
COPY bench/ bench/
COPY worker/ worker/
RUN cmake -S . -B build -G Ninja && cmake --build build --target streamscore
# For /usr/local/lib: libxgboost.so and the OpenMP runtime bundled with it by the wheel, and
# librdkafka and hiredis as scripts/setup built them, without debug information (the binary's
# RUNPATH names /src/.deps, which the runtime stage does not have: the loader finds them through
# the ld.so cache).
RUN mkdir -p /out/lib \
 && cp -L .deps/xgboost/lib/libxgboost.so /out/lib/ \
 && cp -L .deps/venv/lib/python3*/site-packages/xgboost_cpu.libs/*.so* /out/lib/ \
 && cp -L .deps/librdkafka/lib/librdkafka.so.1 .deps/hiredis/lib/libhiredis.so.1.1.0 \
      .deps/hiredis/lib/libhiredis_ssl.so.1.1.0 /out/lib/ \
 && strip --strip-debug /out/lib/librdkafka.so.1 /out/lib/libhiredis.so.1.1.0 \
      /out/lib/libhiredis_ssl.so.1.1.0

# ---- runtime: the runtime libraries only
FROM debian:bookworm-slim
# Pinned by release (bookworm); versions seen on Debian 12.15: libavro23 1.11.1-1,
# libmicrohttpd12 0.9.75-6, libjansson4 2.14-2, libcurl4 7.88.1-10+deb12u15 (the schema registry
# client; the runtime of the build's libcurl4-openssl-dev), libssl3 3.0.22-1~deb12u2 (libcrypto:
# SHA-256; libssl: TLS), libstdc++6 12.2.0-14+deb12u1 (for libxgboost.so), and what the
# librdkafka of the build stage links besides: libsasl2-2 2.1.28+dfsg-10+deb12u1, libzstd1
# 1.5.4+dfsg2-5+deb12u1, liblz4-1 1.9.4-1, zlib1g 1:1.2.13.dfsg-1+deb12u1; score-file's container
# codecs besides: libsnappy1v5 1.1.9-3, liblzma5 5.4.1-1. Debian's librdkafka1
# (2.0.2) and libhiredis0.14 are not installed: the build stage's 2.8.0 and 1.2.0 are copied.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libavro23 libmicrohttpd12 libjansson4 libcurl4 libssl3 libstdc++6 \
      libsasl2-2 libzstd1 liblz4-1 zlib1g libsnappy1v5 liblzma5 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/streamscore /usr/local/bin/streamscore
COPY --from=build /out/lib/ /usr/local/lib/
# The loader finds libxgboost.so (and its libgomp), librdkafka and hiredis through the ld.so
# cache; the binary must run, and --version names the libraries it loaded.
RUN ldconfig && streamscore --version
COPY schemas/ /opt/streamscore/schemas/
COPY models/churn-*.json /opt/streamscore/models/
COPY config/primary.properties /etc/streamscore/streamscore.properties
RUN printf '\n# HTTP endpoints: /metrics, /healthz, /readyz\nmetrics.listen = 0.0.0.0:9464\n' \
      >>/etc/streamscore/streamscore.properties \
 && groupadd --system --gid 10001 streamscore \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin streamscore
# Relative paths of the properties (schemas/..., models/...) resolve here.
WORKDIR /opt/streamscore
USER 10001:10001
EXPOSE 9464
# No curl in the image: bash's /dev/tcp sends the request, and the status line must say 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["streamscore"]
CMD ["run", "-c", "/etc/streamscore/streamscore.properties"]
