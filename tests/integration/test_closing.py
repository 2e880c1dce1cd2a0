"""How the service closes a client: the close code reaches a client that is
still sending, and a client that stops reading is gone (from the kernel's
socket table too) within CLOSE_TIMEOUT, whatever it does."""
import asyncio
import json
import threading
import time

import pytest
import websockets

from conftest import RawWS, http_get, odds_fields, publish_many, run, wait_until, ws_connect
from test_hostile import Peer, frame

SUB = json.dumps({"type": "subscribe", "payload": {}}).encode()


def server_sockets(port):
    """(state, remote port) of every TCP socket whose local port is `port`
    (the service's side of its connections; listeners excluded)."""
    out = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            next(f)
            for line in f:
                parts = line.split()
                local, remote, state = parts[1], parts[2], parts[3]
                if int(local.rsplit(":", 1)[1], 16) == port and state != "0A":
                    out.append((state, int(remote.rsplit(":", 1)[1], 16)))
    return out


def active_clients(svc):
    return json.loads(http_get(svc.port, "/metrics").body)["active_clients"]


# --------------------------------------------------------------------------
# close codes reach a client that is still sending


def flood_until_closed(port, first, flood, seconds=10.0):
    """Send `first`, then `flood` frames without pause from a thread, while
    reading; returns the close frame's (code, reason), or None if the
    connection ended without one."""
    p = Peer.websocket(port)
    stop = threading.Event()

    def sender():
        with p.sock.makefile("wb", buffering=0) as _:
            pass
        try:
            p.sock.sendall(first)
            while not stop.is_set():
                p.sock.sendall(flood)
        except OSError:
            pass

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        _, close = p.read_until_close(timeout=seconds)
    except ConnectionResetError:
        close = None
    finally:
        stop.set()
        p.abort()
        t.join(5)
    return close


@pytest.fixture(scope="module")
def closer(module_service):
    return module_service(MAX_MESSAGE_SIZE="1024", RATE_LIMIT="5", RATE_BURST="5", WORKERS="2")


@pytest.mark.parametrize("case", ["rate_limit", "too_large", "not_utf8", "binary", "unmasked"])
def test_close_code_reaches_a_client_that_keeps_sending(closer, case):
    """Each close the service initiates reaches the client as a close frame
    with its code, although the client never stops sending (it would get a
    reset, 1006, if the service closed with unread input)."""
    flood = b"".join(frame(0x1, SUB) for _ in range(200))
    first, code = {
        "rate_limit": (b"", 1008),
        "too_large": (frame(0x1, b"x" * 2000), 1009),
        "not_utf8": (frame(0x1, b"\xff\xfe"), 1007),
        "binary": (frame(0x2, b"bin"), 1003),
        "unmasked": (frame(0x1, SUB, mask=False), 1002),
    }[case]
    for attempt in range(5):
        close = flood_until_closed(closer.port, first, flood)
        assert close is not None, f"attempt {attempt}: reset without a close frame (1006)"
        assert close[0] == code, (attempt, close)


def test_flooding_client_reads_1008_with_websockets_library(closer):
    async def go():
        c = await ws_connect(closer.port)
        for _ in range(2000):
            try:
                await c.ws.send(SUB.decode())
            except websockets.ConnectionClosed:
                break
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(c.ws.recv(), 10)
        return c.ws.close_code, c.ws.close_reason

    code, reason = run(go())
    assert code == 1008 and "rate" in reason, (code, reason)


# --------------------------------------------------------------------------
# a client that stops reading is gone within CLOSE_TIMEOUT


def stuck_reader(svc):
    """A subscribed client with a tiny receive buffer that never reads."""
    c = RawWS(svc.port, rcvbuf=2048)
    c.send_json({"type": "subscribe", "payload": {}})
    local_port = c.sock.getsockname()[1]
    return c, local_port


def flood(svc, r, n=400, size=6000):
    stream = f"odds.normalized.{svc.settings['SPORTS']}"
    blob = "y" * size
    publish_many(r, [(stream, odds_fields(svc.settings["SPORTS"], event=f"e{i}", note=blob))
                     for i in range(n)])


