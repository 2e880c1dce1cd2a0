"""Shared fixtures and helpers of the ws-broadcaster integration tests.

The tests drive the real binary (``WSB_BIN``, default ``bin/ws-broadcaster``
relative to the repository root) against a ``redis-server`` the test run
starts on a free port (plus a unix socket), with ``--save "" --appendonly no``,
or the one named by WSB_TEST_REDIS_URL and WSB_TEST_REDIS_SOCKET (as CI
starts it).

Main pieces:

* ``redis_server`` (session): the shared Redis; ``.client()``, ``.port``,
  ``.unix_path``, ``.url``.
* ``redis_factory`` (function): start extra Redis servers (a password, a port
  that must stay closed for a while, a server to stop and restart).
* ``service`` (function): ``svc = service(**settings)`` writes a config file in
  a tmp dir, starts the binary, waits for ``GET /health`` == 200 and returns a
  ``Service`` (``.port``, ``.pid``, ``.stderr_text()``, ``.metrics()``,
  ``.health()``, ``.stop()`` ...).  A setting passed as ``None`` is left out
  of the file.  Every service still running at the end of the test is stopped
  with SIGTERM; a non-zero exit status or a leftover child process then fails
  the test (as an error at teardown).  The stderr of every service is
  attached to the report of a failing test.
* ``ws_client(svc)``: ``async with ws_client(svc) as c`` -> ``WSClient`` with
  ``subscribe()``, ``unsubscribe()``, ``heartbeat()``, ``recv_json()``,
  ``updates(n)``, ``expect_silence()``.
* ``RawWS``: a hand-made WebSocket client on a plain socket (for a client that
  never reads, and for abrupt disconnects).
* ``publish(r, stream, **fields)``, ``odds_fields(...)``, ``run(coro)``.
"""

import asyncio
import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import redis
import websockets

REPO_ROOT = Path(__file__).resolve().parents[2]

# Every setting's name, from env.template (a unit test keeps it complete):
# none of them may leak from the caller's environment into a test service.
CONF_KEYS = tuple(
    line.split("=", 1)[0]
    for line in (REPO_ROOT / "env.template").read_text().splitlines()
    if re.match(r"^[A-Z][A-Z0-9_]*=", line)
)

SEED_FIELDS = (
    "event_id",
    "sport_key",
    "market_key",
    "book_key",
    "outcome_name",
    "price",
    "point",
    "decimal_odds",
    "implied_probability",
    "novig_probability",
    "fair_price",
    "edge",
    "normalized_at",
)
NUMERIC_FIELDS = (
    "price",
    "point",
    "decimal_odds",
    "implied_probability",
    "novig_probability",
    "fair_price",
    "edge",
)
UPDATE_TYPES = ("odds_update", "opportunity")

EX_CONFIG = 78  # sysexits.h EX_CONFIG: what a bad setting exits with

ISO_MS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]00:?00)$")
LOG_LINE_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) "
    r"(ERROR|WARN |INFO |DEBUG) "
    r"(supervisor|ingest|worker [1-9][0-9]*): "
    r"(.*\S.*)$"
)

READY_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# small utilities


def run(coro):
    """Run one coroutine to completion (no pytest-asyncio here)."""
    return asyncio.run(coro)


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll predicate() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uid():
    return uuid.uuid4().hex[:10]


def parse_iso(text):
    """Parse an ISO-8601 UTC timestamp ('Z' or +00:00) into an aware datetime."""
    assert isinstance(text, str) and ISO_RE.match(text), f"not an ISO-8601 UTC time: {text!r}"
    t = text.replace("Z", "+00:00")
    if "." in t:
        head, rest = t.split(".", 1)
        frac, tz = rest[:-6], rest[-6:]
        t = f"{head}.{(frac + '000000')[:6]}{tz}"
    return dt.datetime.fromisoformat(t)


def assert_recent_iso_ms(text, slack=300):
    """A server timestamp: ISO-8601 UTC with milliseconds, close to now."""
    assert isinstance(text, str) and ISO_MS_RE.match(text), f"bad timestamp {text!r}"
    when = parse_iso(text)
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - when).total_seconds()) < slack, f"timestamp {text} is not the current UTC time"


def binary_path():
    p = Path(os.environ.get("WSB_BIN", "bin/ws-broadcaster"))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


def repo_version():
    try:
        return (REPO_ROOT / "VERSION").read_text().strip()
    except OSError:
        return None


