"""Slow clients get the latest price, not a disconnect (README "Backpressure").

Contract lines -> tests:

* past CONFLATE_AT a newer update of a waiting key replaces it, marked
  "conflated": true; the client is not cut and ends with every key's last
  value                                               -> test_a_client_that_stops_reading_ends_right
* per key, ids only increase                          -> (same)
* opportunities and entries without a key are never conflated away
                                                      -> test_opportunities_are_never_conflated
* cut only at a bound: distinct keys > CLIENT_BUFFER, bytes >
  CLIENT_BUFFER_BYTES, oldest message > CLIENT_MAX_LAG; 1008 naming it,
  counted per reason                                  -> test_cut_when_*
* "conflate_ms": at most one update per key per N ms, the latest, echoed in
  the ack; refused outside 0..60000                   -> test_requested_conflation_*
* heartbeat: conflated, queue_bytes; /metrics: conflated_clients,
  conflated_updates                                   -> test_a_client_that_stops_reading_ends_right
"""

import json
import time

import pytest

from conftest import RawWS, odds_fields, publish, publish_many, run, wait_until, ws_client


def sid(text):
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq or 0))


def burst(r, svc, n, keys, start=0, tag="k", **over):
    """n odds entries cycling over `keys` events; entry i has price i."""
    entries = [(svc.stream(), odds_fields(svc.sport, event=f"{tag}{i % keys}", price=str(i), **over))
               for i in range(start, start + n)]
    for i in range(0, len(entries), 500):
        publish_many(r, entries[i:i + 500])


def last_values(r, stream):
    """event_id -> (id, price) of the last entry per key, from Redis."""
    out = {}
    for eid, f in r.xrange(stream):
        out[f["event_id"]] = (eid, float(f["price"]))
    return out


class Board:
    """A client's view: last id and price per key; ids per key increase."""

    def __init__(self):
        self.keys = {}
        self.conflated = 0
        self.updates = 0

    def apply(self, m):
        p = m["payload"]
        k = p["event_id"]
        i = sid(m["id"])
        assert k not in self.keys or i > sid(self.keys[k][0]), f"{k}: {m['id']} after {self.keys[k][0]}"
        self.keys[k] = (m["id"], float(p["price"]))
        self.updates += 1
        if m.get("conflated"):
            self.conflated += 1


def read_all(ws, board, until, timeout=20.0):
    """Read updates into board until until(board) holds."""
    deadline = time.monotonic() + timeout
    while not until(board):
        assert time.monotonic() < deadline, f"board incomplete after {timeout}s: {len(board.keys)} keys"
        m = json.loads(ws.recv_text(timeout=max(0.1, deadline - time.monotonic())))
        if m["type"] == "odds_update":
            board.apply(m)


def test_a_client_that_stops_reading_ends_right(service, r):
    svc = service(WORKERS="1")
    slow = RawWS(svc.port, rcvbuf=4096)
    slow.send_json({"type": "subscribe", "payload": {"snapshot": False}})
    assert json.loads(slow.recv_text())["type"] == "subscribed"
    # 5,000 updates over 50 keys while the client reads nothing for 2 s
    t0 = time.monotonic()
    # (large enough that the kernel's socket buffers cannot take it all)
    burst(r, svc, 5000, 50, pad="x" * 2000)
    m = svc.wait_metric(lambda m: m["entries_published"] >= 5000, message="published")
    m = svc.wait_metric(lambda m: m["conflated_clients"] == 1, message="conflated mode")
    time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
    truth = last_values(r, svc.stream())
    board = Board()
    read_all(slow, board, lambda b: all(b.keys.get(k) == v for k, v in truth.items()))
    assert board.conflated > 0, "no update was marked conflated"
    assert board.updates < 5000
    m = svc.metrics()
    assert m["conflated_updates"] >= 5000 - board.updates - 50, m
    assert m["slow_disconnects"] == 0 and m["active_clients"] == 1, m
    # caught up: back to normal, and the heartbeat says so
    slow.send_json({"type": "heartbeat", "payload": {}})
    while True:
        hb = json.loads(slow.recv_text())
        if hb["type"] == "heartbeat":
            break
    assert hb["payload"]["conflated"] is False and hb["payload"]["queue_bytes"] == 0, hb
    svc.wait_metric(lambda m: m["conflated_clients"] == 0, message="back to normal")
    slow.close()


def test_heartbeat_shows_conflated_mode(service, r):
    svc = service(WORKERS="1", CLIENT_BUFFER="16")
    slow = RawWS(svc.port, rcvbuf=4096)
    slow.send_json({"type": "subscribe", "payload": {"snapshot": False}})
    assert json.loads(slow.recv_text())["type"] == "subscribed"
    burst(r, svc, 2000, 8, pad="x" * 4000)
    svc.wait_metric(lambda m: m["conflated_clients"] == 1, message="conflated mode")
    slow.send_json({"type": "heartbeat", "payload": {}})
    hb = None
    deadline = time.monotonic() + 10
    while hb is None:
        assert time.monotonic() < deadline
        m = json.loads(slow.recv_text())
        if m["type"] == "heartbeat":
            hb = m
    # the reply came behind the queue: it was conflated when it was queued
    assert hb["payload"]["conflated"] is True and hb["payload"]["queue_bytes"] > 0, hb
    slow.close()