def test_client_that_stops_reading_is_cut_off_and_torn_down(service, r):
    """Its queue overflows: it stops counting at once, and its TCP
    connection (with the megabytes the kernel holds for it) is gone within
    CLOSE_TIMEOUT although the peer never reads a byte."""
    svc = service(WORKERS="1", CLIENT_BUFFER="16", CLOSE_TIMEOUT="2", PING_INTERVAL="0")
    c, cport = stuck_reader(svc)
    time.sleep(0.3)
    assert active_clients(svc) == 1
    # the /metrics request's connection may still be closing on the server's
    # side (CLOSE_WAIT until the worker's loop reads its EOF)
    wait_until(lambda: [p for _, p in server_sockets(svc.port)] == [cport], timeout=2.0,
               message="only the stuck client's connection is open")
    flood(svc, r)
    t0 = time.monotonic()
    wait_until(lambda: active_clients(svc) == 0, timeout=1.0,
               message="a client cut off stops counting at once")
    wait_until(lambda: cport not in [p for _, p in server_sockets(svc.port)], timeout=3.5,
               message="the server's socket gone within CLOSE_TIMEOUT")
    elapsed = time.monotonic() - t0
    assert elapsed < 3.5, elapsed
    m = json.loads(http_get(svc.port, "/metrics").body)
    assert m["slow_disconnects"] >= 1 and m["dropped_messages"] >= 1, m
    # the peer sees the reset
    c.sock.settimeout(2)
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        while c.sock.recv(1 << 20):
            pass
    c.close()
    # and its place is free: MAX_CLIENTS=... let a new client in and serve it
    d = RawWS(svc.port)
    d.send_json({"type": "subscribe", "payload": {}})
    assert json.loads(d.recv_text())["type"] == "subscribed"
    d.close()


def test_limits_count_a_cut_client_no_more(service, r):
    """MAX_CLIENTS_PER_IP=1: once the stuck client is cut, the same address
    may connect again at once, before its old connection is torn down."""
    svc = service(WORKERS="1", CLIENT_BUFFER="16", CLOSE_TIMEOUT="30", MAX_CLIENTS_PER_IP="1",
                  MAX_CLIENTS="1", PING_INTERVAL="0")
    c, cport = stuck_reader(svc)
    time.sleep(0.3)
    flood(svc, r)
    wait_until(lambda: active_clients(svc) == 0, timeout=1.0, message="cut off")
    assert cport in [p for _, p in server_sockets(svc.port)]  # still lingering (30 s)
    d = RawWS(svc.port)
    d.send_json({"type": "subscribe", "payload": {}})
    assert json.loads(d.recv_text())["type"] == "subscribed"
    d.close()
    c.abort()


def test_send_timeout_cuts_off_a_client_whose_socket_takes_nothing(service, r):
    """Its queue never fills (CLIENT_BUFFER is large), but nothing leaves
    for SEND_TIMEOUT: it is cut off and torn down as if it had overflowed."""
    svc = service(WORKERS="1", CLIENT_BUFFER="100000", SEND_TIMEOUT="2", CLOSE_TIMEOUT="1",
                  PING_INTERVAL="0")
    c, cport = stuck_reader(svc)
    time.sleep(0.3)
    flood(svc, r, n=200)
    t0 = time.monotonic()
    time.sleep(1.0)
    assert active_clients(svc) == 1, "cut off before SEND_TIMEOUT"
    wait_until(lambda: active_clients(svc) == 0, timeout=4.0, message="cut off after SEND_TIMEOUT")
    wait_until(lambda: cport not in [p for _, p in server_sockets(svc.port)], timeout=3.0,
               message="torn down CLOSE_TIMEOUT later")
    assert time.monotonic() - t0 < 7.0
    assert "send timeout" in svc.stderr_text() or "took nothing" in svc.stderr_text()
    c.close()


def test_a_slow_but_reading_client_is_not_cut_by_send_timeout(service, r):
    """A client that reads slowly (but reads) keeps its connection."""
    svc = service(WORKERS="1", CLIENT_BUFFER="100000", SEND_TIMEOUT="1", PING_INTERVAL="0")
    c = RawWS(svc.port, rcvbuf=4096)
    c.send_json({"type": "subscribe", "payload": {}})
    assert json.loads(c.recv_text())["type"] == "subscribed"
    flood(svc, r, n=150, size=6000)
    got = 0
    deadline = time.monotonic() + 20
    c.sock.settimeout(1)
    while got < 150 and time.monotonic() < deadline:
        chunk = c.sock.recv(8192)  # about 160 KB/s: far below what was queued
        assert chunk, f"closed after {got} updates"
        c.buf += chunk
        got += sum(1 for op, _ in c._frames() if op == 0x1)
        time.sleep(0.05)
    assert got == 150
    assert active_clients(svc) == 1
    c.close()
