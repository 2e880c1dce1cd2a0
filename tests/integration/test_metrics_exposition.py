"""/metrics: the Prometheus families, their JSON twins, the latency
histograms, per-stream freshness, process figures, the Grafana dashboard.

Contract lines -> tests:

* every figure of the JSON is a sample of the Prometheus text with the
  same value, and every sample is a figure of the JSON (checked
  mechanically, through one map of JSON keys to families below, which
  fails on any figure it does not know)             -> test_json_and_text_have_the_same_figures
* the text passes `promtool check metrics` (Debian's prometheus package;
  fails when promtool is missing unless WSB_SKIP_PROMTOOL=1)
                                                    -> test_promtool_check_metrics
* README "HTTP endpoints" lists every family exposed, and only those
                                                    -> test_readme_lists_every_family
* ws_broadcaster_ingest_latency_seconds: one observation per entry
  published, from its id's time; ws_broadcaster_delivery_latency_seconds:
  one delivery in 8 timed, ring -> socket            -> test_latency_histograms
* per stream: newest entry's time and age, entries read, XINFO GROUPS lag
  (Redis 7) while entries wait                      -> test_stream_freshness_and_lag
* process_* figures per process, by role (and worker), the kernel's;
  restarts counted; a restarted worker's counters go on from its
  predecessor's (never backwards)                   -> test_process_figures_and_restarts
* closes by code, refused upgrades by reason        -> test_closes_and_refusals_by_label
* etc/grafana/ws-broadcaster.json queries only what the service exposes
                                                    -> test_dashboard_queries_exist
"""

import asyncio
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import (
    REPO_ROOT,
    apublish_many,
    odds_fields,
    publish,
    run,
    wait_until,
    ws_client,
    ws_connect,
)
from test_lifecycle import kill_and_wait_replacement

DASHBOARD = REPO_ROOT / "etc" / "grafana" / "ws-broadcaster.json"
SAMPLE_EVERY = 8  # OUTQ_LATENCY_SAMPLE (src/worker/outq.h)

# --------------------------------------------------------------------------
# the map: where each JSON figure is in the text

