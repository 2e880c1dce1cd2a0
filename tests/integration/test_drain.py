"""Stopping: the drain.

Contract lines -> tests:

* SIGTERM: clients are closed with 1001 spread over DRAIN_SECONDS (40
  clients, DRAIN_SECONDS=4: the closes span most of the window, not all in
  the first second); each first gets {"type":"reconnect","payload":
  {"after_ms":N}} with 0 <= N <= RECONNECT_JITTER_MS, the last message
  before its close frame; the supervisor exits 0 once they are gone
                                          -> test_sigterm_spreads_closes_over_drain_seconds
* during the drain upgrades get HTTP 503, /livez still answers, and clients
  not yet closed still get updates       -> test_upgrades_during_the_drain_get_503
* a stop with no client is immediate, exit 0, whatever DRAIN_SECONDS
                                          -> test_stop_without_clients_is_immediate
* a second SIGTERM/SIGINT ends the drain: the clients left are closed at
  once (still with `reconnect` and 1001), exit 0
                                          -> test_second_signal_ends_the_drain_at_once
* DRAIN_SECONDS=0: every client at once, each with its `reconnect`
                                          -> test_drain_seconds_0_closes_everyone_at_once
"""

import asyncio
import json
import signal
import time

import websockets

from conftest import odds_fields, publish, run, ws_connect


def report(what, value):
    print(f"[drain] {what}: {value}")


async def read_to_close(c, t0_holder):
    """Every message c gets until its connection closes: (messages, close
    code, seconds from t0_holder[0] to the close)."""
    msgs = []
    while True:
        try:
            raw = await asyncio.wait_for(c.ws.recv(), 30)
        except websockets.ConnectionClosed:
            break
        msgs.append(json.loads(raw))
    return msgs, c.ws.close_code, time.monotonic() - t0_holder[0]


async def connect_subscribed(svc, n):
    clients = [await ws_connect(svc.port, keep_snapshots=True) for _ in range(n)]
    for c in clients:
        await c.subscribe()
    await asyncio.to_thread(svc.wait_metric, lambda m: m["active_clients"] == n,
                            message=f"{n} clients")
    return clients


def check_reconnect_then_close(msgs, code, jitter_ms):
    """The last message before the close frame is `reconnect` with an
    integer after_ms in 0..jitter_ms; the close is 1001.  Returns after_ms."""
    assert code == 1001, f"close code {code}"
    assert msgs, "no message before the close"
    last = msgs[-1]
    assert last["type"] == "reconnect", f"last message before the close: {last}"
    assert [m["type"] for m in msgs].count("reconnect") == 1, [m["type"] for m in msgs]
    after = last["payload"]["after_ms"]
    assert isinstance(after, int) and 0 <= after <= jitter_ms, last
    assert set(last["payload"]) == {"after_ms"}, last
    assert isinstance(last.get("timestamp"), str), last
    return after


