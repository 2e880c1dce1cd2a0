"""The consistent board: ids, epoch, snapshot on subscribe, resume (README
"Consistency").

Contract lines -> tests:

* every update carries "stream" and "id"; ids per stream only increase
                                                     -> test_updates_carry_stream_and_increasing_ids
* the ack carries the epoch; every instance on one Redis reports the same
                                                     -> test_epoch_is_shared_and_in_every_ack_and_part
* snapshot after the ack: latest value per key, parts of at most
  SNAPSHOT_CHUNK, positions the same in every part, last on the final one
                                                     -> test_snapshot_is_the_latest_value_per_key
* a moved line replaces the old one; entries without event_id / outcome_name
  are live only                                      -> test_snapshot_keys
* nothing matches: one empty last part               -> test_snapshot_of_nothing
* snapshot + updates == truth while 1,000 entries/s flow, no gap, no duplicate
                                                     -> test_snapshot_then_updates_under_load
* "snapshot": false skips it; unsubscribe + subscribe is a new snapshot
                                                     -> test_snapshot_false_and_resubscribe
* resume after a disconnect / worker SIGKILL / ingest SIGKILL / on another
  instance: exactly the missed entries, resumed:true -> test_resume_*
* epoch_changed after Redis restarts empty; too_old; unknown_stream
                                                     -> test_resume_refused_*
* a lapped worker sends "lapped" snapshots            -> test_lapped_worker_sends_fresh_snapshots
* SNAPSHOT_TTL / OPPORTUNITY_TTL / SNAPSHOT_MAX_KEYS -> test_ttl_and_max_keys_eviction
"""

import asyncio
import os
import signal
import threading
import time

import pytest
import redis as redislib

from conftest import (
    child_pid,
    odds_fields,
    publish,
    run,
    uid,
    wait_until,
    ws_client,
    ws_connect,
)


def dec(x):
    return x.decode() if isinstance(x, bytes) else x


def sid(text):
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq or 0))


def key_of(p):
    return (p.get("event_id"), p.get("market_key"), p.get("book_key"), p.get("outcome_name"))


async def read_snapshot(c, timeout=10.0):
    """The parts of one snapshot, up to and including last: true."""
    parts = []
    while True:
        m = await c.recv_type("snapshot", timeout)
        parts.append(m)
        if m["payload"]["last"]:
            return parts


def items_of(parts):
    out = []
    for p in parts:
        out.extend(p["payload"]["items"])
    return out


def board_from(items):
    b = {}
    for it in items:
        b[key_of(it)] = it
    return b


def apply_update(board, last_ids, m):
    """Apply a live update to a board; ids per stream must increase."""
    s, i = m["stream"], sid(m["id"])
    assert s not in last_ids or i > last_ids[s], f"id {m['id']} not after {last_ids.get(s)} on {s}"
    last_ids[s] = i
    p = dict(m["payload"])
    if p.get("event_id") is not None and p.get("outcome_name") is not None:
        p["stream"], p["id"] = s, m["id"]
        board[key_of(p)] = p


def truth_from_redis(r, streams, upto=None):
    """The latest entry per key of what was published, as Redis has it."""
    b = {}
    for s in streams:
        for eid, f in r.xrange(s):
            eid = dec(eid)
            if upto is not None and sid(eid) > sid(upto.get(s, "0-0")):
                continue
            f = {dec(k): dec(v) for k, v in f.items()}
            if "event_id" not in f or "outcome_name" not in f:
                continue
            b[(f["event_id"], f.get("market_key"), f.get("book_key"), f["outcome_name"])] = (s, eid, f)
    return b


def assert_board_equals_truth(board, truth):
    assert set(board) == set(truth), (
        f"keys differ: missing {list(set(truth) - set(board))[:5]}, extra {list(set(board) - set(truth))[:5]}")
    for k, (s, eid, f) in truth.items():
        got = board[k]
        assert got["stream"] == s and got["id"] == eid, f"{k}: {got['stream']} {got['id']} != {s} {eid}"
        assert str(got.get("price")) == str(float(f["price"])) or float(got["price"]) == float(f["price"]), k


def test_updates_carry_stream_and_increasing_ids(service, r):
    svc = service()

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            ids = [publish(r, svc.stream(), **odds_fields(svc.sport, event=f"e{i}")) for i in range(5)]
            ups = await c.updates(5)
            assert [u["stream"] for u in ups] == [svc.stream()] * 5
            assert [u["id"] for u in ups] == [dec(i) for i in ids]

    run(go())


