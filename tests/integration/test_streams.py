"""Redis Streams in: entry encodings, malformed entries, consumer groups.

Contract lines -> tests:

* flat odds entry: numeric fields -> JSON numbers; "", "null", absent -> null;
  other fields stay strings ("12345" stays a string); extras passed through
  as strings; all 13 seed fields present               -> test_flat_entry_types_and_nulls
* not-finite / non-numeric value makes it malformed     -> test_malformed_entries_are_skipped_counted_and_acked
* single `data` / `payload` field holding a JSON object
  is the payload as is                                  -> test_json_field_is_the_payload_as_is
* missing sport_key in a JSON entry: taken from the stream
  for filtering only, not added                         -> test_json_entry_without_sport_key_filters_by_stream_sport
* missing sport_key in a flat odds entry: taken from the
  stream name and present in the payload                -> test_flat_entry_without_sport_key_gets_stream_sport
* opportunities stream -> type `opportunity`, both
  encodings, same filtering                             -> test_opportunities_are_delivered_as_opportunity
* a dimension the entry lacks does not exclude it       -> test_opportunity_missing_dimension_does_not_exclude
* malformed entry (`data` not an object, invalid JSON,
  price "abc" ...): skipped, counted (invalid_entries),
  acked, never blocks the next good entry               -> test_malformed_entries_are_skipped_counted_and_acked
* ... logged, rate-limited                              -> test_malformed_entries_are_logged_rate_limited
* group `<CONSUMER_GROUP>:<CONSUMER_ID>`, consumer name
  CONSUMER_ID, MKSTREAM                                 -> test_group_name_consumer_name_and_mkstream
* group created at `$`: older entries not delivered    -> test_entries_before_group_creation_are_not_delivered
* two instances, different CONSUMER_ID, both deliver
  every entry                                           -> test_two_instances_each_deliver_every_entry
* READ_COUNT (entries per read) does not change what is delivered
                                                        -> test_read_count_1_still_delivers_everything_in_order
* acked once in the ring: pending 0 after delivery      -> test_entries_are_acked_once_in_the_ring
* reading resumes where the group left off after a
  restart (XINFO GROUPS, /metrics entries_read)         -> test_reading_resumes_after_restart
"""

import asyncio
import json
import math

import pytest

from conftest import (
    apublish_many,
    NUMERIC_FIELDS,
    SEED_FIELDS,
    assert_recent_iso_ms,
    odds_fields,
    publish,
    run,
    uid,
    wait_until,
    ws_client,
    ws_connect,
)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def close(a, b):
    return is_number(a) and math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)


def group_info(r, stream, group):
    for g in r.xinfo_groups(stream):
        if g["name"] == group:
            return g
    raise AssertionError(f"no group {group} on {stream}: {r.xinfo_groups(stream)}")


def pending_count(r, stream, group):
    return r.xpending(stream, group)["pending"]


# --------------------------------------------------------------------------
# encodings


