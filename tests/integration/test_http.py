"""HTTP on the same port: /health, /metrics, anything else.

Contract lines -> tests:

* GET /health -> 200 {"status":"healthy","service":"ws-broadcaster",
  "active_clients":N}                                -> test_health_healthy_counts_clients
* readiness: 200 once connected and the groups exist -> test_streams.py::test_group_name_consumer_name_and_mkstream
* 503 "degraded" while the ingest cannot reach Redis,
  service stays up                                   -> test_health_degraded_while_redis_unreachable,
                                                        test_health_degraded_after_redis_stops
* GET /metrics JSON: active_clients, total_connections,
  total_messages, broadcast_capacity (= RING_SIZE),
  broadcast_usage, dropped_messages, invalid_entries,
  workers[] {worker, pid, active_clients,
  total_connections, total_messages, dropped_messages} -> test_metrics_json_fields
* active_clients / total_connections / total_messages
  counting (all message types), per-worker figures    -> test_metrics_counts
* broadcast_usage 0..RING_SIZE, frames not yet read   -> test_metrics_broadcast_usage
* Prometheus text format: Accept text/plain,
  application/openmetrics-text, ?format=prometheus;
  Content-Type text/plain; ws_broadcaster_ names;
  # TYPE lines; same figures, per worker one family
  labelled worker="n" whose sum is the JSON's       -> test_metrics_prometheus_format
* any other path -> 404                             -> test_unknown_paths_are_404
* /ws without an upgrade -> 4xx                      -> test_ws_without_upgrade_is_4xx
* WebSocket only on /ws                              -> test_websocket_on_other_path_is_refused
"""

import asyncio
import re

import pytest

from conftest import (
    apublish_many,
    free_port,
    odds_fields,
    run,
    upgrade_status,
    wait_until,
    ws_client,
    ws_connect,
)

# JSON key -> Prometheus family (the full mapping is checked in
# test_metrics_exposition.py)
PROMETHEUS_NAMES = {
    "active_clients": "ws_broadcaster_active_clients",
    "total_connections": "ws_broadcaster_connections_total",
    "total_messages": "ws_broadcaster_messages_sent_total",
    "dropped_messages": "ws_broadcaster_messages_dropped_total",
    "broadcast_capacity": "ws_broadcaster_ring_capacity_frames",
    "broadcast_usage": "ws_broadcaster_ring_usage_frames",
    "invalid_entries": "ws_broadcaster_invalid_entries_total",
}
TOP_FIGURES = ("active_clients", "total_connections", "total_messages", "broadcast_capacity",
               "broadcast_usage", "dropped_messages", "invalid_entries")
WORKER_FIGURES = ("active_clients", "total_connections", "total_messages", "dropped_messages")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def test_health_healthy_counts_clients(service):
    svc = service()
    resp = svc.http("/health")
    assert resp.status == 200
    assert resp.json() == {"status": "healthy", "service": "ws-broadcaster", "active_clients": 0}

    async def go():
        async with ws_client(svc) as a, ws_client(svc) as b, ws_client(svc) as c:
            await a.subscribe()
            await b.heartbeat()
            await c.heartbeat()
            await asyncio.to_thread(wait_until, lambda: svc.health()[1]["active_clients"] == 3,
                                    message="active_clients == 3")
            assert svc.health() == (200, {"status": "healthy", "service": "ws-broadcaster",
                                          "active_clients": 3})

    run(go())
    wait_until(lambda: svc.health()[1]["active_clients"] == 0, message="active_clients back to 0")