def test_epoch_is_shared_and_in_every_ack_and_part(service, r):
    svc = service()
    t = uid()
    other = service(SPORTS=svc.settings["SPORTS"], OPPORTUNITIES_STREAM=svc.settings["OPPORTUNITIES_STREAM"],
                    CONSUMER_ID=f"other{t}")
    for i in range(3):
        publish(r, svc.stream(), **odds_fields(svc.sport, event=f"x{i}"))

    async def go():
        acks = []
        for s in (svc, other):
            async with ws_client(s, keep_snapshots=True) as c:
                ack = await c.subscribe(snapshot_chunk_hint=None)
                parts = await read_snapshot(c)
                assert all(p["payload"]["epoch"] == ack["payload"]["epoch"] for p in parts)
                acks.append(ack["payload"]["epoch"])
        assert acks[0] and acks[0] == acks[1]

    run(go())


def test_snapshot_is_the_latest_value_per_key(service, r):
    svc = service(SNAPSHOT_CHUNK="7")
    for i in range(20):
        for v in range(3):
            publish(r, svc.stream(), **odds_fields(svc.sport, event=f"s{i}", price=str(100 + v)))
    wait_until(lambda: svc.metrics()["entries_published"] >= 60, message="published")

    async def go():
        async with ws_client(svc, keep_snapshots=True) as c:
            await c.subscribe()
            parts = await read_snapshot(c)
            assert len(parts) == 3
            assert [len(p["payload"]["items"]) for p in parts] == [7, 7, 6]
            assert [p["payload"]["last"] for p in parts] == [False, False, True]
            pos = parts[0]["payload"]["positions"]
            assert all(p["payload"]["positions"] == pos for p in parts)
            truth = truth_from_redis(r, [svc.stream()])
            assert_board_equals_truth(board_from(items_of(parts)), truth)
            assert pos[svc.stream()] == dec(r.xrevrange(svc.stream(), count=1)[0][0])
            assert svc.opp_stream in pos

    run(go())


def test_snapshot_keys(service, r):
    svc = service()
    publish(r, svc.stream(), **odds_fields(svc.sport, event="k1", point="-3.5", price="-110"))
    publish(r, svc.stream(), **odds_fields(svc.sport, event="k1", point="-4.5", price="-105"))
    publish(r, svc.stream(), **odds_fields(svc.sport, event="k2", outcome_name=None))
    publish(r, svc.stream(), **odds_fields(svc.sport, event="k3", event_id=None))
    wait_until(lambda: svc.metrics()["entries_published"] >= 4, message="published")

    async def go():
        async with ws_client(svc, keep_snapshots=True) as c:
            await c.subscribe()
            items = items_of(await read_snapshot(c))
            assert len(items) == 1, items
            assert items[0]["event_id"] == "k1" and items[0]["point"] == -4.5

    run(go())


def test_snapshot_of_nothing(service, r):
    svc = service()

    async def go():
        async with ws_client(svc, keep_snapshots=True) as c:
            await c.subscribe(events=["nothing-here"])
            parts = await read_snapshot(c)
            assert len(parts) == 1 and parts[0]["payload"]["items"] == [] and parts[0]["payload"]["last"]

    run(go())


def test_snapshot_false_and_resubscribe(service, r):
    svc = service()
    publish(r, svc.stream(), **odds_fields(svc.sport, event="f1"))
    wait_until(lambda: svc.metrics()["entries_published"] >= 1, message="published")

    async def go():
        async with ws_client(svc, keep_snapshots=True) as c:
            await c.send_json({"type": "subscribe", "payload": {"snapshot": False}})
            await c.recv_type("subscribed")
            await c.expect_silence(0.5)
            await c.unsubscribe()
            await c.subscribe()
            items = items_of(await read_snapshot(c))
            assert [i["event_id"] for i in items] == ["f1"]
            await c.unsubscribe()
            await c.subscribe()
            items = items_of(await read_snapshot(c))
            assert [i["event_id"] for i in items] == ["f1"]

    run(go())


class Publisher(threading.Thread):
    """Publishes odds over a small key space at about `rate` entries/s."""

    def __init__(self, url, stream, sport, rate=1000, keys=50):
        super().__init__(daemon=True)
        self.r = url.client() if hasattr(url, "client") else redislib.Redis.from_url(url)
        self.stream, self.sport, self.rate, self.keys = stream, sport, rate, keys
        self.stop_flag = threading.Event()
        self.n = 0

    def run(self):
        t0 = time.monotonic()
        while not self.stop_flag.is_set():
            pipe = self.r.pipeline()
            for _ in range(10):
                k = self.n % self.keys
                pipe.xadd(self.stream, odds_fields(self.sport, event=f"L{k}", price=str(self.n)))
                self.n += 1
            pipe.execute()
            ahead = self.n / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)

    def stop(self):
        self.stop_flag.set()
        self.join()


