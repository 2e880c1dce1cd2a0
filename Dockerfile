# ws-broadcaster image: Debian 12, built from source with Debian's libraries.
#
#   docker build -t ws-broadcaster \
#       --build-arg VERSION="$(cat VERSION)" --build-arg REVISION="$(git rev-parse HEAD)" \
#       --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis-host:6379 --stop-timeout 20 ws-broadcaster
#   docker stop -t 20 <container>
#
# Stopping drains (README "Operations"): SIGTERM makes the service refuse
# new WebSocket upgrades with 503 and close its clients spread over
# DRAIN_SECONDS (10), then exit 0.  Docker's default grace period is 10 s,
# after which it sends SIGKILL: give it DRAIN_SECONDS + CLOSE_TIMEOUT + 5 s
# or more (`docker stop -t 20`, `docker run --stop-timeout 20`, compose
# `stop_grace_period: 20s`).
#
# docker-compose.yml builds this together with Redis (and, with
# `--profile demo`, the demo-feed stage below).

# The base image, pinned to a Debian point release (the same in every
# stage).  A tag, not a digest: point-release tags are re-pushed with
# security updates, so pin the digest too (debian:12.11-slim@sha256:...)
# where builds must be byte-for-byte reproducible.
ARG DEBIAN_IMAGE=debian:12.11-slim

# ---- build: compile bin/ws-broadcaster ----------------------------------
FROM ${DEBIAN_IMAGE} AS build
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
FROM ${DEBIAN_IMAGE} AS demo-feed
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-redis \
    && rm -rf /var/lib/apt/lists/*
COPY tests/tools/demo_feed.py /usr/local/bin/demo_feed.py
USER nobody
ENTRYPOINT ["/usr/bin/python3", "/usr/local/bin/demo_feed.py"]

# ---- runtime: the service (default target) -------------------------------
FROM ${DEBIAN_IMAGE}
ARG DEBIAN_IMAGE
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="ws-broadcaster" \
      org.opencontainers.image.description="Real-time WebSocket fan-out of sportsbook odds from Redis Streams" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="docker.io/library/${DEBIAN_IMAGE}"
# Runtime halves of the -dev packages above.  No curl: the health check is
# the binary's own --probe.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libhiredis0.14 libwebsockets17 libwebsockets-evlib-ev libev4 libmsgpackc2 libcjson1 libjwt0 libsystemd0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ws-broadcaster
COPY --from=build /src/bin/ws-broadcaster /usr/local/bin/ws-broadcaster
COPY etc/ws-broadcaster.conf /etc/ws-broadcaster/ws-broadcaster.conf
# Settings can also come from the environment (they override the file).
ENV SERVER_ADDR=:8080
USER ws-broadcaster
EXPOSE 8080
# SIGTERM drains (see the top of this file for the grace period it needs).
STOPSIGNAL SIGTERM
# Liveness: /livez answers 200 while a worker answers at all (it does not
# turn 503 when Redis is away, as /health does, so Redis trouble does not
# get the container restarted).  --probe is a blocking GET that exits 0 on
# 2xx, 1 otherwise, within 3 s.  The port follows SERVER_ADDR: change it
# here if you change that.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/ws-broadcaster", "--probe", "http://127.0.0.1:8080/livez"]
# The supervisor reaps its own children and reads SIGTERM from a signalfd
# (the signal is blocked, which PID 1 needs: it would otherwise ignore a
# signal it has no handler for), so it runs as PID 1 without an init.
ENTRYPOINT ["/usr/local/bin/ws-broadcaster"]
CMD ["-c", "/etc/ws-broadcaster/ws-broadcaster.conf"]
