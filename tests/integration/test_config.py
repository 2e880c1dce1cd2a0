"""What the settings do once the service runs, and the log format.

Contract lines -> tests:

* SERVER_ADDR default :8080                         -> test_server_addr_default_is_port_8080
* SERVER_ADDR ":PORT" = all interfaces             -> test_server_addr_port_only_listens_on_all_interfaces
* SERVER_ADDR "HOST:PORT" = that one address        -> test_server_addr_host_port_listens_on_that_host_only
* REDIS_URL host:port (default localhost:6379)      -> test_redis_url_default_localhost_6379, (every test)
* REDIS_URL redis://[:password@]host:port[/db]      -> test_redis_url_with_password_and_db
* REDIS_URL unix socket path                        -> test_redis_url_unix_socket
* REDIS_PASSWORD                                    -> test_redis_password_setting,
                                                       test_wrong_redis_password_is_degraded
* SPORTS comma list, stream per sport               -> test_sports_comma_list_one_stream_each
* defaults SPORTS=basketball_nba,
  OPPORTUNITIES_STREAM=opportunities,
  CONSUMER_GROUP=ws-broadcaster,
  CONSUMER_ID=auto: <host name>-<port>              -> test_stream_and_group_defaults
* OPPORTUNITIES_STREAM empty disables               -> test_empty_opportunities_stream_disables_it
* WORKERS (default: number of CPUs)                 -> test_workers_default_is_cpu_count
* CLIENT_BUFFER default 256                         -> test_protocol.py::test_heartbeat_reply_fields
* RING_SIZE (default 65536) = broadcast_capacity    -> test_ring_size_default_and_setting
* Logs on stderr: `<ISO time ms Z> <LEVEL padded> <role>: msg` -> test_log_lines_format
* LOG_LEVEL error|warn|info|debug                   -> test_log_level_hides_lower_levels
"""

import datetime as dt
import os
import re
import socket

import pytest

from conftest import (
    LOG_LINE_RE,
    default_consumer_id,
    deliver_one,
    free_port,
    listening_addresses,
    odds_fields,
    parse_iso,
    publish,
    run,
    uid,
    wait_until,
    ws_client,
)


def test_server_addr_host_port_listens_on_that_host_only(service):
    svc = service()
    addrs = listening_addresses(svc.port)
    assert addrs == {"0100007F"}, f"listening on {addrs}, expected only 127.0.0.1"


def test_server_addr_port_only_listens_on_all_interfaces(service):
    port = free_port()
    svc = service(SERVER_ADDR=f":{port}")
    assert svc.port == port
    addrs = listening_addresses(port)
    wildcard = {"00000000", "00000000000000000000000000000000"}
    assert addrs & wildcard, f"listening on {addrs}, expected the wildcard address"
    assert svc.health()[0] == 200


def test_redis_url_default_localhost_6379(service, redis_factory):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 6379))
        except OSError:
            pytest.skip("port 6379 is in use on this machine")
    srv = redis_factory(port=6379, bind="127.0.0.1 -::1")  # "localhost" may be either
    svc = service(REDIS_URL=None)
    r = srv.client()
    deliver_one(svc, r, f"e{uid()}")
    assert r.xinfo_groups(svc.stream())[0]["name"] == svc.group


def test_server_addr_default_is_port_8080(service):
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", 8080))
        except OSError:
            pytest.skip("port 8080 is in use on this machine")
    svc = service(SERVER_ADDR=None)
    assert svc.port == 8080
    assert listening_addresses(8080) & {"00000000", "00000000000000000000000000000000"}


def test_redis_url_unix_socket(service, redis_server, r):
    svc = service(REDIS_URL=redis_server.unix_path)
    deliver_one(svc, r, f"e{uid()}")
    # the service is connected through the socket (flag U), the test through TCP
    clients = r.client_list()
    assert any("U" in c.get("flags", "") for c in clients), clients


def test_redis_url_with_password_and_db(service, redis_factory):
    srv = redis_factory(password="pw-url-secret")
    svc = service(REDIS_URL=f"redis://:pw-url-secret@127.0.0.1:{srv.port}/3")
    r3 = srv.client(db=3)
    # the groups live in database 3, not 0
    assert r3.xinfo_groups(svc.stream())[0]["name"] == svc.group
    assert not srv.client(db=0).exists(svc.stream())
    deliver_one(svc, r3, f"e{uid()}")


def test_redis_password_setting(service, redis_factory):
    srv = redis_factory(password="pw-setting-secret")
    svc = service(REDIS_URL=f"127.0.0.1:{srv.port}", REDIS_PASSWORD="pw-setting-secret")
    deliver_one(svc, srv.client(), f"e{uid()}")


