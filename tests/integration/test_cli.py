"""Command line, config file and validation.

Contract lines -> tests:

* `--help` prints usage on stdout, exit 0          -> test_help_prints_usage_on_stdout
* `--version` prints "ws-broadcaster <version>"    -> test_version_prints_name_and_version
* `-t` checks the configuration: 0 if valid          -> test_check_valid_config_exits_0_and_starts_nothing,
                                                        test_check_accepts_valid_values
* `-t`: non-zero (78) + message naming the bad key  -> test_check_invalid_value_names_key
  (RING_SIZE=1000, WORKERS=abc, FOO=1, SERVER_ADDR=nonsense, ranges of
  WORKERS 1..64 and RING_SIZE power of two 1024..16777216, LOG_LEVEL values)
* same validation at start: 78, names the key,
  starts nothing                                    -> test_start_with_invalid_value_exits_78_without_starting
* `-c PATH` default etc/ws-broadcaster.conf (cwd)   -> test_default_config_path_is_etc_relative_to_cwd
* KEY=VALUE lines, '#' comments, blank lines,
  optional `export ` prefix, quoted values          -> test_config_file_syntax
* environment variables override the file          -> test_environment_overrides_file,
                                                        test_environment_value_is_validated
"""

import re

import pytest

from conftest import (
    EX_CONFIG,
    config_file,
    default_settings,
    free_port,
    listening_addresses,
    repo_version,
    run_binary,
    uid,
    write_config,
)


def test_help_prints_usage_on_stdout():
    res = run_binary(["--help"])
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert re.search(r"usage", out, re.I), f"no usage text on stdout: {out!r}"
    assert "-c" in out and "-t" in out, out


def test_version_prints_name_and_version():
    res = run_binary(["--version"])
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    assert re.fullmatch(r"ws-broadcaster \S+", line), line
    version = repo_version()
    if version:
        assert line == f"ws-broadcaster {version}"


def test_check_valid_config_exits_0_and_starts_nothing(tmp_path, redis_server, r):
    path, settings = config_file(tmp_path, redis_server)
    res = run_binary(["-c", str(path), "-t"])
    assert res.returncode == 0, f"stdout={res.stdout!r} stderr={res.stderr!r}"
    port = int(settings["SERVER_ADDR"].rsplit(":", 1)[1])
    assert not listening_addresses(port), "-t left a listener behind"
    # -t does not touch Redis: no stream or group was created
    assert not r.exists(f"odds.normalized.{settings['SPORTS']}")
    assert not r.exists(settings["OPPORTUNITIES_STREAM"])


BAD_VALUES = [
    ("RING_SIZE", "1000"),  # not a power of two
    ("RING_SIZE", "512"),  # below 1024
    ("RING_SIZE", "33554432"),  # above 16777216
    ("RING_SIZE", "abc"),
    ("WORKERS", "abc"),
    ("WORKERS", "0"),
    ("WORKERS", "65"),
    ("WORKERS", "-1"),
    ("SERVER_ADDR", "nonsense"),
    ("SERVER_ADDR", "127.0.0.1:notaport"),
    ("SERVER_ADDR", "127.0.0.1:70000"),
    ("LOG_LEVEL", "verbose"),
    ("CLIENT_BUFFER", "abc"),
    ("MAX_MESSAGE_SIZE", "abc"),
    ("MAX_ENTRY_SIZE", "abc"),
    ("MAX_FILTER_VALUES", "abc"),
    ("MAX_FILTER_VALUE_LEN", "abc"),
    ("READ_COUNT", "abc"),
    ("FOO", "1"),  # unknown key in the file
]


@pytest.mark.parametrize("key,value", BAD_VALUES, ids=[f"{k}={v}" for k, v in BAD_VALUES])
def test_check_invalid_value_names_key(tmp_path, redis_server, key, value):
    path, _ = config_file(tmp_path, redis_server, **{key: value})
    res = run_binary(["-c", str(path), "-t"])
    assert res.returncode == EX_CONFIG, f"exit {res.returncode}, stderr={res.stderr!r}"
    assert key in res.stderr, f"stderr does not name {key}: {res.stderr!r}"


GOOD_VALUES = [
    ("RING_SIZE", "1024"),
    # 16777216, the top of the range, needs 9 GiB of shared memory: whether
    # -t takes it depends on the host (test_stream_and_ops_defects.py).
    ("RING_SIZE", "1048576"),
    ("WORKERS", "1"),
    ("WORKERS", "64"),
    ("LOG_LEVEL", "error"),
    ("LOG_LEVEL", "warn"),
    ("LOG_LEVEL", "info"),
    ("LOG_LEVEL", "debug"),
    ("SERVER_ADDR", ":8080"),
    ("REDIS_URL", "localhost:6379"),
    ("REDIS_URL", "redis://:secret@127.0.0.1:6380/2"),
    ("REDIS_URL", "redis://127.0.0.1:6380"),
    ("REDIS_URL", "/tmp/redis.sock"),
    ("SPORTS", "basketball_nba,americanfootball_nfl,baseball_mlb"),
    ("OPPORTUNITIES_STREAM", ""),
]


@pytest.mark.parametrize("key,value", GOOD_VALUES, ids=[f"{k}={v}" for k, v in GOOD_VALUES])
def test_check_accepts_valid_values(tmp_path, redis_server, key, value):
    path, _ = config_file(tmp_path, redis_server, **{key: value})
    res = run_binary(["-c", str(path), "-t"])
    assert res.returncode == 0, f"{key}={value} refused: {res.stderr!r}"


