"""Shared memory and restarts: the stream table across reloads, a damaged
region, read-only mappings, crash loops (issue 10, items 8 and 14).

Contract lines -> tests:

Stream table (item 8)

* SIGHUP from 32 sports to 32 others, then to 32 more, then back: each
  reload is applied, the ingest starts once per reload and never dies on
  its own, /health stays 200, every stream of the new set is delivered
                                          -> test_sighup_replacing_every_sport_again_and_again
* a reload whose streams find no free row in the stream table (the rows of
  removed streams are reused only once the ring has moved past their last
  entry) is refused with a log line; the running configuration goes on
  (same ingest, its sports still delivered, the new streams not created);
  once the ring has moved on, the same reload is applied
                                          -> test_sighup_refused_while_rows_are_in_the_ring_then_applied

Damage through shared memory (item 14)

* hdr.nworkers, hdr.size, hdr.ring_offset and every geometry field of the
  ring overwritten in the live region: no process dies or restarts, the
  clients of every worker still receive, /health and /metrics answer with
  the configured worker count and ring size
                                          -> test_damaged_shared_geometry_takes_nobody_down
* each child maps what it does not write read-only: the header and the
  ring in the workers, the header in the ingest (which writes the ring);
  each worker writes only its own part, and a forced write through a
  worker's /proc/<pid>/mem into the ring is refused by the kernel
                                          -> test_children_map_what_they_do_not_write_read_only
* a worker killed more than 5 times in a minute (each time after living
  over a second, so the quick-death rule does not apply): an ERROR line
  naming the worker and the count, restart delays that grow, and a client
  of the other worker receives every entry, in order, throughout
                                          -> test_crash_loop_is_logged_and_backs_off_while_others_serve

The region is found in /proc/<pid>/maps by its magic ("WSBRING1" at the
start of a shared mapping).  It is damaged through the supervisor's
/proc/<pid>/mem: the supervisor maps the whole region writable, and the
kernel refuses forced writes into a shared mapping a process holds
read-only (which is what the read-only test relies on), so writing through
a worker works only where that worker could itself have written.
"""

import asyncio
import json
import os
import re
import signal
import struct
import threading
import time
from pathlib import Path

import websockets

from conftest import (
    UPDATE_TYPES,
    child_pid,
    odds_fields,
    publish,
    publish_many,
    run,
    uid,
    wait_until,
    write_config,
    ws_connect,
)

SHM_MAGIC = struct.pack("<Q", 0x57534252494E4731)  # "WSBRING1", shm.h SHM_MAGIC
# struct shm_header: magic u64, version u32, nworkers u32, size u64, ring_offset u64
HDR_NWORKERS, HDR_SIZE, HDR_RING_OFFSET = 12, 16, 24
# the ring's shared header: nslots u32, max_frame u32, data_size u64,
# slots_offset u64, data_offset u64
RING_GEOMETRY = struct.Struct("<IIQQQ")


def report(what, value):
    print(f"[shm] {what}: {value}")


# --------------------------------------------------------------------------
# helpers


def maps(pid):
    """(start, end, perms) of every mapping of pid."""
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        rng, perms = line.split()[:2]
        a, b = rng.split("-")
        out.append((int(a, 16), int(b, 16), perms))
    return out


def mem_read(pid, addr, n):
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as f:
        f.seek(addr)
        return f.read(n)


def mem_write(pid, addr, data):
    with open(f"/proc/{pid}/mem", "r+b", buffering=0) as f:
        f.seek(addr)
        f.write(data)


def region(pid):
    """Address, size and ring offset of the shared region in pid (found by
    its magic at the start of a shared mapping)."""
    for start, _, perms in maps(pid):
        if perms[3] != "s":
            continue
        try:
            head = mem_read(pid, start, 32)
        except OSError:
            continue
        if head[:8] == SHM_MAGIC:
            size, ring_offset = struct.unpack_from("<QQ", head, HDR_SIZE)
            return start, size, ring_offset
    raise AssertionError(f"no shared mapping of pid {pid} starts with the region's magic")


def perms_at(pid, addr):
    for start, end, perms in maps(pid):
        if start <= addr < end:
            return perms
    raise AssertionError(f"{addr:#x} is not mapped in pid {pid}")


