"""Hostile clients and hostile stream entries: every bad input gets its
documented answer, no process crashes or is restarted behind our back, and
well-behaved clients on the same service keep being served.

Every test runs inside `unharmed(svc, r)`, which records the ingest and
worker PIDs first and, at the end, checks that they are the same processes
(still alive), that /metrics shows restarts 0 for the ingest and every
worker, that /health says 200, that "witness" clients (well-behaved, at
least one on each worker) still receive a freshly published entry as valid
JSON, and that active_clients is back to the true number of clients.

Contract lines -> tests:

From clients (WebSocket on /ws; MAX_MESSAGE_SIZE=1024 where it matters):

* a message over MAX_MESSAGE_SIZE -> close 1009: one 2000-byte frame,
  fragments that add up past the limit, a header announcing 2^40 bytes with
  no payload (1009 at once); 1024 bytes is still fine
                                   -> test_oversized_message_closes_1009,
                                      test_message_at_the_size_limit_is_answered
* a fragmented message within the limit is reassembled and answered, a ping
  between fragments is answered with a pong, UTF-8 split across fragments
                                   -> test_fragmented_message_within_limit_is_reassembled
* binary message -> 1003           -> test_binary_message_closes_1003
* invalid UTF-8 (bad continuation, overlong, lone surrogate ED A0 80, also
  in a later fragment) -> 1007     -> test_invalid_utf8_closes_1007
* unmasked frame, opcodes 3 and 0xB, ping with 126 bytes, RSV1, fragmented
  ping, continuation without a message (and a new message inside a
  fragmented one, a 64-bit length with the top bit set) -> 1002
                                   -> test_protocol_violation_closes_1002
* rate limit (RATE_LIMIT=5, RATE_BURST=5): the burst is answered, then
  `rate_limited` errors, then close 1008 "rate ..." after RATE_BURST refusals
  in a row, the queued replies first
                                   -> test_rate_limit_errors_then_close_1008
* a client within the rate is never limited
                                   -> test_client_within_the_rate_is_never_limited
* filter bounds (defaults 1024 values / 256 bytes, and small settings):
  `invalid_filter`, connection open, previous filter in force
                                   -> test_filter_bounds_default_settings,
                                      test_filter_bounds_follow_the_settings
* handshake: GET /ws without upgrade -> 426; upgrade on another path -> 404;
  POST /ws -> 405 (with upgrade headers: 4xx, never 101)
                                   -> test_non_upgrade_requests_get_http_errors
* headers over MAX_HEADER_SIZE -> closed without a 101 (lws 4.1.6 sends no
  status line); headers under it still upgrade
                                   -> test_oversized_headers_are_refused
* a request never finished (HANDSHAKE_TIMEOUT=1), trickled slowly, or never
  started -> dropped within a few seconds
                                   -> test_unfinished_handshakes_are_dropped
* Origin outside ALLOWED_ORIGINS -> 403 (missing Origin too); allowed origin
  in any case -> 101; refusals parse as InvalidStatusCode
                                   -> test_allowed_origins
* liveness (PING_INTERVAL=1, PING_TIMEOUT=1): a silent client that answers
  pings stays; one that never answers is dropped, active_clients follows
                                   -> test_silent_peers_are_pinged_and_dead_ones_dropped
* MAX_CLIENTS=3 -> 4th handshake 503; a slot frees when a client leaves
                                   -> test_max_clients_503_and_recovery
* MAX_CLIENTS_PER_IP=2 -> 429 for the 3rd from 127.0.0.1, counted across
  workers; another address (127.0.0.2) still accepted; recovers on close;
  a SIGKILLed worker's clients no longer count
                                   -> test_max_clients_per_ip_429_across_workers_and_after_worker_kill
* garbage on the port: random bytes (before and after an upgrade), a TLS
  ClientHello, half-open connections, 2000 connects with immediate closes,
  absurd HTTP requests -> same PIDs, /health 200, active_clients true
                                   -> test_garbage_bytes_before_upgrade,
                                      test_garbage_frames_after_upgrade,
                                      test_tls_client_hello_on_the_plain_port,
                                      test_half_open_connections,
                                      test_connect_and_close_storm,
                                      test_absurd_http_requests

From the stream (skipped, counted in invalid_entries, acked, never emitted,
the next good entry delivered; logging rate-limited):

* larger than MAX_ENTRY_SIZE, non-UTF-8 values or names, NUL bytes,
  non-numeric / non-finite prices, `data` nested 50 (or 31) deep, invalid
  JSON, trailing garbage, not an object, 1000 (or 257) fields
                                   -> test_malformed_entry_is_skipped
* 500 bad entries -> far fewer than 500 log lines
                                   -> test_malformed_entries_log_at_a_bounded_rate
* valid edge cases delivered as valid JSON: unicode, control characters
  (JSON-escaped), `data` 30 deep, 256 fields, trailing whitespace after `data`
                                   -> test_edge_case_entry_is_delivered_as_valid_json
* frames before an offending one in the same segment are still answered,
  then the close    -> test_good_frames_before_a_violation_in_one_segment_are_answered
* a JSON-escaped NUL (\\u0000) inside `data`: skipped or delivered intact,
  never silently truncated        -> test_escaped_nul_in_data_is_not_truncated
"""

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import select
import signal
import socket
import ssl
import struct
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

from conftest import (
    RawWS,
    WSClient,
    free_port,
    odds_fields,
    proc_alive,
    publish,
    publish_many,
    run,
    uid,
    wait_until,
)

MAX_MSG = 1024  # MAX_MESSAGE_SIZE of the `strict` service
RATE = 5  # RATE_LIMIT and RATE_BURST of the `strict` service


# --------------------------------------------------------------------------
# services


@pytest.fixture(scope="module")
def strict(module_service):
    """Small limits, for the client-side tests."""
    return module_service(MAX_MESSAGE_SIZE=str(MAX_MSG), RATE_LIMIT=str(RATE), RATE_BURST=str(RATE),
                          MAX_FILTER_VALUES="4", MAX_FILTER_VALUE_LEN="16", HANDSHAKE_TIMEOUT="1")


@pytest.fixture(scope="module")
def dflt(module_service):
    """Default limits, for the stream tests and the default filter bounds."""
    return module_service()