def clean_env(extra=None):
    """The environment without any setting name (so the caller's shell can't
    override a test's config file), plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in CONF_KEYS}
    env.update(extra or {})
    return env


def run_binary(args, env=None, cwd=None, timeout=20):
    """Run the binary to completion (for -t, --help, --version, bad configs)."""
    exe = binary_path()
    if not exe.exists():
        pytest.fail(f"{exe} does not exist; build it first (make)")
    return subprocess.run(
        [str(exe)] + list(args),
        env=clean_env(env),
        cwd=str(cwd) if cwd else None,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_config(path, settings):
    lines = ["# generated by the integration tests"]
    for k, v in settings.items():
        if v is None:
            continue
        lines.append(f"{k}={v}")
    Path(path).write_text("\n".join(lines) + "\n")


def publish(r, stream, **fields):
    """XADD one entry; returns its id."""
    return r.xadd(stream, fields)


def publish_many(r, entries):
    """XADD many (stream, fields) entries in one pipeline; returns the ids."""
    with r.pipeline(transaction=False) as p:
        for stream, fields in entries:
            p.xadd(stream, fields)
        return p.execute()


async def apublish_many(r, entries):
    """publish_many from a thread, so the event loop (and the WebSocket
    clients on it) keeps reading while Redis takes the entries."""
    return await asyncio.to_thread(publish_many, r, entries)


def odds_fields(sport, event="ev1", market="h2h", book="fanduel", **over):
    """A complete flat odds entry (the 13 seed fields), overridable."""
    f = {
        "event_id": event,
        "sport_key": sport,
        "market_key": market,
        "book_key": book,
        "outcome_name": "Los Angeles Lakers",
        "price": "-110",
        "point": "",
        "decimal_odds": "1.909",
        "implied_probability": "0.5238",
        "novig_probability": "0.5",
        "fair_price": "-100",
        "edge": "0.024",
        "normalized_at": "2025-11-07T12:34:56Z",
    }
    for k, v in over.items():
        if v is None:
            f.pop(k, None)
        else:
            f[k] = v
    return f


# --------------------------------------------------------------------------
# /proc helpers


def proc_comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def proc_stat(pid):
    """(state, starttime) of pid, or None if it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2 :].split()
    return rest[0], rest[19]


def proc_cpu_seconds(pid):
    """CPU time (utime + stime) pid has used, in seconds, or None if it does
    not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def proc_children(pid):
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        out.extend(int(x) for x in text.split())
    return out


def proc_descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in proc_children(p):
            if c not in out:
                out.append(c)
                todo.append(c)
    return out


def proc_alive(pid, starttime=None):
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return starttime is None or st[1] == starttime


def listening_addresses(port):
    """Local addresses (hex, as in /proc/net/tcp{,6}) in LISTEN state on port."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state = parts[1], parts[3]
            addr, p = local.rsplit(":", 1)
            if int(p, 16) == port and state == "0A":
                found.add(addr)
    return found


# --------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode("utf-8")


def http_get(port, path, headers=None, timeout=5.0, host="127.0.0.1"):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return Response(resp.status, resp.getheaders(), body)
    finally:
        conn.close()


def upgrade_request(host, port, path="/ws", headers=None):
    """The bytes of a WebSocket upgrade request for path, with extra headers
    (a dict)."""
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    for k, v in (headers or {}).items():
        req += f"{k}: {v}\r\n"
    return (req + "\r\n").encode()


def read_response_head(s):
    """What socket s receives up to the end of an HTTP response's headers,
    or until the server closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def upgrade_status(port, path="/ws", headers=None, host="127.0.0.1"):
    """The HTTP status of a WebSocket upgrade request for path (101 if it
    succeeds), with extra headers (a dict)."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(upgrade_request(host, port, path, headers))
        data = read_response_head(s)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    assert m, f"not an HTTP response: {data[:200]!r}"
    return int(m.group(1))


# --------------------------------------------------------------------------
# Redis


