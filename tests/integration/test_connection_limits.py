"""Every accepted TCP connection counts, upgraded or not: per client address
(MAX_CONNECTIONS_PER_IP) and per instance (MAX_CONNECTIONS); beyond them a
connection is closed at once, before anything is read from it.  HTTP
keep-alive connections go after HTTP_IDLE_TIMEOUT without a request."""
import json
import re
import socket
import time

from conftest import RawWS, http_get, wait_until


def still_open(s):
    """True while the server has not closed s."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except (ConnectionResetError, OSError):
        return False


def connect_many(port, n, source="127.0.0.1", request=None):
    out = []
    for _ in range(n):
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        if request is not None:
            s.sendall(request)
        out.append(s)
    return out


def settle_open(socks, expect_at_most, timeout=3.0):
    """Wait until the refused ones are closed; the number left open.

    A connection is counted first and checked after, so that two workers
    admitting the same address at the same instant can never pass the
    limit together; at that instant both may refuse.  Callers accept one
    less than the limit for that reason, never one more."""
    deadline = time.monotonic() + timeout
    while True:
        n = sum(still_open(s) for s in socks)
        if n <= expect_at_most or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def close_all(socks):
    for s in socks:
        s.close()


def open_connections(svc):
    """The service's count of open connections (this request's included),
    or None while it refuses the request."""
    try:
        return json.loads(http_get(svc.port, "/metrics").body)["open_connections"]
    except (OSError, ValueError):
        return None


def wait_released(svc):
    """Until the service has noticed that our connections are closed: it
    does so asynchronously, and until then they still count."""
    wait_until(lambda: open_connections(svc) == 1, timeout=5.0, message="connections released")
    time.sleep(0.3)  # and the /metrics request's own connection


def test_silent_connections_count_per_address(service):
    svc = service(WORKERS="2", MAX_CLIENTS="5", MAX_CLIENTS_PER_IP="3", HANDSHAKE_TIMEOUT="30")
    socks = connect_many(svc.port, 50)  # MAX_CONNECTIONS_PER_IP: 3 + 16
    assert settle_open(socks, 19) in (18, 19)
    # another address is not affected
    other = connect_many(svc.port, 5, source="127.0.0.2")
    time.sleep(0.3)
    assert sum(still_open(s) for s in other) == 5
    close_all(other)
    # and the refused address gets in again once its connections are gone
    close_all(socks)
    wait_released(svc)
    again = connect_many(svc.port, 19)
    time.sleep(0.3)
    assert sum(still_open(s) for s in again) == 19
    close_all(again)

    def healthy():
        # The service notices the closes asynchronously: until then the
        # address is still at its limit and a new connection is refused.
        try:
            return http_get(svc.port, "/health").status == 200
        except OSError:
            return False

    wait_until(healthy, timeout=5.0, message="the address's connections released")


def test_keepalive_http_connections_count_too(service):
    svc = service(WORKERS="2", MAX_CLIENTS="5", MAX_CLIENTS_PER_IP="3", HTTP_IDLE_TIMEOUT="30")
    req = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{svc.port}\r\n\r\n".encode()
    socks = connect_many(svc.port, 50, request=req)
    time.sleep(0.5)
    assert settle_open(socks, 19) in (18, 19)
    close_all(socks)


def test_instance_limit_counts_across_addresses_and_workers(service):
    svc = service(WORKERS="2", MAX_CONNECTIONS="10", MAX_CONNECTIONS_PER_IP="100",
                  HANDSHAKE_TIMEOUT="30")
    socks = []
    for i in range(30):
        socks += connect_many(svc.port, 1, source=f"127.0.{i}.9")
    assert settle_open(socks, 10) in (9, 10)
    close_all(socks)
    wait_released(svc)
    # counts do not drift: the full allowance is back
    socks = connect_many(svc.port, 10, source="127.0.0.3")
    time.sleep(0.3)
    assert sum(still_open(s) for s in socks) == 10
    close_all(socks)


def test_websocket_clients_hold_connections_too(service):
    svc = service(WORKERS="2", MAX_CLIENTS_PER_IP="2", MAX_CONNECTIONS_PER_IP="3")
    a, b = RawWS(svc.port), RawWS(svc.port)
    socks = connect_many(svc.port, 5)
    assert settle_open(socks, 1) == 1  # one more connection fits, then none
    close_all(socks)
    a.close()
    b.close()


def test_http_keepalive_connections_close_after_the_idle_timeout(service):
    svc = service(WORKERS="1", HTTP_IDLE_TIMEOUT="2")
    req = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{svc.port}\r\n\r\n".encode()
    s = connect_many(svc.port, 1, request=req)[0]
    s.settimeout(5)
    resp = b""
    while b"\r\n\r\n" not in resp:  # the whole reply: headers and body may come apart
        resp += s.recv(4096)
    head, body = resp.split(b"\r\n\r\n", 1)
    assert b" 200 " in head.split(b"\r\n")[0], head
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        body += s.recv(4096)
    t0 = time.monotonic()
    wait_until(lambda: not still_open(s), timeout=5.0, message="idle keep-alive closed")
    assert 1.5 <= time.monotonic() - t0 <= 4.5
    s.close()