def test_health_degraded_while_redis_unreachable(service, redis_factory):
    port = free_port()
    svc = service(wait_ready=False, REDIS_URL=f"127.0.0.1:{port}")
    svc.wait_http()
    resp = wait_until(lambda: (lambda x: x if x.status == 503 else None)(svc.http("/health")),
                      message="/health 503")
    assert resp.json()["status"] == "degraded"
    # the service stays up, still degraded, still serving HTTP
    for _ in range(10):
        assert svc.running()
        assert svc.http("/health").status == 503
        assert svc.http("/metrics").status == 200
        asyncio.run(asyncio.sleep(0.1))

    # once Redis is there, it becomes healthy and delivers
    srv = redis_factory(port=port)
    svc.wait_ready(timeout=20)
    assert svc.health()[1]["status"] == "healthy"
    r = srv.client()
    assert r.xinfo_groups(svc.stream())[0]["name"] == svc.group

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            r.xadd(svc.stream(), odds_fields(svc.sport, event="after"))
            (m,) = await c.updates(1)
            assert m["payload"]["event_id"] == "after"

    run(go())


def test_health_degraded_after_redis_stops(service, redis_factory):
    srv = redis_factory()
    svc = service(REDIS_URL=srv.url)
    assert svc.health()[0] == 200
    port = srv.port
    srv.stop()
    resp = wait_until(lambda: (lambda x: x if x.status == 503 else None)(svc.http("/health")),
                      message="/health 503 after Redis stopped")
    assert resp.json()["status"] == "degraded"
    assert svc.running()
    srv2 = redis_factory(port=port)
    svc.wait_ready(timeout=20)
    assert svc.health()[1]["status"] == "healthy"
    assert srv2.client().xinfo_groups(svc.stream())[0]["name"] == svc.group


def test_metrics_json_fields(service):
    svc = service(RING_SIZE="4096", WORKERS="2")
    m = svc.metrics()
    for k in TOP_FIGURES:
        assert k in m and is_int(m[k]), (k, m.get(k))
    assert m["broadcast_capacity"] == 4096
    assert 0 <= m["broadcast_usage"] <= 4096
    assert m["active_clients"] == 0 and m["total_connections"] == 0 and m["total_messages"] == 0
    workers = m["workers"]
    assert isinstance(workers, list) and len(workers) == 2
    assert sorted(w["worker"] for w in workers) == [1, 2]
    actual = svc.worker_pids()
    for w in workers:
        for k in ("pid",) + WORKER_FIGURES:
            assert k in w and is_int(w[k]), (k, w)
        assert actual[f"wsb-worker-{w['worker']}"] == w["pid"]


def test_metrics_counts(service, r):
    svc = service()

    def consistent(m):
        ws = m["workers"]
        return all(m[k] == sum(w[k] for w in ws) for k in WORKER_FIGURES)

    async def go():
        async with ws_client(svc) as a, ws_client(svc) as b:
            c = await ws_connect(svc.port)
            await a.subscribe(snapshot=False)  # 1 message
            await b.subscribe(books=["fanduel"], snapshot=False)  # 1 message
            await c.heartbeat()  # 1 message
            await c.close()
            await apublish_many(r, [(svc.stream(), odds_fields(svc.sport, book="fanduel")) for _ in range(5)]
                                + [(svc.stream(), odds_fields(svc.sport, book="dk")) for _ in range(2)])
            await a.updates(7)
            await b.updates(5)
            await a.send_raw("bad")  # an error reply counts as well
            await a.recv_type("error")
            # 3 + 7 + 5 + 1
            m = await asyncio.to_thread(
                svc.wait_metric, lambda m: m["total_messages"] == 16 and m["active_clients"] == 2,
                message="total_messages == 16, active_clients == 2")
            assert m["total_connections"] == 3
            assert consistent(m), m
            assert sum(1 for w in m["workers"] if w["active_clients"]) >= 1

    run(go())
    m = svc.wait_metric(lambda m: m["active_clients"] == 0, message="active_clients back to 0")
    assert m["total_connections"] == 3 and m["total_messages"] == 16 and m["dropped_messages"] == 0
    assert consistent(m), m


