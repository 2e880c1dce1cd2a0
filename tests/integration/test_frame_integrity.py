"""Frames a client receives stay intact whatever it does meanwhile: control
frames (pong, ping, close) only ever go out between complete data frames."""
import json
import os
import socket
import struct
import threading
import time

from conftest import RawWS, odds_fields, publish_many


def masked_frame(opcode, payload):
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + body


def test_pongs_never_split_a_half_sent_update(service, r):
    """A client with a small receive buffer pings continuously while large
    updates stream to it: every frame it reads is either a whole JSON update
    or a whole pong with its ping's payload."""
    svc = service(WORKERS="1", CLIENT_BUFFER="100000", CLIENT_BUFFER_BYTES="1073741824",
                  PING_INTERVAL="0")
    stream = f"odds.normalized.{svc.settings['SPORTS']}"
    c = RawWS(svc.port, rcvbuf=4096)
    c.send_json({"type": "subscribe", "payload": {"snapshot": False}})
    assert json.loads(c.recv_text())["type"] == "subscribed"

    total = 1500
    blob = "x" * 8000
    stop = threading.Event()

    def publisher():
        sent = 0
        while sent < total and not stop.is_set():
            batch = [(stream, odds_fields(svc.settings["SPORTS"], event=f"e{sent + i}", note=blob))
                     for i in range(100)]
            publish_many(r, batch)
            sent += len(batch)
            time.sleep(0.02)

    t = threading.Thread(target=publisher)
    t.start()
    updates = pongs = pings = 0
    c.sock.settimeout(0.005)
    deadline = time.monotonic() + 60
    try:
        while updates < total:
            assert time.monotonic() < deadline, f"only {updates} of {total} updates within 60s"
            c.sock.sendall(masked_frame(0x9, b"PINGPING"))
            pings += 1
            time.sleep(0.001)  # a slow reader: the server's socket fills
            try:
                chunk = c.sock.recv(4096)
            except socket.timeout:
                continue
            assert chunk, f"connection closed after {updates} updates"
            c.buf += chunk
            for op, payload in c._frames():
                if op == 0x1:
                    try:
                        msg = json.loads(payload)
                    except ValueError as e:
                        raise AssertionError(f"update {updates + 1} is corrupt ({e}): "
                                             f"a frame was written inside it") from None
                    assert msg["type"] == "odds_update", msg
                    assert msg["payload"]["note"] == blob
                    updates += 1
                elif op == 0xA:
                    assert payload == b"PINGPING", f"corrupt pong after {updates} updates: {payload!r:.80}"
                    pongs += 1
                else:
                    raise AssertionError(f"unexpected opcode {op:#x} after {updates} updates: "
                                         f"{payload[:40]!r}")
    finally:
        stop.set()
        t.join()
        c.close()
    # lws keeps one pong pending at a time: many pings get one answer.
    assert pongs >= 10, (pings, pongs)