def test_flat_entry_types_and_nulls(service, r):
    svc = service()
    fields = {
        "event_id": "12345",
        "sport_key": svc.sport,
        "market_key": "spreads",
        "book_key": "fanduel",
        "outcome_name": "Boston Celtics",
        "price": "-110",
        "point": "-3.5",
        "decimal_odds": "1.9090909091",
        "implied_probability": "0.5238095238",
        "novig_probability": "",  # -> null
        "fair_price": "null",  # -> null
        # edge absent -> null
        "normalized_at": "2025-11-07T12:34:56Z",
        "source": "42",  # extra: stays a string
        "note": "über 9.5",
    }

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            publish(r, svc.stream(), **fields)
            (m,) = await c.updates(1)
        assert set(m) == {"type", "payload", "stream", "id", "timestamp"}, m
        assert m["type"] == "odds_update"
        assert_recent_iso_ms(m["timestamp"])
        p = m["payload"]
        assert set(p) == set(SEED_FIELDS) | {"source", "note"}, sorted(p)
        assert p["event_id"] == "12345"
        assert p["sport_key"] == svc.sport
        assert p["market_key"] == "spreads"
        assert p["book_key"] == "fanduel"
        assert p["outcome_name"] == "Boston Celtics"
        assert p["normalized_at"] == "2025-11-07T12:34:56Z"
        assert close(p["price"], -110), p["price"]
        assert close(p["point"], -3.5), p["point"]
        assert close(p["decimal_odds"], 1.9090909091), p["decimal_odds"]
        assert close(p["implied_probability"], 0.5238095238), p["implied_probability"]
        assert p["novig_probability"] is None
        assert p["fair_price"] is None
        assert p["edge"] is None
        assert p["source"] == "42"
        assert p["note"] == "über 9.5"

        # a sparse entry: every seed field is still there, null when absent
        async with ws_client(svc) as c:
            await c.subscribe(events=["sparse"])
            publish(r, svc.stream(), event_id="sparse", price="100")
            (m,) = await c.updates(1)
        p = m["payload"]
        assert set(p) == set(SEED_FIELDS), sorted(p)
        assert p["event_id"] == "sparse" and close(p["price"], 100) and p["sport_key"] == svc.sport
        assert all(p[k] is None for k in SEED_FIELDS if k not in ("event_id", "price", "sport_key")), p

        # "" and "null" are null only for the numeric fields; other fields stay strings
        async with ws_client(svc) as c:
            await c.subscribe(events=["strings"])
            publish(r, svc.stream(), event_id="strings", outcome_name="", normalized_at="null", price="")
            (m,) = await c.updates(1)
        p = m["payload"]
        assert p["outcome_name"] == "" and p["normalized_at"] == "null" and p["price"] is None, p

    run(go())


def test_flat_entry_all_numeric_fields_are_numbers(service, r):
    svc = service()
    values = {"price": "150", "point": "0", "decimal_odds": "2.5", "implied_probability": "0.4",
              "novig_probability": "0.39", "fair_price": "-105", "edge": "-0.0125"}

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            publish(r, svc.stream(), **odds_fields(svc.sport, **values))
            (m,) = await c.updates(1)
        p = m["payload"]
        for k in NUMERIC_FIELDS:
            assert close(p[k], float(values[k])), (k, p[k])

    run(go())


def test_flat_entry_without_sport_key_gets_stream_sport(service, r):
    t = uid()
    a, b = f"t{t}_a", f"t{t}_b"
    svc = service(SPORTS=f"{a},{b}")

    async def go():
        async with ws_client(svc) as witness, ws_client(svc) as only_a, ws_client(svc) as only_b:
            await witness.subscribe()
            await only_a.subscribe(sports=[a])
            await only_b.subscribe(sports=[b])
            publish(r, f"odds.normalized.{a}", **odds_fields(None, event="nosport", sport_key=None))
            (m,) = await witness.updates(1)
            assert m["payload"]["sport_key"] == a
            assert set(m["payload"]) == set(SEED_FIELDS)
            (m,) = await only_a.updates(1)
            assert m["payload"]["event_id"] == "nosport" and m["payload"]["sport_key"] == a
            # only_b must not get it: the next thing it sees is the sentinel
            publish(r, f"odds.normalized.{b}", **odds_fields(b, event="sentinel"))
            (m,) = await only_b.updates(1)
            assert m["payload"]["event_id"] == "sentinel"

    run(go())


