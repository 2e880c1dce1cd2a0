"""The WebSocket protocol on /ws.

Contract lines -> tests:

* a client needn't send a subprotocol                -> every test (no subprotocol is offered)
* subscribe with sports/events/markets/books; empty or
  missing list = all; each dimension: empty list or the
  value in the list                                  -> test_filter_matrix
* null counts as empty; missing payload counts as {}   -> test_subscribe_null_lists_and_missing_payload_mean_all
* subscribe is acked with `subscribed` + the filter in
  force (null shown as [])                          -> test_subscribe_ack_echoes_filter,
                                                        test_subscribe_null_lists_and_missing_payload_mean_all
* a new subscribe replaces the filter; updates after the
  ack use the new filter                             -> test_resubscribe_replaces_filter
* unsubscribe clears the filter, acked `unsubscribed`
  with payload {}                                    -> test_unsubscribe_ack, test_resubscribe_replaces_filter
* no updates before subscribe / after unsubscribe    -> test_no_updates_without_subscription
* updates: {"type","payload","timestamp"}, ISO ms UTC -> test_update_message_shape (+ test_streams.py)
* per-stream order preserved for every client        -> test_per_stream_order_for_every_client
* heartbeat reply fields, buffer_size = CLIENT_BUFFER,
  buffer_utilization 0-100                           -> test_heartbeat_reply_fields,
                                                        test_heartbeat_buffer_size_follows_setting
* messages_sent / messages_received counting         -> test_heartbeat_counts_messages
* client_id distinct per connection                  -> test_heartbeat_client_ids_are_distinct
* error replies: invalid_json / invalid_message /
  invalid_filter, non-empty message; connection stays
  open and the previous filter stays in force        -> test_error_reply_keeps_connection_and_filter,
                                                        test_error_before_any_subscribe_leaves_client_unsubscribed
* MAX_MESSAGE_SIZE / MAX_FILTER_VALUES / MAX_FILTER_VALUE_LEN /
  MAX_ENTRY_SIZE defaults (65536 / 1024 / 256 / 65536) -> test_large_messages_within_default_limits
"""

import asyncio
import datetime as dt
import json
import re

import pytest

from conftest import (
    apublish_many,
    assert_recent_iso_ms,
    odds_fields,
    parse_iso,
    publish,
    run,
    uid,
    ws_client,
    ws_connect,
)


@pytest.fixture(scope="module")
def svc(module_service):
    """One service shared by this module's tests: two sports, default
    CLIENT_BUFFER.  Each test uses its own event ids."""
    t = uid()
    return module_service(SPORTS=f"t{t}_a,t{t}_b")


def as_sets(filter_payload):
    """A filter as the ack shows it, compared without regard to list order
    (the filter is a set of values per dimension).  The ack also names the
    epoch (README "Consistency"), which is not part of the filter."""
    filter_payload = {k: v for k, v in filter_payload.items() if k != "epoch"}
    assert set(filter_payload) == {"sports", "events", "markets", "books"}, filter_payload
    for v in filter_payload.values():
        assert isinstance(v, list) and all(isinstance(x, str) for x in v), filter_payload
    return {k: sorted(v) for k, v in filter_payload.items()}


def ev(m):
    return m["payload"].get("event_id")


# --------------------------------------------------------------------------
# subscribe / unsubscribe


def test_subscribe_ack_echoes_filter(svc):
    flt = {"sports": [svc.sports[0]], "events": ["e1", "e2"], "markets": ["h2h", "spreads"],
           "books": ["fanduel", "draftkings"]}

    async def go():
        async with ws_client(svc) as c:
            ack = await c.subscribe(**flt)
            assert set(ack) == {"type", "payload", "timestamp"}, ack
            assert ack["type"] == "subscribed"
            assert as_sets(ack["payload"]) == as_sets(flt)
            assert_recent_iso_ms(ack["timestamp"])
            ack = await c.subscribe(sports=[], events=["only"], markets=[], books=[])
            assert as_sets(ack["payload"]) == {"sports": [], "events": ["only"], "markets": [], "books": []}

    run(go())