def writable_ranges(pid, base, size):
    """The parts of [base, base + size) that pid maps writable."""
    out = []
    for start, end, perms in maps(pid):
        if end > base and start < base + size and perms[1] == "w":
            out.append((max(start, base), min(end, base + size)))
    return out


def worker_of(svc, local_port):
    """The wsb-worker-<n> process holding the server side of the client
    connection whose local port is local_port."""
    inode = None
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(name).read_text().splitlines()[1:]:
            parts = line.split()
            lport = int(parts[1].rsplit(":", 1)[1], 16)
            rport = int(parts[2].rsplit(":", 1)[1], 16)
            if lport == svc.port and rport == local_port:
                inode = parts[9]
    assert inode is not None, f"no server socket for client port {local_port}"
    for comm, pid in svc.worker_pids().items():
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return comm
            except OSError:
                continue
    return None


def client_port(c):
    return c.ws.transport.get_extra_info("sockname")[1]


def reload(svc, sports):
    write_config(svc.config_path, dict(svc.settings, SPORTS=",".join(sports)))
    svc.signal(signal.SIGHUP)


def sport_set(t, name, n=32):
    return [f"t{t}_{name}{i}" for i in range(n)]


async def deliver_each(c, r, sports, tag, timeout=15.0):
    """Publish one entry to the stream of each sport (event_id tag) and
    return the sport_keys of the updates tagged so that arrive."""
    await asyncio.to_thread(
        publish_many, r, [(f"odds.normalized.{s}", odds_fields(s, event=tag)) for s in sports])
    got = set()
    deadline = time.monotonic() + timeout
    while len(got) < len(sports):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            (m,) = await c.updates(1, timeout=left)
        except AssertionError:
            break
        if m["payload"].get("event_id") == tag:
            got.add(m["payload"]["sport_key"])
    return got


def new_ingest(svc, old, timeout=10.0):
    """Wait for an ingest other than old that reads Redis; its pid."""
    m = svc.wait_metric(lambda m: m["ingest"]["pid"] not in (0, old) and m["redis_connected"],
                        timeout=timeout, message="a new ingest reading Redis")
    svc.remember_children()
    return m["ingest"]["pid"]


# --------------------------------------------------------------------------
# item 8: the stream table across reloads


def test_sighup_replacing_every_sport_again_and_again(service, r):
    t = uid()
    first, second, third = sport_set(t, "a"), sport_set(t, "b"), sport_set(t, "c")
    svc = service(SPORTS=",".join(first), WORKERS="2", RING_SIZE="1024")
    ingest = child_pid(svc, "wsb-ingest")
    ingests = [ingest]

    async def go():
        c = await ws_connect(svc.port)
        try:
            await c.subscribe(events=["probe"])
            got = await deliver_each(c, r, first, "probe")
            assert got == set(first), f"{len(got)} of {len(first)} sports delivered before any reload"
            for n, sports in enumerate((second, third, first), 1):
                old = ingests[-1]
                await asyncio.to_thread(reload, svc, sports)
                try:
                    pid = await asyncio.to_thread(new_ingest, svc, old)
                except AssertionError as e:
                    raise AssertionError(f"reload {n}: {e}\n{svc.stderr_text()[-3000:]}") from None
                ingests.append(pid)
                got = await deliver_each(c, r, sports, "probe")
                assert got == set(sports), \
                    f"reload {n}: {len(got)} of {len(sports)} sports delivered; missing " \
                    f"{sorted(set(sports) - got)[:5]}\n{svc.stderr_text()[-3000:]}"
                assert svc.health()[0] == 200
        finally:
            await c.close()

    run(go())
    time.sleep(1.0)
    log = svc.stderr_text()
    assert "assertion failed" not in log, log[-3000:]
    # one ingest per reload, each replaced only by the next reload
    assert child_pid(svc, "wsb-ingest") == ingests[-1], (ingests, svc.process_map())
    assert svc.metrics()["ingest"]["restarts"] == 3, svc.metrics()["ingest"]
    assert not re.search(r"ingest \(pid \d+\) killed by signal", log), log[-3000:]
    assert svc.health()[0] == 200


