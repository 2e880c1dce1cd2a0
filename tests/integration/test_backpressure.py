"""Backpressure: a client that does not read.

Contract lines -> tests:

* per-client queue of CLIENT_BUFFER messages; when full the message is
  dropped for that client, counted in dropped_messages, and the client is
  disconnected with close code 1008 and a reason containing "slow"
                                        -> test_slow_client_is_cut_off_with_1008
* no other client notices: a normal reading client on the same stream gets
  every entry, in order, and stays connected
                                        -> test_slow_client_is_cut_off_with_1008,
                                           test_burst_larger_than_client_buffer_reaches_a_reading_client
* slices of the ring larger than CLIENT_BUFFER: a client taking every entry
  is written to as its queue fills, clients with narrow filters get theirs,
  all in order, nobody is cut
                                        -> test_burst_with_mixed_filters_reaches_every_reading_client
* a worker that falls more than RING_SIZE entries behind loses the
  overwritten ones for its clients: counted in ring_missed (total and per
  worker), logged, and it goes on with what is still in the ring
                                        -> test_worker_lapped_by_the_ring_counts_and_logs_the_loss
"""

import json
import os
import signal
import threading
import time

from conftest import (
    RawWS,
    odds_fields,
    publish_many,
    run,
    wait_until,
    ws_client,
)

PAD = "x" * 2048