def test_subscribe_null_lists_and_missing_payload_mean_all(svc, r):
    t = uid()
    empty = {"sports": [], "events": [], "markets": [], "books": []}

    async def go():
        async with ws_client(svc) as nulls, ws_client(svc) as missing, ws_client(svc) as nopayload:
            ack = await nulls.subscribe(sports=None, events=None, markets=None, books=None)
            assert as_sets(ack["payload"]) == empty
            ack = await missing.subscribe(events=[])  # the other lists left out
            assert as_sets(ack["payload"]) == empty
            await nopayload.send_json({"type": "subscribe"})
            ack = await nopayload.recv_type("subscribed")
            assert as_sets(ack["payload"]) == empty
            publish(r, svc.stream(0), **odds_fields(svc.sports[0], event=f"x{t}", market="totals", book="b1"))
            publish(r, svc.stream(1), **odds_fields(svc.sports[1], event=f"y{t}", market="h2h", book="b2"))
            for c in (nulls, missing, nopayload):
                got = await c.updates(2)
                assert sorted(ev(m) for m in got) == [f"x{t}", f"y{t}"]

    run(go())


def test_unsubscribe_ack(svc):
    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(events=["x"])
            ack = await c.unsubscribe()
            assert set(ack) == {"type", "payload", "timestamp"}, ack
            assert ack["payload"] == {}
            assert_recent_iso_ms(ack["timestamp"])
            # missing payload counts as {}
            await c.send_json({"type": "unsubscribe"})
            ack = await c.recv_type("unsubscribed")
            assert ack["payload"] == {}

    run(go())


def test_no_updates_without_subscription(svc, r):
    t = uid()

    async def go():
        async with ws_client(svc) as witness, ws_client(svc) as never, ws_client(svc) as unsub:
            await witness.subscribe()
            await unsub.subscribe(snapshot=False)
            await unsub.unsubscribe()
            for i in range(3):
                publish(r, svc.stream(i % 2), **odds_fields(svc.sports[i % 2], event=f"n{t}-{i}"))
            publish(r, svc.opp_stream, opportunity_id=f"o{t}")
            await witness.updates(4)
            await never.expect_silence(0.7)
            await unsub.expect_silence(0.1)
            hb = await never.heartbeat()
            assert hb["payload"]["messages_sent"] == 0, hb
            hb = await unsub.heartbeat()
            assert hb["payload"]["messages_sent"] == 2, hb  # the two acks only

    run(go())


def test_resubscribe_replaces_filter(svc, r):
    t = uid()
    s = svc.stream(0)
    sp = svc.sports[0]

    def pub(event, market):
        publish(r, s, **odds_fields(sp, event=f"{event}-{t}", market=market))

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(markets=["h2h"])
            pub("x1", "spreads")
            pub("x2", "h2h")
            (m,) = await c.updates(1)
            assert ev(m) == f"x2-{t}"

            ack = await c.subscribe(markets=["spreads"])
            assert ack["payload"]["markets"] == ["spreads"]
            pub("y1", "h2h")
            pub("y2", "spreads")
            (m,) = await c.updates(1)
            assert ev(m) == f"y2-{t}", "the old filter is still in force"

            # a subscribe without markets means all markets again
            await c.subscribe(events=[f"z1-{t}", f"z2-{t}"])
            pub("z0", "spreads")
            pub("z1", "h2h")
            pub("z2", "spreads")
            got = await c.updates(2)
            assert [ev(m) for m in got] == [f"z1-{t}", f"z2-{t}"]

            await c.unsubscribe()
            pub("z1", "h2h")
            await c.expect_silence(0.7)
            # and subscribing again works after an unsubscribe
            await c.subscribe(markets=["totals"])
            pub("w1", "h2h")
            pub("w2", "totals")
            (m,) = await c.updates(1)
            assert ev(m) == f"w2-{t}"

    run(go())