@pytest.mark.parametrize("field", ["data", "payload"])
def test_json_field_is_the_payload_as_is(service, r, field):
    svc = service()
    obj = {
        "event_id": "12345",
        "sport_key": svc.sport,
        "market_key": "player_props",
        "book_key": "draftkings",
        "price": -110,
        "point": 24.5,
        "decimal_odds": "1.91",  # a string stays a string here
        "flag": True,
        "nothing": None,
        "nested": {"list": [1, 2.5, "x", None, {"deep": [False]}]},
        "name": "Nikola Jokić \"the Joker\"\n",
    }

    async def go():
        async with ws_client(svc) as c:
            # filtering reads sport_key, event_id, market_key and book_key of the object
            await c.subscribe(sports=[svc.sport], events=["12345"], markets=["player_props"],
                              books=["draftkings"])
            for key, value in (("sport_key", "other"), ("event_id", "999"), ("market_key", "h2h"),
                               ("book_key", "fanduel")):
                publish(r, svc.stream(), **{field: json.dumps(dict(obj, **{key: value}))})
            publish(r, svc.stream(), **{field: json.dumps(obj)})
            (m,) = await c.updates(1)
            assert m["type"] == "odds_update"
            assert m["payload"] == obj
            await c.expect_silence(0.3)

    run(go())


def test_json_entry_without_sport_key_filters_by_stream_sport(service, r):
    t = uid()
    a, b = f"t{t}_a", f"t{t}_b"
    svc = service(SPORTS=f"{a},{b}")
    obj = {"event_id": "js1", "market_key": "h2h", "book_key": "fanduel", "price": 120}

    async def go():
        async with ws_client(svc) as witness, ws_client(svc) as only_a, ws_client(svc) as only_b:
            await witness.subscribe()
            await only_a.subscribe(sports=[a])
            await only_b.subscribe(sports=[b])
            publish(r, f"odds.normalized.{a}", data=json.dumps(obj))
            (m,) = await witness.updates(1)
            assert m["payload"] == obj, "sport_key must not be added to a JSON payload"
            (m,) = await only_a.updates(1)
            assert m["payload"] == obj
            publish(r, f"odds.normalized.{b}", **odds_fields(b, event="sentinel"))
            (m,) = await only_b.updates(1)
            assert m["payload"]["event_id"] == "sentinel", m

    run(go())


def test_opportunities_are_delivered_as_opportunity(service, r):
    svc = service()
    flat = {"opportunity_id": "o-flat", "event_id": "ev9", "sport_key": svc.sport, "market_key": "h2h",
            "book_key": "fanduel", "edge": "0.031", "kind": "arbitrage"}
    obj = {"opportunity_id": "o-json", "event_id": "ev9", "sport_key": svc.sport, "market_key": "h2h",
           "book_key": "fanduel", "edge": 0.031, "legs": [{"book": "fanduel", "price": 120}]}

    async def go():
        async with ws_client(svc) as c, ws_client(svc) as other:
            await c.subscribe(sports=[svc.sport], events=["ev9"], markets=["h2h"], books=["fanduel"])
            await other.subscribe(events=["not-ev9"])
            publish(r, svc.opp_stream, **flat)
            publish(r, svc.opp_stream, data=json.dumps(obj))
            m1, m2 = await c.updates(2)
            for m in (m1, m2):
                assert m["type"] == "opportunity"
                assert set(m) == {"type", "payload", "stream", "id", "timestamp"}
                assert m["stream"] == svc.opp_stream
                assert_recent_iso_ms(m["timestamp"])
            p = m1["payload"]
            assert p["opportunity_id"] == "o-flat" and p["kind"] == "arbitrage"
            assert p["event_id"] == "ev9" and p["book_key"] == "fanduel"
            assert close(p["edge"], 0.031), p["edge"]
            assert m2["payload"] == obj
            # the same filtering: a client filtering another event gets neither
            publish(r, svc.opp_stream, **dict(flat, opportunity_id="o-sentinel", event_id="not-ev9"))
            (m,) = await other.updates(1)
            assert m["payload"]["opportunity_id"] == "o-sentinel"

    run(go())