class RedisServer:
    def __init__(self, port=None, password=None, bind="127.0.0.1"):
        self.port = port or free_port()
        self.password = password
        self.bind = bind
        self.dir = tempfile.mkdtemp(prefix="wsb-redis-")
        self.unix_path = os.path.join(self.dir, "redis.sock")
        self.proc = None

    @property
    def url(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server not found (Debian package redis-server)")
        args = [
            exe,
            "--port", str(self.port),
            "--bind", *self.bind.split(),
            "--unixsocket", self.unix_path,
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.dir,
            "--daemonize", "no",
            "--logfile", os.path.join(self.dir, "redis.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return self
            except redis.RedisError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING")
            time.sleep(0.05)

    def client(self, db=0):
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password,
                           decode_responses=True, socket_timeout=10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ExternalRedis:
    """A Redis the caller started (CI does): WSB_TEST_REDIS_URL=host:port and,
    for the unix-socket tests, WSB_TEST_REDIS_SOCKET.  Never stopped here."""

    def __init__(self, url, unix_path):
        host, _, port = url.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.unix_path = unix_path
        self.password = None

    @property
    def url(self):
        return f"{self.host}:{self.port}"

    def client(self, db=0):
        return redis.Redis(host=self.host, port=self.port, db=db, decode_responses=True,
                           socket_timeout=10)

    def cleanup(self):
        pass


@pytest.fixture(scope="session")
def redis_server():
    url = os.environ.get("WSB_TEST_REDIS_URL")
    sock = os.environ.get("WSB_TEST_REDIS_SOCKET")
    if url and sock:
        srv = ExternalRedis(url, sock)
        srv.client().ping()
        yield srv
        return
    srv = RedisServer().start()
    yield srv
    srv.cleanup()


@pytest.fixture
def redis_factory():
    started = []

    def make(port=None, password=None, bind="127.0.0.1"):
        srv = RedisServer(port=port, password=password, bind=bind).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.cleanup()


@pytest.fixture
def r(redis_server):
    return redis_server.client()


# --------------------------------------------------------------------------
# the service


class Service:
    """One running ws-broadcaster instance."""

    def __init__(self, settings, workdir, args=None, env=None, cwd=None, config_path=None):
        self.settings = dict(settings)
        self.workdir = Path(workdir)
        self.config_path = config_path
        self.stderr_path = self.workdir / f"stderr-{uid()}.log"
        self.stdout_path = self.workdir / f"stdout-{uid()}.log"
        self.args = list(args) if args is not None else ["-c", str(config_path)]
        self.env = env or {}
        self.cwd = cwd
        self.proc = None
        self.known_children = {}  # pid -> starttime
        self.returncode = None
        addr = self.env.get("SERVER_ADDR", self.settings.get("SERVER_ADDR") or ":8080")
        self.port = int(addr.rsplit(":", 1)[1])

    # -- lifecycle
    def start(self):
        exe = binary_path()
        if not exe.exists():
            pytest.fail(f"{exe} does not exist; build it first (make)")
        self._stderr_file = open(self.stderr_path, "wb")
        self._stdout_file = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            [str(exe)] + self.args,
            env=clean_env(self.env),
            cwd=str(self.cwd or self.workdir),
            stdin=subprocess.DEVNULL,
            stdout=self._stdout_file,
            stderr=self._stderr_file,
        )
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, timeout=READY_TIMEOUT):
        """Wait until the HTTP server answers /health at all; return the response."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise AssertionError(
                    f"service exited with {self.proc.returncode} before answering\n{self.stderr_text()}")
            try:
                return self.http("/health", timeout=2)
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"service did not answer HTTP within {timeout}s\n{self.stderr_text()}")
            time.sleep(0.05)

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if not self.running():
                raise AssertionError(
                    f"service exited with {self.proc.returncode} before /health said 200\n{self.stderr_text()}")
            try:
                last = self.http("/health", timeout=2)
                if last.status == 200:
                    self.remember_children()
                    return self
            except (OSError, http.client.HTTPException) as e:
                last = e
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"GET /health not 200 within {timeout}s (last: {getattr(last, 'status', last)})\n"
                    f"{self.stderr_text()}")
            time.sleep(0.05)

    def remember_children(self):
        if self.proc is None:
            return
        for p in proc_descendants(self.proc.pid):
            st = proc_stat(p)
            if st is not None:
                self.known_children.setdefault(p, st[1])

    def signal(self, sig):
        self.proc.send_signal(sig)

    def terminate(self, timeout=5.0):
        """SIGTERM; return the exit status (None if still running after timeout)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.remember_children()
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def leftover_children(self, timeout=5.0):
        """Known descendants still alive after waiting up to timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = [p for p, st in self.known_children.items() if proc_alive(p, st)]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def stop(self, timeout=5.0):
        """SIGTERM; assert exit status 0 within timeout and no child left."""
        rc = self.terminate(timeout)
        assert rc is not None, f"service still running {timeout}s after SIGTERM\n{self.stderr_text()}"
        assert rc == 0, f"service exited with {rc} after SIGTERM\n{self.stderr_text()}"
        left = self.leftover_children()
        assert not left, f"child processes left after exit: {[(p, proc_comm(p)) for p in left]}"
        return rc

    def kill_all(self):
        """Last resort cleanup: SIGKILL the process and the children we saw."""
        if self.proc is not None and self.proc.poll() is None:
            self.remember_children()
            self.proc.kill()
            self.proc.wait()
        for p, st in self.known_children.items():
            if proc_alive(p, st):
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)

    def close_files(self):
        for name in ("_stderr_file", "_stdout_file"):
            f = getattr(self, name, None)
            if f is not None:
                f.close()

    # -- what the service says
    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stdout_text(self):
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def http(self, path, headers=None, timeout=5.0):
        return http_get(self.port, path, headers=headers, timeout=timeout)

    def health(self):
        resp = self.http("/health")
        return resp.status, resp.json()

    def metrics(self):
        resp = self.http("/metrics")
        assert resp.status == 200, f"/metrics -> {resp.status}"
        return resp.json()

    def wait_metric(self, predicate, timeout=10.0, message="metrics"):
        holder = {}

        def check():
            m = self.metrics()
            holder["m"] = m
            return predicate(m)

        try:
            wait_until(check, timeout=timeout, message=message)
        except AssertionError as e:
            raise AssertionError(f"{e}; last metrics: {holder.get('m')}") from None
        return holder["m"]

    # -- processes
    def children(self):
        return proc_children(self.proc.pid)

    def process_map(self):
        """comm -> pid of the direct children."""
        return {proc_comm(p): p for p in self.children()}

    def worker_pids(self):
        return {c: p for c, p in self.process_map().items() if c and c.startswith("wsb-worker-")}

    # -- Redis names
    @property
    def sports(self):
        return [s.strip() for s in self.settings.get("SPORTS", "basketball_nba").split(",") if s.strip()]

    @property
    def sport(self):
        return self.sports[0]

    def stream(self, i=0):
        return f"odds.normalized.{self.sports[i]}"

    @property
    def opp_stream(self):
        v = self.settings.get("OPPORTUNITIES_STREAM")
        return "opportunities" if v is None else v

    @property
    def group(self):
        g = self.settings.get("CONSUMER_GROUP") or "ws-broadcaster"
        return f"{g}:{self.consumer}"

    @property
    def consumer(self):
        c = self.settings.get("CONSUMER_ID")
        return default_consumer_id(self.port) if c in (None, "auto") else c


def default_settings(redis_url):
    t = uid()
    return {
        "SERVER_ADDR": f"127.0.0.1:{free_port()}",
        "REDIS_URL": redis_url,
        "SPORTS": f"t{t}_nba",
        "OPPORTUNITIES_STREAM": f"t{t}_opps",
        "CONSUMER_ID": f"c{t}",
        "WORKERS": "2",
        "LOG_LEVEL": "info",
        # A stop with clients connected drains them over DRAIN_SECONDS
        # (default 10): one second keeps every test's stop (and teardown)
        # within the 5 s they allow.  test_drain.py sets its own.
        "DRAIN_SECONDS": "1",
    }


def config_file(tmp_path, redis_server, **over):
    """A config file of default_settings plus over in tmp_path (for runs of
    the binary that start no service: -t, --groups ...); (path, settings)."""
    settings = default_settings(redis_server.url)
    settings.update(over)
    path = tmp_path / f"conf-{uid()}.conf"
    write_config(path, settings)
    return path, settings


def default_consumer_id(port):
    """CONSUMER_ID=auto as the service derives it: the host name (bytes a
    name may not hold replaced by '-') and the port."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "localhost"
    suffix = f"-{port}"
    return host[: 63 - len(suffix)] + suffix


class ServiceFactory:
    def __init__(self, redis_srv, workdir):
        self.redis_srv = redis_srv
        self.workdir = Path(workdir)
        self.services = []

    def __call__(self, wait_ready=True, args=None, env=None, cwd=None, **settings):
        merged = default_settings(self.redis_srv.url)
        merged.update(settings)
        d = self.workdir / f"svc-{uid()}"
        d.mkdir(parents=True)
        conf = d / "ws-broadcaster.conf"
        write_config(conf, merged)
        svc = Service({k: v for k, v in merged.items() if v is not None}, d, args=args, env=env,
                      cwd=cwd, config_path=conf)
        self.services.append(svc)
        svc.start()
        if wait_ready:
            svc.wait_ready()
        return svc

    def finish(self, node):
        problems = []
        for i, svc in enumerate(self.services):
            try:
                if svc.proc is not None and svc.proc.poll() is None:
                    rc = svc.terminate(5.0)
                    if rc is None:
                        problems.append(f"service {i} still running 5s after SIGTERM")
                    elif rc != 0:
                        problems.append(f"service {i} exited with {rc} after SIGTERM")
                    left = svc.leftover_children()
                    if left:
                        problems.append(f"service {i} left children {[(p, proc_comm(p)) for p in left]}")
            finally:
                svc.kill_all()
                svc.close_files()
            if node is not None:
                node.add_report_section("teardown", f"ws-broadcaster {i} stderr", svc.stderr_text())
                out = svc.stdout_text()
                if out:
                    node.add_report_section("teardown", f"ws-broadcaster {i} stdout", out)
        return problems


@pytest.fixture
def service(redis_server, tmp_path, request):
    """Factory: svc = service(**settings) -> a started, ready Service."""
    factory = ServiceFactory(redis_server, tmp_path)
    yield factory
    problems = factory.finish(request.node)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def module_service(redis_server, tmp_path_factory):
    """Factory like `service`, for services shared by a module's tests."""
    factory = ServiceFactory(redis_server, tmp_path_factory.mktemp("svc"))
    yield factory
    problems = factory.finish(None)
    for svc in factory.services:
        print(svc.stderr_text())
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


# --------------------------------------------------------------------------
# WebSocket clients


class WSClient:
    """A test client.  Like a client written before snapshots existed, it
    sets `snapshot` messages aside (in .snapshots) unless keep_snapshots is
    set: the tests of everything else see the protocol they were written
    for."""

    def __init__(self, ws, keep_snapshots=False):
        self.ws = ws
        self.backlog = []  # messages received while waiting for something else
        self.received = 0  # messages taken off the connection
        self.keep_snapshots = keep_snapshots
        self.snapshots = []

    async def send_json(self, obj):
        await self.ws.send(json.dumps(obj))

    async def send_raw(self, text):
        await self.ws.send(text)

    async def _recv(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = max(deadline - time.monotonic(), 0.001)
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except asyncio.TimeoutError:
                raise AssertionError(f"no message from the server within {timeout}s") from None
            self.received += 1
            assert isinstance(raw, str), f"expected a text frame, got {raw!r:.80}"
            msg = json.loads(raw)
            assert isinstance(msg, dict), f"server message is not an object: {raw:.200}"
            if msg.get("type") == "snapshot" and not self.keep_snapshots:
                self.snapshots.append(msg)
                continue
            return msg

    async def recv_json(self, timeout=5.0):
        if self.backlog:
            return self.backlog.pop(0)
        return await self._recv(timeout)

    async def recv_type(self, type_, timeout=5.0):
        """The next message of this type; others are kept in the backlog."""
        for i, m in enumerate(self.backlog):
            if m.get("type") == type_:
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {type_!r} message within {timeout}s (backlog: {self.backlog[:5]})")
            m = await self._recv(left)
            if m.get("type") == type_:
                return m
            if m.get("type") == "error":
                raise AssertionError(f"expected {type_!r}, got an error: {m}")
            self.backlog.append(m)

    async def subscribe(self, timeout=5.0, **filters):
        """Send a subscribe with the given lists (a None value is sent as null;
        leave a key out to omit it) and return the 'subscribed' ack."""
        await self.send_json({"type": "subscribe", "payload": filters})
        return await self.recv_type("subscribed", timeout)

    async def unsubscribe(self, timeout=5.0):
        await self.send_json({"type": "unsubscribe", "payload": {}})
        return await self.recv_type("unsubscribed", timeout)

    async def heartbeat(self, timeout=5.0):
        await self.send_json({"type": "heartbeat", "payload": {}})
        return await self.recv_type("heartbeat", timeout)

    async def updates(self, n, timeout=10.0):
        """The next n update messages (odds_update / opportunity)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(out)} of {n} updates within {timeout}s: {out[-3:]}")
            m = await self.recv_json(left)
            assert m.get("type") in UPDATE_TYPES, f"expected an update, got {m}"
            out.append(m)
        return out

    async def expect_silence(self, seconds=0.7):
        """Assert that nothing arrives for this long."""
        assert not self.backlog, f"unexpected messages: {self.backlog[:3]}"
        try:
            m = await self._recv(seconds)
        except AssertionError:
            return
        raise AssertionError(f"unexpected message: {m!r:.300}")

    async def close(self):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 3)

    def abort(self):
        """Drop the TCP connection without a close handshake."""
        self.ws.transport.abort()


async def ws_connect(port, path="/ws", keep_snapshots=False, **kw):
    opts = dict(open_timeout=10, close_timeout=3, ping_interval=None, max_size=None, max_queue=None)
    opts.update(kw)
    ws = await websockets.connect(f"ws://127.0.0.1:{port}{path}", **opts)
    return WSClient(ws, keep_snapshots=keep_snapshots)


async def close_codes(clients, timeout=5.0):
    """Wait up to timeout for each client's connection to close; their close
    codes, in order (None where it stayed open)."""
    codes = []
    for c in clients:
        try:
            await asyncio.wait_for(c.ws.wait_closed(), timeout)
        except asyncio.TimeoutError:
            pass
        codes.append(c.ws.close_code)
    return codes


@contextlib.asynccontextmanager
async def ws_client(svc, path="/ws", **kw):
    port = svc if isinstance(svc, int) else svc.port
    c = await ws_connect(port, path, **kw)
    try:
        yield c
    finally:
        await c.close()


# --------------------------------------------------------------------------
# a WebSocket client on a plain socket


class RawWS:
    """A minimal WebSocket client: handshake by hand, masked text frames out,
    frame parsing in.  Used for a client that never reads (small SO_RCVBUF set
    before connect) and for abrupt disconnects."""

    def __init__(self, port, rcvbuf=None, path="/ws", timeout=10.0, keep_snapshots=False):
        # Like WSClient: `snapshot` messages are set aside unless asked for.
        self.keep_snapshots = keep_snapshots
        self.snapshots = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        req = (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(req.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed during the handshake: {buf!r}")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        assert b" 101 " in status + b" ", f"handshake refused: {head!r}"

    def send_text(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            hdr = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(hdr + mask + masked)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def _frames(self):
        """Parse complete frames out of self.buf: yields (opcode, payload)."""
        while True:
            b = self.buf
            if len(b) < 2:
                return
            op = b[0] & 0x0F
            n = b[1] & 0x7F
            off = 2
            if n == 126:
                if len(b) < 4:
                    return
                n = struct.unpack("!H", b[2:4])[0]
                off = 4
            elif n == 127:
                if len(b) < 10:
                    return
                n = struct.unpack("!Q", b[2:10])[0]
                off = 10
            if b[1] & 0x80:
                off += 4  # a server must not mask, but skip it if it does
            if len(b) < off + n:
                return
            payload = b[off : off + n]
            self.buf = b[off + n :]
            yield op, payload

    def _set_aside(self, text):
        """Whether text is a snapshot message this client sets aside."""
        if getattr(self, "keep_snapshots", False) or not text.startswith('{"type":"snapshot"'):
            return False
        self.__dict__.setdefault("snapshots", []).append(text)
        return True

    def recv_text(self, timeout=5.0):
        """The next text message (skipping other frames)."""
        deadline = time.monotonic() + timeout
        while True:
            for op, payload in self._frames():
                if op == 0x1:
                    text = payload.decode("utf-8")
                    if self._set_aside(text):
                        continue
                    return text
                if op == 0x8:
                    raise AssertionError(f"connection closed: {payload!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no message within {timeout}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError("connection closed")
            self.buf += chunk

    def read_until_close(self, timeout=15.0):
        """Read everything until a close frame or EOF.  Returns
        (text_messages, close) where close is (code, reason) or None if the
        connection ended without a close frame."""
        texts = []
        deadline = time.monotonic() + timeout
        while True:
            for op, payload in self._frames():
                if op == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    return texts, (code, payload[2:].decode("utf-8", "replace"))
                if op == 0x1:
                    text = payload.decode("utf-8", "replace")
                    if not self._set_aside(text):
                        texts.append(text)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection neither closed nor sent a close frame within {timeout}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                return texts, None
            except socket.timeout:
                continue
            if not chunk:
                return texts, None
            self.buf += chunk

    def abort(self):
        """Close with RST (SO_LINGER 0)."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


def deliver_one(svc, r, event):
    """Publish one odds entry and check a subscribed client gets it."""

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(events=[event])
            publish(r, svc.stream(), **odds_fields(svc.sport, event=event))
            (m,) = await c.updates(1)
            assert m["payload"]["event_id"] == event

    run(go())


def child_pid(svc, comm):
    """pid of the supervisor's child named comm, or None."""
    for p in svc.children():
        if proc_comm(p) == comm:
            return p
    return None