def test_sighup_refused_while_rows_are_in_the_ring_then_applied(service, r):
    t = uid()
    sets = [sport_set(t, name) for name in "abcd"]
    ring_size = 1024
    svc = service(SPORTS=",".join(sets[0]), WORKERS="2", RING_SIZE=str(ring_size))

    async def go():
        c = await ws_connect(svc.port)
        try:
            await c.subscribe(events=["probe"])
            got = await deliver_each(c, r, sets[0], "probe")
            assert got == set(sets[0])
            # Each set's rows get an entry in the ring.  The table holds two
            # whole configurations and room to spare: the first reloads fit.
            ingest = child_pid(svc, "wsb-ingest")
            accepted = 0
            for sports in sets[1:]:
                before = svc.stderr_text()
                await asyncio.to_thread(reload, svc, sports)
                line = await asyncio.to_thread(
                    wait_until,
                    lambda: [ln for ln in svc.stderr_text()[len(before):].splitlines()
                             if "reload" in ln and ("refused" in ln or "SPORTS is now" in ln)],
                    10, 0.05, "the reload's log line")
                if "refused" in line[0]:
                    refused_line = line[0]
                    break
                accepted += 1
                ingest = await asyncio.to_thread(new_ingest, svc, ingest)
                got = await deliver_each(c, r, sports, "probe")
                assert got == set(sports), f"{len(got)} of {len(sports)} delivered after reload {accepted}"
            else:
                raise AssertionError("every reload was applied; none found the table full")
            report("reloads applied before the table was full", accepted)
            report("refusal", refused_line)
            assert accepted >= 1
            assert re.search(r"ERROR\s+supervisor: reload refused", refused_line), refused_line
            assert "running configuration" in refused_line, refused_line
            running, refused = sets[accepted], sets[accepted + 1]

            # the running configuration goes on: same ingest, same streams
            await asyncio.sleep(0.5)
            assert child_pid(svc, "wsb-ingest") == ingest, "the ingest was restarted by a refused reload"
            got = await deliver_each(c, r, running, "probe")
            assert got == set(running), f"{len(got)} of {len(running)} running sports delivered"
            assert not any(r.exists(f"odds.normalized.{s}") for s in refused), \
                "streams of the refused configuration were created"
            assert svc.health()[0] == 200

            # the ring moves past every entry of the removed streams: their
            # rows are free, and the same reload is applied
            head0 = svc.metrics()["ring_head"]
            filler = [(f"odds.normalized.{running[0]}", odds_fields(running[0], event="filler"))
                      for _ in range(ring_size + 64)]
            await asyncio.to_thread(publish_many, r, filler)
            await asyncio.to_thread(svc.wait_metric, lambda m: m["ring_head"] >= head0 + len(filler),
                                    20, "the filler entries in the ring")
            await asyncio.to_thread(reload, svc, refused)
            ingest = await asyncio.to_thread(new_ingest, svc, ingest)
            got = await deliver_each(c, r, refused, "probe")
            assert got == set(refused), f"{len(got)} of {len(refused)} delivered after the ring moved on"
        finally:
            await c.close()

    run(go())
    log = svc.stderr_text()
    assert "assertion failed" not in log
    assert not re.search(r"ingest \(pid \d+\) killed by signal", log), log[-3000:]


# --------------------------------------------------------------------------
# item 14: damage through shared memory, read-only mappings, crash loops


async def clients_on_every_worker(svc, want=2, tries=40):
    """Connect clients until each of the want workers holds at least one;
    returns {worker comm: [clients]}."""
    by_worker, spare = {}, []
    for _ in range(tries):
        c = await ws_connect(svc.port)
        await c.subscribe(events=["probe"])
        comm = await asyncio.to_thread(worker_of, svc, client_port(c))
        by_worker.setdefault(comm, []).append(c)
        if len(by_worker) == want and all(len(v) >= 2 for v in by_worker.values()):
            break
    assert len(by_worker) == want, f"clients landed on {sorted(by_worker)} only"
    return by_worker