def test_snapshot_then_updates_under_load(service, r, redis_server):
    svc = service()
    pub = Publisher(redis_server, svc.stream(), svc.sport)
    pub.start()
    try:
        time.sleep(1.0)

        async def go():
            async with ws_client(svc, keep_snapshots=True) as c:
                await c.subscribe()
                parts = await read_snapshot(c)
                board = board_from(items_of(parts))
                pos = parts[0]["payload"]["positions"]
                last = {s: sid(i) for s, i in pos.items()}
                seen = []
                t_end = time.monotonic() + 1.5
                while time.monotonic() < t_end:
                    m = await c.recv_json(5)
                    if m["type"] in ("odds_update", "opportunity"):
                        seen.append(m["id"])
                        apply_update(board, last, m)
                pub.stop()
                # Read what is left, then compare with Redis.
                final = dec(r.xrevrange(svc.stream(), count=1)[0][0])
                while last.get(svc.stream(), (0, 0)) < sid(final):
                    m = await c.recv_json(5)
                    if m["type"] in ("odds_update", "opportunity"):
                        seen.append(m["id"])
                        apply_update(board, last, m)
                after = [dec(e) for e, _ in r.xrange(svc.stream(), "(" + pos[svc.stream()])]
                assert seen == after, "updates after the snapshot are not exactly the entries after positions"
                assert_board_equals_truth(board, truth_from_redis(r, [svc.stream()]))

        run(go())
    finally:
        if pub.is_alive():
            pub.stop()


async def board_session(svc, timeout=10.0, **sub):
    """Connect, subscribe, read the snapshot; returns (client, board, last ids, epoch)."""
    c = await ws_connect(svc.port, keep_snapshots=True)
    ack = await c.subscribe(**sub)
    parts = await read_snapshot(c, timeout)
    board = board_from(items_of(parts))
    last = {s: sid(i) for s, i in parts[0]["payload"]["positions"].items()}
    return c, board, last, ack["payload"]["epoch"]


def positions_text(last):
    return {s: f"{a}-{b}" for s, (a, b) in last.items()}


async def drain_updates(c, board, last, seconds):
    ids = []
    t_end = time.monotonic() + seconds
    while True:
        left = t_end - time.monotonic()
        if left <= 0:
            return ids
        try:
            m = await c.recv_json(left)
        except AssertionError:
            return ids
        if m["type"] in ("odds_update", "opportunity"):
            ids.append(m["id"])
            apply_update(board, last, m)


def resume_roundtrip(svc_a, svc_b, r, stream, sport, between):
    """Board on svc_a, disconnect, `between()` (publishes some), resume on
    svc_b: exactly the missed entries arrive, resumed:true."""

    async def go():
        c, board, last, epoch = await board_session(svc_a)
        for i in range(5):
            publish(r, stream, **odds_fields(sport, event=f"r{i}", price=str(i)))
        await drain_updates(c, board, last, 1.0)
        await c.close()
        missed_from = positions_text(last)[stream]
        await asyncio.get_running_loop().run_in_executor(None, between)
        c2 = await ws_connect(svc_b.port, keep_snapshots=True)
        ack = await c2.subscribe(resume={"epoch": epoch, "positions": positions_text(last)})
        assert ack["payload"]["resumed"] is True, ack
        assert ack["payload"]["epoch"] == epoch
        ids = await drain_updates(c2, board, last, 1.5)
        want = [dec(e) for e, _ in r.xrange(stream, "(" + missed_from)]
        assert ids == want
        assert not c2.snapshots and not any(m.get("type") == "snapshot" for m in c2.backlog)
        assert_board_equals_truth(board, truth_from_redis(r, [stream]))
        await c2.close()

    run(go())


def test_resume_after_disconnect(service, r):
    svc = service()

    def between():
        for i in range(7):
            publish(r, svc.stream(), **odds_fields(svc.sport, event=f"m{i}", price=str(i)))
        wait_until(lambda: svc.metrics()["entries_published"] >= 12, message="published")

    resume_roundtrip(svc, svc, r, svc.stream(), svc.sport, between)