def test_filter_matrix(svc, r):
    t = uid()
    a, b = svc.sports
    e1, e2 = f"E1-{t}", f"E2-{t}"
    entries = []
    for sport in (a, b):
        for event in (e1, e2):
            for market in ("h2h", "spreads"):
                for book in ("fanduel", "draftkings"):
                    entries.append((sport, event, market, book))
    filters = {
        "all": {},
        "sport": {"sports": [a]},
        "event": {"events": [e1]},
        "market": {"markets": ["h2h"]},
        "book": {"books": ["draftkings"]},
        "books-any": {"books": ["fanduel", "draftkings", "nope"]},
        "two-dims": {"sports": [b], "markets": ["spreads"]},
        "combo": {"sports": [b], "events": [e2], "markets": ["h2h"], "books": ["fanduel", "draftkings"]},
        "all-four": {"sports": [a], "events": [e2], "markets": ["spreads"], "books": ["fanduel"]},
        "explicit-empty": {"sports": [], "events": [], "markets": [], "books": []},
        "other-sport": {"sports": ["no_such_sport"]},
        "none": {"books": ["nope"]},
    }

    def matches(flt, entry):
        keys = ("sports", "events", "markets", "books")
        return all(not flt.get(k) or v in flt[k] for k, v in zip(keys, entry))

    async def go():
        clients = {}
        try:
            for name, flt in filters.items():
                clients[name] = await ws_connect(svc.port)
                ack = await clients[name].subscribe(**flt)
                assert as_sets(ack["payload"]) == as_sets({k: flt.get(k, []) for k in
                                                           ("sports", "events", "markets", "books")})
            await apublish_many(r, [(f"odds.normalized.{sport}", odds_fields(sport, event, market, book, seq=str(i)))
                                    for i, (sport, event, market, book) in enumerate(entries)])
            await clients["all"].updates(len(entries))
            for name, flt in filters.items():
                want = [i for i, e in enumerate(entries) if matches(flt, e)]
                got = await clients[name].updates(len(want)) if name != "all" else None
                if got is not None:
                    seqs = [int(m["payload"]["seq"]) for m in got]
                    assert sorted(seqs) == want, f"filter {name}: got {sorted(seqs)}, want {want}"
                    for sport in (a, b):  # per-stream order
                        sub = [int(m["payload"]["seq"]) for m in got if m["payload"]["sport_key"] == sport]
                        assert sub == sorted(sub), f"filter {name}: {sport} out of order {sub}"
            await asyncio.gather(*(c.expect_silence(0.5) for c in clients.values()))
            hb = await clients["none"].heartbeat()
            assert hb["payload"]["messages_sent"] == 1 + len(clients["none"].snapshots)  # ack, snapshot
        finally:
            for c in clients.values():
                await c.close()

    run(go())


def test_update_message_shape(svc, r):
    t = uid()

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(events=[f"s{t}"])
            publish(r, svc.stream(0), **odds_fields(svc.sports[0], event=f"s{t}"))
            (m,) = await c.updates(1)
            assert set(m) == {"type", "payload", "stream", "id", "timestamp"}, m
            assert m["stream"] == svc.stream(0) and re.fullmatch(r"\d+-\d+", m["id"]), m
            assert m["type"] == "odds_update"
            assert isinstance(m["payload"], dict) and m["payload"]["event_id"] == f"s{t}"
            assert_recent_iso_ms(m["timestamp"])

    run(go())


def test_per_stream_order_for_every_client(svc, r):
    t = uid()
    n = 150
    streams = [svc.stream(0), svc.stream(1), svc.opp_stream]

    async def go():
        clients = [await ws_connect(svc.port) for _ in range(6)]
        try:
            for c in clients[:5]:
                await c.subscribe(events=[f"o{t}"])
            await clients[5].subscribe(events=[f"o{t}"], sports=[svc.sports[1]])
            await apublish_many(r, [(s, odds_fields(svc.sports[k] if k < 2 else svc.sports[0], event=f"o{t}",
                                                    seq=str(i), src=str(k)))
                                    for i in range(n) for k, s in enumerate(streams)])
            for ci, c in enumerate(clients):
                want_streams = range(3) if ci < 5 else [1]
                got = await c.updates(n * len(want_streams), timeout=20)
                for k in want_streams:
                    seqs = [int(m["payload"]["seq"]) for m in got if m["payload"]["src"] == str(k)]
                    assert seqs == list(range(n)), f"client {ci} stream {k}: order broken"
        finally:
            for c in clients:
                await c.close()

    run(go())


