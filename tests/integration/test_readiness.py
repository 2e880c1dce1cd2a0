"""Liveness, readiness, and metrics on a listener of their own.

Contract lines -> tests:

* METRICS_ADDR serves /metrics (JSON and Prometheus text), /health, /livez
  and /readyz; no WebSocket there (404), nothing else
                                          -> test_metrics_addr_serves_metrics_and_health_only
* METRICS_PUBLIC=off: /metrics (both formats) is 404 on SERVER_ADDR, where
  the health endpoints and WebSocket stay; METRICS_ADDR still has it
                                          -> test_metrics_public_off_hides_metrics_on_the_client_port
* METRICS_ADDR on SERVER_ADDR's port, or not an address: refused at start
                                          -> test_metrics_addr_is_checked
* /readyz at start-up while Redis cannot be read: 503 with the reason,
  /livez 200; 200 once Redis answers     -> test_readyz_at_start_up_without_redis
* /readyz while Redis goes away: 503, /livez 200 (a liveness probe must
  not restart the replica), 200 again when Redis is back
                                          -> test_readyz_while_redis_is_down
* /readyz while the ingest is stuck (stopped) and entries wait in Redis:
  503 naming the stream once READY_MAX_LAG has passed, 200 after it moves
                                          -> test_readyz_when_a_stream_is_stale
* /readyz from the first moment of a drain: 503 "draining", on both
  listeners, while the clients are still being closed
                                          -> test_readyz_turns_503_at_once_when_a_drain_begins
"""

import asyncio
import json
import os
import signal
import subprocess
import time

from conftest import (
    EX_CONFIG,
    child_pid,
    free_port,
    http_get,
    odds_fields,
    publish,
    run,
    run_binary,
    upgrade_status,
    wait_until,
    ws_client,
    ws_connect,
)


def readyz(port):
    resp = http_get(port, "/readyz")
    return resp.status, json.loads(resp.body)


def readyz_503(port):
    """readyz(port) if it says 503, else None.  During a drain a worker
    without clients left exits at once and its listeners close, and a
    connection the kernel had queued on one of them is reset (SO_REUSEPORT):
    a probe's failure, which a balancer counts as not ready; here, try again."""
    try:
        got = readyz(port)
    except (ConnectionResetError, ConnectionRefusedError):
        return None
    return got if got[0] == 503 else None


def test_metrics_addr_serves_metrics_and_health_only(service):
    mport = free_port()
    svc = service(METRICS_ADDR=f"127.0.0.1:{mport}")
    m = json.loads(http_get(mport, "/metrics").body)
    assert "active_clients" in m
    text = http_get(mport, "/metrics?format=prometheus")
    assert text.status == 200 and "ws_broadcaster_" in text.body.decode()
    for path in ("/health", "/livez", "/readyz"):
        assert http_get(mport, path).status == 200, path
    assert readyz(mport)[1]["status"] == "ready"
    # no clients on the metrics listener
    assert upgrade_status(mport, "/ws") == 404
    for path in ("/ws", "/", "/other"):
        assert http_get(mport, path).status == 404, path
    # the client port is as before (METRICS_PUBLIC defaults to on)
    assert http_get(svc.port, "/metrics").status == 200
    assert upgrade_status(svc.port, "/ws") == 101
    # one listener per worker slot, bound where it was told
    out = subprocess.run(["ss", "-Hltn", f"sport = :{mport}"], capture_output=True, text=True).stdout
    assert out.count(f"127.0.0.1:{mport}") == int(svc.settings["WORKERS"]), out


def test_metrics_public_off_hides_metrics_on_the_client_port(service):
    mport = free_port()
    svc = service(METRICS_ADDR=f"127.0.0.1:{mport}", METRICS_PUBLIC="off")
    for path in ("/metrics", "/metrics?format=prometheus"):
        assert http_get(svc.port, path).status == 404, path
    assert http_get(svc.port, "/metrics", headers={"Accept": "text/plain"}).status == 404
    for path in ("/health", "/livez", "/readyz"):
        assert http_get(svc.port, path).status == 200, path
    assert http_get(mport, "/metrics").status == 200
    assert http_get(mport, "/metrics?format=prometheus").status == 200

    async def go():
        async with ws_client(svc) as c:
            ack = await c.subscribe()
            assert ack["type"] == "subscribed"

    run(go())