def test_damaged_shared_geometry_takes_nobody_down(service, r):
    svc = service(WORKERS="2", RING_SIZE="4096")
    sup = svc.pid
    before = svc.process_map()
    assert len(before) == 3, before

    async def go():
        by_worker = await clients_on_every_worker(svc)
        clients = [c for cs in by_worker.values() for c in cs]
        try:
            publish(r, svc.stream(), **odds_fields(svc.sport, event="probe", n="0"))
            for c in clients:
                (m,) = await c.updates(1)
                assert m["payload"]["n"] == "0"

            base, size, ring_offset = region(sup)
            ring = base + ring_offset
            geometry = RING_GEOMETRY.unpack(mem_read(sup, ring, RING_GEOMETRY.size))
            report("region", f"{size} bytes, ring at +{ring_offset}, ring geometry {geometry}")
            # the ring's geometry first (its address comes from the header)
            mem_write(sup, ring, RING_GEOMETRY.pack(1 << 30, 0xFFFFFFFF, 1 << 62, 1 << 44, 1 << 45))
            mem_write(sup, base + HDR_NWORKERS, struct.pack("<I", 0x7FFFFFF0))
            mem_write(sup, base + HDR_SIZE, struct.pack("<QQ", 1 << 50, 1 << 44))
            assert struct.unpack("<I", mem_read(sup, base + HDR_NWORKERS, 4))[0] == 0x7FFFFFF0

            # every process goes on reading the ring and serving
            for n in range(1, 6):
                publish(r, svc.stream(), **odds_fields(svc.sport, event="probe", n=str(n)))
                for comm, cs in by_worker.items():
                    for c in cs:
                        (m,) = await c.updates(1, timeout=5)
                        assert m["payload"]["n"] == str(n), (comm, m)
                await asyncio.sleep(0.1)
            for _ in range(6):  # /health and /metrics from both workers, in all likelihood
                assert svc.health()[0] == 200
                m = svc.metrics()
                assert [w["worker"] for w in m["workers"]] == [1, 2], m["workers"]
                assert m["broadcast_capacity"] == 4096, m
                assert m["active_clients"] == len(clients), m
            # new clients are admitted by either worker and served
            fresh = await clients_on_every_worker(svc)
            publish(r, svc.stream(), **odds_fields(svc.sport, event="probe", n="fresh"))
            for cs in fresh.values():
                for c in cs:
                    (m,) = await c.updates(1, timeout=5)
                    assert m["payload"]["n"] == "fresh"
                    await c.close()
        finally:
            for c in clients:
                await c.close()

    run(go())
    time.sleep(0.5)
    log = svc.stderr_text()
    assert svc.process_map() == before, f"a process was restarted: {before} -> {svc.process_map()}\n{log[-3000:]}"
    assert not re.search(r"killed by signal|exited with status", log), log[-3000:]


def test_children_map_what_they_do_not_write_read_only(service):
    svc = service(WORKERS="2")
    base, size, ring_offset = region(svc.pid)
    ring, last = base + ring_offset, base + size - 1
    ingest = child_pid(svc, "wsb-ingest")
    workers = svc.worker_pids()
    assert len(workers) == 2, workers

    # the supervisor maps the whole region writable
    assert writable_ranges(svc.pid, base, size) == [(base, base + size)]
    # the ingest writes the ring; the header is read-only to it
    assert "w" not in perms_at(ingest, base), perms_at(ingest, base)
    assert "w" in perms_at(ingest, ring) and "w" in perms_at(ingest, last)
    own = {}
    for comm, pid in workers.items():
        for addr, what in ((base, "header"), (ring, "ring header"), (last, "ring data")):
            p = perms_at(pid, addr)
            report(f"{comm} {what}", p)
            assert p.startswith("r") and "w" not in p, f"{comm} maps the {what} {p}"
        own[comm] = writable_ranges(pid, base, size)
        assert own[comm], f"{comm} can write nothing in the region"
        assert all(e <= ring for _, e in own[comm]), own[comm]
        # the kernel refuses a forced write into the read-only ring (the
        # same bytes back: nothing changes if it is let through)
        data = mem_read(pid, ring, 8)
        try:
            mem_write(pid, ring, data)
        except OSError:
            pass
        else:
            raise AssertionError(f"{comm}: a write into the ring through /proc/{pid}/mem went through")
    (a, b) = own.values()
    overlap = [(x, y) for x in a for y in b if x[0] < y[1] and y[0] < x[1]]
    assert not overlap, f"the workers' writable parts overlap: {overlap}"
    report("writable parts", {k: [(hex(s - base), e - s) for s, e in v] for k, v in own.items()})