# A key found at the top (the sum over the workers) and in each workers[]
# entry (that worker's): its family, and the labels it stands for.
PER_WORKER = {
    "active_clients": ("ws_broadcaster_active_clients", {}),
    "total_connections": ("ws_broadcaster_connections_total", {}),
    "total_messages": ("ws_broadcaster_messages_sent_total", {}),
    "dropped_messages": ("ws_broadcaster_messages_dropped_total", {}),
    "slow_disconnects": ("ws_broadcaster_slow_disconnects_total", {}),
    "slow_disconnects_keys": ("ws_broadcaster_slow_disconnects_total", {"reason": "keys"}),
    "slow_disconnects_bytes": ("ws_broadcaster_slow_disconnects_total", {"reason": "bytes"}),
    "slow_disconnects_lag": ("ws_broadcaster_slow_disconnects_total", {"reason": "lag"}),
    "slow_disconnects_send_timeout": ("ws_broadcaster_slow_disconnects_total", {"reason": "send_timeout"}),
    "ring_missed": ("ws_broadcaster_ring_missed_frames_total", {}),
    "invalid_frames": ("ws_broadcaster_invalid_frames_total", {}),
    "client_errors": ("ws_broadcaster_client_errors_total", {}),
    "open_connections": ("ws_broadcaster_open_connections", {}),
    "refused_connections": ("ws_broadcaster_connections_refused_total", {}),
    "conflated_clients": ("ws_broadcaster_conflated_clients", {}),
    "conflated_updates": ("ws_broadcaster_conflated_updates_total", {}),
    "ping_timeouts": ("ws_broadcaster_ping_timeouts_total", {}),
    "snapshot.sent": ("ws_broadcaster_snapshots_sent_total", {}),
    "snapshot.items_sent": ("ws_broadcaster_snapshot_items_sent_total", {}),
    "snapshot.lapped": ("ws_broadcaster_snapshots_lapped_total", {}),
    "snapshot.resumes_ok": ("ws_broadcaster_resumes_total", {"result": "ok"}),
    "snapshot.resumes_epoch_changed": ("ws_broadcaster_resumes_total", {"result": "epoch_changed"}),
    "snapshot.resumes_too_old": ("ws_broadcaster_resumes_total", {"result": "too_old"}),
    "snapshot.resumes_unknown_stream": ("ws_broadcaster_resumes_total", {"result": "unknown_stream"}),
}
# Of those, the sums over a label's values (the others name one series).
SUMS_OVER_A_LABEL = {"slow_disconnects"}
# An object of label value -> count, at the top and in each workers[] entry.
PER_WORKER_BY_LABEL = {
    "closes": ("ws_broadcaster_closes_total", "code"),
    "upgrades_refused": ("ws_broadcaster_upgrades_refused_total", "reason"),
}
PER_WORKER_HISTOGRAMS = {"delivery_latency_seconds": "ws_broadcaster_delivery_latency_seconds"}
WORKER_ONLY = {"ring_lag": "ws_broadcaster_ring_lag_frames"}
INSTANCE = {
    "broadcast_capacity": ("ws_broadcaster_ring_capacity_frames", {}),
    "broadcast_usage": ("ws_broadcaster_ring_usage_frames", {}),
    "invalid_entries": ("ws_broadcaster_invalid_entries_total", {}),
    "ring_head": ("ws_broadcaster_ring_frames_total", {}),
    "redis_connected": ("ws_broadcaster_redis_connected", {}),
    "entries_read": ("ws_broadcaster_entries_read_total", {}),
    "entries_published": ("ws_broadcaster_entries_published_total", {}),
    "duplicates_skipped": ("ws_broadcaster_duplicates_skipped_total", {}),
    "redis_errors": ("ws_broadcaster_redis_errors_total", {}),
    "uptime_seconds": ("ws_broadcaster_uptime_seconds", {}),
    "snapshot.keys": ("ws_broadcaster_snapshot_keys", {}),
    "snapshot.bytes": ("ws_broadcaster_snapshot_bytes", {}),
    "snapshot.max_keys": ("ws_broadcaster_snapshot_max_keys", {}),
    "snapshot.capacity_bytes": ("ws_broadcaster_snapshot_capacity_bytes", {}),
    "snapshot.evicted_ttl": ("ws_broadcaster_snapshot_evictions_total", {"reason": "ttl"}),
    "snapshot.evicted_full": ("ws_broadcaster_snapshot_evictions_total", {"reason": "full"}),
    "snapshot.dropped_too_large": ("ws_broadcaster_snapshot_dropped_too_large_total", {}),
}
INSTANCE_HISTOGRAMS = {"ingest.latency_seconds": "ws_broadcaster_ingest_latency_seconds"}
# In supervisor, ingest and each workers[] entry: {role=...} (and worker).
PER_PROCESS = {
    "pid": "ws_broadcaster_pid",
    "restarts": "ws_broadcaster_restarts_total",
    "cpu_seconds_total": "process_cpu_seconds_total",
    "resident_memory_bytes": "process_resident_memory_bytes",
    "open_fds": "process_open_fds",
    "max_fds": "process_max_fds",
    "start_time_seconds": "process_start_time_seconds",
}
PER_STREAM = {
    "entries_read": "ws_broadcaster_stream_entries_read_total",
    "last_entry_timestamp_seconds": "ws_broadcaster_stream_last_entry_timestamp_seconds",
    "last_entry_age_seconds": "ws_broadcaster_stream_last_entry_age_seconds",
    "lag": "ws_broadcaster_stream_lag_entries",
}

# Figures that move between two requests a moment apart: (absolute, relative) slack.
VOLATILE = {
    "ws_broadcaster_uptime_seconds": (2, 0),
    "ws_broadcaster_stream_last_entry_age_seconds": (2, 0),
    # the request's own connection counts on the worker that answers it
    "ws_broadcaster_open_connections": (2, 0),
    "process_cpu_seconds_total": (1, 0),
    "process_resident_memory_bytes": (0, 0.5),
    "process_open_fds": (3, 0),
}


class Figure:
    def __init__(self, path, family, labels, value, exact):
        self.path = path
        self.family = family
        self.labels = labels
        self.value = value
        self.exact = exact  # names one series (else: a sum over the ones it matches)