START_BAD = [("RING_SIZE", "1000"), ("WORKERS", "abc"), ("FOO", "1"), ("SERVER_ADDR", "nonsense")]


@pytest.mark.parametrize("key,value", START_BAD, ids=[f"{k}={v}" for k, v in START_BAD])
def test_start_with_invalid_value_exits_78_without_starting(tmp_path, redis_server, r, key, value):
    path, settings = config_file(tmp_path, redis_server, **{key: value})
    res = run_binary(["-c", str(path)], timeout=15)
    assert res.returncode == EX_CONFIG, f"exit {res.returncode}, stderr={res.stderr!r}"
    assert key in res.stderr, f"stderr does not name {key}: {res.stderr!r}"
    if key != "SERVER_ADDR":
        port = int(settings["SERVER_ADDR"].rsplit(":", 1)[1])
        assert not listening_addresses(port)
    # nothing was started: no consumer group / stream was created
    assert not r.exists(f"odds.normalized.{settings['SPORTS']}")
    assert not r.exists(settings["OPPORTUNITIES_STREAM"])


def test_default_config_path_is_etc_relative_to_cwd(tmp_path, redis_server, service):
    # a bad key in ./etc/ws-broadcaster.conf is found without -c
    bad = tmp_path / "bad"
    (bad / "etc").mkdir(parents=True)
    (bad / "etc" / "ws-broadcaster.conf").write_text("UNKNOWN_SETTING_XYZ=1\n")
    res = run_binary(["-t"], cwd=bad)
    assert res.returncode == EX_CONFIG, res.stderr
    assert "UNKNOWN_SETTING_XYZ" in res.stderr

    # a good one is used to start: the service listens where the file says
    good = tmp_path / "good"
    (good / "etc").mkdir(parents=True)
    settings = default_settings(redis_server.url)
    write_config(good / "etc" / "ws-broadcaster.conf", settings)
    res = run_binary(["-t"], cwd=good)
    assert res.returncode == 0, res.stderr
    svc = service(args=[], cwd=good, **settings)
    status, body = svc.health()
    assert status == 200 and body["status"] == "healthy"
    r = redis_server.client()
    groups = [g["name"] for g in r.xinfo_groups(f"odds.normalized.{settings['SPORTS']}")]
    assert f"ws-broadcaster:{settings['CONSUMER_ID']}" in groups


def test_config_file_syntax(tmp_path, redis_server, service, r):
    t = uid()
    port = free_port()
    settings = {
        "SERVER_ADDR": f"127.0.0.1:{port}",
        "REDIS_URL": redis_server.url,
        "SPORTS": f"tq{t}_nba",
        "OPPORTUNITIES_STREAM": f"tq{t}_opps",
        "CONSUMER_GROUP": f"gq{t}",
        "CONSUMER_ID": f"cq{t}",
        "WORKERS": "1",
    }
    text = f"""# a comment line

   # an indented comment
export SERVER_ADDR=127.0.0.1:{port}
REDIS_URL={redis_server.url}

SPORTS="tq{t}_nba"
OPPORTUNITIES_STREAM='tq{t}_opps'
export CONSUMER_GROUP="gq{t}"
CONSUMER_ID=cq{t}
WORKERS=1
"""
    path = tmp_path / "syntax.conf"
    path.write_text(text)
    res = run_binary(["-c", str(path), "-t"])
    assert res.returncode == 0, res.stderr
    svc = service(args=["-c", str(path)], **settings)
    # the quotes are not part of the values
    groups = [g["name"] for g in r.xinfo_groups(f"odds.normalized.tq{t}_nba")]
    assert groups == [f"gq{t}:cq{t}"], groups
    groups = [g["name"] for g in r.xinfo_groups(f"tq{t}_opps")]
    assert groups == [f"gq{t}:cq{t}"], groups
    assert len(svc.worker_pids()) == 1


def test_environment_overrides_file(tmp_path, redis_server, service):
    file_port, env_port = free_port(), free_port()
    settings = default_settings(redis_server.url)
    settings.update(SERVER_ADDR=f"127.0.0.1:{file_port}", WORKERS="1")
    path = tmp_path / "env.conf"
    write_config(path, settings)
    svc = service(args=["-c", str(path)], env={"SERVER_ADDR": f"127.0.0.1:{env_port}", "WORKERS": "3"},
                  **settings)
    assert svc.port == env_port
    assert svc.health()[0] == 200
    assert not listening_addresses(file_port)
    assert sorted(svc.worker_pids()) == ["wsb-worker-1", "wsb-worker-2", "wsb-worker-3"]


def test_environment_value_is_validated(tmp_path, redis_server):
    path, _ = config_file(tmp_path, redis_server, RING_SIZE="1024")
    res = run_binary(["-c", str(path), "-t"], env={"RING_SIZE": "1000"})
    assert res.returncode == EX_CONFIG, res.stderr
    assert "RING_SIZE" in res.stderr
    res = run_binary(["-c", str(path), "-t"], env={"WORKERS": "abc"})
    assert res.returncode == EX_CONFIG, res.stderr
    assert "WORKERS" in res.stderr
    # and a good environment value over a good file still checks out
    res = run_binary(["-c", str(path), "-t"], env={"RING_SIZE": "2048"})
    assert res.returncode == 0, res.stderr
