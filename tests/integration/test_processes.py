"""Processes, multi-worker serving and signals.

Contract lines -> tests:

* supervisor (comm wsb-supervisor) forks one ingest (wsb-ingest) and WORKERS
  workers (wsb-worker-1 .. N)             -> test_process_tree
* WORKERS=2: both workers accept on the same port; every client gets every
  matching entry; active_clients returns to the true value after
  disconnects                             -> test_workers_share_the_port
* SIGTERM: clients get close code 1001, the supervisor exits 0 within 5 s
  (the drain of DRAIN_SECONDS=1 these tests run with; the drain itself:
  test_drain.py), no child left          -> test_sigterm_closes_clients_1001_and_exits_0
  (and every test's teardown: exit 0 after SIGTERM, no child left)
* SIGPIPE ignored: clients vanishing mid-stream do not kill a worker
                                          -> test_sigpipe_ignored_when_clients_vanish
"""

import asyncio
import signal
import threading
import time

from conftest import (
    RawWS,
    close_codes,
    odds_fields,
    proc_comm,
    proc_descendants,
    publish,
    publish_many,
    run,
    ws_client,
    ws_connect,
)


def test_process_tree(service):
    svc = service(WORKERS="3")
    assert proc_comm(svc.pid) == "wsb-supervisor"
    comms = sorted(proc_comm(p) for p in svc.children())
    assert comms == ["wsb-ingest", "wsb-worker-1", "wsb-worker-2", "wsb-worker-3"], comms
    # nothing below the children
    assert sorted(proc_descendants(svc.pid)) == sorted(svc.children())
    m = svc.metrics()
    assert {w["worker"]: w["pid"] for w in m["workers"]} == \
        {int(c.rsplit("-", 1)[1]): p for c, p in svc.worker_pids().items()}


def test_workers_share_the_port(service, r):
    svc = service(WORKERS="2")
    n_clients, n_entries = 30, 10

    async def go():
        clients = [await ws_connect(svc.port) for _ in range(n_clients)]
        try:
            for c in clients:
                await c.subscribe(events=["mw"])
            m = await asyncio.to_thread(svc.wait_metric, lambda m: m["active_clients"] == n_clients,
                                        message=f"active_clients == {n_clients}")
            per_worker = [w["active_clients"] for w in m["workers"]]
            assert len(per_worker) == 2 and all(x > 0 for x in per_worker), per_worker
            assert sum(per_worker) == n_clients
            assert m["total_connections"] == n_clients

            for i in range(n_entries):
                publish(r, svc.stream(), **odds_fields(svc.sport, event="mw", seq=str(i)))
            for c in clients:
                got = await c.updates(n_entries)
                assert [int(x["payload"]["seq"]) for x in got] == list(range(n_entries))

            # 10 leave politely, 10 vanish: 10 remain
            for c in clients[:10]:
                await c.close()
            for c in clients[10:20]:
                c.abort()
            m = await asyncio.to_thread(svc.wait_metric, lambda m: m["active_clients"] == 10,
                                        message="active_clients back to 10")
            assert sum(w["active_clients"] for w in m["workers"]) == 10
            assert svc.health()[1]["active_clients"] == 10
            # the rest still get everything
            publish(r, svc.stream(), **odds_fields(svc.sport, event="mw", seq="99"))
            for c in clients[20:]:
                (x,) = await c.updates(1)
                assert x["payload"]["seq"] == "99"
        finally:
            for c in clients:
                await c.close()

    run(go())
    m = svc.wait_metric(lambda m: m["active_clients"] == 0, message="active_clients back to 0")
    assert all(w["active_clients"] == 0 for w in m["workers"])
    assert m["total_connections"] == n_clients


def test_sigterm_closes_clients_1001_and_exits_0(service, r):
    svc = service(WORKERS="2")

    async def go():
        clients = [await ws_connect(svc.port) for _ in range(8)]
        for c in clients:
            await c.subscribe()
        m = await asyncio.to_thread(svc.wait_metric, lambda m: m["active_clients"] == 8,
                                    message="8 clients")
        svc.remember_children()
        t0 = time.monotonic()
        svc.signal(signal.SIGTERM)
        codes = await close_codes(clients)
        rc = await asyncio.to_thread(svc.terminate, max(0.1, 5 - (time.monotonic() - t0)))
        return m, codes, rc

    m, codes, rc = run(go())
    assert codes == [1001] * len(codes), codes
    assert rc == 0, f"exit status {rc} (None: still running 5 s after SIGTERM)\n{svc.stderr_text()}"
    left = svc.leftover_children()
    assert not left, f"children left: {[(p, proc_comm(p)) for p in left]}"


def test_sigpipe_ignored_when_clients_vanish(service, r):
    svc = service(WORKERS="2", CLIENT_BUFFER="1024")
    before = dict(svc.process_map())
    assert len(before) == 3, before

    stop = threading.Event()

    def feed():
        i = 0
        while not stop.is_set():
            publish_many(r, [(svc.stream(), odds_fields(svc.sport, event="sp", seq=str(i + k), pad="y" * 1024))
                             for k in range(50)])
            i += 50
            time.sleep(0.01)

    feeder = threading.Thread(target=feed, daemon=True)
    raws = []
    try:
        for _ in range(16):
            raw = RawWS(svc.port, rcvbuf=8192)
            raw.send_json({"type": "subscribe", "payload": {"events": ["sp"]}})
            raws.append(raw)
        feeder.start()
        time.sleep(0.3)
        for raw in raws:
            raw.abort()  # RST while the server writes to it
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        stop.set()
        feeder.join(10)
        for raw in raws:
            raw.close()

    assert svc.running()
    assert svc.process_map() == before, "a child died and was replaced"
    svc.wait_metric(lambda m: m["active_clients"] == 0, message="the vanished clients to be gone")

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(events=["after"])
            publish(r, svc.stream(), **odds_fields(svc.sport, event="after"))
            (m,) = await c.updates(1)
            assert m["payload"]["event_id"] == "after"

    run(go())
    assert svc.process_map() == before