def test_opportunity_missing_dimension_does_not_exclude(service, r):
    svc = service()
    s = svc.sport
    entries = [
        ("o1", {"sport_key": s, "book_key": "draftkings"}),
        ("o2", {}),  # flat, no sport/event/book
        ("o3", "json"),  # JSON, no sport/event/book
        ("o4", {"sport_key": s, "book_key": "fanduel", "event_id": "evA"}),
        ("o5", {"sport_key": "other_sport", "book_key": "fanduel", "event_id": "evB"}),
    ]
    expect = {
        "books": (dict(books=["fanduel"]), ["o2", "o3", "o4", "o5"]),
        "sports": (dict(sports=[s]), ["o1", "o2", "o3", "o4"]),
        "events": (dict(events=["evA"]), ["o1", "o2", "o3", "o4"]),
        "all3": (dict(sports=[s], events=["evA"], books=["fanduel"]), ["o2", "o3", "o4"]),
    }

    async def go():
        clients = {}
        try:
            for name, (flt, _) in expect.items():
                clients[name] = await ws_connect_and_subscribe(svc, flt)
            for oid, extra in entries:
                if extra == "json":
                    publish(r, svc.opp_stream, data=json.dumps({"opportunity_id": oid, "edge": 0.01}))
                else:
                    publish(r, svc.opp_stream, opportunity_id=oid, edge="0.01", **extra)
            for name, (_, want) in expect.items():
                got = await clients[name].updates(len(want))
                assert [m["payload"]["opportunity_id"] for m in got] == want, name
                assert all(m["type"] == "opportunity" for m in got)
            await asyncio.gather(*(c.expect_silence(0.5) for c in clients.values()))
        finally:
            for c in clients.values():
                await c.close()

    run(go())


async def ws_connect_and_subscribe(svc, flt):
    c = await ws_connect(svc.port)
    await c.subscribe(**flt)
    return c


# --------------------------------------------------------------------------
# malformed entries

MALFORMED = [
    {"data": "not json"},
    {"data": "{broken"},
    {"data": "[1, 2]"},
    {"data": '"a string"'},
    {"payload": "42"},
    {"price": "abc"},
    {"point": "nan"},
    {"edge": "inf"},
    {"decimal_odds": "-inf"},
    {"fair_price": "12abc"},
    {"implied_probability": "NaN"},
    {"novig_probability": "Infinity"},
]


def _malformed_fields(svc, bad):
    if "data" in bad or "payload" in bad:
        return bad
    return odds_fields(svc.sport, event="bad", **bad)


def test_malformed_entries_are_skipped_counted_and_acked(service, r):
    svc = service()
    before = svc.metrics()["invalid_entries"]
    assert before == 0

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            publish(r, svc.stream(), **odds_fields(svc.sport, event="good-0"))
            for i, bad in enumerate(MALFORMED, 1):
                publish(r, svc.stream(), **_malformed_fields(svc, bad))
                publish(r, svc.stream(), **odds_fields(svc.sport, event=f"good-{i}"))
            # a malformed opportunity as well
            publish(r, svc.opp_stream, data="[]")
            publish(r, svc.opp_stream, opportunity_id="opp-good", edge="0.02")
            got = await c.updates(len(MALFORMED) + 2)
            odds = [m["payload"]["event_id"] for m in got if m["type"] == "odds_update"]
            assert odds == [f"good-{i}" for i in range(len(MALFORMED) + 1)]
            opps = [m["payload"]["opportunity_id"] for m in got if m["type"] == "opportunity"]
            assert opps == ["opp-good"]
            await c.expect_silence(0.5)

    run(go())
    svc.wait_metric(lambda m: m["invalid_entries"] == len(MALFORMED) + 1,
                    message=f"invalid_entries == {len(MALFORMED) + 1}")
    wait_until(lambda: pending_count(r, svc.stream(), svc.group) == 0, timeout=5,
               message="no pending entries on the odds stream")
    wait_until(lambda: pending_count(r, svc.opp_stream, svc.group) == 0, timeout=5,
               message="no pending entries on the opportunities stream")
    assert group_info(r, svc.stream(), svc.group)["entries-read"] == 2 * len(MALFORMED) + 1


