"""Operations: JSON logs, consumer groups on the command line, the probe,
the default consumer id.

Contract lines -> tests:

* LOG_FORMAT=json: through a start, a client connecting and closing, a bad
  entry in a stream and a stop (with a client drained), every stderr line is
  one JSON object with ts, level, role, pid and msg; the lines about the
  entry carry stream and id, those about clients client_ip, a close its code
                                          -> test_json_logs_every_line_parses
* `--groups` lists this service's groups (CONSUMER_GROUP prefix) on the
  configured streams with consumers, pending counts and idle times, marks
  this instance's, leaves other prefixes out
                                          -> test_groups_lists_this_services_groups
* `--groups-delete-idle DURATION` deletes the groups whose consumers have
  all been idle longer, never this instance's (however idle), never one
  without consumers, never another prefix's; a bad duration is refused
                                          -> test_groups_delete_idle
* `--probe URL`: exit 0 on 200 (/livez, /health), 1 on 404, 503 (degraded)
  and a refused connection; no configuration needed
                                          -> test_probe_exit_status
* CONSUMER_ID=auto: `-t` shows <host name>-<port>
                                          -> test_check_shows_the_default_consumer_id
"""

import asyncio
import json
import re
import signal
import time

from conftest import (
    default_consumer_id,
    config_file,
    free_port,
    odds_fields,
    publish,
    run,
    run_binary,
    uid,
    ws_client,
    ws_connect,
)

JSON_KEYS = {"ts", "level", "role", "pid", "msg"}
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_json_logs_every_line_parses(service, r):
    svc = service(LOG_FORMAT="json", LOG_LEVEL="debug", WORKERS="2", DRAIN_SECONDS="1")

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            bad = publish(r, svc.stream(), **odds_fields(svc.sport, event="bad", price="not-a-number"))
            publish(r, svc.stream(), **odds_fields(svc.sport, event="good"))
            (m,) = await c.updates(1)
            assert m["payload"]["event_id"] == "good"
        # one more, still connected when the stop comes: drained, 1001
        last = await ws_connect(svc.port)
        await last.subscribe()
        svc.signal(signal.SIGTERM)
        await asyncio.wait_for(last.ws.wait_closed(), 5)
        return bad, last.ws.close_code

    bad, code = run(go())
    assert code == 1001
    assert svc.terminate(5) == 0
    text = svc.stderr_text()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) > 10, text
    objs = []
    for ln in lines:
        try:
            o = json.loads(ln)
        except ValueError:
            raise AssertionError(f"a stderr line is not JSON: {ln!r}") from None
        assert isinstance(o, dict) and JSON_KEYS <= set(o), f"missing keys: {ln!r}"
        assert ISO_MS.match(o["ts"]), ln
        assert o["level"] in ("error", "warn", "info", "debug"), ln
        assert o["role"] in ("supervisor", "ingest", "worker"), ln
        assert isinstance(o["pid"], int) and o["pid"] > 0, ln
        assert isinstance(o["msg"], str) and o["msg"], ln
        if o["role"] == "worker":
            assert o["worker"] in (1, 2), ln
        objs.append(o)
    assert {o["role"] for o in objs} == {"supervisor", "ingest", "worker"}
    assert {o["pid"] for o in objs if o["role"] == "supervisor"} == {svc.pid}
    invalid = [o for o in objs if o.get("id") == bad]
    assert invalid and invalid[0]["stream"] == svc.stream() and invalid[0]["level"] == "warn", invalid
    with_ip = [o for o in objs if o.get("client_ip") == "127.0.0.1"]
    assert any("connected" in o["msg"] for o in with_ip), with_ip
    assert any(o.get("code") == 1001 for o in with_ip), with_ip
    groups = [o for o in objs if o.get("group") == svc.group]
    assert groups, "no line names the consumer group"
    assert svc.stdout_text() == ""


def make_group(r, stream, group, consumer=None, read=0):
    """A group at 0 on stream; consumer (if given) reads `read` entries and
    leaves them pending."""
    r.xgroup_create(stream, group, id="0", mkstream=True)
    if consumer is not None:
        r.xgroup_createconsumer(stream, group, consumer)
        if read:
            r.xreadgroup(group, consumer, {stream: ">"}, count=read)


def group_names(r, stream):
    return sorted(g["name"] for g in r.xinfo_groups(stream))


def table_rows(out):
    """The listing's rows after the header: lists of cells."""
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("STREAM"))
    rows = []
    for ln in lines[start + 1 :]:
        if not ln.startswith(("odds.", "t")):  # the streams of these tests
            break
        rows.append(re.split(r"\s{2,}", ln.strip()))
    return rows


