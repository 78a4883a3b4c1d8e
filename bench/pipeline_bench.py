"""Stream-processing benchmark against the real local Kafka.

One run measures, on the same raw messages (RawBatch messages of ``--batch`` events each, as
the collector forms them: events grouped by the partition their party hashes to):

(c) a plain confluent-kafka pass-through, one process, no framework (bench/confluent_passthrough.py),
(a) a Faust pass-through worker doing the same work per message (bench/pipeline_passthrough.py),
(b) the full pipeline worker (app.main),

each on its own copy of the raw topic, pre-loaded, so the process runs flat out; throughput
is events read between 10 % and 90 % of the backlog (the workers' ``/metrics`` records_in,
which counts events, sampled every 0.25 s and interpolated; the baseline times itself).
Each pass-through decodes every event and writes it back as a JSON row, one output message
per input message. Then the steps are profiled in process on the worker's code path for a
message (envelope, decode each event, steps, JSON rows, state read and written once per party
per message, expiry index). Memory is the peak RSS; state size is the worker's RocksDB
directory after a clean stop and the mean JSON state per party. The machine's load average
is recorded with every figure.

Traffic: most user agents come from a small pool of real browser strings (2 % are one-off
variants), 5 % of events are bots (crawler UAs, headless, webdriver), 1 % are duplicates,
and 10 % of events are a party's last before a 31-minute pause, so they end a session.

Usage: python -m bench.pipeline_bench [--events 100000] [--parties 20000] [--batch 20 100]
       [--runs confluent,passthrough,pipeline] [--repeat 1] [--workers 1] [--worker-profile SECONDS]
       [--variant NAME:BENCH_VAR=VALUE,...]
       python -m bench.pipeline_bench --steps-only [--steps-profile SECONDS] [--gc-compare]
(``--batch 0``: one RawClick message per event, the format before RawBatch.)
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, cast

from confluent_kafka import Consumer, TopicPartition
from faust.serializers import codecs

import schemas
from app.geodata import test_database_env
from clickpipe.config import load, settings
from clickpipe.topics import partition_for
from steps import Pipeline
from tests.support.pipeline import Run

ROOT = Path(__file__).resolve().parent.parent
Message = tuple  # (partition or None, key or None, value, headers): one raw-topic message

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.{v} Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPad; CPU OS 16_{v} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "python-requests/2.31.0", "curl/8.4.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
]
REFERRERS = [None, None, None, "https://www.google.com/search?q=shoes", "https://www.bing.com/search?q=boots",
             "https://t.co/x1", "https://l.facebook.com/l.php", "https://blog.example.org/post", "INTERNAL"]
PATHS = [f"/{section}/{i}" for section in ("products", "blog", "help", "cart") for i in range(50)]


def traffic(n: int, parties: int, seed: int = 7) -> list[dict]:
    """``n`` RawClick dicts on a realistic timeline (see the module doc)."""
    rng = random.Random(seed)
    ua_pool = [b.format(v=v) for b in BROWSERS for v in range(110, 122)]
    ips = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
           for _ in range(5000)] + ["81.2.69.142", "216.160.83.56", "89.160.20.112", "2001:218::1", "1.0.0.1"]
    party_ua = {}
    party_ip = {}
    asleep_until: dict[str, int] = {}
    seq: collections.Counter[str] = collections.Counter()
    t0 = int(time.time() * 1000) - 2 * 3600_000
    out: list[dict] = []
    i = 0
    while len(out) < n:
        now = t0 + i * 20
        i += 1
        p = f"party-{rng.randrange(parties):07d}"
        if asleep_until.get(p, 0) > now:
            continue
        if p not in party_ua:
            r = rng.random()
            party_ua[p] = (rng.choice(BOTS) if r < 0.05 else
                           rng.choice(BROWSERS).format(v=rng.randint(1, 10**6)) if r < 0.07 else rng.choice(ua_pool))
            party_ip[p] = rng.choice(ips)
        seq[p] += 1
        ref = rng.choice(REFERRERS) if seq[p] == 1 else "INTERNAL"
        query = "?utm_source=news&utm_medium=email&utm_campaign=spring" if rng.random() < 0.05 else ""
        record = {
            "server_time": now, "client_time": now - 150, "source": "tag", "party_id": p, "session_id": None,
            "page_view_id": f"pv{seq[p]}", "event_id": f"e{seq[p]}",
            "event_type": "pageView" if rng.random() < 0.7 else "click",
            "location": f"https://shop.example.com{rng.choice(PATHS)}{query}",
            "referrer": "https://shop.example.com/" if ref == "INTERNAL" else ref,
            "user_agent": party_ua[p], "ip": party_ip[p], "screen_width": 1920, "screen_height": 1080,
            "viewport_width": 1280, "viewport_height": 720, "device_pixel_ratio": 1.0, "params": {},
            "new_party": seq[p] == 1, "corrupted": False, "no_js": False,
            "webdriver": True if party_ua[p] in BOTS[-1:] else None, "consent": "granted",
        }
        out.append(record)
        if rng.random() < 0.01:
            out.append(dict(record))  # a duplicate, as a retrying client would send
        if rng.random() < 0.10:
            asleep_until[p] = now + 31 * 60_000  # next event opens a new session
    return out[:n]




def raw_messages(records: list[dict], batch: int, partitions: int) -> list[Message]:
    """The raw-topic messages a collector forms from ``records`` (as :meth:`tests.support.pipeline.Run.produce`).

    ``batch`` > 0: RawBatch messages of up to ``batch`` events, each holding events of the
    partition their party's key hashes to, in order. ``batch`` = 0: one RawClick per event, keyed.
    """
    raw = schemas.current("RawClick")
    batch_headers = schemas.current("RawBatch").headers
    out: list[Message] = []
    pending: dict[int, list[bytes]] = {}
    for record in records:
        key, value = record["party_id"].encode(), schemas.encode(raw, record)
        if not batch:
            out.append((None, key, value, raw.headers))
            continue
        partition = partition_for(key, partitions)
        events = pending.setdefault(partition, [])
        events.append(value)
        if len(events) >= batch:
            out.append((partition, None, schemas.encode_batch(pending.pop(partition), raw), batch_headers))
    for partition, events in pending.items():
        out.append((partition, None, schemas.encode_batch(events, raw), batch_headers))
    return out


def produce(run: Run, messages: list[Message]) -> None:
    producer = run.producer()
    for partition, key, value, headers in messages:
        run.produce_bytes(producer, key, value, headers, partition)
    producer.flush(120)


def load_average() -> float:
    return os.getloadavg()[0]


def counter(metrics_text: str, name: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def labelled(metrics_text: str, name: str) -> dict[str, float]:
    """``name{label="x"} v`` lines as {x: v} (first label only)."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith(name + "{"):
            out[line.split('"')[1]] = out.get(line.split('"')[1], 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def vm(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match is not None, f"no {field} in /proc/{pid}/status"
    return int(match.group(1)) * 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def crossing(samples: list[tuple[float, float]], level: float) -> float:
    """The time ``samples`` (time, count) reach ``level``, interpolated between the two samples around it."""
    for (t0, d0), (t1, d1) in zip(samples, samples[1:], strict=False):
        if d1 >= level:
            if d0 >= level or d1 == d0:
                return t1 if d0 < level else t0
            return t0 + (level - d0) / (d1 - d0) * (t1 - t0)
    raise ValueError(f"never reached {level}")


def spy(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    """Sample ``pid`` with py-spy for ``seconds``, 100 times a second (collapsed stacks in ``out``)."""
    cmd = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--duration", str(int(seconds)),
           "--rate", "100", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame(frame: str) -> str:
    frame = re.sub(r"\s*\(/.*?/(site-packages|lib/python3\.\d+)/", " (", frame)
    return re.sub(r"\s*\(" + re.escape(str(ROOT)) + "/", " (", frame)


GENERIC = re.compile(r"\((asyncio|click|mode|threading|<frozen runpy>|faust/cli|faust/__main__|faust/agents)/?|"
                     r"steps_main|profile_steps \(|Thread\.")


def summarise_profile(raw: str, top: int = 15, only: str | None = None) -> dict:
    """Collapsed stacks -> share of samples per function, own (leaf) and inclusive (anywhere on the stack).

    Functions are named ``name (file)`` without the line, so a function's lines add up. With
    ``only``, just the stacks that contain it.
    """
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or (only and only not in stack):
            continue
        frames = [re.sub(r":\d+\)$", ")", _frame(f)) for f in stack.split(";")]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            if not GENERIC.search(f):
                inclusive[f] += n
    share = lambda c: [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)]  # noqa: E731
    return {"samples": total, "own": share(own), "inclusive": share(inclusive)}


def end_offsets(run: Run) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": run.bootstrap, "group.id": f"bench-{run.tag}-watermarks"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(run.topics["raw"], p), timeout=10)[1]
                for p in range(run.partitions)}
    finally:
        consumer.close()


def wait_committed(run: Run, ends: dict[int, int], timeout: float = 180) -> float | None:
    """When the workers' group has committed every raw offset up to ``ends`` (their outputs with them)."""
    consumer = Consumer({"bootstrap.servers": run.bootstrap, "group.id": f"pipeline-{run.tag}",
                         "enable.auto.commit": False})
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            committed = consumer.committed([TopicPartition(run.topics["raw"], p) for p in ends], timeout=10)
            if all(tp.offset >= ends[tp.partition] for tp in committed):
                return time.monotonic()
            time.sleep(0.2)
    finally:
        consumer.close()
    return None


# Where a worker's samples go: the first of these (in this order) with a frame on the stack.
CATEGORIES = [
    ("commit: publish attached changelog writes and rows, offsets, transaction",
     ("Consumer.commit", "Consumer.force_commit", "Consumer._commit_handler")),
    ("agent: table reads (RocksDB + JSON), incl. the IP counters the bots step reads",
     ("Mapping.get", "CachedCounters.get", "CachedCounters.__getitem__")),
    ("agent: table writes (RocksDB + JSON + changelog attach)",
     ("SerializedStore.__setitem__", "Table.on_key_set", "ManagedUserDict.__setitem__")),
    ("agent: decode events (envelope + Avro)", ("decode (steps/decode.py", "raw_events (schemas")),
    ("agent: expiry index (due_at + set)", ("ExpiryIndex.", "Pipeline.due_at")),
    ("agent: JSON rows", ("encode_rows (schemas",)),
    ("agent: steps", ("Pipeline.process",)),
    ("agent: rest (row sends attached to the offset, metrics)", ("Enricher.handle", "Enricher.after")),
    ("Kafka client (aiokafka: sender, fetcher, connections)", ("aiokafka/",)),
    ("Faust consumer / stream plumbing", ("faust/transport/", "faust/streams.py", "faust/topics.py",
                                          "faust/channels.py", "faust/events.py")),
    ("event loop waiting (select)", ("EpollSelector.select",)),
]


def categorise(raw: str) -> list[tuple[str, float]]:
    """Share of samples per :data:`CATEGORIES`."""
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stack = ";".join(_frame(f) for f in stack.split(";"))
        total += int(count)
        found = next((name for name, keys in CATEGORIES if any(k in stack for k in keys)), "other")
        counts[found] += int(count)
    order = [name for name, _ in CATEGORIES] + ["other"]
    return [(name, round(100 * counts[name] / total, 1)) for name in order if counts[name]]


def measure(run: Run, messages: list[Message], n: int, app_module: str, workers: int = 1, timeout: float = 600,
            profile_seconds: float = 0) -> dict:
    """Throughput of ``workers`` worker processes over ``messages`` holding ``n`` events (summed),
    their peak memory and state. With ``profile_seconds``, py-spy samples the (first) worker meanwhile.

    One worker finds the backlog already in the topic. Several are all started, and the
    group settled, before the messages are produced, so no rebalance falls in the measurement.
    """
    run.create_topics()
    if workers == 1:
        produce(run, messages)
        ends = end_offsets(run)
    load_before = load_average()
    procs = [run.start_worker(f"{app_module}-{i}.log", app_module=app_module, datadir=f"state-{i}")
             for i in range(workers)]
    for proc in procs:
        run.wait_ready(proc)
    if workers > 1:
        produce(run, messages)
        ends = end_offsets(run)
    spying = spy(procs[0].pid, profile_seconds, run.workdir / "worker-profile.txt") if profile_seconds else None
    enriched = f'clickpipe_pipeline_records_out_total{{topic="{run.topics["enriched"]}"}}'
    samples: list[tuple[float, float]] = []
    cpu_samples: list[tuple[float, float]] = []  # (CPU seconds of the workers, events read)
    deadline = time.monotonic() + timeout
    peak = 0
    while time.monotonic() < deadline:
        texts = [run.metrics(proc) for proc in procs]
        done = sum(counter(text, "clickpipe_pipeline_records_in_total") for text in texts)
        samples.append((time.monotonic(), done))
        cpu_samples.append((sum(cpu_seconds(proc.pid) for proc in procs), done))
        peak = max([peak] + [vm(proc.pid, "VmRSS") for proc in procs])
        finished = sum(counter(text, enriched) + counter(text, "clickpipe_pipeline_dropped_total") for text in texts)
        if finished >= n:
            break
        time.sleep(0.25)
    committed_at = wait_committed(run, ends)
    load_after = load_average()
    texts = [run.metrics(proc) for proc in procs]
    t10, t90 = crossing(samples, 0.1 * n), crossing(samples, 0.9 * n)
    dropped: collections.Counter = collections.Counter()
    steps_sum: collections.Counter = collections.Counter()
    steps_count: collections.Counter = collections.Counter()
    for text in texts:
        dropped.update(labelled(text, "clickpipe_pipeline_dropped_total"))
        steps_sum.update(labelled(text, "clickpipe_pipeline_step_seconds_sum"))
        steps_count.update(labelled(text, "clickpipe_pipeline_step_seconds_count"))
    total = lambda name: sum(counter(text, name) for text in texts)  # noqa: E731
    result: dict[str, Any] = {
        "workers": workers,
        "events_per_s": 0.8 * n / (t90 - t10),
        # the workers' CPU time per event over the same stretch: hardly changed by other jobs on the machine
        "cpu_us_per_event": 1e6 * (crossing(cpu_samples, 0.9 * n) - crossing(cpu_samples, 0.1 * n)) / (0.8 * n),
        # from 10 % of the events read to every offset committed, i.e. every output published
        "to_committed_events_per_s": 0.9 * n / (committed_at - t10) if committed_at else None,
        "load_1min": [round(load_before, 2), round(load_after, 2)],
        "rss_peak_mb": max([peak] + [vm(proc.pid, "VmHWM") for proc in procs]) / 2**20,
        "records_in": total("clickpipe_pipeline_records_in_total"),
        "enriched_out": total(enriched),
        "sessions_out": total(f'clickpipe_pipeline_records_out_total{{topic="{run.topics["sessions"]}"}}'),
        "dropped": dict(dropped),
        "bots": total("clickpipe_pipeline_bots_total"),
        "step_us_in_worker": {k: round(1e6 * steps_sum[k] / steps_count[k], 1) for k in steps_sum if steps_count[k]},
    }
    if spying is not None:
        spying.wait(profile_seconds + 60)
        path = run.workdir / "worker-profile.txt"
        if path.exists():
            result["profile"] = summarise_profile(path.read_text(), top=20)
            result["profile"]["categories"] = categorise(path.read_text())
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=60)
        run.workers.remove(proc)
    du = subprocess.check_output(["du", "-sbc", *(str(run.workdir / f"state-{i}") for i in range(workers))])
    result["state_dir_mb"] = int(du.split()[-2]) / 2**20
    return result


def measure_confluent(run: Run, messages: list[Message], n: int, timeout: float = 600) -> dict:
    """Throughput and peak RSS of the plain confluent-kafka pass-through over ``messages``."""
    run.create_topics()
    produce(run, messages)
    load_before = load_average()
    out = subprocess.run([sys.executable, "-m", "bench.confluent_passthrough",
                          "--bootstrap", run.bootstrap, "--source", run.topics["raw"],
                          "--output", run.topics["enriched"],
                          "--events", str(n), "--partitions", str(run.partitions), "--timeout", str(timeout)],
                         cwd=ROOT, env=run.worker_env(0), capture_output=True, text=True, timeout=timeout + 60)
    if out.returncode != 0:
        raise RuntimeError(f"confluent pass-through failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_1min"] = [round(load_before, 2), round(load_average(), 2)]
    return result


class JsonTable(dict):
    """A dict that keeps values as the worker's tables do: JSON bytes (Faust's json codec), decoded on read.

    ``spent`` adds up the seconds spent in reads and writes, under ``read_label``/``write_label``.
    """

    def __init__(self, spent: collections.Counter | None = None, read_label: str = "", write_label: str = ""):
        super().__init__()
        self.spent, self.read_label, self.write_label = spent, read_label, write_label

    def get(self, key, default=None):
        t = time.perf_counter()
        raw = super().get(key)
        value = default if raw is None else codecs.loads("json", raw)
        if self.spent is not None:
            self.spent[self.read_label] += time.perf_counter() - t
        return value

    def __setitem__(self, key, value) -> None:
        t = time.perf_counter()
        super().__setitem__(key, codecs.dumps("json", value))
        if self.spent is not None:
            # typeshed types Counter values as int; these hold float seconds
            self.spent[self.write_label] += time.perf_counter() - t  # type: ignore[assignment]


def _timed(fn, spent: collections.Counter, label: str):
    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - t
    return timed


def profile_steps(messages: list[Message], step_settings, max_events: int = 50_000, rounds: int = 3) -> dict:
    """Microseconds per event on the worker's code path for a message, in this process, without Kafka
    or Faust: :func:`agents.messages.read_events` (the envelope), :meth:`agents.messages.EventProcessor.process`
    (decode each event, the steps, its JSON row and closed sessions, each party's state read once and
    each IP's once), then what :mod:`agents.enrich` does with the outcome: each party and IP written
    once and its expiry-index entry set, the rows joined into one message per output. Tables are
    dicts of JSON bytes in Faust's codec (no RocksDB, no changelog).

    Two kinds of pass over the same messages, each on empty state: one timing every part (the
    breakdown; decode and JSON rows through timing wrappers), one untimed (the total per event,
    wall and CPU time, and events/s on one core). Each is run ``rounds`` times and the fastest
    kept (each part's fastest for the breakdown): the machine is shared.
    """
    import agents.messages as agent_messages  # here: the Kafka runs work with older checkouts too
    from agents.messages import EventProcessor, read_events
    from tables.expiry import ExpiryIndex

    chosen, events_total = [], 0
    for m in messages:
        if events_total >= max_events:
            break
        chosen.append(m)
        events_total += len(schemas.raw_events(m[2], m[3]))

    def one_pass(timed: bool) -> tuple[collections.Counter, float, float, JsonTable]:
        pipeline = Pipeline(step_settings)
        totals: collections.Counter = collections.Counter()
        spent = totals if timed else None
        parties = JsonTable(spent, "state-read", "state-write")
        ip_table = JsonTable(spent, "ip-read", "ip-write")
        processor = EventProcessor(pipeline, keep_duplicates=False, timing_sample=1 if timed else 10**12)
        parties_due: ExpiryIndex[str] = ExpiryIndex()
        ips_due: ExpiryIndex[str] = ExpiryIndex()
        clock = time.perf_counter
        saved = (agent_messages.decode, schemas.encode_rows)
        if timed:
            agent_messages.decode = _timed(saved[0], totals, "decode")
            schemas.encode_rows = _timed(saved[1], totals, "encode-rows")

        def timing(name, seconds):
            totals[name] += seconds

        try:
            started, cpu_started = clock(), time.process_time()
            for partition, key, value, headers in chosen:
                partition = partition if partition is not None else partition_for(key, step_settings.partitions)
                t = clock()
                # the bench feeds only its own well-formed messages, never a DeadLetter
                events = cast(list, read_events(key, value, list(headers)))
                t0 = clock()
                out = processor.process(events, parties, ip_table, key, timing if timed else None)
                t1 = clock()
                for party_id, state in out.parties.items():
                    parties[party_id] = state
                    parties_due.set(partition, party_id, None if state is None else pipeline.due_at(state))
                for ip, ip_value in out.ips.items():
                    ip_table[ip] = ip_value
                    ips_due.set(partition, ip, pipeline.ip_due_at(ip_value))
                t2 = clock()
                b"\n".join(out.enriched), b"\n".join(out.sessions)
                t3 = clock()
                # typeshed types Counter values as int; these hold float seconds
                totals["envelope"] += t0 - t  # type: ignore[assignment]
                totals["process (all of EventProcessor.process)"] += t1 - t0  # type: ignore[assignment]
                totals["write + index (all)"] += t2 - t1  # type: ignore[assignment]
                totals["join"] += t3 - t2  # type: ignore[assignment]
            wall, cpu = clock() - started, time.process_time() - cpu_started
        finally:
            agent_messages.decode, schemas.encode_rows = saved
        return totals, wall, cpu, parties

    totals: collections.Counter = collections.Counter()
    wall = cpu = float("inf")
    for i in range(rounds):
        timed, _, _, parties = one_pass(True)
        totals = timed if i == 0 else collections.Counter({k: min(v, timed[k]) for k, v in totals.items()})
        _, wall_i, cpu_i, _ = one_pass(False)
        wall, cpu = min(wall, wall_i), min(cpu, cpu_i)
    n = events_total
    us = {k: v / n * 1e6 for k, v in totals.items()}
    # the parts inside process() and inside the write loop, and what is left of each
    inner = [k for k in us if k not in ("envelope", "join") and "(all" not in k]
    step_names = [name for name in step_settings.pipeline_steps if name in us]
    in_process = ["decode", "state-read", "ip-read", "encode-rows"] + step_names
    breakdown = {"envelope": us["envelope"]}
    breakdown.update({k: us.get(k, 0.0) for k in in_process})
    breakdown["process: rest (loop, Context, Outcome, timing)"] = (
        us["process (all of EventProcessor.process)"] - sum(us.get(k, 0.0) for k in in_process))
    breakdown["state-write"] = us.get("state-write", 0.0)
    breakdown["ip-write"] = us.get("ip-write", 0.0)
    breakdown["index (due_at + set)"] = us["write + index (all)"] - us.get("state-write", 0.0) - us.get("ip-write", 0.0)
    breakdown["join"] = us["join"]
    assert set(inner) <= set(breakdown), inner
    states = [codecs.loads("json", v) for v in dict.values(parties)]
    return {
        "events": n, "messages": len(chosen), "rounds": rounds,
        "us_per_event_timed": {k: round(v, 2) for k, v in breakdown.items()},
        "us_per_event_timed_sum": round(sum(breakdown.values()), 1),
        "us_per_event": round(wall / n * 1e6, 1),
        "cpu_us_per_event": round(cpu / n * 1e6, 1),  # process CPU time: less sensitive to other jobs than wall time
        "events_per_s_in_process": round(n / wall),
        "parties": len(states),
        "mean_state_bytes_json": sum(len(json.dumps(s)) for s in states) / len(states),  # as measured before
        "mean_state_bytes_stored": sum(len(v) for v in dict.values(parties)) / len(states),  # Faust's codec
    }


def steps_main(args, geo_env: dict) -> dict:
    """``--steps-only``: the in-process profile, optionally sampled by py-spy (no Kafka)."""
    records = traffic(args.events, args.parties)
    step_settings = load({**geo_env})
    report: dict[str, Any] = {"load_1min": round(load_average(), 2)}
    for batch in args.batch:
        messages = raw_messages(records, batch, step_settings.partitions)
        report[f"batch {batch}"] = profile_steps(messages, step_settings)
        if args.gc_compare:
            gc.disable()
            try:
                report[f"batch {batch}, no gc"] = profile_steps(messages, step_settings)
            finally:
                gc.enable()
    if args.steps_profile:
        out = Path(tempfile.mkdtemp(prefix="steps-profile-")) / "profile.txt"
        messages = raw_messages(records, max(args.batch), step_settings.partitions)
        stop = time.monotonic() + args.steps_profile + 5
        spying = spy(os.getpid(), args.steps_profile, out)
        time.sleep(1)  # py-spy attached

        def loop():
            while time.monotonic() < stop:
                profile_steps(messages, step_settings, rounds=1)

        worker = threading.Thread(target=loop)
        worker.start()
        spying.wait(args.steps_profile + 60)
        worker.join()
        report["profile"] = summarise_profile(out.read_text(), top=25, only="one_pass")
    report["load_1min_after"] = round(load_average(), 2)
    return report


RUNS = {"confluent": None, "passthrough": "bench.pipeline_passthrough", "pipeline": "app.main"}


def table(report: dict) -> str:
    """The summary: one row per batch size and repeat."""
    lines = ["| batch | # | (c) confluent ev/s | (a) Faust pass-through ev/s | (b) pipeline ev/s | (b)/(c) | (b)/(a) "
             "| CPU µs per event (c) / (a) / (b) | (b)/(c) by CPU | to committed (c) / (a) / (b) ev/s "
             "| load (c) / (a) / (b) | peak RSS (c) / (a) / (b) MB | state dir (b) MB |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|---|---|---|---:|"]

    def eps(r, key="events_per_s"):
        return f"{r[key]:,.0f}" if r.get(key) else "-"

    def ratio(x, y):
        if not x.get("events_per_s") or not y.get("events_per_s"):
            return "-"
        return f"{x['events_per_s'] / y['events_per_s']:.2f}"

    for m in report["measurements"]:
        c, a, b = m.get("confluent", {}), m.get("passthrough", {}), m.get("pipeline", {})
        load = lambda r: "→".join(str(v) for v in r["load_1min"]) if r else "-"  # noqa: E731
        rss = lambda r: f"{r['rss_peak_mb']:.0f}" if r else "-"  # noqa: E731
        drain = " / ".join(eps(r, "to_committed_events_per_s") for r in (c, a, b))
        cpu = " / ".join(f"{r['cpu_us_per_event']:.0f}" if r.get("cpu_us_per_event") else "-" for r in (c, a, b))
        cpu_ratio = "-"
        if c.get("cpu_us_per_event") and b.get("cpu_us_per_event"):
            cpu_ratio = f"{c['cpu_us_per_event'] / b['cpu_us_per_event']:.2f}"
        lines.append(f"| {m['batch'] or 'single'} | {m['repeat']} | {eps(c)} | {eps(a)} | {eps(b)} | {ratio(b, c)} "
                     f"| {ratio(b, a)} | {cpu} | {cpu_ratio} | {drain} | {load(c)} / {load(a)} / {load(b)} "
                     f"| {rss(c)} / {rss(a)} / {rss(b)} | {b.get('state_dir_mb', 0):.1f} |")
    return "\n".join(lines)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME:K=V,K=V`` -> (NAME, {K: V})."""
    name, _, assignments = text.partition(":")
    return name, dict(a.split("=", 1) for a in assignments.split(",") if a)


def variants_table(report: dict, names: list[str]) -> str:
    """Each variant of the worker (bench/pipeline_variants.py) against (b) of the same batch size and repeat."""
    lines = ["| batch | # | variant | (b) ev/s | variant ev/s | variant / (b) | to committed (b) / variant ev/s "
             "| peak RSS (b) / variant MB | load (b) / variant |", "|---|---|---|---:|---:|---:|---|---|---|"]
    for m in report["measurements"]:
        b = m.get("pipeline")
        for name in names:
            v = m.get(name)
            if not b or not v:
                continue
            drain = " / ".join(f"{r['to_committed_events_per_s']:,.0f}" if r.get("to_committed_events_per_s") else "-"
                               for r in (b, v))
            lines.append(f"| {m['batch'] or 'single'} | {m['repeat']} | {name} | {b['events_per_s']:,.0f} "
                         f"| {v['events_per_s']:,.0f} | {v['events_per_s'] / b['events_per_s']:.2f} | {drain} "
                         f"| {b['rss_peak_mb']:.0f} / {v['rss_peak_mb']:.0f} "
                         f"| {'→'.join(map(str, b['load_1min']))} / {'→'.join(map(str, v['load_1min']))} |")
    return "\n".join(lines)


def steps_table(profiles: dict) -> str:
    """The in-process profiles side by side: µs per event for each part."""
    names = list(dict.fromkeys(k for p in profiles.values() for k in p["us_per_event_timed"]))
    lines = ["| µs per event | " + " | ".join(profiles) + " |", "|---|" + "---:|" * len(profiles)]

    def row(label: str, fmt) -> None:
        lines.append(f"| {label} | " + " | ".join(fmt(p) for p in profiles.values()) + " |")

    for k in names:
        row(k, lambda p, k=k: f"{p['us_per_event_timed'].get(k, 0):.1f}")
    row("sum of parts (timed pass)", lambda p: f"{p['us_per_event_timed_sum']:.1f}")
    row("**untimed pass, per event**", lambda p: f"**{p['us_per_event']:.1f}**")
    row("untimed pass, CPU time per event", lambda p: f"{p['cpu_us_per_event']:.1f}")
    row("events/s on one core", lambda p: f"{p['events_per_s_in_process']:,}")
    row("mean state per party, JSON bytes (json.dumps / stored)",
        lambda p: f"{p['mean_state_bytes_json']:.0f} / {p['mean_state_bytes_stored']:.0f}")
    return "\n".join(lines)


def profile_table(profile: dict) -> str:
    lines = [f"{profile['samples']} samples", "", "| own | function | | inclusive | function |",
             "|---:|---|---|---:|---|"]
    for (f1, p1), (f2, p2) in zip(profile["own"], profile["inclusive"], strict=False):
        lines.append(f"| {p1:.1f}% | `{f1}` | | {p2:.1f}% | `{f2}` |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--parties", type=int, default=20_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[20, 100],
                        help="events per raw message, one run per value (0: one RawClick message per event)")
    parser.add_argument("--runs", default="confluent,passthrough,pipeline", help=f"which of {','.join(RUNS)}")
    parser.add_argument("--repeat", type=int, default=1, help="measure every batch size this many times")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for (a) and (b) each")
    parser.add_argument("--worker-profile", type=float, default=0, metavar="SECONDS",
                        help="then one more (b) run at the largest batch, sampled by py-spy for SECONDS")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,...",
                        help="also run the worker of bench/pipeline_variants.py with these environment variables, "
                             "after (b), for each batch size and repeat (repeatable)")
    parser.add_argument("--no-steps-profile", action="store_true", help="skip the in-process profile after the runs")
    parser.add_argument("--steps-only", action="store_true", help="only the in-process profile (no Kafka)")
    parser.add_argument("--gc-compare", action="store_true",
                        help="with --steps-only: each profile again with Python's cyclic garbage collector off")
    parser.add_argument("--steps-profile", type=float, default=0, metavar="SECONDS",
                        help="with --steps-only: sample the in-process loop with py-spy for SECONDS")
    args = parser.parse_args()
    geo_env = test_database_env(settings.cache_dir)
    if args.steps_only:
        report = steps_main(args, geo_env)
        print(json.dumps(report, indent=2))
        print()
        print(f"load average {report['load_1min']} → {report['load_1min_after']}")
        print(steps_table({k: v for k, v in report.items() if k.startswith("batch")}))
        if "profile" in report:
            print(profile_table(report["profile"]))
        return
    runs = [r for r in args.runs.split(",") if r]
    records = traffic(args.events, args.parties)
    tmp = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))  # kept: worker logs for the record
    report = {"events": len(records), "parties": len({r["party_id"] for r in records}), "workdir": str(tmp),
              "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "measurements": []}
    by_batch = {batch: raw_messages(records, batch, settings.partitions) for batch in args.batch}
    report["messages"] = {str(b): len(m) for b, m in by_batch.items()}

    variants = dict(parse_variant(v) for v in args.variant)

    def one(name: str, batch: int, tag: str, profile_seconds: float = 0) -> dict:
        workdir = tmp / tag
        workdir.mkdir()
        env = {**geo_env, **variants.get(name, {})}
        run = Run(settings.kafka_bootstrap, workdir, partitions=settings.partitions, env=env)
        try:
            if name == "confluent":
                return measure_confluent(run, by_batch[batch], len(records))
            module = RUNS.get(name, "bench.pipeline_variants")
            assert module is not None  # only "confluent" maps to None, handled above
            return measure(run, by_batch[batch], len(records), module, args.workers,
                           profile_seconds=profile_seconds)
        finally:
            run.kill_workers(signal.SIGTERM)
            run.delete_topics()

    for repeat in range(1, args.repeat + 1):
        for batch in args.batch:
            m = {"batch": batch, "repeat": repeat}
            for name in runs + list(variants):
                m[name] = one(name, batch, f"{name}-{batch}-{repeat}")
                print(f"{name} batch={batch} repeat={repeat}: {m[name]['events_per_s']:,.0f} events/s, "
                      f"load {m[name]['load_1min']}", file=sys.stderr, flush=True)
            report["measurements"].append(m)
    if args.worker_profile:
        report["worker_profile"] = one("pipeline", max(args.batch), "profiled", args.worker_profile)
    if not args.no_steps_profile:
        report["profile"] = {f"batch {b}": profile_steps(by_batch[b], load({**geo_env})) for b in args.batch}
    report["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (tmp / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print()
    print(table(report))
    if variants:
        print()
        print(variants_table(report, list(variants)))
    if "profile" in report:
        print()
        print(steps_table(report["profile"]))
    if "worker_profile" in report and isinstance(report["worker_profile"].get("profile"), dict):
        print()
        print("Worker (b) sampled by py-spy:")
        print(profile_table(report["worker_profile"]["profile"]))
        print()
        print("| share of samples | where |\n|---:|---|")
        for name, share in report["worker_profile"]["profile"]["categories"]:
            print(f"| {share:.1f}% | {name} |")


if __name__ == "__main__":
    main()
