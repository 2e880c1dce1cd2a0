"""Stream and operations defects of issue 10, items 9-13.

Contract lines -> tests:

* 9. only the supervisor acts on SIGHUP: the ingest and the workers ignore
  it, whether it is sent to them or to the whole process group; they keep
  their PIDs, /health stays 200 and a subscribed client keeps receiving
                                  -> test_children_ignore_sighup_sent_to_them,
                                     test_sighup_to_the_process_group_only_reloads
* 10. a password in REDIS_URL is shown as *** wherever the URL is printed:
  `-t`, the start-up line, the ingest's connect lines (success and
  failure), configuration errors; the service still connects with it
                                  -> test_url_password_never_printed_and_still_used,
                                     test_url_password_not_in_connect_failures,
                                     test_url_password_not_in_config_errors
* 11. a `data` entry with a raw NUL byte (in a string or between tokens),
  a JSON object with a key twice (at any depth, also spelled with an
  escape), a flat entry with a field twice: malformed -> skipped, counted
  in invalid_entries, logged, acked; the next good entry arrives
                                  -> test_nul_bytes_and_duplicate_keys_are_malformed
* 12. an empty sport_key counts as missing: an odds entry takes the stream's
  sport (flat: in the payload too), an opportunity lacks the dimension, so a
  client filtering by sport receives all three
                                  -> test_empty_sport_key_is_taken_from_the_stream
* 13. a ring whose shared region does not fit in half of the memory the
  process may use is refused with exit 78 and a message naming RING_SIZE,
  by `-t` and at start; a sane RING_SIZE still passes
                                  -> test_ring_that_cannot_fit_is_refused_by_t_and_at_start,
                                     test_huge_ring_is_judged_against_host_memory
"""

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import time

import pytest

from conftest import (
    EX_CONFIG,
    binary_path,
    clean_env,
    default_settings,
    deliver_one,
    free_port,
    listening_addresses,
    odds_fields,
    proc_alive,
    proc_stat,
    publish,
    run,
    uid,
    wait_until,
    write_config,
    ws_client,
)


@contextlib.contextmanager
def popen_with(**extra):
    """Start the processes created inside the block with extra Popen
    arguments (a session of their own, a resource limit).  conftest's
    Service has no such option; only what starts in the block is affected."""
    real = subprocess.Popen

    def popen(*args, **kw):
        for k, v in extra.items():
            kw.setdefault(k, v)
        return real(*args, **kw)

    subprocess.Popen = popen
    try:
        yield
    finally:
        subprocess.Popen = real


def make_conf(tmp_path, redis_url, **over):
    settings = default_settings(redis_url)
    settings.update(over)
    path = tmp_path / f"conf-{uid()}.conf"
    write_config(path, settings)
    return path, settings


def run_with(args, preexec_fn=None, env=None, timeout=20):
    """Run the binary to completion, optionally with a preexec_fn."""
    return subprocess.run([str(binary_path())] + list(args), env=clean_env(env),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn)


# --------------------------------------------------------------------------
# 9. SIGHUP belongs to the supervisor


def _children(svc):
    """comm -> (pid, starttime) of the supervisor's children."""
    out = {}
    for comm, pid in svc.process_map().items():
        st = proc_stat(pid)
        if comm and st:
            out[comm] = (pid, st[1])
    return out


