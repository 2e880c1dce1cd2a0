"""Bytes a client sends together with its upgrade request go through the
same frame checks as any others, whatever the packet boundaries: lws parses
them from its own buffer, before the session exists."""
import json
import time

import pytest

from test_hostile import Peer, frame, upgrade_request

HB = json.dumps({"type": "heartbeat", "payload": {}}).encode()
SUB = json.dumps({"type": "subscribe", "payload": {"sports": ["x"]}}).encode()


@pytest.fixture(scope="module")
def svc(module_service):
    return module_service(WORKERS="2", MAX_MESSAGE_SIZE="1024")


def connect_and_send(port, data, split=None):
    p = Peer(port)
    if split is None:
        p.send(data)
    else:
        p.send(data[:split])
        time.sleep(0.005)  # two reads on the server
        p.send(data[split:])
    status, head = p.response()
    assert status == 101, head
    return p


def test_unmasked_frame_pipelined_with_the_upgrade_is_refused(svc):
    for _ in range(20):
        p = connect_and_send(svc.port, upgrade_request(svc.port) + frame(0x1, HB, mask=False))
        texts, close = p.read_until_close()
        assert texts == [], f"an unmasked frame was answered: {texts}"
        assert close is not None and close[0] == 1002, close
        p.close()


def test_good_frame_then_bad_one_pipelined(svc):
    """The good frame before the violation is answered, then 1002."""
    for _ in range(20):
        data = upgrade_request(svc.port) + frame(0x1, HB) + frame(0x1, HB, mask=False)
        p = connect_and_send(svc.port, data)
        texts, close = p.read_until_close()
        assert [json.loads(t)["type"] for t in texts] == ["heartbeat"], texts
        assert close is not None and close[0] == 1002, close
        p.close()


def test_oversized_frame_pipelined_with_the_upgrade_closes_1009(svc):
    p = connect_and_send(svc.port, upgrade_request(svc.port) + frame(0x1, b"x" * 2000))
    texts, close = p.read_until_close()
    assert texts == [] and close is not None and close[0] == 1009, (texts, close)
    p.close()


def test_valid_frames_split_across_the_upgrade_at_every_offset(svc):
    """No false positive: a subscribe and a heartbeat sent with the upgrade,
    the bytes cut in two at every offset, are answered on every connection."""
    req = upgrade_request(svc.port)
    data = req + frame(0x1, SUB) + frame(0x1, HB)
    for split in range(1, len(data)):
        p = connect_and_send(svc.port, data, split)
        got = [json.loads(p.recv_text())["type"] for _ in range(2)]
        assert got == ["subscribed", "heartbeat"], (split, got)
        p.sock.settimeout(0.05)
        p.close()


def test_plain_http_requests_pipelined_are_not_taken_for_frames(svc):
    """Two keep-alive GET /health in one send: both answered."""
    p = Peer(svc.port)
    req = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{svc.port}\r\n\r\n".encode()
    p.send(req + req)
    for _ in range(2):
        status, head = p.response()
        assert status == 200, head
        n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
                .split(b":")[1])
        while len(p.buf) < n:
            p.buf += p.sock.recv(4096)
        p.buf = p.buf[n:]
    p.close()