def test_groups_lists_this_services_groups(tmp_path, redis_server, service, r):
    t = uid()
    svc = service(CONSUMER_ID=f"me{t}", SPORTS=f"t{t}_nba", OPPORTUNITIES_STREAM=f"t{t}_opps")
    stream, opps = svc.stream(), svc.opp_stream
    for i in range(3):
        publish(r, stream, **odds_fields(svc.sport, event=f"e{i}"))
    make_group(r, stream, f"ws-broadcaster:gone{t}", consumer="gone", read=2)
    make_group(r, stream, f"ws-broadcaster:empty{t}")
    make_group(r, stream, f"another-service:{t}", consumer="x", read=1)
    path, _ = config_file(tmp_path, redis_server, **svc.settings)

    res = run_binary(["-c", str(path), "--groups"])
    assert res.returncode == 0, res.stderr
    print(res.stdout)
    rows = {(row[0], row[1]): row for row in table_rows(res.stdout)}
    assert set(rows) == {
        (stream, svc.group), (opps, svc.group),
        (stream, f"ws-broadcaster:gone{t}"), (stream, f"ws-broadcaster:empty{t}"),
    }, rows
    own = rows[(stream, svc.group)]
    assert own[2] == f"me{t}" and own[3] == "0" and own[-1] == "this instance", own
    gone = rows[(stream, f"ws-broadcaster:gone{t}")]
    assert gone[2] == "gone" and gone[3] == "2", gone
    empty = rows[(stream, f"ws-broadcaster:empty{t}")]
    assert empty[2] == "-" and empty[4] == "-" and "no consumer" in empty[-1], empty
    assert svc.group in res.stdout.splitlines()[0]
    # listing deletes nothing
    assert len(group_names(r, stream)) == 4


def test_groups_delete_idle(tmp_path, redis_server, r):
    t = uid()
    sport, opps = f"t{t}_nba", f"t{t}_opps"
    stream = f"odds.normalized.{sport}"
    path, _ = config_file(tmp_path, redis_server, SPORTS=sport, OPPORTUNITIES_STREAM=opps,
                         CONSUMER_ID=f"me{t}")
    for i in range(3):
        publish(r, stream, **odds_fields(sport, event=f"e{i}"))
    make_group(r, stream, f"ws-broadcaster:me{t}", consumer=f"me{t}", read=1)  # ours, idle
    make_group(r, stream, f"ws-broadcaster:gone{t}", consumer="gone", read=2)
    make_group(r, opps, f"ws-broadcaster:gone{t}", consumer="gone")
    make_group(r, stream, f"ws-broadcaster:live{t}", consumer="live")
    make_group(r, stream, f"ws-broadcaster:empty{t}")
    make_group(r, stream, f"another-service:{t}", consumer="x")
    time.sleep(1.5)
    r.xreadgroup(f"ws-broadcaster:live{t}", "live", {stream: ">"}, count=1)  # live reads again

    res = run_binary(["-c", str(path), "--groups-delete-idle", "1s"])
    print(res.stdout)
    assert res.returncode == 0, res.stderr
    assert group_names(r, stream) == sorted([f"another-service:{t}", f"ws-broadcaster:empty{t}",
                                             f"ws-broadcaster:live{t}", f"ws-broadcaster:me{t}"])
    assert group_names(r, opps) == []
    deleted = [ln for ln in res.stdout.splitlines() if ln.startswith("deleted group")]
    assert len(deleted) == 2 and all(f"ws-broadcaster:gone{t}" in ln for ln in deleted), deleted
    assert any("2 pending" in ln for ln in deleted), deleted
    assert "2 groups idle longer than" in res.stdout

    # nothing idle for an hour: nothing deleted
    res = run_binary(["-c", str(path), "--groups-delete-idle", "1h"])
    assert res.returncode == 0, res.stderr
    assert "0 groups idle longer than 1h00m deleted" in res.stdout
    assert len(group_names(r, stream)) == 4

    for bad in ("0", "abc", "1.5h", ""):
        res = run_binary(["-c", str(path), "--groups-delete-idle", bad])
        assert res.returncode == 2, (bad, res.returncode, res.stderr)
        assert "duration" in res.stderr


def test_groups_redis_unreachable(tmp_path, redis_server):
    path, _ = config_file(tmp_path, redis_server, REDIS_URL=f"127.0.0.1:{free_port()}")
    res = run_binary(["-c", str(path), "--groups"])
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "connect to redis" in res.stderr


def test_probe_exit_status(service):
    svc = service()
    base = f"http://127.0.0.1:{svc.port}"
    for path in ("/livez", "/health"):
        res = run_binary(["--probe", base + path], timeout=10)
        assert res.returncode == 0, (path, res.stdout, res.stderr)
        assert "HTTP 200" in res.stdout
    res = run_binary(["--probe", base + "/nope"], timeout=10)
    assert res.returncode == 1 and "HTTP 404" in res.stderr, res.stderr
    res = run_binary(["--probe", f"http://127.0.0.1:{free_port()}/livez"], timeout=10)
    assert res.returncode == 1 and "refused" in res.stderr, res.stderr
    res = run_binary(["--probe", "https://127.0.0.1/livez"], timeout=10)
    assert res.returncode == 1, res.stderr

    # degraded (no Redis): /health is 503, /livez still 200
    down = service(wait_ready=False, REDIS_URL=f"127.0.0.1:{free_port()}")
    down.wait_http()
    res = run_binary(["--probe", f"http://127.0.0.1:{down.port}/health"], timeout=10)
    assert res.returncode == 1 and "HTTP 503" in res.stderr, res.stderr
    res = run_binary(["--probe", f"http://127.0.0.1:{down.port}/livez"], timeout=10)
    assert res.returncode == 0, res.stderr


def test_check_shows_the_default_consumer_id(tmp_path, redis_server):
    port = free_port()
    path, _ = config_file(tmp_path, redis_server, CONSUMER_ID=None, SERVER_ADDR=f"127.0.0.1:{port}")
    res = run_binary(["-c", str(path), "-t"])
    assert res.returncode == 0, res.stderr
    assert f"  CONSUMER_ID={default_consumer_id(port)}\n" in res.stderr, res.stderr