# --------------------------------------------------------------------------
# heartbeat


def test_heartbeat_reply_fields(svc):
    started = dt.datetime.now(dt.timezone.utc)

    async def go():
        async with ws_client(svc) as c:
            hb = await c.heartbeat()
            assert set(hb) == {"type", "payload", "timestamp"}, hb
            assert_recent_iso_ms(hb["timestamp"])
            p = hb["payload"]
            want = {"client_id", "connected_at", "messages_sent", "messages_received", "last_message_at",
                    "buffer_size", "buffer_utilization"}
            assert want <= set(p), p
            assert isinstance(p["client_id"], str) and p["client_id"]
            connected = parse_iso(p["connected_at"])
            assert abs((connected - started).total_seconds()) < 60
            parse_iso(p["last_message_at"])
            assert p["buffer_size"] == 256  # CLIENT_BUFFER default
            u = p["buffer_utilization"]
            assert isinstance(u, (int, float)) and not isinstance(u, bool) and 0 <= u <= 100
            assert p["messages_sent"] == 0 and p["messages_received"] == 1
            # a missing payload counts as {}
            await c.send_json({"type": "heartbeat"})
            hb = await c.recv_type("heartbeat")
            assert hb["payload"]["messages_received"] == 2

    run(go())


def test_heartbeat_buffer_size_follows_setting(service):
    s = service(CLIENT_BUFFER="64")

    async def go():
        async with ws_client(s) as c:
            hb = await c.heartbeat()
            assert hb["payload"]["buffer_size"] == 64

    run(go())


def test_heartbeat_counts_messages(svc, r):
    t = uid()

    async def go():
        async with ws_client(svc) as c:
            hb = await c.heartbeat()
            assert (hb["payload"]["messages_sent"], hb["payload"]["messages_received"]) == (0, 1)
            await c.subscribe(events=[f"h{t}"], snapshot=False)
            for _ in range(3):
                publish(r, svc.stream(0), **odds_fields(svc.sports[0], event=f"h{t}"))
            await c.updates(3)
            hb = await c.heartbeat()
            # heartbeat reply + ack + 3 updates were received before this reply
            assert hb["payload"]["messages_sent"] == 5 == c.received - 1, hb
            assert hb["payload"]["messages_received"] == 3, hb
            await c.send_raw("definitely not json")
            await c.recv_type("error")
            await c.send_json({"type": "nope"})
            await c.recv_type("error")
            hb = await c.heartbeat()
            assert hb["payload"]["messages_sent"] == 8 == c.received - 1, hb
            assert hb["payload"]["messages_received"] == 6, hb  # invalid ones count too

    run(go())


def test_heartbeat_client_ids_are_distinct(svc):
    async def go():
        ids = []
        for _ in range(2):
            async with ws_client(svc) as c1, ws_client(svc) as c2, ws_client(svc) as c3:
                for c in (c1, c2, c3):
                    ids.append((await c.heartbeat())["payload"]["client_id"])
        assert len(set(ids)) == len(ids), ids

    run(go())


# --------------------------------------------------------------------------
# errors