# --------------------------------------------------------------------------
# raw WebSocket / HTTP peers


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
    """One client frame, byte by byte as we choose (length: announce another
    payload length than the one sent)."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, m | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def upgrade_request(port, path="/ws", headers=(), method="GET"):
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


STATUS_RE = re.compile(rb"^HTTP/1\.[01] (\d{3})")


class Peer(RawWS):
    """RawWS generalized: any destination and source address, raw bytes of
    our choosing before and after the handshake, any frame."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=10.0):
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    @classmethod
    def websocket(cls, port, **kw):
        p = cls(port, **kw)
        status, head = p.upgrade()
        assert status == 101, head
        return p

    def send(self, data):
        self.sock.sendall(data)

    def response(self, timeout=5.0):
        """The HTTP response head: (status, head), or (None, bytes) if the
        server hung up without a complete head."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no HTTP response within {timeout}s: {self.buf[:200]!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None, self.buf
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        m = STATUS_RE.match(head)
        assert m, f"not an HTTP status line: {head[:200]!r}"
        return int(m.group(1)), head

    def upgrade(self, path="/ws", headers=(), timeout=5.0):
        with contextlib.suppress(OSError):  # a refusal may come before we are done sending
            self.send(upgrade_request(self.port, path, headers))
        return self.response(timeout)

    def send_frame(self, *a, **kw):
        self.send(frame(*a, **kw))

    def send_json(self, obj):
        self.send_frame(0x1, json.dumps(obj).encode())

    def frames(self, want, timeout=5.0):
        """Read frames until `want(list_so_far)` is true; returns (opcode,
        payload) pairs."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            got.extend(self._frames())
            if want(got):
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"frames so far: {got!r:.500}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(f"connection closed; frames so far: {got!r:.500}")
            self.buf += chunk

    def closed_by_server(self, timeout):
        """Discard what arrives until the server closes; the seconds that
        took, or None if still open after timeout."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return time.monotonic() - t0
            if not chunk:
                return time.monotonic() - t0
            self.buf += chunk


def strict_json(text):
    """json.loads that also refuses NaN/Infinity and lone surrogates (what a
    browser's JSON.parse or a strict decoder would choke on)."""

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    obj = json.loads(text, parse_constant=refuse)

    def walk(v):
        if isinstance(v, str):
            v.encode("utf-8")  # raises on a lone surrogate
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(k)
                walk(x)

    walk(obj)
    return obj


class Witness(Peer):
    """A well-behaved client: subscribed, reads what it is sent."""

    def __init__(self, port, flt, **kw):
        super().__init__(port, **kw)
        status, head = self.upgrade()
        assert status == 101, head
        self.send_json({"type": "subscribe", "payload": flt})
        ack = self.next_json()
        assert ack["type"] == "subscribed", ack

    def next_json(self, timeout=10.0):
        return strict_json(self.recv_text(timeout))

    def expect_entry(self, event, seq, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            m = self.next_json(max(0.1, deadline - time.monotonic()))
            p = m.get("payload") or {}
            if m.get("type") == "odds_update" and p.get("event_id") == event and p.get("seq") == seq:
                return m


# --------------------------------------------------------------------------
# the "nothing bad happened" check


def ingest_and_workers(svc):
    pm = svc.process_map()
    assert "wsb-ingest" in pm, pm
    n = int(svc.settings.get("WORKERS", "2"))
    assert set(pm) == {"wsb-ingest"} | {f"wsb-worker-{i}" for i in range(1, n + 1)}, pm
    return pm


def per_worker_clients(m):
    return [w["active_clients"] for w in m["workers"]]


class Unharmed:
    def __init__(self, svc, r, witnesses=True, flt=None):
        self.svc = svc
        self.r = r
        self.event = f"w-{uid()}"
        self.seq = 0
        self.witnesses = []
        # a previous test's clients may still be on their way out
        m = svc.wait_metric(lambda m: m["active_clients"] == 0, message="no clients at the start")
        self.procs = ingest_and_workers(svc)
        self.metrics = m
        self.check_no_restarts(m)
        if witnesses:
            self.open_witnesses({"events": [self.event]} if flt is None else flt)

    def open_witnesses(self, flt, tries=40):
        """Open witnesses until every worker has one."""
        base = per_worker_clients(self.metrics)
        for _ in range(tries):
            self.witnesses.append(Witness(self.svc.port, flt))
            m = self.svc.wait_metric(lambda m: m["active_clients"] == len(self.witnesses),
                                     message=f"active_clients == {len(self.witnesses)}")
            if all(now > b for now, b in zip(per_worker_clients(m), base)):
                return
        raise AssertionError(f"no witness landed on some worker after {tries} connections")

    def check_no_restarts(self, m, restarted=()):
        assert m["ingest"]["restarts"] == 0, m["ingest"]
        for w in m["workers"]:
            want = 1 if w["worker"] in restarted else 0
            assert w["restarts"] == want, f"worker {w['worker']} restarts {w['restarts']}: {m['workers']}"

    def publish_marker(self):
        self.seq += 1
        publish(self.r, self.svc.stream(), **odds_fields(self.svc.sport, event=self.event, seq=str(self.seq)))
        return str(self.seq)

    def deliver(self):
        """Every witness receives a freshly published entry."""
        if not self.witnesses:
            return
        seq = self.publish_marker()
        for w in self.witnesses:
            w.expect_entry(self.event, seq)

    def verify(self, clients=0, restarted=()):
        """clients: connections the test still holds open besides the
        witnesses.  restarted: worker numbers the test killed on purpose."""
        svc = self.svc
        assert svc.running(), f"the supervisor exited with {svc.proc.returncode}"
        now = ingest_and_workers(svc)
        for comm, pid in self.procs.items():
            if any(comm == f"wsb-worker-{i}" for i in restarted):
                assert now[comm] != pid, f"{comm} was killed but has the same pid"
            else:
                assert now[comm] == pid, f"{comm}: pid {pid} -> {now[comm]} (crashed and restarted)"
            assert proc_alive(now[comm]), f"{comm} ({now[comm]}) is not running"
        m = svc.metrics()
        assert m["ingest"]["pid"] == self.procs["wsb-ingest"], m["ingest"]
        for w in m["workers"]:
            assert w["pid"] == now[f"wsb-worker-{w['worker']}"], m["workers"]
        self.check_no_restarts(m, restarted)
        status, body = svc.health()
        assert status == 200 and body["status"] == "healthy", (status, body)
        self.deliver()
        want = len(self.witnesses) + clients
        svc.wait_metric(lambda m: m["active_clients"] == want, message=f"active_clients == {want}")
        err = svc.stderr_text()
        assert "AddressSanitizer" not in err and "runtime error:" not in err, err[-3000:]

    def close(self):
        for w in self.witnesses:
            w.close()


@contextlib.contextmanager
def unharmed(svc, r, **kw):
    u = Unharmed(svc, r, **kw)
    try:
        yield u
    finally:
        u.close()


# --------------------------------------------------------------------------
# message size


def test_oversized_message_closes_1009(strict, r):
    cases = {
        "one 2000-byte frame": frame(0x1, b"x" * 2000),
        "fragments 600 + 600": frame(0x1, b"x" * 600, fin=False) + frame(0x0, b"x" * 600),
        "many small fragments": b"".join(frame(0x1 if i == 0 else 0x0, b"y" * 100, fin=False)
                                         for i in range(11)),
    }
    with unharmed(strict, r) as u:
        for name, data in cases.items():
            p = Peer.websocket(strict.port)
            p.send(data)
            texts, close = p.read_until_close(timeout=10)
            assert close == (1009, "message too large"), (name, texts, close)
            p.close()
        # a frame header announcing 2^40 bytes, and no payload at all: the
        # answer comes from the header alone
        p = Peer.websocket(strict.port)
        p.send(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 40) + os.urandom(4))
        texts, close = p.read_until_close(timeout=5)
        assert close == (1009, "message too large"), close
        p.close()
        u.verify()


def test_message_at_the_size_limit_is_answered(strict, r):
    with unharmed(strict, r) as u:
        p = Peer.websocket(strict.port)
        msg = b'{"type":"heartbeat"}'
        p.send_frame(0x1, msg + b" " * (MAX_MSG - len(msg)))
        hb = strict_json(p.recv_text())
        assert hb["type"] == "heartbeat", hb
        p.send_frame(0x1, msg + b" " * (MAX_MSG + 1 - len(msg)))
        texts, close = p.read_until_close()
        assert close == (1009, "message too large"), close
        p.close()
        u.verify()


def test_fragmented_message_within_limit_is_reassembled(strict, r):
    t = uid()
    with unharmed(strict, r) as u:
        p = Peer.websocket(strict.port)
        # a heartbeat in 3 fragments with a ping between the first two
        hb = b'{"type":"heartbeat","payload":{}}'
        p.send(frame(0x1, hb[:7], fin=False) + frame(0x9, b"pp-" + t.encode())
               + frame(0x0, hb[7:20], fin=False) + frame(0x0, hb[20:]))
        got = p.frames(lambda fs: any(op == 0x1 for op, _ in fs))
        assert (0xA, b"pp-" + t.encode()) in got, got
        reply = strict_json(next(pl for op, pl in got if op == 0x1))
        assert reply["type"] == "heartbeat" and reply["payload"]["messages_received"] == 1, reply

        # a subscribe of about MAX_MESSAGE_SIZE bytes, in 4 fragments, cut
        # in the middle of a 2-byte and of a 4-byte UTF-8 sequence
        value = "é🏀" + t[:8]  # 14 bytes: within MAX_FILTER_VALUE_LEN 16
        head = b'{"type":"subscribe",'
        tail = json.dumps({"payload": {"events": [value]}}, ensure_ascii=False).encode()[1:]
        msg = head + b" " * (MAX_MSG - len(head) - len(tail)) + tail
        assert len(msg) == MAX_MSG
        i = msg.index("é".encode()) + 1  # inside é
        j = msg.index("🏀".encode()) + 2  # inside the emoji
        p.send(frame(0x1, msg[:i], fin=False) + frame(0x0, msg[i:j], fin=False)
               + frame(0x0, msg[j:j + 3], fin=False) + frame(0x0, msg[j + 3:]))
        ack = strict_json(p.recv_text())
        assert ack["type"] == "subscribed" and ack["payload"]["events"] == [value], ack
        publish(r, strict.stream(), **odds_fields(strict.sport, event=value))
        m = strict_json(p.recv_text())
        assert m["payload"]["event_id"] == value, m
        u.verify(clients=1)
        p.close()


# --------------------------------------------------------------------------
# opcodes, UTF-8, framing


def test_binary_message_closes_1003(strict, r):
    with unharmed(strict, r) as u:
        for data in (frame(0x2, b'{"type":"heartbeat"}'), frame(0x2, b"", fin=False) + frame(0x0, b"\x00\xff")):
            p = Peer.websocket(strict.port)
            p.send(data)
            texts, close = p.read_until_close()
            assert close == (1003, "binary messages are not supported"), close
            assert texts == []
            p.close()
        u.verify()


INVALID_UTF8 = {
    "bad continuation": [frame(0x1, b'{"type":"\xc3\x28"}')],
    "overlong": [frame(0x1, b'{"type":"\xc0\xaf"}')],
    "overlong 3-byte": [frame(0x1, b'{"type":"\xe0\x80\xaf"}')],
    "lone surrogate": [frame(0x1, b'{"type":"\xed\xa0\x80"}')],
    "above U+10FFFF": [frame(0x1, b'{"type":"\xf4\x90\x80\x80"}')],
    "truncated at the end": [frame(0x1, b'{"type":"heartbeat"}\xe2\x82')],
    "in the last fragment": [frame(0x1, b'{"type":', fin=False), frame(0x0, b'"\xff"}')],
}


@pytest.mark.parametrize("name", list(INVALID_UTF8))
def test_invalid_utf8_closes_1007(strict, r, name):
    with unharmed(strict, r) as u:
        p = Peer.websocket(strict.port)
        p.send(b"".join(INVALID_UTF8[name]))
        texts, close = p.read_until_close()
        assert close == (1007, "text message is not UTF-8"), close
        assert texts == []
        p.close()
        u.verify()


HB = b'{"type":"heartbeat"}'
VIOLATIONS = {
    "unmasked frame": (frame(0x1, HB, mask=False), "client frames must be masked"),
    "opcode 3": (frame(0x3, HB), "reserved opcode"),
    "opcode 0xB": (frame(0xB, b"x"), "reserved opcode"),
    "ping of 126 bytes": (frame(0x9, b"p" * 126), "control frame longer than 125 bytes"),
    "RSV1": (frame(0x1, HB, rsv=4), "reserved bits set without an extension"),
    "RSV3": (frame(0x1, HB, rsv=1), "reserved bits set without an extension"),
    "fragmented ping": (frame(0x9, b"p", fin=False) + frame(0x0, b"q"), "fragmented control frame"),
    "continuation without a message": (frame(0x0, HB), "continuation frame without a message"),
    "text inside a fragmented text": (frame(0x1, b"{", fin=False) + frame(0x1, HB),
                                      "new message inside a fragmented one"),
    "64-bit length, top bit set": (struct.pack("!BBQ", 0x81, 0xFF, 1 << 63) + os.urandom(4),
                                   "frame length with the top bit set"),
    "unmasked after a good exchange": (frame(0x1, HB, mask=False), "client frames must be masked"),
}


@pytest.mark.parametrize("name", list(VIOLATIONS))
def test_protocol_violation_closes_1002(strict, r, name):
    data, why = VIOLATIONS[name]
    with unharmed(strict, r) as u:
        p = Peer.websocket(strict.port)
        if name == "unmasked after a good exchange":
            p.send_frame(0x1, HB)
            assert strict_json(p.recv_text())["type"] == "heartbeat"
        p.send(data)
        texts, close = p.read_until_close()
        assert close == (1002, why), close
        assert texts == [], texts
        p.close()
        u.verify()


def test_good_frames_before_a_violation_in_one_segment_are_answered(strict, r):
    """The frame guard sees the bytes before libwebsockets does: frames ahead
    of the offending one in the same read are still handled, and their
    replies go out before the close."""
    with unharmed(strict, r) as u:
        p = Peer.websocket(strict.port)
        p.send(frame(0x1, HB) + frame(0x1, HB) + frame(0x1, HB, mask=False))
        texts, close = p.read_until_close()
        assert close == (1002, "client frames must be masked"), close
        assert [strict_json(t)["type"] for t in texts] == ["heartbeat", "heartbeat"], texts
        p.close()
        u.verify()


# --------------------------------------------------------------------------
# rate limit


def test_rate_limit_errors_then_close_1008(strict, r):
    n = 30
    with unharmed(strict, r) as u:
        p = Peer.websocket(strict.port)
        p.send(b"".join(frame(0x1, HB) for _ in range(n)))
        texts, close = p.read_until_close()
        assert close is not None, "dropped without a close frame"
        code, reason = close
        assert code == 1008 and "rate" in reason.lower(), close
        msgs = [strict_json(x) for x in texts]
        kinds = ["hb" if m["type"] == "heartbeat" else m["payload"].get("code") for m in msgs]
        assert set(kinds) <= {"hb", "rate_limited"}, kinds
        # the burst is answered normally
        assert kinds[:RATE] == ["hb"] * RATE, kinds
        # then refusals: RATE_BURST - 1 errors, and the RATE_BURST-th refusal
        # in a row is the close; the errors queued before it arrived first
        assert kinds[-(RATE - 1):] == ["rate_limited"] * (RATE - 1), kinds
        assert len(kinds) < n, kinds
        for m in msgs:
            if m["type"] == "error":
                assert set(m) == {"type", "payload", "timestamp"} and m["payload"]["message"], m
        p.close()
        u.verify()


def test_client_within_the_rate_is_never_limited(strict, r):
    with unharmed(strict, r) as u:
        p = Peer.websocket(strict.port)
        # a full burst at once ...
        p.send(b"".join(frame(0x1, HB) for _ in range(RATE)))
        for _ in range(RATE):
            assert strict_json(p.recv_text())["type"] == "heartbeat"
        time.sleep(1.2)  # ... the bucket refills ...
        # ... then 4 messages a second (RATE_LIMIT is 5), each after the reply
        for i in range(12):
            p.send_frame(0x1, HB)
            m = strict_json(p.recv_text())
            assert m["type"] == "heartbeat", (i, m)
            time.sleep(0.25)
        assert m["payload"]["messages_received"] == RATE + 12
        u.verify(clients=1)
        p.close()


# --------------------------------------------------------------------------
# filter bounds


def check_filter_refused(p, r, svc, bad_payload, keep):
    """Send a bad subscribe; expect invalid_filter, and the previous filter
    (events=[keep]) still in force."""
    p.send_json({"type": "subscribe", "payload": bad_payload})
    err = strict_json(p.recv_text())
    assert err["type"] == "error" and err["payload"]["code"] == "invalid_filter", err
    publish(r, svc.stream(), **odds_fields(svc.sport, event=f"other-{keep}"))
    publish(r, svc.stream(), **odds_fields(svc.sport, event=keep))
    m = strict_json(p.recv_text())
    assert m["type"] == "odds_update" and m["payload"]["event_id"] == keep, m


def test_filter_bounds_default_settings(dflt, r):
    t = uid()
    with unharmed(dflt, r) as u:
        p = Peer.websocket(dflt.port)
        p.send_json({"type": "subscribe", "payload": {"events": [t]}})
        assert strict_json(p.recv_text())["type"] == "subscribed"
        check_filter_refused(p, r, dflt, {"events": [f"v{i}" for i in range(1025)]}, t)
        check_filter_refused(p, r, dflt, {"books": ["b" * 257]}, t)
        check_filter_refused(p, r, dflt, {"markets": ["é" * 129]}, t)  # 129 chars, 258 bytes
        check_filter_refused(p, r, dflt, {"sports": [dflt.sport], "events": ["ok", "x" * 300]}, t)
        u.verify(clients=1)
        p.close()


def test_filter_bounds_follow_the_settings(strict, r):
    """MAX_FILTER_VALUES=4, MAX_FILTER_VALUE_LEN=16 (bytes)."""
    t = uid()[:8]
    with unharmed(strict, r) as u:
        p = Peer.websocket(strict.port)
        p.send_json({"type": "subscribe", "payload": {"events": [t, "a", "b", "c"], "books": ["x" * 16]}})
        ack = strict_json(p.recv_text())
        assert ack["type"] == "subscribed", ack
        p.send_json({"type": "subscribe", "payload": {"events": [t]}})
        assert strict_json(p.recv_text())["type"] == "subscribed"
        check_filter_refused(p, r, strict, {"events": [t, "a", "b", "c", "d"]}, t)
        check_filter_refused(p, r, strict, {"books": ["x" * 17]}, t)
        check_filter_refused(p, r, strict, {"books": ["é" * 9]}, t)  # 9 chars, 18 bytes
        u.verify(clients=1)
        p.close()


# --------------------------------------------------------------------------
# handshake


def raw_exchange(port, data, timeout=5.0):
    """Send data on a fresh connection; (status or None, head)."""
    p = Peer(port)
    try:
        with contextlib.suppress(OSError):
            p.send(data)
        return p.response(timeout)
    finally:
        p.close()


def test_non_upgrade_requests_get_http_errors(strict, r):
    async def ws_refusal(path):
        with pytest.raises(InvalidStatusCode) as ei:
            ws = await websockets.connect(f"ws://127.0.0.1:{strict.port}{path}", open_timeout=10)
            await ws.close()
        return ei.value.status_code

    with unharmed(strict, r) as u:
        assert strict.http("/ws").status == 426
        for path in ("/other", "/", "/ws/", "/wsx", "/metrics"):
            assert run(ws_refusal(path)) == 404, path
        status, head = raw_exchange(strict.port, b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert status == 405, head
        status, head = raw_exchange(strict.port, upgrade_request(strict.port, method="POST"))
        assert status is not None and 400 <= status <= 499, head
        u.verify()


def test_oversized_headers_are_refused(strict, r):
    with unharmed(strict, r) as u:
        for extra in (["X-Pad: " + "a" * 10000], [f"X-H{i}: " + "v" * 40 for i in range(300)]):
            p = Peer(strict.port)
            status, head = p.upgrade(headers=extra)
            # lws 4.1.6 hangs up without a status line; a 4xx would do too
            assert status is None or 400 <= status <= 499, head
            assert p.closed_by_server(5) is not None
            p.close()
        status, head = raw_exchange(strict.port, f"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {'a' * 10000}\r\n\r\n".encode())
        assert status is None or 400 <= status <= 499, head
        # under MAX_HEADER_SIZE (8192): upgraded
        p = Peer(strict.port)
        status, head = p.upgrade(headers=["X-Pad: " + "a" * 7000])
        assert status == 101, head
        p.send_frame(0x1, HB)
        assert strict_json(p.recv_text())["type"] == "heartbeat"
        u.verify(clients=1)
        p.close()


def test_unfinished_handshakes_are_dropped(strict, r):
    """HANDSHAKE_TIMEOUT=1: dropped within a few seconds."""
    limit = 5.0
    with unharmed(strict, r) as u:
        never_done = Peer(strict.port)
        never_done.send(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        silent = Peer(strict.port)  # connects, sends nothing
        trickle = Peer(strict.port)
        trickle.send(b"GET /ws HTTP/1.1\r\n")
        # one header line every 0.3 s: the deadline is for the whole request
        t0 = time.monotonic()
        trickle_closed = None
        while time.monotonic() - t0 < limit:
            try:
                trickle.send(b"X-Slow: 1\r\n")
            except OSError:
                trickle_closed = time.monotonic() - t0
                break
            r_, _, _ = select.select([trickle.sock], [], [], 0.3)
            if r_ and trickle.closed_by_server(0.01) is not None:
                trickle_closed = time.monotonic() - t0
                break
        assert trickle_closed is not None, f"a trickling request was still open after {limit}s"
        for name, p in (("unfinished request", never_done), ("no request", silent)):
            assert p.closed_by_server(limit) is not None, f"{name}: still open after {limit}s"
            assert not p.buf.startswith(b"HTTP/1.1 101"), p.buf
        for p in (never_done, silent, trickle):
            p.close()
        u.verify()


def test_allowed_origins(service, r):
    svc = service(ALLOWED_ORIGINS="https://good.example, http://localhost:3000")

    async def status_of(**kw):
        try:
            ws = await websockets.connect(f"ws://127.0.0.1:{svc.port}/ws", open_timeout=10,
                                          close_timeout=3, ping_interval=None, **kw)
        except InvalidStatusCode as e:
            return e.status_code, None
        return 101, WSClient(ws)

    async def go(u):
        ev = f"o-{uid()}"
        accepted = []
        try:
            for origin in ("https://evil.example", "https://good.example.evil", "http://good.example",
                           "null", "https://good.example, http://localhost:3000"):
                assert (await status_of(origin=origin))[0] == 403, origin
            assert (await status_of())[0] == 403, "no Origin header"
            for origin in ("https://good.example", "HTTPS://GOOD.EXAMPLE", "http://LocalHost:3000"):
                status, c = await status_of(origin=origin)
                assert status == 101, origin
                accepted.append(c)
                await c.subscribe(events=[ev])
            publish(r, svc.stream(), **odds_fields(svc.sport, event=ev))
            for c in accepted:
                (m,) = await c.updates(1)
                assert m["payload"]["event_id"] == ev
            u.verify(clients=len(accepted))
        finally:
            for c in accepted:
                await c.close()

    with unharmed(svc, r, witnesses=False) as u:
        run(go(u))


# --------------------------------------------------------------------------
# liveness


def test_silent_peers_are_pinged_and_dead_ones_dropped(service, r):
    svc = service(PING_INTERVAL="1", PING_TIMEOUT="1")
    window = 5.5

    async def go(u):
        ev = f"l-{uid()}"
        good = WSClient(await websockets.connect(f"ws://127.0.0.1:{svc.port}/ws", ping_interval=None,
                                                 close_timeout=3))
        try:
            await good.subscribe(events=[ev])
            answering = Peer.websocket(svc.port)  # answers every ping, by hand
            deaf = Peer.websocket(svc.port)  # reads, never answers
            mute = Peer.websocket(svc.port)  # never reads, never answers
            await asyncio.to_thread(svc.wait_metric, lambda m: m["active_clients"] == 4,
                                    message="4 clients")
            pings = {"answering": 0, "deaf": 0}
            deaf_closed = None
            t0 = time.monotonic()

            def watch():
                nonlocal deaf_closed
                socks = {answering.sock: ("answering", answering), deaf.sock: ("deaf", deaf)}
                while time.monotonic() - t0 < window:
                    ready, _, _ = select.select(list(socks), [], [], 0.2)
                    for s in ready:
                        name, p = socks[s]
                        try:
                            chunk = s.recv(65536)
                        except ConnectionResetError:
                            chunk = b""
                        if not chunk:
                            assert name == "deaf", "the client answering pings was dropped"
                            deaf_closed = time.monotonic() - t0
                            del socks[s]
                            continue
                        p.buf += chunk
                        for op, payload in p._frames():
                            if op == 0x9:
                                pings[name] += 1
                                if name == "answering":
                                    p.send_frame(0xA, payload)

            # the websockets client stays silent too (it answers pings itself)
            await asyncio.to_thread(watch)
            assert pings["answering"] >= 2 and pings["deaf"] >= 1, pings
            assert deaf_closed is not None, f"a client that never answers pings was still open after {window}s"
            # the silent but alive ones are still connected and served
            hb = await good.heartbeat()
            assert hb["payload"]["messages_received"] == 2
            answering.send_frame(0x1, HB)
            got = await asyncio.to_thread(answering.frames, lambda fs: any(op == 0x1 for op, _ in fs))
            assert any(op == 0x1 and strict_json(pl)["type"] == "heartbeat" for op, pl in got), got
            publish(r, svc.stream(), **odds_fields(svc.sport, event=ev))
            (m,) = await good.updates(1)
            assert m["payload"]["event_id"] == ev
            # the client that never read: dropped, its socket shows EOF after the ping
            assert await asyncio.to_thread(mute.closed_by_server, 5) is not None
            await asyncio.to_thread(u.verify, clients=2)
            for p in (answering, deaf, mute):
                p.close()
        finally:
            await good.close()

    with unharmed(svc, r, witnesses=False) as u:
        run(go(u))


# --------------------------------------------------------------------------
# client limits


async def ws_open(port, host="127.0.0.1", source=None):
    """(101, WSClient) or (status, None)."""
    kw = {"local_addr": (source, 0)} if source else {}
    try:
        ws = await websockets.connect(f"ws://{host}:{port}/ws", open_timeout=10, close_timeout=3,
                                      ping_interval=None, **kw)
    except InvalidStatusCode as e:
        return e.status_code, None
    return 101, WSClient(ws)


async def ws_placed(svc, source=None):
    """Connect (must be accepted); returns (client, worker number it is on)."""
    before = per_worker_clients(svc.metrics())
    status, c = await ws_open(svc.port, source=source)
    assert status == 101, status
    m = await asyncio.to_thread(svc.wait_metric, lambda m: sum(per_worker_clients(m)) == sum(before) + 1,
                                message="one more client")
    (w,) = [i + 1 for i, (a, b) in enumerate(zip(per_worker_clients(m), before)) if a > b]
    return c, w


async def all_receive(r, svc, clients):
    ev = f"x-{uid()}"
    for c in clients:
        await c.subscribe(events=[ev])
    publish(r, svc.stream(), **odds_fields(svc.sport, event=ev))
    for c in clients:
        (m,) = await c.updates(1)
        assert m["payload"]["event_id"] == ev


def test_max_clients_503_and_recovery(service, r):
    svc = service(MAX_CLIENTS="3")

    async def go(u):
        clients = []
        try:
            for _ in range(3):
                status, c = await ws_open(svc.port)
                assert status == 101
                clients.append(c)
            for _ in range(4):  # whichever worker takes it
                assert (await ws_open(svc.port))[0] == 503
            await clients.pop(0).close()
            await asyncio.to_thread(svc.wait_metric, lambda m: m["active_clients"] == 2,
                                    message="active_clients == 2")
            status, c = await ws_open(svc.port)
            assert status == 101
            clients.append(c)
            assert (await ws_open(svc.port))[0] == 503
            await all_receive(r, svc, clients)
            await asyncio.to_thread(u.verify, clients=3)
        finally:
            for c in clients:
                await c.close()

    with unharmed(svc, r, witnesses=False) as u:
        run(go(u))


def test_max_clients_per_ip_429_across_workers_and_after_worker_kill(service, r):
    port = free_port()
    svc = service(SERVER_ADDR=f":{port}", WORKERS="2", MAX_CLIENTS_PER_IP="2")

    async def go(u):
        open_ = []
        where = {}  # client -> the worker it is on
        local = []  # the clients from 127.0.0.1

        async def connect(source=None):
            c, w = await ws_placed(svc, source)
            open_.append(c)
            where[c] = w
            if source is None:
                local.append(c)
            return c, w

        async def close(c):
            n = svc.metrics()["active_clients"]
            await c.close()
            open_.remove(c)
            await asyncio.to_thread(svc.wait_metric, lambda m: m["active_clients"] == n - 1,
                                    message=f"active_clients == {n - 1}")

        try:
            # two clients from 127.0.0.1, one on each worker
            a, wa = await connect()
            for _ in range(30):
                b, wb = await connect()
                if wb != wa:
                    break
                await close(b)
            assert wb != wa, "could not get a connection onto the other worker"
            # a third from 127.0.0.1 is refused, whichever worker takes it:
            # each worker holds only one of the two, so the count is shared
            for _ in range(6):
                assert (await ws_open(svc.port))[0] == 429
            # another address is not affected (a socket to 127.0.0.2 that is
            # not bound gets source 127.0.0.1 on Linux: bind the source)
            await connect(source="127.0.0.2")
            # recovers when a client closes
            await close(a)
            await connect()
            assert (await ws_open(svc.port))[0] == 429
            await all_receive(r, svc, open_)

            # SIGKILL the worker holding b: the counts of its clients go
            victim = svc.worker_pids()[f"wsb-worker-{wb}"]
            os.kill(victim, signal.SIGKILL)
            await asyncio.to_thread(
                wait_until, lambda: svc.worker_pids().get(f"wsb-worker-{wb}") not in (None, victim),
                message="the killed worker replaced")
            await asyncio.to_thread(svc.wait_ready)
            for c in [c for c in open_ if where[c] == wb]:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(c.ws.recv(), 10)
                open_.remove(c)
                await c.close()
            local_left = len([c for c in open_ if c in local])
            m = await asyncio.to_thread(svc.wait_metric, lambda m: m["active_clients"] == len(open_),
                                        message=f"active_clients == {len(open_)}")
            accepted = 0
            for _ in range(4):
                status, c = await ws_open(svc.port)
                if status != 101:
                    assert status == 429
                    break
                open_.append(c)
                accepted += 1
            assert accepted == 2 - local_left, (accepted, local_left, m)
            await all_receive(r, svc, open_)
            await asyncio.to_thread(u.verify, clients=len(open_), restarted=(wb,))
        finally:
            for c in list(open_):
                await c.close()

    with unharmed(svc, r, witnesses=False) as u:
        run(go(u))


# --------------------------------------------------------------------------
# garbage on the port


def client_hello():
    """A real TLS ClientHello, as a browser would send to https://."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="odds.example")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    data = outgoing.read()
    assert data[:1] == b"\x16", data[:8]
    return data


def test_garbage_bytes_before_upgrade(strict, r):
    rng = random.Random(1)
    with unharmed(strict, r) as u:
        for size in (1, 3, 100, 5000, 70000):
            p = Peer(strict.port)
            with contextlib.suppress(OSError):
                p.send(bytes(rng.getrandbits(8) for _ in range(size)))
            assert p.closed_by_server(5) is not None, f"{size} random bytes: connection still open"
            assert b" 101 " not in p.buf.split(b"\r\n")[0], p.buf[:200]
            p.close()
        u.verify()


def test_garbage_frames_after_upgrade(strict, r):
    rng = random.Random(2)
    with unharmed(strict, r) as u:
        for i in range(8):
            junk = bytearray(rng.getrandbits(8) for _ in range(4096))
            if i % 2:  # a masked text frame header, then junk
                junk[0] = 0x81
                junk[1] |= 0x80
            p = Peer.websocket(strict.port)
            with contextlib.suppress(OSError):
                p.send(bytes(junk))
            texts, close = p.read_until_close(timeout=10)
            assert close is not None, f"junk {i}: dropped without a close frame"
            if junk[0] & 0x70:
                assert close == (1002, "reserved bits set without an extension"), (i, close)
            else:
                assert close[0] in (1002, 1007, 1009), (i, close)
            p.close()
        u.verify()


def test_tls_client_hello_on_the_plain_port(strict, r):
    with unharmed(strict, r) as u:
        p = Peer(strict.port)
        p.send(client_hello())
        assert p.closed_by_server(5) is not None, "still open after a ClientHello"
        assert not p.buf.startswith(b"HTTP/1.1 101"), p.buf[:200]
        p.close()
        u.verify()


def test_half_open_connections(strict, r):
    """Connect and send nothing, then close (FIN or RST); and some left open,
    which the server drops after HANDSHAKE_TIMEOUT (1 s)."""
    with unharmed(strict, r) as u:
        socks = [socket.create_connection(("127.0.0.1", strict.port), timeout=5) for _ in range(60)]
        time.sleep(0.3)
        for i, s in enumerate(socks[:50]):
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        for s in socks[50:]:
            s.settimeout(5)
            try:
                assert s.recv(1) == b"", "a silent connection was answered"
            except ConnectionResetError:
                pass
            s.close()
        assert strict.metrics()["total_connections"] == u.metrics["total_connections"] + len(u.witnesses)
        u.verify()


def test_connect_and_close_storm(strict, r):
    n = 2000
    with unharmed(strict, r) as u:
        for i in range(n):
            s = socket.socket()
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", strict.port))
            s.close()
        u.deliver()
        m = strict.metrics()
        assert m["total_connections"] == u.metrics["total_connections"] + len(u.witnesses), m
        u.verify()


# (request, expected answer: an HTTP status, or None for a hang-up without
# a status line; what lws 4.1.6 and the service answer today)
ABSURD_REQUESTS = [
    ("10 KB header value", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 10000 + b"\r\n\r\n", None),
    ("10 KB URI", b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", None),
    ("300 small headers", b"GET /health HTTP/1.1\r\nHost: x\r\n"
     + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n", 200),
    ("header line without a colon", b"GET /health HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", None),
    ("NUL byte in a header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", None),
    ("Content-Length -1", b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 405),
    ("Content-Length 10^23", b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
     405),
    ("chunked garbage", b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n", 405),
    ("upgrade without Sec-WebSocket-Key", b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", None),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 403),
    ("bare LF line ends", b"GET /health HTTP/1.1\nHost: x\n\n", 200),
    ("request line only garbage", b"\x00\x01\x02\x03 / HTTP/1.1\r\n\r\n", 403),
]


def test_absurd_http_requests(strict, r):
    answers = {}
    with unharmed(strict, r) as u:
        for name, data, want in ABSURD_REQUESTS:
            p = Peer(strict.port)
            with contextlib.suppress(OSError):
                p.send(data)
            try:
                status, _ = p.response(timeout=5)
            except AssertionError:
                status = "no answer"
            answers[name] = status
            if status is None:
                assert p.closed_by_server(5) is not None, name
            p.close()
        assert all(a != 101 for a in answers.values()), answers
        assert answers == {name: want for name, _, want in ABSURD_REQUESTS}, answers
        u.verify()


# --------------------------------------------------------------------------
# the stream


def nested(depth):
    """A `data` object `depth` objects deep (the root counts), with a
    scalar at the bottom."""
    v = 1
    for _ in range(depth - 1):
        v = {"n": v}
    return {"event_id": "deep", "n": v} if depth > 1 else {"event_id": "deep"}


MALFORMED = {
    "100 KB field (over MAX_ENTRY_SIZE)": lambda s: odds_fields(s, pad="p" * 100_000),
    "100 KB data": lambda s: {"data": json.dumps({"event_id": "big", "pad": "p" * 100_000})},
    "value not UTF-8": lambda s: odds_fields(s, outcome_name=b"\xff\xfe"),
    "field name not UTF-8": lambda s: {**odds_fields(s), b"\xff\xfe": "x"},
    "NUL in a value": lambda s: odds_fields(s, outcome_name="a\x00b"),
    "NUL in a field name": lambda s: {**odds_fields(s), "a\x00b": "x"},
    "price abc": lambda s: odds_fields(s, price="abc"),
    "price NaN": lambda s: odds_fields(s, price="NaN"),
    "price Infinity": lambda s: odds_fields(s, price="Infinity"),
    "price 1e999": lambda s: odds_fields(s, price="1e999"),
    "price 0x10": lambda s: odds_fields(s, price="0x10"),
    "data nested 50 deep": lambda s: {"data": json.dumps(nested(50))},
    "data nested 31 deep": lambda s: {"data": json.dumps(nested(31))},
    "data invalid JSON": lambda s: {"data": '{"event_id": "x", '},
    "data with trailing garbage": lambda s: {"data": '{"a":1}x'},
    "data two objects": lambda s: {"data": '{"a":1}{"b":2}'},
    "data not an object": lambda s: {"data": "[1, 2]"},
    "data number 1e999": lambda s: {"data": '{"a": 1e999}'},
    "data NaN literal": lambda s: {"data": '{"a": NaN}'},
    "data string not UTF-8": lambda s: {"data": b'{"a": "\xff"}'},
    "data lone surrogate escape": lambda s: {"data": '{"a": "\\ud800"}'},
    "1000 fields": lambda s: {f"f{i}": "v" for i in range(1000)},
    "257 fields": lambda s: {f"f{i}": "v" for i in range(257)},
}


def pending(r, stream, group):
    return r.xpending(stream, group)["pending"]


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_entry_is_skipped(dflt, r, name):
    good = f"good-{uid()}"
    with unharmed(dflt, r, flt={}) as u:
        before = dflt.metrics()["invalid_entries"]
        r.xadd(dflt.stream(), MALFORMED[name](dflt.sport))
        publish(r, dflt.stream(), **odds_fields(dflt.sport, event=good))
        for w in u.witnesses:
            m = w.next_json()  # the very next message is the good entry
            assert m["type"] == "odds_update" and m["payload"]["event_id"] == good, m
        dflt.wait_metric(lambda m: m["invalid_entries"] == before + 1, message=f"invalid_entries == {before + 1}")
        wait_until(lambda: pending(r, dflt.stream(), dflt.group) == 0, timeout=5, message="XPENDING 0")
        u.verify()


def test_malformed_entries_log_at_a_bounded_rate(service, r):
    svc = service()
    n = 500
    kinds = [lambda i: {"data": f"not json {i}"}, lambda i: odds_fields(svc.sport, price=f"x{i}"),
             lambda i: odds_fields(svc.sport, outcome_name=b"\xff" + str(i).encode()),
             lambda i: {f"f{k}": str(i) for k in range(300)}]
    with unharmed(svc, r, flt={}) as u:
        lines0 = len(svc.stderr_text().splitlines())
        publish_many(r, [(svc.stream(), kinds[i % len(kinds)](i)) for i in range(n)])
        publish(r, svc.stream(), **odds_fields(svc.sport, event="after"))
        for w in u.witnesses:
            assert w.next_json()["payload"]["event_id"] == "after"
        svc.wait_metric(lambda m: m["invalid_entries"] == n, message=f"invalid_entries == {n}")
        wait_until(lambda: pending(r, svc.stream(), svc.group) == 0, timeout=5, message="XPENDING 0")
        new = svc.stderr_text().splitlines()[lines0:]
        about = [ln for ln in new if " ingest: " in ln]
        assert 1 <= len(about) <= 25, f"{len(about)} ingest lines for {n} bad entries"
        u.verify()


CONTROL = "".join(chr(i) for i in range(1, 32)) + "\x7f\"\\/\u2028\u2029"
EDGE = {
    "unicode text": (lambda s: {**odds_fields(s, outcome_name="🏀 湖人 Ωmega — ☃ 𝄞"), "名前": "ラプターズ 🦖"},
                     lambda p: p["outcome_name"] == "🏀 湖人 Ωmega — ☃ 𝄞" and p["名前"] == "ラプターズ 🦖"),
    "control characters": (lambda s: odds_fields(s, outcome_name=CONTROL, note="\t\n\r"),
                           lambda p: p["outcome_name"] == CONTROL and p["note"] == "\t\n\r"),
    "data nested 30 deep": (lambda s: {"data": json.dumps(nested(30))},
                            lambda p: p == nested(30)),
    "data with control characters and escapes": (
        lambda s: {"data": json.dumps({"event_id": "esc", "t": CONTROL + "\ud83c\udfc0"})},
        lambda p: p["t"] == CONTROL + "🏀"),
    "256 fields": (lambda s: {**odds_fields(s), **{f"x{i:03d}": str(i) for i in range(256 - 13)}},
                   lambda p: len(p) == 256 and p["x242"] == "242"),
    "data with trailing whitespace": (lambda s: {"data": '{"event_id": "ws", "a": 1}  \r\n\t'},
                                      lambda p: p == {"event_id": "ws", "a": 1}),
}


@pytest.mark.parametrize("name", list(EDGE))
def test_edge_case_entry_is_delivered_as_valid_json(dflt, r, name):
    fields, check = EDGE[name]
    with unharmed(dflt, r, flt={}) as u:
        before = dflt.metrics()["invalid_entries"]
        r.xadd(dflt.stream(), fields(dflt.sport))
        for w in u.witnesses:
            raw = w.recv_text()
            assert not any(ord(ch) < 0x20 for ch in raw), f"raw control character in {raw!r:.300}"
            m = strict_json(raw)
            assert m["type"] == "odds_update", m
            assert check(m["payload"]), m["payload"]
        assert dflt.metrics()["invalid_entries"] == before
        u.verify()


def test_escaped_nul_in_data_is_not_truncated(dflt, r):
    good = f"good-{uid()}"
    with unharmed(dflt, r, flt={}) as u:
        before = dflt.metrics()["invalid_entries"]
        publish(r, dflt.stream(), data='{"event_id": "nul", "a": "x\\u0000y"}')
        publish(r, dflt.stream(), **odds_fields(dflt.sport, event=good))
        for w in u.witnesses:
            m = w.next_json()
            if m["payload"].get("event_id") == "nul":
                assert m["payload"]["a"] == "x\x00y", f"delivered altered: {m['payload']}"
                m = w.next_json()
            else:
                assert dflt.metrics()["invalid_entries"] == before + 1
            assert m["payload"]["event_id"] == good, m
        u.verify()
