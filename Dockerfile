# ws-broadcaster image: Debian 12, built from source with Debian's libraries.
#
#   docker build -t ws-broadcaster .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis-host:6379 ws-broadcaster
#
# docker-compose.yml builds this together with Redis (and, with
# `--profile demo`, the demo-feed stage below).

# ---- build: compile bin/ws-broadcaster ----------------------------------
FROM debian:12-slim AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config \
        libhiredis-dev libwebsockets-dev libev-dev libmsgpack-dev libcjson-dev libsystemd-dev libjwt-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile VERSION ./
COPY src ./src
RUN make -j"$(nproc)" bin/ws-broadcaster

# ---- demo-feed: publishes changing NBA odds (docker-compose profile "demo")
FROM debian:12-slim AS demo-feed
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-redis \
    && rm -rf /var/lib/apt/lists/*
COPY tests/tools/demo_feed.py /usr/local/bin/demo_feed.py
USER nobody
ENTRYPOINT ["/usr/bin/python3", "/usr/local/bin/demo_feed.py"]

# ---- runtime: the service (default target) -------------------------------
FROM debian:12-slim
# Runtime halves of the -dev packages above; curl is for the health check.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libhiredis0.14 libwebsockets17 libwebsockets-evlib-ev libev4 libmsgpackc2 libcjson1 libjwt0 libsystemd0 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ws-broadcaster
COPY --from=build /src/bin/ws-broadcaster /usr/local/bin/ws-broadcaster
COPY etc/ws-broadcaster.conf /etc/ws-broadcaster/ws-broadcaster.conf
# Settings can also come from the environment (they override the file).
ENV SERVER_ADDR=:8080
USER ws-broadcaster
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health >/dev/null || exit 1
# The supervisor reaps its own children and handles SIGTERM, so it can run
# as PID 1 without an init.
ENTRYPOINT ["/usr/local/bin/ws-broadcaster"]
CMD ["-c", "/etc/ws-broadcaster/ws-broadcaster.conf"]