def _hist_figures(path, family, h, labels, exact, out):
    assert set(h) == {"buckets", "sum", "count"}, (path, h)
    for le, v in h["buckets"].items():
        out.append(Figure(f"{path}.buckets.{le}", family + "_bucket", dict(labels, le=le), v, exact))
    out.append(Figure(f"{path}.sum", family + "_sum", dict(labels), h["sum"], exact))
    out.append(Figure(f"{path}.count", family + "_count", dict(labels), h["count"], exact))


def _flatten(obj, prefix=""):
    """(dotted key, value) of every leaf of a JSON object; histogram objects
    and label objects stay whole."""
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in PER_WORKER_BY_LABEL and key not in PER_WORKER_HISTOGRAMS \
                and key not in INSTANCE_HISTOGRAMS and "buckets" not in v:
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def json_figures(js):
    """Every figure of a /metrics JSON body, as (family, labels) of the text.
    Fails on a figure the map does not know."""
    out, unknown = [], []

    def worker_level(key, v, labels, exact):
        if key in PER_WORKER:
            fam, extra = PER_WORKER[key]
            out.append(Figure(key, fam, dict(labels, **extra), v, exact and key not in SUMS_OVER_A_LABEL))
            return True
        if key in PER_WORKER_BY_LABEL:
            fam, label = PER_WORKER_BY_LABEL[key]
            for lv, n in v.items():
                out.append(Figure(f"{key}.{lv}", fam, dict(labels, **{label: lv}), n, exact))
            return True
        if key in PER_WORKER_HISTOGRAMS:
            _hist_figures(key, PER_WORKER_HISTOGRAMS[key], v, labels, exact, out)
            return True
        return False

    def process_level(key, v, labels):
        if key in PER_PROCESS:
            out.append(Figure(key, PER_PROCESS[key], dict(labels), v, True))
            return True
        return False

    for key, v in _flatten(js):
        if key == "version":
            out.append(Figure(key, "ws_broadcaster_build_info", {"version": v}, 1, True))
        elif key in ("workers", "streams"):
            continue
        elif worker_level(key, v, {}, False):
            pass
        elif key in INSTANCE:
            fam, labels = INSTANCE[key]
            out.append(Figure(key, fam, dict(labels), v, True))
        elif key in INSTANCE_HISTOGRAMS:
            _hist_figures(key, INSTANCE_HISTOGRAMS[key], v, {}, True, out)
        elif key.startswith(("supervisor.", "ingest.")) and \
                process_level(key.split(".", 1)[1], v, {"role": key.split(".", 1)[0]}):
            pass
        else:
            unknown.append(key)
    for w in js["workers"]:
        labels = {"worker": str(w["worker"])}
        for key, v in _flatten(w):
            if key == "worker":
                continue
            if worker_level(key, v, labels, True):
                continue
            if key in WORKER_ONLY:
                out.append(Figure(f"workers.{key}", WORKER_ONLY[key], dict(labels), v, True))
            elif not process_level(key, v, dict(labels, role="worker")):
                unknown.append(f"workers[].{key}")
    for st in js["streams"]:
        labels = {"stream": st["stream"]}
        for key, v in st.items():
            if key == "stream":
                continue
            if key in PER_STREAM:
                out.append(Figure(f"streams.{key}", PER_STREAM[key], dict(labels), v, True))
            else:
                unknown.append(f"streams[].{key}")
    assert not unknown, f"JSON figures this test's map does not know (add them, and to the text): {unknown}"
    return out