def _healthy_while(svc, seconds):
    """/health answers 200 every time it is asked for this long."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, body = svc.health()
        assert status == 200, f"/health {status} {body}\n{svc.stderr_text()}"
        time.sleep(0.05)


async def _still_receives(svc, r, c, event):
    publish(r, svc.stream(), **odds_fields(svc.sport, event=event))
    (m,) = await c.updates(1)
    assert m["payload"]["event_id"] == event, m


def test_children_ignore_sighup_sent_to_them(service, r):
    svc = service(WORKERS="2")
    before = _children(svc)
    assert sorted(before) == ["wsb-ingest", "wsb-worker-1", "wsb-worker-2"], before
    event = f"hup-{uid()}"

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(events=[event])
            await _still_receives(svc, r, c, event)
            for comm in ("wsb-ingest", "wsb-worker-1", "wsb-worker-2"):
                os.kill(before[comm][0], signal.SIGHUP)
                await asyncio.to_thread(_healthy_while, svc, 1.0)
                for name, (pid, start) in before.items():
                    assert proc_alive(pid, start), f"{name} (pid {pid}) died after SIGHUP to {comm}"
                await _still_receives(svc, r, c, event)

    run(go())
    assert _children(svc) == before
    m = svc.metrics()
    assert m["ingest"]["restarts"] == 0, m["ingest"]
    assert all(w["restarts"] == 0 for w in m["workers"]), m["workers"]
    assert "Hangup" not in svc.stderr_text() and "signal 1 " not in svc.stderr_text()


def test_sighup_to_the_process_group_only_reloads(service, r):
    # A terminal hangup or `kill -HUP -PGID` reaches every process of the
    # group: the service must run in a group of its own, not the test's.
    with popen_with(start_new_session=True):
        svc = service(WORKERS="2")
    assert os.getpgid(svc.pid) == svc.pid != os.getpgid(0)
    before = _children(svc)
    event = f"pg-{uid()}"

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(events=[event])
            for _ in range(2):
                os.killpg(svc.pid, signal.SIGHUP)
                await asyncio.to_thread(_healthy_while, svc, 1.0)
                await _still_receives(svc, r, c, event)

    run(go())
    assert svc.running()
    assert _children(svc) == before, f"children replaced: {before} -> {_children(svc)}"
    err = svc.stderr_text()
    assert "Hangup" not in err, err
    # the supervisor did act on it: a reload, logged
    assert len(re.findall(r"supervisor: reload", err)) >= 2, err


# --------------------------------------------------------------------------
# 10. the Redis password is never printed


def _url_forms(pw, port):
    return {
        "empty user": f"redis://:{pw}@127.0.0.1:{port}",
        "user and db": f"redis://someuser:{pw}@127.0.0.1:{port}/0",
    }


@pytest.mark.parametrize("form", ["empty user", "user and db"])
def test_url_password_never_printed_and_still_used(service, redis_factory, tmp_path, form):
    pw = f"Pw{uid()}Secret"
    srv = redis_factory(password=pw)
    url = _url_forms(pw, srv.port)[form]

    path, _ = make_conf(tmp_path, url, LOG_LEVEL="debug")
    res = run_with(["-c", str(path), "-t"])
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert pw not in out, f"-t printed the password:\n{out}"
    shown = re.search(r"^\s*REDIS_URL=(.*)$", out, re.M)
    assert shown and "***" in shown.group(1) and f"127.0.0.1:{srv.port}" in shown.group(1), out

    svc = service(REDIS_URL=url, LOG_LEVEL="debug")
    event = f"pw-{uid()}"

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(events=[event])
            publish(srv.client(), svc.stream(), **odds_fields(svc.sport, event=event))
            (m,) = await c.updates(1)
            assert m["payload"]["event_id"] == event

    run(go())
    err = svc.stderr_text()
    assert pw not in err, f"the password is in the log:\n{err}"
    assert re.search(r"supervisor: .*starting.*redis redis://\S*\*\*\*@127\.0\.0\.1", err), err
    assert re.search(r"ingest: connected to redis redis://\S*\*\*\*@127\.0\.0\.1", err), err
    svc.stop()
    assert pw not in svc.stderr_text()


def test_url_password_not_in_connect_failures(service):
    pw = f"Pw{uid()}Secret"
    closed = free_port()
    svc = service(wait_ready=False, REDIS_URL=f"redis://:{pw}@127.0.0.1:{closed}")
    svc.wait_http()
    wait_until(lambda: "connect to redis" in svc.stderr_text(), message="a connect failure line")
    err = svc.stderr_text()
    assert pw not in err, f"the password is in the log:\n{err}"
    assert re.search(r"connect to redis redis://:\*\*\*@127\.0\.0\.1:\d+ failed", err), err


def test_url_password_not_in_config_errors(tmp_path, redis_server):
    pw = f"Pw{uid()}Secret"
    bad = [
        f"redis://:{pw}@127.0.0.1:notaport",
        f"redis://:{pw}@127.0.0.1:6379/notadb",
        f"redis://:{pw}@",
        f":{pw}@127.0.0.1:6379",  # a password without redis://
        f"someuser:{pw}@127.0.0.1:6379",
        "redis://:" + pw + "x" * 600 + "@127.0.0.1:6379",  # too long
    ]
    for url in bad:
        path, _ = make_conf(tmp_path, url)
        for args in (["-c", str(path), "-t"], ["-c", str(path)]):
            res = run_with(args, timeout=15)
            assert res.returncode == EX_CONFIG, f"{url}: exit {res.returncode}\n{res.stderr}"
            assert "REDIS_URL" in res.stderr, res.stderr
            assert pw not in res.stdout + res.stderr, f"{args}: the password is printed:\n{res.stderr}"
        # the environment is checked the same way
        path, _ = make_conf(tmp_path, redis_server.url)
        res = run_with(["-c", str(path), "-t"], env={"REDIS_URL": url})
        assert res.returncode == EX_CONFIG and "REDIS_URL" in res.stderr, res.stderr
        assert pw not in res.stdout + res.stderr, res.stderr


# --------------------------------------------------------------------------
# 11. NUL bytes and duplicate keys are malformed entries


# name -> the entry's fields as XADD arguments, in order ("SPORT": the
# service's sport).  Redis keeps a field given twice.
BAD_ENTRIES = {
    "raw NUL in a data string": ["data", b'{"event_id":"nul-raw","a":"abc\x00def"}'],
    "raw NUL between data tokens": ["data", b'{"event_id":"nul-ws",\x00"a":1}'],
    "raw NUL in a payload string": ["payload", b'{"event_id":"nul-pl","a":["x","y\x00"]}'],
    "data key twice": ["data", '{"event_id":"dup","sport_key":"a","sport_key":"b"}'],
    "data nested key twice": ["data", '{"event_id":"dup-nested","m":[{"k":1,"k":2}]}'],
    "data key twice via an escape": ["data", '{"event_id":"dup-esc","k":1,"\\u006b":2}'],
    "flat field twice": ["event_id", "dup-flat", "sport_key", "SPORT", "price", "1", "price", "2"],
    "data field twice": ["data", '{"event_id":"d1"}', "data", '{"event_id":"d2"}'],
}


@pytest.fixture(scope="module")
def stream_svc(module_service):
    return module_service()


@pytest.mark.parametrize("name", list(BAD_ENTRIES))
def test_nul_bytes_and_duplicate_keys_are_malformed(stream_svc, r, name):
    svc = stream_svc
    fields = [svc.sport if f == "SPORT" else f for f in BAD_ENTRIES[name]]
    good = f"good-{uid()}"

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            before = svc.metrics()["invalid_entries"]
            bad_id = r.execute_command("XADD", svc.stream(), "*", *fields)
            publish(r, svc.stream(), **odds_fields(svc.sport, event=good))
            m = await c.recv_json()
            assert m["type"] == "odds_update" and m["payload"].get("event_id") == good, \
                f"delivered instead of skipped: {m}"
            await c.expect_silence(0.3)
            return before, bad_id

    before, bad_id = run(go())
    svc.wait_metric(lambda m: m["invalid_entries"] == before + 1,
                    message=f"invalid_entries == {before + 1}")
    # logged, naming the entry, and acknowledged
    wait_until(lambda: f"invalid entry {svc.stream()} {bad_id}" in svc.stderr_text(), timeout=5,
               message=f"a log line about {bad_id}")
    wait_until(lambda: r.xpending(svc.stream(), svc.group)["pending"] == 0, timeout=5,
               message="XPENDING 0")
    assert svc.running()


# --------------------------------------------------------------------------
# 12. an empty sport_key is a missing one


def test_empty_sport_key_is_taken_from_the_stream(service, r):
    svc = service()
    event = f"empty-{uid()}"

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(sports=[svc.sport], events=[event])
            # flat odds entry: the payload gets the stream's sport too
            publish(r, svc.stream(), **odds_fields(svc.sport, event=event, sport_key="", n="1"))
            # data entry: filtered by the stream's sport, payload as sent
            publish(r, svc.stream(),
                    data=json.dumps({"event_id": event, "sport_key": "", "n": "2"}))
            # opportunity: no stream sport, so it lacks the dimension, which
            # excludes nobody
            publish(r, svc.opp_stream, **odds_fields(svc.sport, event=event, sport_key="", n="3"))
            # a control entry: the odds stream's entries before it arrive
            # before it (order holds within a stream, not across streams)
            publish(r, svc.stream(), **odds_fields(svc.sport, event=event, n="4"))
            got = await c.updates(4)
            odds = [m["payload"]["n"] for m in got if m["type"] == "odds_update"]
            assert odds == ["1", "2", "4"], got
            flat, data, opp, _ = sorted(got, key=lambda m: m["payload"]["n"])
            assert flat["type"] == "odds_update" and flat["payload"]["sport_key"] == svc.sport, flat
            assert data["type"] == "odds_update" and data["payload"]["sport_key"] == "", data
            assert opp["type"] == "opportunity", opp
            await c.expect_silence(0.3)

    run(go())
    assert svc.metrics()["invalid_entries"] == 0


# --------------------------------------------------------------------------
# 13. a ring that cannot fit is a configuration error

HUGE_RING = {"RING_SIZE": "16777216", "MAX_ENTRY_SIZE": "4194304"}
# 16M slots of 64 bytes plus a data area of 16M x 512 bytes: 9 GiB.
HUGE_REGION = 16777216 * 64 + 16777216 * 512
AS_LIMIT = 4 << 30


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


def _skip_unless_runs_under_the_limit():
    # A sanitizer build reserves terabytes of address space for its shadow
    # memory and cannot start under RLIMIT_AS at all.
    res = run_with(["--version"], preexec_fn=_limit_address_space)
    if res.returncode != 0:
        pytest.skip(f"this binary does not run under RLIMIT_AS={AS_LIMIT}: {res.stderr[:200]!r}")


def _mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_ring_that_cannot_fit_is_refused_by_t_and_at_start(service, tmp_path, redis_server, r):
    # Under a 4 GiB address-space limit (ulimit -v, systemd LimitAS=) a 9 GiB
    # region can never be mapped: a restart cannot help, so 78.
    _skip_unless_runs_under_the_limit()
    path, settings = make_conf(tmp_path, redis_server.url, **HUGE_RING)
    res = run_with(["-c", str(path), "-t"], preexec_fn=_limit_address_space)
    assert res.returncode == EX_CONFIG, f"-t exit {res.returncode}: {res.stderr!r}"
    assert "RING_SIZE" in res.stderr and "16777216" in res.stderr, res.stderr
    assert re.search(r"GiB", res.stderr), res.stderr

    res = run_with(["-c", str(path)], preexec_fn=_limit_address_space, timeout=15)
    assert res.returncode == EX_CONFIG, f"start exit {res.returncode}: {res.stderr!r}"
    assert "RING_SIZE" in res.stderr, res.stderr
    port = int(settings["SERVER_ADDR"].rsplit(":", 1)[1])
    assert not listening_addresses(port)
    assert not r.exists(f"odds.normalized.{settings['SPORTS']}")

    # a sane ring passes -t under the same limit, and the service runs with it
    path, _ = make_conf(tmp_path, redis_server.url, RING_SIZE="65536")
    res = run_with(["-c", str(path), "-t"], preexec_fn=_limit_address_space)
    assert res.returncode == 0, res.stderr
    with popen_with(preexec_fn=_limit_address_space):
        svc = service(RING_SIZE="65536")
    deliver_one(svc, r, f"ring-{uid()}")


def test_huge_ring_is_judged_against_host_memory(tmp_path, redis_server):
    # Without a limit the host's memory decides: the region may take at most
    # half of MemTotal (README "Limits and security").
    path, _ = make_conf(tmp_path, redis_server.url, **HUGE_RING)
    res = run_with(["-c", str(path), "-t"])
    if HUGE_REGION > _mem_total() // 2:
        assert res.returncode == EX_CONFIG, res.stderr
        assert "RING_SIZE" in res.stderr and "MemTotal" in res.stderr, res.stderr
    else:
        assert res.returncode == 0, res.stderr