def test_resume_after_worker_sigkill(service, r):
    svc = service(WORKERS="1")

    def between():
        os.kill(child_pid(svc, "wsb-worker-1"), signal.SIGKILL)
        for i in range(7):
            publish(r, svc.stream(), **odds_fields(svc.sport, event=f"m{i}", price=str(i)))
        wait_until(lambda: svc.http("/health").status == 200 and svc.metrics()["entries_published"] >= 12,
                   message="worker back")

    resume_roundtrip(svc, svc, r, svc.stream(), svc.sport, between)


def test_resume_after_ingest_sigkill(service, r):
    svc = service()

    def between():
        os.kill(child_pid(svc, "wsb-ingest"), signal.SIGKILL)
        for i in range(7):
            publish(r, svc.stream(), **odds_fields(svc.sport, event=f"m{i}", price=str(i)))
        wait_until(lambda: svc.metrics()["entries_published"] >= 7, message="ingest back")

    resume_roundtrip(svc, svc, r, svc.stream(), svc.sport, between)


def test_resume_on_another_instance(service, r):
    svc = service()
    t = uid()
    other = service(SPORTS=svc.settings["SPORTS"], OPPORTUNITIES_STREAM=svc.settings["OPPORTUNITIES_STREAM"],
                    CONSUMER_ID=f"other{t}")

    def between():
        for i in range(7):
            publish(r, svc.stream(), **odds_fields(svc.sport, event=f"m{i}", price=str(i)))
        time.sleep(0.5)

    resume_roundtrip(svc, other, r, svc.stream(), svc.sport, between)


def test_resume_refused_unknown_stream(service, r):
    svc = service()

    async def go():
        c, board, last, epoch = await board_session(svc)
        await c.close()
        partial = {svc.stream(): positions_text(last)[svc.stream()]}
        c2 = await ws_connect(svc.port, keep_snapshots=True)
        ack = await c2.subscribe(resume={"epoch": epoch, "positions": partial})
        assert ack["payload"]["resumed"] is False and ack["payload"]["reason"] == "unknown_stream"
        await read_snapshot(c2)
        await c2.close()
        c4 = await ws_connect(svc.port, keep_snapshots=True)
        ack = await c4.subscribe(resume={"epoch": "not-" + epoch, "positions": positions_text(last)})
        assert ack["payload"]["resumed"] is False and ack["payload"]["reason"] == "epoch_changed"
        await read_snapshot(c4)
        await c4.close()

    run(go())


async def miss_and_resume(svc, r, n, after_flood=None):
    """A board, a disconnect, n entries missed (then after_flood()), and a
    resume: (ack, client, board, last ids, positions resumed from)."""
    c, board, last, epoch = await board_session(svc)
    await c.close()
    pos = positions_text(last)
    pipe = r.pipeline()
    for i in range(n):
        pipe.xadd(svc.stream(), odds_fields(svc.sport, event=f"o{i % 10}", price=str(i)))
    pipe.execute()
    wait_until(lambda: svc.metrics()["entries_published"] >= n, message="published")
    if after_flood is not None:
        after_flood()
    c2 = await ws_connect(svc.port, keep_snapshots=True)
    ack = await c2.subscribe(resume={"epoch": epoch, "positions": pos})
    return ack, c2, board, last, pos


def test_resume_beyond_the_ring_replays_from_redis(service, r):
    """The ring holds 1,024 frames; 3,000 are missed: they come from Redis
    (XRANGE), then the ring, then live, each exactly once."""
    svc = service(RING_SIZE="1024")

    async def go():
        ack, c2, board, last, pos = await miss_and_resume(svc, r, 3000)
        assert ack["payload"]["resumed"] is True, ack
        ids = await drain_updates(c2, board, last, 2.0)
        want = [dec(e) for e, _ in r.xrange(svc.stream(), "(" + pos[svc.stream()])]
        assert len(ids) == 3000 and ids == want
        assert not c2.snapshots
        assert_board_equals_truth(board, truth_from_redis(r, [svc.stream()]))
        await c2.close()

    run(go())


def test_resume_refused_too_old(service, r):
    """More missed entries than RESUME_MAX_ENTRIES, or entries trimmed from
    the stream: too_old, and a snapshot that is the truth."""
    svc = service(RING_SIZE="1024", RESUME_MAX_ENTRIES="100")

    async def go():
        ack, c3, board, last, pos = await miss_and_resume(svc, r, 3000)
        assert ack["payload"]["resumed"] is False and ack["payload"]["reason"] == "too_old", ack
        items = items_of(await read_snapshot(c3))
        assert_board_equals_truth(board_from(items), truth_from_redis(r, [svc.stream()]))
        await c3.close()

    run(go())