def parse_text(text):
    """-> (types {family: type}, helps {family}, samples [(name, labels, value)])"""
    types, helps, samples = {}, set(), []
    for line in text.splitlines():
        if not line:
            continue
        m = re.match(r"# (HELP|TYPE) (\S+) (.*)$", line)
        if m:
            if m.group(1) == "TYPE":
                assert m.group(2) not in types, f"{m.group(2)} typed twice"
                types[m.group(2)] = m.group(3)
            else:
                helps.add(m.group(2))
            continue
        assert not line.startswith("#"), line
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, f"not a sample line: {line!r}"
        labels = {k: re.sub(r'\\(.)', lambda x: {"n": "\n"}.get(x.group(1), x.group(1)), v)
                  for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")}
        samples.append((m.group(1), labels, float(m.group(3))))
    return types, helps, samples


def family_of(name, types):
    if name in types:
        return name
    for sfx in ("_bucket", "_sum", "_count"):
        if name.endswith(sfx) and types.get(name[: -len(sfx)]) == "histogram":
            return name[: -len(sfx)]
    return None


def number(v):
    return float(v) if not isinstance(v, bool) else (1.0 if v else 0.0)


def close_enough(family, got, lo, hi):
    a, rel = VOLATILE.get(family, (0, 0))
    slack = a + rel * max(abs(lo), abs(hi))
    return lo - slack - 1e-9 <= got <= hi + slack + 1e-9


def check_same_figures(js1, text, js2):
    """Every JSON figure is in the text with its value (between the two JSON
    readings taken around the text, within VOLATILE's slack), and every
    sample of the text is one figure of the JSON."""
    types, helps, samples = parse_text(text)
    assert set(types) == helps, f"TYPE without HELP or the reverse: {set(types) ^ helps}"
    for name, _, _ in samples:
        assert family_of(name, types), f"sample {name} has no TYPE line"
    figs1 = json_figures(js1)
    figs2 = {(f.path, f.family, tuple(sorted(f.labels.items()))): f for f in json_figures(js2)}
    problems = []
    exact_series = set()
    for f in figs1:
        match = [(n, lb, v) for n, lb, v in samples if n == f.family and all(lb.get(k) == x for k, x in f.labels.items())]
        if not match:
            problems.append(f"JSON {f.path} {f.labels}: no sample {f.family}")
            continue
        if f.exact:
            full = [m for m in match if m[1] == f.labels]
            if len(full) != 1:
                problems.append(f"JSON {f.path}: {len(full)} samples {f.family}{f.labels}")
                continue
            exact_series.add((f.family, tuple(sorted(f.labels.items()))))
        got = sum(v for _, _, v in match)
        other = figs2.get((f.path, f.family, tuple(sorted(f.labels.items()))))
        v1 = number(f.value)
        v2 = number(other.value) if other is not None else v1
        if not close_enough(f.family, got, min(v1, v2), max(v1, v2)):
            problems.append(f"JSON {f.path} {f.labels} = {v1} / {v2}, text {f.family} = {got}")
    for n, lb, v in samples:
        if (n, tuple(sorted(lb.items()))) not in exact_series:
            problems.append(f"sample {n}{lb} {v} is no figure of the JSON")
    assert not problems, "\n".join(problems[:40]) + (f"\n... {len(problems)} in all" if len(problems) > 40 else "")
    return types, samples


def scrape(svc):
    resp = svc.http("/metrics?format=prometheus")
    assert resp.status == 200
    return resp.text


def busy_service(service, r, **settings):
    """A service that has delivered, closed, refused and counted a little of
    everything, so the figures are not all zero."""
    settings.setdefault("WORKERS", "2")
    settings.setdefault("ALLOWED_ORIGINS", "http://good.example")
    svc = service(**settings)

    async def go():
        async with ws_client(svc, origin="http://good.example") as c:
            await c.subscribe(snapshot=False)
            await apublish_many(r, [(svc.stream(), odds_fields(svc.sport, event=f"e{i % 3}")) for i in range(20)])
            await c.updates(20)
            # a binary message: close 1003
            bad = await ws_connect(svc.port, origin="http://good.example")
            await bad.ws.send(b"\x00\x01")
            with pytest.raises(Exception):
                await asyncio.wait_for(bad.ws.recv(), 5)
            assert bad.ws.close_code == 1003
            # an Origin not allowed: 403
            with pytest.raises(Exception):
                await ws_connect(svc.port, origin="http://evil.example")
            # a snapshot
            c2 = await ws_connect(svc.port, origin="http://good.example")
            await c2.subscribe()
            await c2.close()

    run(go())
    wait_until(lambda: svc.metrics()["upgrades_refused"]["origin"] == 1 and svc.metrics()["closes"]["1003"] == 1,
               message="the close and the refusal counted")
    return svc


# --------------------------------------------------------------------------


def test_json_and_text_have_the_same_figures(service, r):
    svc = busy_service(service, r)
    # quiet: nothing is published or delivered while the three are read
    svc.wait_metric(lambda m: m["active_clients"] == 0 and m["broadcast_usage"] == 0, message="quiet")
    js1 = svc.metrics()
    text = scrape(svc)
    js2 = svc.metrics()
    types, samples = check_same_figures(js1, text, js2)
    # what the busy service did shows, under its labels
    closes = {lb["code"]: v for n, lb, v in samples if n == "ws_broadcaster_closes_total" and v}
    assert closes == {"1003": 1}, closes
    refused = {lb["reason"]: v for n, lb, v in samples if n == "ws_broadcaster_upgrades_refused_total" and v}
    assert refused == {"origin": 1}, refused
    assert sum(v for n, _, v in samples if n == "ws_broadcaster_messages_sent_total") == js2["total_messages"] >= 20
    assert sum(v for n, _, v in samples if n == "ws_broadcaster_snapshots_sent_total") == 1
    # a per-worker family has series for workers 1..n, and none without
    for fam in types:
        own = [lb for n, lb, _ in samples if family_of(n, types) == fam and "role" not in lb]
        if any("worker" in lb for lb in own):
            assert {lb.get("worker") for lb in own} == {"1", "2"}, (fam, own[:4])
    assert {lb["role"] for n, lb, _ in samples if n == "process_cpu_seconds_total"} == {"supervisor", "ingest", "worker"}
    assert [lb for n, lb, _ in samples if n == "ws_broadcaster_build_info"] == [{"version": js1["version"]}]


def test_promtool_check_metrics(service, r, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("WSB_SKIP_PROMTOOL") == "1":
            pytest.skip("promtool missing, WSB_SKIP_PROMTOOL=1")
        pytest.fail("promtool not found: install Debian's prometheus package (make deps), "
                    "or set WSB_SKIP_PROMTOOL=1 to skip this test")
    svc = busy_service(service, r)
    text = scrape(svc)
    (tmp_path / "metrics.txt").write_text(text)
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), \
        f"promtool check metrics: {res.returncode}\n{res.stdout}\n{res.stderr}"


def test_readme_lists_every_family(service, r):
    svc = busy_service(service, r)
    types, _, _ = parse_text(scrape(svc))
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## HTTP endpoints"):]
    section = section[: section.index("\n## ", 4)]
    listed = set(re.findall(r"`((?:ws_broadcaster|process)_[a-z_]+)[`{]", section))
    assert set(types) - listed == set(), f"families exposed but not in README: {set(types) - listed}"
    assert listed - set(types) == set(), f"families in README but not exposed: {listed - set(types)}"


def hist_of(samples, family, **labels):
    """-> ({le: cumulative}, sum, count) of one histogram series, or summed
    over the series that match labels."""
    buckets, total, count = {}, 0.0, 0.0
    for n, lb, v in samples:
        if any(lb.get(k) != x for k, x in labels.items()):
            continue
        if n == family + "_bucket":
            buckets[lb["le"]] = buckets.get(lb["le"], 0) + v
        elif n == family + "_sum":
            total += v
        elif n == family + "_count":
            count += v
    return buckets, total, count


def check_buckets(buckets, count):
    les = sorted(buckets, key=lambda le: math.inf if le == "+Inf" else float(le))
    assert les[-1] == "+Inf" and buckets["+Inf"] == count, (buckets, count)
    values = [buckets[le] for le in les]
    assert values == sorted(values), f"buckets not cumulative: {buckets}"


def test_latency_histograms(service, r):
    svc = service(WORKERS="1")
    n = 50

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(snapshot=False)
            # first, on the empty stream, one entry whose id says it was made
            # 20 s ago; then n of now
            r.xadd(svc.stream(), odds_fields(svc.sport, event="old"), id=f"{int(time.time() * 1000) - 20000}-0")
            await apublish_many(r, [(svc.stream(), odds_fields(svc.sport, event=f"e{i}")) for i in range(n)])
            await c.updates(n + 1)

    run(go())
    m = svc.wait_metric(lambda m: m["ingest"]["latency_seconds"]["count"] == n + 1, message="n + 1 entries timed")
    _, _, samples = parse_text(scrape(svc))
    buckets, total, count = hist_of(samples, "ws_broadcaster_ingest_latency_seconds")
    check_buckets(buckets, count)
    assert count == n + 1 == m["entries_published"]
    # the old one: at least 20 s; the others: well under a second here
    assert buckets["10"] == n and buckets["30"] == n + 1, buckets
    assert 20 <= total < 20 + n * 1.0, total
    # ring -> socket: the client's n + 1 updates, the first and every 8th after it
    buckets, total, count = hist_of(samples, "ws_broadcaster_delivery_latency_seconds", worker="1")
    check_buckets(buckets, count)
    assert count == math.ceil((n + 1) / SAMPLE_EVERY), (count, n + 1)
    assert buckets["1"] == count and total > 0, (buckets, total)
    # the same in JSON
    h = m["workers"][0]["delivery_latency_seconds"]
    assert h == m["delivery_latency_seconds"] and h["count"] == count


def stream_samples(svc, family):
    _, _, samples = parse_text(scrape(svc))
    return {lb["stream"]: v for n, lb, v in samples if n == family}


def of_stream(m, name):
    return next(s for s in m["streams"] if s["stream"] == name)


def redis_major(r):
    return int(r.info("server")["redis_version"].split(".")[0])


def test_stream_freshness_and_lag(service, r):
    svc = service(WORKERS="1")
    stream, opps = svc.stream(), svc.opp_stream
    # nothing read yet: counted, no newest entry
    m = svc.wait_metric(lambda m: {s["stream"] for s in m["streams"]} == {stream, opps}, message="both streams listed")
    assert all(s["entries_read"] == 0 and "last_entry_age_seconds" not in s for s in m["streams"]), m["streams"]
    assert stream not in stream_samples(svc, "ws_broadcaster_stream_last_entry_age_seconds")

    publish(r, stream, **odds_fields(svc.sport))
    m = svc.wait_metric(lambda m: of_stream(m, stream)["entries_read"] == 1, message="one entry read")
    first = of_stream(m, stream)
    entry_ms = int(r.xinfo_stream(stream)["last-generated-id"].split("-")[0])
    assert first["last_entry_timestamp_seconds"] == pytest.approx(entry_ms / 1000, abs=0.001)
    assert 0 <= first["last_entry_age_seconds"] < 2
    # the age grows while nothing new arrives
    time.sleep(1.2)
    ages = stream_samples(svc, "ws_broadcaster_stream_last_entry_age_seconds")
    assert ages[stream] >= 1.2 and opps not in ages, ages
    if redis_major(r) < 7:
        return  # no lag from Redis before 7.0
    wait_until(lambda: stream_samples(svc, "ws_broadcaster_stream_lag_entries").get(stream) == 0,
               message="lag 0 once read")
    assert stream_samples(svc, "ws_broadcaster_stream_lag_entries").get(opps) == 0

    # Entries waiting unread: the ingest stopped (in or between its blocking
    # reads), 30 entries added.  When it runs again it takes what its
    # pending read returns (at most the first entry, or nothing if that read
    # had timed out), then asks for the lag (due long since) before it reads
    # on: 29 or 30 wait.
    ingest = svc.metrics()["ingest"]["pid"]
    os.kill(ingest, signal.SIGSTOP)
    try:
        time.sleep(1.2)
        pipe = r.pipeline(transaction=False)
        for i in range(30):
            pipe.xadd(stream, odds_fields(svc.sport, event=f"w{i}"))
        pipe.execute()
    finally:
        os.kill(ingest, signal.SIGCONT)
    seen = wait_until(lambda: of_stream(svc.metrics(), stream).get("lag", 0),
                      timeout=3, interval=0.02, message="a lag > 0 while entries waited")
    assert 29 <= seen <= 30, seen
    # then all read, and the lag back to 0
    svc.wait_metric(lambda m: of_stream(m, stream)["entries_read"] == 31 and of_stream(m, stream).get("lag") == 0,
                    message="everything read, lag 0")


def read_proc(pid, name):
    with open(f"/proc/{pid}/{name}") as f:
        return f.read()


def test_process_figures_and_restarts(service, r):
    svc = service(WORKERS="2")

    async def deliver(k):
        async with ws_client(svc) as c:
            await c.subscribe(snapshot=False)
            await apublish_many(r, [(svc.stream(), odds_fields(svc.sport)) for _ in range(k)])
            await c.updates(k)
        return k

    run(deliver(10))
    m = svc.metrics()
    pids = {("supervisor", None): svc.pid, ("ingest", None): m["ingest"]["pid"]}
    for w in m["workers"]:
        pids[("worker", str(w["worker"]))] = w["pid"]
    _, _, samples = parse_text(scrape(svc))

    def figure(family, role, worker=None):
        want = {"role": role, **({"worker": worker} if worker else {})}
        vals = [v for n, lb, v in samples if n == family and lb == want]
        assert len(vals) == 1, (family, want, vals)
        return vals[0]

    tck = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGESIZE")
    with open("/proc/stat") as f:
        btime = int(next(line for line in f if line.startswith("btime")).split()[1])
    for (role, worker), pid in pids.items():
        assert figure("ws_broadcaster_pid", role, worker) == pid
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        assert abs(figure("process_open_fds", role, worker) - fds) <= 3, (role, worker, fds)
        rss = int(read_proc(pid, "statm").split()[1]) * page
        assert 0.5 * rss <= figure("process_resident_memory_bytes", role, worker) <= 2 * rss
        stat = read_proc(pid, "stat").rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / tck
        # read a moment before cpu, in ticks of 10 ms
        assert cpu - 0.1 <= figure("process_cpu_seconds_total", role, worker) <= cpu + 0.02
        start = btime + int(stat[19]) / tck
        assert figure("process_start_time_seconds", role, worker) == pytest.approx(start, abs=0.02)
        limit = int(re.search(r"Max open files\s+(\d+)", read_proc(pid, "limits")).group(1))
        assert figure("process_max_fds", role, worker) == limit
    assert not [lb for n, lb, _ in samples if n == "ws_broadcaster_restarts_total" and lb["role"] == "supervisor"]

    # A worker killed and replaced: its slot's counters go on, its restart
    # is counted, its process figures are the new process's.
    before = {w["worker"]: w for w in m["workers"]}
    old, new, _ = kill_and_wait_replacement(svc, "wsb-worker-1")
    m = svc.wait_metric(lambda m: m["workers"][0]["pid"] == new and m["workers"][0]["restarts"] == 1,
                        message="worker 1 replaced")
    for k in ("total_connections", "total_messages"):
        assert m["workers"][0][k] == before[1][k], (k, m["workers"][0][k], before[1][k])
        assert m[k] == before[1][k] + before[2][k], (k, m[k])
    _, _, samples = parse_text(scrape(svc))
    assert figure("ws_broadcaster_restarts_total", "worker", "1") == 1
    assert figure("ws_broadcaster_pid", "worker", "1") == new
    assert figure("process_start_time_seconds", "worker", "1") > m["ingest"]["start_time_seconds"]
    # the new worker counts on top (the client lands on either worker)
    run(deliver(10))
    m = svc.wait_metric(lambda m: m["total_messages"] == sum(w["total_messages"] for w in before.values()) + 11,
                        message="11 more messages (the ack, 10 updates)")
    assert m["workers"][0]["total_messages"] >= before[1]["total_messages"]


def test_closes_and_refusals_by_label(service, r):
    svc = service(WORKERS="1", MAX_CLIENTS_PER_IP="1", MAX_MESSAGE_SIZE="1024")

    async def go():
        async with ws_client(svc) as c:
            await c.subscribe(snapshot=False)
            # a second client from the same address: 429
            with pytest.raises(Exception):
                await ws_connect(svc.port)
            # too large a message: 1009
            await c.ws.send("x" * 2048)
            with pytest.raises(Exception):
                await asyncio.wait_for(c.ws.recv(), 5)
            assert c.ws.close_code == 1009
        # the path: 404
        with pytest.raises(Exception):
            await ws_connect(svc.port, path="/nope")

    run(go())
    m = svc.wait_metric(lambda m: m["closes"]["1009"] == 1 and m["upgrades_refused"]["not_found"] == 1,
                        message="counted")
    assert {k: v for k, v in m["closes"].items() if v} == {"1009": 1}
    assert {k: v for k, v in m["upgrades_refused"].items() if v} == {"max_clients_per_ip": 1, "not_found": 1}
    _, _, samples = parse_text(scrape(svc))
    assert ("ws_broadcaster_closes_total", {"worker": "1", "code": "1009"}, 1.0) in samples
    assert ("ws_broadcaster_upgrades_refused_total", {"worker": "1", "reason": "max_clients_per_ip"}, 1.0) in samples


# --------------------------------------------------------------------------
# the dashboard

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan", "le",
}