def test_metrics_addr_is_checked(tmp_path):
    port = free_port()
    conf = tmp_path / "c.conf"
    for value, says in ((f"127.0.0.1:{port}", "SERVER_ADDR's port"), (f":{port}", "SERVER_ADDR's port"),
                        ("nonsense", "METRICS_ADDR")):
        conf.write_text(f"SERVER_ADDR=127.0.0.1:{port}\nMETRICS_ADDR={value}\n")
        res = run_binary(["-t", "-c", str(conf)])
        assert res.returncode == EX_CONFIG, (value, res.stdout, res.stderr)
        assert says in res.stderr, (value, res.stderr)


def test_readyz_at_start_up_without_redis(service, redis_factory):
    rport = free_port()
    svc = service(REDIS_URL=f"127.0.0.1:{rport}", wait_ready=False)
    svc.wait_http()
    status, body = readyz(svc.port)
    assert status == 503 and body["status"] == "not ready", body
    assert "Redis cannot be read" in body["reasons"], body
    assert body["redis_connected"] is False
    assert http_get(svc.port, "/livez").status == 200
    redis_factory(port=rport)
    wait_until(lambda: readyz(svc.port)[0] == 200, timeout=15, message="ready once Redis answers")
    status, body = readyz(svc.port)
    assert body["reasons"] == [] and body["workers_listening"] == body["workers"], body


def test_readyz_while_redis_is_down(service, redis_factory):
    srv = redis_factory()
    svc = service(REDIS_URL=srv.url)
    assert readyz(svc.port)[0] == 200
    srv.stop()
    wait_until(lambda: readyz(svc.port)[0] == 503, timeout=10, message="503 without Redis")
    assert "Redis cannot be read" in readyz(svc.port)[1]["reasons"]
    assert http_get(svc.port, "/livez").status == 200
    srv.start()
    wait_until(lambda: readyz(svc.port)[0] == 200, timeout=15, message="ready again")


def test_readyz_when_a_stream_is_stale(service, r):
    svc = service(READY_MAX_LAG="1", WORKERS="1")
    publish(r, svc.stream(), **odds_fields(svc.sport, event="first"))
    wait_until(lambda: svc.metrics()["entries_published"] >= 1, message="read")
    assert readyz(svc.port)[0] == 200
    ingest = child_pid(svc, "wsb-ingest")
    os.kill(ingest, signal.SIGSTOP)
    try:
        publish(r, svc.stream(), **odds_fields(svc.sport, event="waiting"))
        status, body = wait_until(lambda: readyz_503(svc.port), timeout=10,
                                  message="503 while the ingest is stuck")
        assert any(svc.stream() in reason for reason in body["reasons"]), body
    finally:
        os.kill(ingest, signal.SIGCONT)
    wait_until(lambda: readyz(svc.port)[0] == 200, timeout=10, message="ready once it moves")


def test_readyz_turns_503_at_once_when_a_drain_begins(service):
    mport = free_port()
    svc = service(DRAIN_SECONDS="4", METRICS_ADDR=f"127.0.0.1:{mport}")

    async def go():
        clients = [await ws_connect(svc.port) for _ in range(4)]
        for c in clients:
            await c.subscribe()
        assert readyz(svc.port)[0] == 200
        svc.signal(signal.SIGTERM)
        t0 = time.monotonic()
        seen = await asyncio.to_thread(wait_until, lambda: readyz_503(mport), 2.0)
        took = time.monotonic() - t0
        status, body = seen
        assert "draining: the instance is stopping" in body["reasons"] and body["draining"], body
        # still draining: the clients have not all been closed yet
        assert svc.running() and took < 2.0
        assert await asyncio.to_thread(wait_until, lambda: readyz_503(svc.port), 2.0)
        assert http_get(svc.port, "/livez").status == 200
        for c in clients:
            c.abort()

    run(go())
    assert svc.terminate(10) == 0