class FastReader:
    """A normal client that reads as fast as it can, in a thread, on a raw
    socket with a large receive buffer: it stands for a healthy consumer."""

    def __init__(self, port, flt=None):
        self.ws = RawWS(port, rcvbuf=4 << 20)
        self.ws.send_json({"type": "subscribe", "payload": flt or {}})
        ack = json.loads(self.ws.recv_text())
        assert ack["type"] == "subscribed", ack
        self.seqs = []
        self.snapshots = []
        self.close = None
        self.error = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.ws.sock.settimeout(0.2)
            while not self.stop.is_set():
                for op, payload in self.ws._frames():
                    if op == 0x8:
                        self.close = payload
                        return
                    if op == 0x1:
                        m = json.loads(payload)
                        if m["type"] == "odds_update":
                            self.seqs.append(int(m["payload"]["seq"]))
                        elif m["type"] == "snapshot":
                            self.snapshots.append(m)
                try:
                    chunk = self.ws.sock.recv(1 << 20)
                except TimeoutError:
                    continue
                if not chunk:
                    self.close = b"EOF"
                    return
                self.ws.buf += chunk
        except Exception as e:  # reported by the test
            self.error = e

    def wait_for(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while len(self.seqs) < n and self.close is None and self.error is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return list(self.seqs)

    def finish(self):
        self.stop.set()
        self.thread.join(5)
        self.ws.close()


def publish_batch(r, svc, start, n, distinct=False):
    """Entries start..start+n-1 (field seq); one key, or each its own."""
    publish_many(r, [(svc.stream(), odds_fields(svc.sport, event=f"bp{i}" if distinct else "bp",
                                                seq=str(i), pad=PAD))
                     for i in range(start, start + n)])
    return start + n


def test_slow_client_is_cut_off_with_1008(service, r):
    svc = service(CLIENT_BUFFER="4")
    slow = RawWS(svc.port, rcvbuf=4096)
    slow.send_json({"type": "subscribe", "payload": {}})
    assert json.loads(slow.recv_text())["type"] == "subscribed"
    fast = FastReader(svc.port)
    published = 0
    try:
        # publish until the slow client's queue overflows (3000 entries of
        # 2 KB normally do; up to 12000 in case the kernel buffers are large)
        # (each entry its own key: the slow client's queue cannot be
        # conflated, and more keys wait than CLIENT_BUFFER)
        while published < 12000:
            published = publish_batch(r, svc, published, 1000, distinct=True)
            if svc.metrics()["dropped_messages"] > 0 and published >= 3000:
                break
        m = svc.wait_metric(lambda m: m["dropped_messages"] > 0, message="dropped_messages > 0")
        assert sum(w["dropped_messages"] for w in m["workers"]) == m["dropped_messages"]

        # the slow client: its data, then a close frame 1008 "...slow..."
        _, close = slow.read_until_close(timeout=15)
        assert close is not None, "the slow client was dropped without a close frame"
        code, reason = close
        assert code == 1008, close
        assert "slow" in reason.lower(), close

        # the reading client got every entry in order and is still connected
        seqs = fast.wait_for(published)
        assert fast.error is None, fast.error
        assert fast.close is None, f"the reading client was disconnected too: {fast.close!r}"
        assert seqs == list(range(published)), \
            f"reading client got {len(seqs)} of {published} (first gap at {first_gap(seqs)})"
    finally:
        fast.finish()
        slow.close()
    m = svc.wait_metric(lambda m: m["active_clients"] == 0, message="active_clients == 0")
    assert m["dropped_messages"] >= 1


def first_gap(seqs):
    for i, s in enumerate(seqs):
        if s != i:
            return i
    return len(seqs)


def test_burst_larger_than_client_buffer_reaches_a_reading_client(service, r):
    """A burst of entries far larger than CLIENT_BUFFER is not, by itself, a
    slow client: a client that reads keeps up through the socket buffers."""
    svc = service(CLIENT_BUFFER="16")
    n = 1000

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(events=["bp"])
            publish_batch(r, svc, 0, n)
            got = await c.updates(n, timeout=30)
            assert [int(m["payload"]["seq"]) for m in got] == list(range(n))
            hb = await c.heartbeat()
            assert hb["payload"]["buffer_size"] == 16

    run(go())
    m = svc.metrics()
    assert m["dropped_messages"] == 0, m


def test_burst_with_mixed_filters_reaches_every_reading_client(service, r):
    svc = service(CLIENT_BUFFER="16")
    everything = FastReader(svc.port)
    narrow = [FastReader(svc.port, {"events": [f"mx{k}"]}) for k in range(5)]
    n = 2000
    try:
        publish_many(r, [(svc.stream(), odds_fields(svc.sport, event=f"mx{i % 10}", seq=str(i),
                                                    pad=PAD)) for i in range(n)])
        seqs = everything.wait_for(n)
        assert everything.error is None and everything.close is None, \
            (everything.error, everything.close)
        assert seqs == list(range(n)), f"got {len(seqs)} of {n} (first gap at {first_gap(seqs)})"
        for k, c in enumerate(narrow):
            want = list(range(k, n, 10))
            got = c.wait_for(len(want))
            assert c.error is None and c.close is None, (k, c.error, c.close)
            assert got == want, (k, len(got), len(want))
    finally:
        for c in [everything] + narrow:
            c.finish()
    m = svc.metrics()
    assert m["dropped_messages"] == 0 and m["slow_disconnects"] == 0, m


def test_worker_lapped_by_the_ring_counts_and_logs_the_loss(service, r):
    """A worker that falls a ring behind loses frames: it counts and logs
    the loss, and its clients' boards are made right again by a fresh
    snapshot (reason "lapped" on its first part) holding the latest value of
    every key, then the live stream."""
    svc = service(RING_SIZE="1024", WORKERS="1")
    (worker,) = svc.worker_pids().values()
    fast = FastReader(svc.port)
    n = 3000
    try:
        wait_until(lambda: fast.snapshots and fast.snapshots[-1]["payload"]["last"], message="first snapshot")
        first = len(fast.snapshots)
        # a stopped worker reads nothing while the ingest fills the ring
        os.kill(worker, signal.SIGSTOP)
        try:
            publish_batch(r, svc, 0, n)
            # the ingest acks an entry once it is in the ring (the worker,
            # which answers /metrics, cannot be asked)
            last = r.xrevrange(svc.stream(), count=1)[0][0]
            deadline = time.monotonic() + 15
            while True:
                (g,) = [g for g in r.xinfo_groups(svc.stream()) if g["name"] == svc.group]
                if g["last-delivered-id"] == last and g["pending"] == 0:
                    break
                assert time.monotonic() < deadline, f"the ingest did not publish the batch: {g}"
                time.sleep(0.05)
        finally:
            os.kill(worker, signal.SIGCONT)
        m = svc.wait_metric(lambda m: m["ring_missed"] > 0, message="ring_missed > 0")
        assert m["workers"][0]["ring_missed"] == m["ring_missed"]
        wait_until(lambda: len(fast.snapshots) > first and fast.snapshots[-1]["payload"]["last"],
                   timeout=15, message="a fresh snapshot")
        assert fast.error is None and fast.close is None, (fast.error, fast.close)
        fresh = fast.snapshots[first:]
        assert fresh[0]["payload"].get("reason") == "lapped", fresh[0]["payload"]
        # every entry of the batch has the same key: the board holds the last
        (item,) = [it for p in fresh for it in p["payload"]["items"]]
        assert item["seq"] == str(n - 1) and item["id"] == last, item
        assert fresh[-1]["payload"]["positions"][svc.stream()] == last
        assert svc.metrics()["snapshot"]["lapped"] >= 1
        # and the live stream follows
        before = len(fast.seqs)
        publish_batch(r, svc, n, 5)
        seqs = fast.wait_for(before + 5, timeout=10)
        assert seqs[before:] == list(range(n, n + 5)), seqs[before:]
    finally:
        fast.finish()
    assert "fell behind the ring" in svc.stderr_text()
    assert svc.health()[0] == 200
    assert list(svc.worker_pids().values()) == [worker]