def test_malformed_entries_are_logged_rate_limited(service, r):
    svc = service(LOG_LEVEL="debug")

    def ingest_lines():
        return [ln for ln in svc.stderr_text().splitlines() if " ingest: " in ln]

    n0 = len(ingest_lines())
    count = 300
    with r.pipeline(transaction=False) as p:
        for i in range(count):
            p.xadd(svc.stream(), {"data": f"not json {i}"})
        p.execute()
    svc.wait_metric(lambda m: m["invalid_entries"] == count, message=f"invalid_entries == {count}")
    wait_until(lambda: len(ingest_lines()) > n0, timeout=5, message="an ingest log line about it")
    new = len(ingest_lines()) - n0
    assert new < count // 3, f"{new} ingest log lines for {count} malformed entries: not rate-limited"


# --------------------------------------------------------------------------
# consumer groups


def test_read_count_1_still_delivers_everything_in_order(service, r):
    svc = service(READ_COUNT="1")

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            await apublish_many(r, [(svc.stream(), odds_fields(svc.sport, event=f"rc{i}")) for i in range(60)])
            got = await c.updates(60)
            assert [m["payload"]["event_id"] for m in got] == [f"rc{i}" for i in range(60)]

    run(go())
    wait_until(lambda: pending_count(r, svc.stream(), svc.group) == 0, timeout=5, message="all acked")


def test_group_name_consumer_name_and_mkstream(service, r):
    t = uid()
    assert not r.exists(f"odds.normalized.t{t}_nba") and not r.exists(f"t{t}_opps")
    svc = service(SPORTS=f"t{t}_nba", OPPORTUNITIES_STREAM=f"t{t}_opps", CONSUMER_GROUP=f"grp{t}",
                  CONSUMER_ID=f"cons{t}")
    # /health is 200, so the groups exist already (created with MKSTREAM)
    for stream in (f"odds.normalized.t{t}_nba", f"t{t}_opps"):
        assert r.type(stream) == "stream"
        assert [g["name"] for g in r.xinfo_groups(stream)] == [f"grp{t}:cons{t}"]
    assert svc.group == f"grp{t}:cons{t}"

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            publish(r, svc.stream(), **odds_fields(svc.sport))
            await c.updates(1)

    run(go())
    consumers = wait_until(lambda: r.xinfo_consumers(svc.stream(), svc.group), timeout=5,
                           message="a consumer in the group")
    assert [c["name"] for c in consumers] == [f"cons{t}"]


def test_entries_before_group_creation_are_not_delivered(service, r):
    t = uid()
    stream = f"odds.normalized.t{t}_nba"
    old_id = publish(r, stream, **odds_fields(f"t{t}_nba", event="old"))
    svc = service(SPORTS=f"t{t}_nba")
    assert group_info(r, stream, svc.group)["last-delivered-id"] == old_id

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            publish(r, stream, **odds_fields(svc.sport, event="new"))
            (m,) = await c.updates(1)
            assert m["payload"]["event_id"] == "new"
            await c.expect_silence(0.5)

    run(go())


def test_two_instances_each_deliver_every_entry(service, r):
    t = uid()
    common = dict(SPORTS=f"t{t}_nba", OPPORTUNITIES_STREAM=f"t{t}_opps")
    a = service(CONSUMER_ID=f"a{t}", **common)
    b = service(CONSUMER_ID=f"b{t}", **common)
    assert a.group != b.group
    n = 30

    async def go():
        async with ws_client(a) as ca, ws_client(b) as cb:
            await ca.subscribe()
            await cb.subscribe()
            for i in range(n):
                publish(r, a.stream(), **odds_fields(a.sport, event=f"e{i}"))
            publish(r, a.opp_stream, opportunity_id="o1")
            for c in (ca, cb):
                got = await c.updates(n + 1)
                assert [m["payload"]["event_id"] for m in got if m["type"] == "odds_update"] == \
                    [f"e{i}" for i in range(n)]
                assert [m["payload"]["opportunity_id"] for m in got if m["type"] == "opportunity"] == ["o1"]

    run(go())
    assert sorted(g["name"] for g in r.xinfo_groups(a.stream())) == sorted([a.group, b.group])
    for svc in (a, b):
        wait_until(lambda: pending_count(r, svc.stream(), svc.group) == 0, timeout=5,
                   message=f"nothing pending for {svc.group}")