def test_crash_loop_is_logged_and_backs_off_while_others_serve(service, r):
    svc = service(WORKERS="2", CLIENT_BUFFER="4096")
    kills = 8
    survivor, victim = "wsb-worker-2", "wsb-worker-1"
    ingest = child_pid(svc, "wsb-ingest")
    stop = threading.Event()
    published = [0]

    def feed():
        while not stop.is_set():
            publish(r, svc.stream(), **odds_fields(svc.sport, event="probe", seq=str(published[0])))
            published[0] += 1
            time.sleep(0.05)

    async def go():
        by_worker = await clients_on_every_worker(svc)
        watcher = by_worker[survivor][0]
        keep = child_pid(svc, survivor)
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        seqs = []

        async def read():
            while True:
                try:
                    raw = await watcher.ws.recv()
                except websockets.ConnectionClosed:
                    return
                m = json.loads(raw)
                if m.get("type") in UPDATE_TYPES:
                    seqs.append(int(m["payload"]["seq"]))

        reader = asyncio.create_task(read())
        killed = []
        try:
            for k in range(kills):
                pid = await asyncio.to_thread(
                    wait_until, lambda: (p := child_pid(svc, victim)) not in (None, *killed) and p,
                    15, 0.01, f"{victim} back (kill {k + 1})")
                svc.remember_children()
                # lives over a second: not a quick death, so only the crash
                # count can make the supervisor back off
                await asyncio.sleep(1.2)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            await asyncio.to_thread(
                wait_until, lambda: child_pid(svc, victim) not in (None, *killed), 15, 0.01,
                f"{victim} back after the last kill")
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.to_thread(feeder.join, 5)
        last = published[0] - 1
        deadline = time.monotonic() + 10
        while (not seqs or seqs[-1] != last) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        reader.cancel()
        for cs in by_worker.values():
            for c in cs:
                await c.close()
        return seqs, last, killed, keep

    seqs, last, killed, keep = run(go())
    report("entries the survivor received", f"{len(seqs)} of {last + 1}")
    assert seqs == list(range(last + 1)), \
        f"the client of {survivor} missed entries: {len(seqs)} of {last + 1}, first gap at " \
        f"{next((i for i, s in enumerate(seqs) if s != i), None)}"
    assert child_pid(svc, survivor) == keep, f"{survivor} was restarted"
    assert child_pid(svc, "wsb-ingest") == ingest, "the ingest was restarted"

    log = svc.stderr_text().splitlines()
    loud = [ln for ln in log if re.search(r" ERROR\s+supervisor: worker 1 ", ln)]
    report("crash-loop lines", loud)
    counts = [int(m.group(1)) for ln in loud if (m := re.search(r"(\d+) times in the last 60 s", ln))]
    assert counts == [6, 7, 8], f"expected ERROR lines for deaths 6, 7 and 8 in a minute: {loud}"
    delays = [int(m.group(1)) for ln in log
              if (m := re.search(r"supervisor: restarting worker 1 in (\d+) ms", ln))]
    report("restart delays (ms)", delays)
    assert len(delays) == 3 and delays[0] > 0 and all(b > a for a, b in zip(delays, delays[1:])), delays

    # the delays are kept: from each backed-off death to the next start
    ts = re.compile(r"^(\S+) ")

    def when(ln):
        t = ts.match(ln).group(1)
        return time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) + float(t[19:-1] or 0)

    deaths = [ln for ln in log if re.search(r"supervisor: worker 1 \(pid \d+\) killed by signal 9", ln)]
    starts = [ln for ln in log if re.search(r"supervisor: started worker 1 \(pid \d+\)", ln)]
    assert len(deaths) == kills and len(starts) == kills + 1, (len(deaths), len(starts))
    gaps = [round((when(starts[i + 1]) - when(deaths[i])) * 1000) for i in range(kills)]
    report("death -> next start (ms)", gaps)
    for d, g in zip(delays, gaps[-3:]):
        assert g >= d - 20, f"restarted {g} ms after a death, delay {d} ms"
    assert svc.health()[0] == 200