def test_wrong_redis_password_is_degraded(service, redis_factory):
    srv = redis_factory(password="right-one")
    svc = service(wait_ready=False, REDIS_URL=f"127.0.0.1:{srv.port}", REDIS_PASSWORD="wrong-one")
    svc.wait_http()
    resp = wait_until(lambda: (lambda x: x if x.status == 503 else None)(svc.http("/health")),
                      message="/health 503")
    assert resp.json()["status"] == "degraded"
    assert svc.running()


def test_sports_comma_list_one_stream_each(service, r):
    t = uid()
    sports = [f"t{t}_a", f"t{t}_b", f"t{t}_c"]
    svc = service(SPORTS=",".join(sports))
    for s in sports:
        names = [g["name"] for g in r.xinfo_groups(f"odds.normalized.{s}")]
        assert names == [svc.group]

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            for s in sports:
                publish(r, f"odds.normalized.{s}", **odds_fields(s, event=f"e-{s}"))
            got = await c.updates(3)
            assert sorted(m["payload"]["sport_key"] for m in got) == sorted(sports)
            assert {m["payload"]["event_id"] for m in got} == {f"e-{s}" for s in sports}

    run(go())


def test_stream_and_group_defaults(service, redis_factory):
    srv = redis_factory()
    svc = service(REDIS_URL=srv.url, SPORTS=None, OPPORTUNITIES_STREAM=None, CONSUMER_ID=None,
                  CONSUMER_GROUP=None)
    r = srv.client()
    consumer = default_consumer_id(svc.port)
    assert consumer.endswith(f"-{svc.port}") and re.fullmatch(r"[A-Za-z0-9_.-]+", consumer), consumer
    group = f"ws-broadcaster:{consumer}"
    assert svc.group == group
    assert r.xinfo_groups("odds.normalized.basketball_nba")[0]["name"] == group
    assert r.xinfo_groups("opportunities")[0]["name"] == group
    deliver_one(svc, r, f"e{uid()}")
    consumers = r.xinfo_consumers("odds.normalized.basketball_nba", group)
    assert [c["name"] for c in consumers] == [consumer]


def test_empty_opportunities_stream_disables_it(service, redis_factory):
    srv = redis_factory()
    svc = service(REDIS_URL=srv.url, OPPORTUNITIES_STREAM="")
    r = srv.client()
    # only the odds stream (and the epoch) exist; no "opportunities" stream,
    # no empty-named key
    assert sorted(r.keys("*")) == sorted([svc.stream(), "ws-broadcaster:epoch"])
    deliver_one(svc, r, f"e{uid()}")
    assert sorted(r.keys("*")) == sorted([svc.stream(), "ws-broadcaster:epoch"])


def test_workers_default_is_cpu_count(service):
    svc = service(WORKERS=None)
    n = len(svc.worker_pids())
    allowed = {min(64, os.cpu_count() or 1), min(64, len(os.sched_getaffinity(0)))}
    assert n in allowed, f"{n} workers, expected one of {allowed}"
    assert len(svc.metrics()["workers"]) == n


def test_ring_size_default_and_setting(service):
    assert service(RING_SIZE=None).metrics()["broadcast_capacity"] == 65536
    assert service(RING_SIZE="2048").metrics()["broadcast_capacity"] == 2048


def _exercise(svc, r):
    """Some activity: a client, an update, a malformed entry, a bad message."""

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            publish(r, svc.stream(), data="not json")
            publish(r, svc.stream(), **odds_fields(svc.sport))
            await c.updates(1)
            await c.send_raw("not json")
            await c.recv_type("error")

    run(go())


def test_log_lines_format(service, r):
    svc = service(LOG_LEVEL="debug")
    _exercise(svc, r)
    svc.stop()
    lines = [ln for ln in svc.stderr_text().splitlines() if ln.strip()]
    assert lines, "nothing logged on stderr at LOG_LEVEL=debug"
    assert svc.stdout_text() == "", "logs belong on stderr, not stdout"
    now = dt.datetime.now(dt.timezone.utc)
    for ln in lines:
        m = LOG_LINE_RE.match(ln)
        assert m, f"log line not in the documented format: {ln!r}"
        when = parse_iso(m.group(1))
        assert abs((now - when).total_seconds()) < 300, f"log time is not UTC now: {ln!r}"
    roles = {LOG_LINE_RE.match(ln).group(3) for ln in lines}
    assert "supervisor" in roles, roles


LEVELS = ["ERROR", "WARN", "INFO", "DEBUG"]


@pytest.mark.parametrize("level", ["error", "warn", "info"])
def test_log_level_hides_lower_levels(service, r, level):
    svc = service(LOG_LEVEL=level)
    _exercise(svc, r)
    svc.stop()
    allowed = set(LEVELS[: LEVELS.index(level.upper()) + 1])
    for ln in svc.stderr_text().splitlines():
        m = LOG_LINE_RE.match(ln)
        assert m, f"log line not in the documented format: {ln!r}"
        assert m.group(2).strip() in allowed, f"LOG_LEVEL={level} but logged {ln!r}"