def test_entries_are_acked_once_in_the_ring(service, r):
    svc = service()
    # no client at all: entries still go into the ring and get acked
    ids = [publish(r, svc.stream(), **odds_fields(svc.sport, event=f"e{i}")) for i in range(10)]
    wait_until(lambda: group_info(r, svc.stream(), svc.group)["last-delivered-id"] == ids[-1],
               timeout=5, message="the group to read every entry")
    wait_until(lambda: pending_count(r, svc.stream(), svc.group) == 0, timeout=5,
               message="every entry acked")
    svc.wait_metric(lambda m: m["entries_read"] == 10, message="entries_read == 10")

    # with a client: after delivery nothing is pending
    async def go():
        async with ws_client(svc) as c:
            await c.subscribe()
            await apublish_many(r, [(svc.stream(), odds_fields(svc.sport, event=f"f{i}")) for i in range(100)])
            got = await c.updates(100)
            assert [m["payload"]["event_id"] for m in got] == [f"f{i}" for i in range(100)]

    run(go())
    wait_until(lambda: pending_count(r, svc.stream(), svc.group) == 0, timeout=5,
               message="every entry acked")
    info = group_info(r, svc.stream(), svc.group)
    assert info["entries-read"] == 110 and info["lag"] == 0, info


def test_reading_resumes_after_restart(service, r):
    t = uid()
    settings = dict(SPORTS=f"t{t}_nba", OPPORTUNITIES_STREAM=f"t{t}_opps", CONSUMER_ID=f"c{t}")
    svc = service(**settings)
    stream = svc.stream()

    async def first():
        async with ws_client(svc) as c:
            await c.subscribe()
            publish(r, stream, **odds_fields(svc.sport, event="e1"))
            await c.updates(1)

    run(first())
    id1 = r.xrevrange(stream, count=1)[0][0]
    wait_until(lambda: pending_count(r, stream, svc.group) == 0, timeout=5, message="e1 acked")
    svc.stop()

    id2 = publish(r, stream, **odds_fields(svc.sport, event="e2"))
    id3 = publish(r, stream, **odds_fields(svc.sport, event="e3"))
    info = group_info(r, stream, svc.group)
    assert info["last-delivered-id"] == id1 and info["lag"] == 2, info

    svc2 = service(**settings)
    assert svc2.group == svc.group
    wait_until(lambda: group_info(r, stream, svc2.group)["last-delivered-id"] == id3, timeout=10,
               message="the restarted service to read the entries added while it was stopped")
    wait_until(lambda: pending_count(r, stream, svc2.group) == 0, timeout=5, message="e2, e3 acked")
    info = group_info(r, stream, svc2.group)
    assert info["entries-read"] == 3 and info["lag"] == 0, info
    svc2.wait_metric(lambda m: m["entries_read"] == 2, message="entries_read == 2")
    assert group_info(r, stream, svc2.group)["last-delivered-id"] == id3 != id2

    async def second():
        async with ws_client(svc2) as c:
            await c.subscribe()
            publish(r, stream, **odds_fields(svc.sport, event="e4"))
            seen = []
            while not seen or seen[-1] != "e4":
                (m,) = await c.updates(1)
                seen.append(m["payload"]["event_id"])
            assert set(seen) <= {"e2", "e3", "e4"}, seen
            assert "e1" not in seen

    run(second())