def test_metrics_broadcast_usage(service, r):
    svc = service(RING_SIZE="1024")
    seen = []

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(events=["x"])
            task = asyncio.ensure_future(apublish_many(
                r, [(svc.stream(), odds_fields(svc.sport, event=str(i))) for i in range(3000)]))
            while not task.done():
                seen.append(await asyncio.to_thread(lambda: svc.metrics()["broadcast_usage"]))
            await task

    run(go())
    assert all(0 <= u <= 1024 for u in seen), seen
    svc.wait_metric(lambda m: m["broadcast_usage"] == 0, message="broadcast_usage back to 0 when idle")
    svc.wait_metric(lambda m: m["entries_read"] == 3000, message="entries_read == 3000")


def parse_prometheus(text):
    """-> (types {name: type}, samples [(name, {labels}, value)])"""
    types, samples = {}, []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            m = re.match(r"#\s+TYPE\s+(\S+)\s+(\S+)", line)
            if m:
                types[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)(\s+\S+)?$", line)
        assert m, f"not a sample line: {line!r}"
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return types, samples


@pytest.mark.parametrize("how", ["accept-text", "accept-openmetrics", "query"])
def test_metrics_prometheus_format(service, r, how):
    svc = service()

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(snapshot=False)
            await apublish_many(r, [(svc.stream(), odds_fields(svc.sport)) for _ in range(3)])
            await c.updates(3)
            await asyncio.to_thread(svc.wait_metric, lambda m: m["total_messages"] == 4,
                                    message="total_messages == 4")
            if how == "accept-text":
                resp = svc.http("/metrics", headers={"Accept": "text/plain"})
            elif how == "accept-openmetrics":
                resp = svc.http("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
            else:
                resp = svc.http("/metrics?format=prometheus")
            return resp, svc.metrics()

    resp, js = run(go())
    assert resp.status == 200
    assert (resp.header("Content-Type") or "").startswith("text/plain"), resp.headers
    types, samples = parse_prometheus(resp.text)
    assert all(n.startswith(("ws_broadcaster_", "process_")) for n, _, _ in samples)
    plain = {n: v for n, labels, v in samples if not labels}
    for k in ("broadcast_capacity", "broadcast_usage", "invalid_entries"):
        name = PROMETHEUS_NAMES[k]
        assert name in types, f"no # TYPE line for {name}"
        assert plain.get(name) == js[k], (k, plain.get(name), js[k])
    # per-worker figures: one family labelled by worker, whose sum is the JSON's
    nworkers = len(js["workers"])
    for k in WORKER_FIGURES:
        name = PROMETHEUS_NAMES[k]
        assert name in types, f"no # TYPE line for {name}"
        per = {labels["worker"]: v for n, labels, v in samples if n == name}
        assert set(per) == {str(i) for i in range(1, nworkers + 1)}, (k, per)
        assert sum(per.values()) == js[k], (k, per, js[k])
        for w in js["workers"]:
            assert per[str(w["worker"])] == w[k], (k, per, w)
    assert sum(v for n, _, v in samples if n == "ws_broadcaster_active_clients") == 1
    # no second family of aggregates beside the labelled one
    assert not [n for n in types if n.startswith("ws_broadcaster_worker_")]


@pytest.mark.parametrize("path", ["/", "/nope", "/healthz", "/health/x", "/metricsx", "/wsx", "/index.html"])
def test_unknown_paths_are_404(http_svc, path):
    assert http_svc.http(path).status == 404


@pytest.fixture(scope="module")
def http_svc(module_service):
    return module_service()


def test_ws_without_upgrade_is_4xx(service):
    svc = service()
    status = svc.http("/ws").status
    assert 400 <= status <= 499, status


def test_websocket_on_other_path_is_refused(http_svc):
    assert upgrade_status(http_svc.port, "/ws") == 101
    for path in ("/other", "/", "/wsx", "/health/ws"):
        assert upgrade_status(http_svc.port, path) == 404, path