BAD_MESSAGES = [
    ("not json", "invalid_json"),
    ('{"type": "subscribe"', "invalid_json"),
    ("", "invalid_json"),
    ("[1, 2]", "invalid_message"),
    ("42", "invalid_message"),
    ('"subscribe"', "invalid_message"),
    ("null", "invalid_message"),
    ('{"payload": {}}', "invalid_message"),
    ('{"type": "bogus", "payload": {}}', "invalid_message"),
    ('{"type": 5, "payload": {}}', "invalid_message"),
    ('{"type": null, "payload": {}}', "invalid_message"),
    ('{"type": ["subscribe"], "payload": {}}', "invalid_message"),
    ('{"type": "subscribe", "payload": 5}', "invalid_message"),
    ('{"type": "subscribe", "payload": []}', "invalid_message"),
    ('{"type": "subscribe", "payload": "x"}', "invalid_message"),
    ('{"type": "unsubscribe", "payload": []}', "invalid_message"),
    ('{"type": "heartbeat", "payload": 5}', "invalid_message"),
    ('{"type": "subscribe", "payload": {"sports": "nba"}}', "invalid_filter"),
    ('{"type": "subscribe", "payload": {"events": [1, 2]}}', "invalid_filter"),
    ('{"type": "subscribe", "payload": {"markets": [null]}}', "invalid_filter"),
    ('{"type": "subscribe", "payload": {"books": {"a": "b"}}}', "invalid_filter"),
    ('{"type": "subscribe", "payload": {"sports": ["ok", 3]}}', "invalid_filter"),
    ('{"type": "subscribe", "payload": {"books": true}}', "invalid_filter"),
]


@pytest.mark.parametrize("raw,code", BAD_MESSAGES, ids=[f"{c}:{m[:40]}" for m, c in BAD_MESSAGES])
def test_error_reply_keeps_connection_and_filter(svc, r, raw, code):
    t = uid()
    keep, other = f"keep-{t}", f"other-{t}"

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(events=[keep], markets=["h2h"])
            await c.send_raw(raw)
            err = await c.recv_json()
            assert err.get("type") == "error", err
            assert set(err) == {"type", "payload", "timestamp"}, err
            assert err["payload"].get("code") == code, err
            msg = err["payload"].get("message")
            assert isinstance(msg, str) and msg.strip(), err
            assert_recent_iso_ms(err["timestamp"])
            # still open, and the earlier filter is still the one in force
            publish(r, svc.stream(0), **odds_fields(svc.sports[0], event=other, market="h2h"))
            publish(r, svc.stream(0), **odds_fields(svc.sports[0], event=keep, market="spreads"))
            publish(r, svc.stream(0), **odds_fields(svc.sports[0], event=keep, market="h2h"))
            (m,) = await c.updates(1)
            assert (ev(m), m["payload"]["market_key"]) == (keep, "h2h"), m
            hb = await c.heartbeat()
            assert hb["payload"]["messages_received"] == 3

    run(go())


def test_large_messages_within_default_limits(svc, r):
    """MAX_MESSAGE_SIZE 65536, MAX_FILTER_VALUES 1024 and MAX_FILTER_VALUE_LEN
    256 by default: a 45 KB subscribe with 1024 values and a 256-byte value
    are accepted; MAX_ENTRY_SIZE 65536: a 60 KB entry is delivered."""
    t = uid()
    many = [f"{t}-{i:06d}-" + "v" * 20 for i in range(1024)]
    long_value = ("L" * 256)[: 256 - len(t)] + t
    pad = "p" * 60000

    async def go():
        async with ws_client(svc) as c:
            ack = await c.subscribe(events=many)
            assert sorted(ack["payload"]["events"]) == sorted(many)
            ack = await c.subscribe(events=[long_value])
            assert ack["payload"]["events"] == [long_value]
            publish(r, svc.stream(0), **odds_fields(svc.sports[0], event=long_value, pad=pad))
            (m,) = await c.updates(1)
            assert m["payload"]["pad"] == pad

    run(go())


def test_error_before_any_subscribe_leaves_client_unsubscribed(svc, r):
    t = uid()

    async def go():
        async with ws_client(svc) as witness, ws_client(svc) as c:
            await witness.subscribe(events=[f"u{t}"])
            await c.send_raw(json.dumps({"type": "subscribe", "payload": {"events": [1]}}))
            err = await c.recv_json()
            assert err["payload"]["code"] == "invalid_filter"
            publish(r, svc.stream(0), **odds_fields(svc.sports[0], event=f"u{t}"))
            await witness.updates(1)
            await c.expect_silence(0.7)

    run(go())