def test_sigterm_spreads_closes_over_drain_seconds(service):
    drain, jitter, n = 4, 3000, 40
    svc = service(WORKERS="2", DRAIN_SECONDS=str(drain), RECONNECT_JITTER_MS=str(jitter))

    async def go():
        clients = await connect_subscribed(svc, n)
        m = await asyncio.to_thread(svc.metrics)
        assert all(w["active_clients"] > 0 for w in m["workers"]), m["workers"]
        svc.remember_children()
        t0 = [time.monotonic()]
        readers = [asyncio.create_task(read_to_close(c, t0)) for c in clients]
        await asyncio.sleep(0.1)  # the readers wait in recv()
        t0[0] = time.monotonic()
        svc.signal(signal.SIGTERM)
        results = await asyncio.gather(*readers)
        rc = await asyncio.to_thread(svc.terminate, 10)
        return results, rc, time.monotonic() - t0[0]

    results, rc, took = run(go())
    afters = [check_reconnect_then_close(msgs, code, jitter) for msgs, code, _ in results]
    times = sorted(t for _, _, t in results)
    first_second = sum(1 for t in times if t < 1.0)
    report("close times (s)", [round(t, 2) for t in times])
    report("after_ms", sorted(afters))
    report("SIGTERM -> exit", f"{took:.2f} s")
    # spread evenly: about n / drain per second, never all at the start
    assert first_second <= n // 2, f"{first_second} of {n} closed in the first second: {times}"
    assert times[-1] - times[0] >= 0.6 * drain, f"closes span only {times[-1] - times[0]:.2f} s"
    assert times[-1] <= drain + 1.5, f"the last close came {times[-1]:.2f} s after SIGTERM"
    quarters = [sum(1 for t in times if q * drain / 4 <= t < (q + 1) * drain / 4) for q in range(4)]
    assert all(x >= n // 10 for x in quarters), f"closes per quarter of the window: {quarters}"
    assert len(set(afters)) > n // 2, f"after_ms not random: {sorted(afters)}"
    assert rc == 0, f"exit status {rc}\n{svc.stderr_text()}"
    assert took <= drain + 3, f"the supervisor exited {took:.2f} s after SIGTERM"
    assert not svc.leftover_children()
    assert "draining" in svc.stderr_text()


def test_upgrades_during_the_drain_get_503(service, r):
    drain = 6
    svc = service(WORKERS="2", DRAIN_SECONDS=str(drain))

    async def go():
        clients = await connect_subscribed(svc, 10)
        m = await asyncio.to_thread(svc.metrics)
        assert all(w["active_clients"] > 0 for w in m["workers"]), m["workers"]
        t0 = [time.monotonic()]
        readers = [asyncio.create_task(read_to_close(c, t0)) for c in clients]
        await asyncio.sleep(0.1)
        t0[0] = time.monotonic()
        svc.signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        # several attempts, so both workers' listeners are tried
        statuses = []
        for _ in range(8):
            try:
                c = await ws_connect(svc.port, open_timeout=5)
            except websockets.InvalidStatusCode as e:
                statuses.append(e.status_code)
            else:
                await c.close()
                statuses.append(101)
        live = await asyncio.to_thread(svc.http, "/livez")
        # a client not closed yet still gets what is published
        publish(r, svc.stream(), **odds_fields(svc.sport, event="during-drain"))
        results = await asyncio.gather(*readers)
        rc = await asyncio.to_thread(svc.terminate, 10)
        return statuses, live, results, rc

    statuses, live, results, rc = run(go())
    report("upgrade statuses during the drain", statuses)
    assert statuses == [503] * len(statuses), statuses
    assert live.status == 200 and live.json() == {"status": "alive"}, (live.status, live.body)
    for msgs, code, _ in results:
        check_reconnect_then_close(msgs, code, 5000)
    late = [(msgs, t) for msgs, _, t in results if t > 2.0]
    assert late, "every client was closed within 2 s of SIGTERM"
    for msgs, t in late:
        events = [m["payload"].get("event_id") for m in msgs if m["type"] == "odds_update"]
        assert events == ["during-drain"], f"client closed at {t:.2f} s got {events}"
    assert rc == 0, f"exit status {rc}\n{svc.stderr_text()}"


def test_stop_without_clients_is_immediate(service):
    svc = service(WORKERS="2", DRAIN_SECONDS="60")
    svc.remember_children()
    t0 = time.monotonic()
    rc = svc.terminate(5)
    took = time.monotonic() - t0
    report("SIGTERM -> exit, no clients, DRAIN_SECONDS=60", f"{took * 1000:.0f} ms")
    assert rc == 0, f"exit status {rc}\n{svc.stderr_text()}"
    assert took < 2.0, f"a stop with no client took {took:.2f} s"
    assert not svc.leftover_children()


def test_second_signal_ends_the_drain_at_once(service):
    svc = service(WORKERS="2", DRAIN_SECONDS="60", RECONNECT_JITTER_MS="100")

    async def go():
        clients = await connect_subscribed(svc, 12)
        t0 = [time.monotonic()]
        readers = [asyncio.create_task(read_to_close(c, t0)) for c in clients]
        await asyncio.sleep(0.1)
        t0[0] = time.monotonic()
        svc.signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        second = time.monotonic() - t0[0]
        svc.signal(signal.SIGINT)
        results = await asyncio.gather(*readers)
        rc = await asyncio.to_thread(svc.terminate, 10)
        return results, rc, second, time.monotonic() - t0[0]

    results, rc, second, took = run(go())
    times = sorted(t for _, _, t in results)
    report("close times (s), second signal at", (second, [round(t, 2) for t in times]))
    for msgs, code, _ in results:
        check_reconnect_then_close(msgs, code, 100)
    # over 60 s, 12 clients: at most one goes in the first second
    assert sum(1 for t in times if t < second) <= 2, times
    assert times[-1] < second + 1.5, f"the last client went {times[-1] - second:.2f} s after the second signal"
    assert rc == 0, f"exit status {rc}\n{svc.stderr_text()}"
    assert took < second + 3, took
    assert "during the drain: ending it now" in svc.stderr_text()


def test_drain_seconds_0_closes_everyone_at_once(service):
    svc = service(WORKERS="2", DRAIN_SECONDS="0", RECONNECT_JITTER_MS="0")

    async def go():
        clients = await connect_subscribed(svc, 6)
        t0 = [time.monotonic()]
        readers = [asyncio.create_task(read_to_close(c, t0)) for c in clients]
        await asyncio.sleep(0.1)
        t0[0] = time.monotonic()
        svc.signal(signal.SIGTERM)
        results = await asyncio.gather(*readers)
        rc = await asyncio.to_thread(svc.terminate, 5)
        return results, rc

    results, rc = run(go())
    for msgs, code, t in results:
        assert check_reconnect_then_close(msgs, code, 0) == 0
        assert t < 1.0, t
    assert rc == 0, f"exit status {rc}\n{svc.stderr_text()}"
