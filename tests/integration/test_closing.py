"""How the service closes a client: the close code reaches a client that is
still sending, and a client that stops reading is gone (from the kernel's
socket table too) within CLOSE_TIMEOUT, whatever it does."""
import asyncio
import json
import socket
import struct
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