def test_opportunities_are_never_conflated(service, r):
    svc = service(WORKERS="1", CLIENT_BUFFER="16")
    slow = RawWS(svc.port, rcvbuf=4096)
    slow.send_json({"type": "subscribe", "payload": {"snapshot": False}})
    assert json.loads(slow.recv_text())["type"] == "subscribed"
    opps = [(svc.opp_stream, {"opportunity_id": f"o{i}", "event_id": "e1", "market_key": "h2h",
                              "book_key": "b", "outcome_name": "A", "pad": "x" * 200})
            for i in range(200)]
    publish_many(r, opps)
    burst(r, svc, 200, 2)  # odds on top, conflated
    svc.wait_metric(lambda m: m["entries_published"] >= 400, message="published")
    time.sleep(0.5)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 200:
        assert time.monotonic() < deadline, f"{len(got)} opportunities"
        m = json.loads(slow.recv_text())
        if m["type"] == "opportunity":
            assert not m.get("conflated")
            got.append(m["payload"]["opportunity_id"])
    assert got == [f"o{i}" for i in range(200)]
    slow.close()


def cut(svc, r, settings_check, n, keys, pad, reason_part, counter):
    slow = RawWS(svc.port, rcvbuf=4096)
    slow.send_json({"type": "subscribe", "payload": {"snapshot": False}})
    assert json.loads(slow.recv_text())["type"] == "subscribed"
    burst(r, svc, n, keys, pad=pad)
    m = svc.wait_metric(lambda m: m[counter] >= 1, timeout=15, message=counter)
    assert m["slow_disconnects"] >= 1
    texts, close = slow.read_until_close(timeout=15)
    assert close is not None and close[0] == 1008 and reason_part in close[1], close
    slow.close()


def test_cut_when_too_many_keys_wait(service, r):
    svc = service(WORKERS="1", CLIENT_BUFFER="16")
    cut(svc, r, None, 3000, 1000, "x" * 3000, "too many keys", "slow_disconnects_keys")


def test_cut_when_too_many_bytes_wait(service, r):
    svc = service(WORKERS="1", CLIENT_BUFFER="100000", CLIENT_BUFFER_BYTES="65536")
    cut(svc, r, None, 2000, 2000, "x" * 4000, "CLIENT_BUFFER_BYTES", "slow_disconnects_bytes")


def test_cut_when_updates_wait_too_long(service, r):
    svc = service(WORKERS="1", CLIENT_MAX_LAG="1", SEND_TIMEOUT="60")
    cut(svc, r, None, 2000, 5, "x" * 4000, "CLIENT_MAX_LAG", "slow_disconnects_lag")


def test_requested_conflation_bounds_the_rate_per_key(service, r):
    svc = service(WORKERS="1")

    async def go():
        async with ws_client(svc) as c:
            ack = await c.subscribe(snapshot=False, conflate_ms=250)
            assert ack["payload"]["conflate_ms"] == 250
            t0 = time.monotonic()
            seen = []  # (receive time, key)
            # ~1.5 s of 1,000 entries/s over 5 keys
            for i in range(15):
                burst(r, svc, 100, 5, start=i * 100)
                while True:
                    try:
                        m = await c.recv_json(0.1)
                    except AssertionError:
                        break
                    if m["type"] == "odds_update":
                        seen.append((time.monotonic(), m))
            truth = last_values(r, svc.stream())
            board = Board()
            for _, m in seen:
                board.apply(m)
            deadline = time.monotonic() + 5
            while any(board.keys.get(k) != v for k, v in truth.items()):
                assert time.monotonic() < deadline, "final values not delivered"
                m = await c.recv_json(5)
                if m["type"] == "odds_update":
                    seen.append((time.monotonic(), m))
                    board.apply(m)
            elapsed = time.monotonic() - t0
            per_key = {}
            for t, m in seen:
                per_key.setdefault(m["payload"]["event_id"], []).append(t)
            for k, times in per_key.items():
                # at most one per 250 ms (plus the first), however fast they came
                assert len(times) <= elapsed / 0.25 + 2, (k, len(times), elapsed)
            assert sum(len(v) for v in per_key.values()) < 1500 / 4

    run(go())


@pytest.mark.parametrize("bad", [-1, 60001, 1.5, "250", True])
def test_requested_conflation_refuses_bad_values(service, bad):
    svc = service(WORKERS="1")

    async def go():
        async with ws_client(svc) as c:
            await c.send_json({"type": "subscribe", "payload": {"conflate_ms": bad}})
            err = await c.recv_type("error")
            assert err["payload"]["code"] == "invalid_filter" and "conflate_ms" in err["payload"]["message"]

    run(go())