def promql_metric_names(expr):
    """The metric names a PromQL expression reads: identifiers that are not
    functions, aggregations, keywords, label names or Grafana variables."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                        # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                       # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # label lists
    e = re.sub(r"\$\{?\w+\}?", " ", e)                      # $__rate_interval, ${worker}
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or an aggregation
        if word.lower() in PROMQL_KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def dashboard_exprs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                yield v
            else:
                yield from dashboard_exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from dashboard_exprs(v)


def test_promql_names_extracted():
    assert promql_metric_names('sum by (le) (rate(ws_broadcaster_x_bucket{worker=~"$worker"}[$__rate_interval]))') == {"ws_broadcaster_x_bucket"}
    assert promql_metric_names("histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) / ignoring(x) b") == {"a_bucket", "b"}
    assert promql_metric_names('max(time() - c{stream!=""}) or on() vector(0)') == {"c"}


def grafana_to_promql(expr):
    """A panel's query as plain PromQL: Grafana's variables replaced."""
    e = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(\w+)\}?", ".*", e)


def test_dashboard_queries_exist(service, r, tmp_path):
    dash = json.loads(DASHBOARD.read_text())
    assert dash.get("title") and dash.get("panels") and dash.get("schemaVersion"), "not a Grafana dashboard"
    exprs = list(dashboard_exprs(dash))
    assert len(exprs) >= 10, exprs
    wanted = set()
    for e in exprs:
        names = promql_metric_names(e)
        assert names, f"no metric in {e!r}"
        wanted |= names
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("definition") or ""
        m = re.match(r"label_values\((\w+),", q)
        if m:
            wanted.add(m.group(1))
    # The queries are PromQL (promtool parses them as recording rules).
    promtool = shutil.which("promtool")
    if promtool is not None:
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:query{i}", "expr": grafana_to_promql(e)} for i, e in enumerate(exprs)]}]}
        (tmp_path / "rules.yml").write_text(json.dumps(rules))  # JSON is YAML
        res = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    elif os.environ.get("WSB_SKIP_PROMTOOL") != "1":
        pytest.fail("promtool not found: install Debian's prometheus package (or WSB_SKIP_PROMTOOL=1)")
    svc = busy_service(service, r)
    types, _, samples = parse_text(scrape(svc))
    exposed = set(types)
    for fam, t in types.items():
        if t == "histogram":
            exposed |= {fam + "_bucket", fam + "_sum", fam + "_count"}
    missing = wanted - exposed
    assert not missing, f"the dashboard queries metrics the service does not expose: {sorted(missing)}"
    # what the issue asks the dashboard to show
    for fam in ("ws_broadcaster_active_clients", "ws_broadcaster_messages_sent_total",
                "ws_broadcaster_messages_dropped_total", "ws_broadcaster_slow_disconnects_total",
                "ws_broadcaster_closes_total", "ws_broadcaster_delivery_latency_seconds_bucket",
                "ws_broadcaster_ingest_latency_seconds_bucket", "ws_broadcaster_stream_last_entry_age_seconds",
                "ws_broadcaster_stream_lag_entries", "ws_broadcaster_restarts_total"):
        assert fam in wanted, f"the dashboard does not show {fam}"