def test_resume_refused_when_the_stream_was_trimmed(service, r):
    svc = service(RING_SIZE="1024")

    async def go():
        ack, c3, board, last, pos = await miss_and_resume(
            svc, r, 2000, after_flood=lambda: r.xtrim(svc.stream(), maxlen=100))
        assert ack["payload"]["resumed"] is False and ack["payload"]["reason"] == "too_old", ack
        await read_snapshot(c3)
        await c3.close()

    run(go())


def test_a_new_instance_serves_the_history_in_its_snapshot(service, r):
    """Prices published before the service started are on the first board
    (loaded from the stream's history within SNAPSHOT_TTL), and so are those
    published while it was stopped, after a restart."""
    t = uid()
    sport = f"t{t}_nba"
    stream = f"odds.normalized.{sport}"
    for i in range(30):
        publish(r, stream, **odds_fields(sport, event=f"h{i % 10}", price=str(i)))
    svc = service(SPORTS=sport)

    async def board():
        c, b, last, epoch = await board_session(svc)
        await c.close()
        return b, last

    b, last = run(board())
    assert_board_equals_truth(b, truth_from_redis(r, [stream]))
    assert last[stream] == sid(dec(r.xrevrange(stream, count=1)[0][0]))
    svc.stop()
    for i in range(30, 45):
        publish(r, stream, **odds_fields(sport, event=f"h{i % 15}", price=str(i)))
    svc2 = service(SPORTS=sport, OPPORTUNITIES_STREAM=svc.settings["OPPORTUNITIES_STREAM"],
                   CONSUMER_ID=svc.settings["CONSUMER_ID"])
    wait_until(lambda: svc2.metrics()["snapshot"]["keys"] >= 15, message="table loaded")
    svc = svc2
    b, last = run(board())
    assert_board_equals_truth(b, truth_from_redis(r, [stream]))


def test_epoch_changes_when_redis_restarts_empty(service, redis_factory):
    srv = redis_factory()
    r2 = srv.client()
    svc = service(REDIS_URL=srv.url)
    publish(r2, svc.stream(), **odds_fields(svc.sport, event="before"))
    wait_until(lambda: svc.metrics()["entries_published"] >= 1, message="published")

    async def go():
        c, board, last, epoch = await board_session(svc)
        await c.close()
        srv.stop()
        srv.start()
        wait_until(lambda: svc.http("/health").status == 200, timeout=15, message="reconnected")
        publish(srv.client(), svc.stream(), **odds_fields(svc.sport, event="after"))
        wait_until(lambda: svc.metrics()["entries_published"] >= 2, timeout=10, message="published")
        c2 = await ws_connect(svc.port, keep_snapshots=True)
        ack = await c2.subscribe(resume={"epoch": epoch, "positions": positions_text(last)})
        assert ack["payload"]["resumed"] is False and ack["payload"]["reason"] == "epoch_changed", ack
        assert ack["payload"]["epoch"] != epoch
        parts = await read_snapshot(c2)
        assert all(p["payload"]["epoch"] == ack["payload"]["epoch"] for p in parts)
        assert [i["event_id"] for i in items_of(parts)] == ["after"]
        await c2.close()

    run(go())


def test_ttl_and_max_keys_eviction(service, r):
    svc = service(SNAPSHOT_MAX_KEYS="16", OPPORTUNITY_TTL="1", SNAPSHOT_TTL="2")
    for i in range(20):
        publish(r, svc.stream(), **odds_fields(svc.sport, event=f"x{i}"))
    publish(r, svc.opp_stream, event_id="o1", market_key="h2h", book_key="b", outcome_name="A",
            opportunity_id="op1")
    m = svc.wait_metric(lambda m: m["entries_published"] >= 21, message="published")
    m = svc.metrics()["snapshot"]
    assert m["keys"] == 16 and m["evicted_full"] >= 5, m

    async def snap():
        async with ws_client(svc, keep_snapshots=True) as c:
            await c.subscribe()
            return items_of(await read_snapshot(c))

    items = run(snap())
    # the oldest keys went: x0..x4 (and the opportunity is one of the 16)
    assert {i["event_id"] for i in items} == {f"x{i}" for i in range(5, 20)} | {"o1"}
    time.sleep(1.5)
    items = run(snap())
    assert "o1" not in {i["event_id"] for i in items}  # OPPORTUNITY_TTL
    time.sleep(1.5)
    assert run(snap()) == []  # SNAPSHOT_TTL
    svc.wait_metric(lambda m: m["snapshot"]["keys"] == 0 and m["snapshot"]["evicted_ttl"] >= 16,
                    message="expired keys leave the table")
