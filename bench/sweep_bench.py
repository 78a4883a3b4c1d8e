"""Sweep benchmark: one sweep over a large party table, with the expiry index and by a full scan.

In process, no Kafka. The party states are made by the real steps (``steps.Pipeline`` with
the settings of ``clickpipe.config.load``): the pipeline benchmark's traffic
(bench/pipeline_bench.py) runs through every step for ``--template-parties`` parties; each of
the ``--parties`` parties then replays one template party's enriched events through the
stateful steps (dedup, bots, sessions) under its own party id, shifted in time so that its
last event falls at a uniformly random moment of the hour before the sweep. Every state is
as the steps leave it after the party's last event: dedup memory, bot counters, open session.
The sweep clock is chosen so that ``--due`` of the parties are due (``Pipeline.due_at``).

Two ways to find and sweep the due parties, both ending with the same states and sessions:

- **index** (the worker now): ``ExpiryIndex.pop_due`` per partition, up to 1,000 keys at a
  time as the sweep timer takes them, then for each key ``Pipeline.sweep``, the closed
  sessions as JSON rows, and the key re-indexed (``Pipeline.due_at``) or removed;
- **scan** (the timer before): every state read and ``Pipeline.due`` called on it, then the
  same sweep of the due ones.

Each runs on dicts held in memory (what the lead's question asks: the work of the sweep
itself), and with ``--rocksdb`` also on a real RocksDB holding the states as JSON, as the
worker's table does (Faust's json codec): the scan then reads and decodes every state, the
index way reads, decodes and writes back only the due ones.

Then the index's own memory: tracemalloc over ``--index-entries`` keys (party ids as the
collector issues them), fresh and after every key was re-timed three times.

Usage: python -m bench.sweep_bench [--parties 1000000] [--due 0.01] [--repeat 2] [--rocksdb]
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, cast

from faust.serializers import codecs

import schemas
from app.geodata import test_database_env
from bench.pipeline_bench import traffic
from clickpipe.config import load, settings
from clickpipe.topics import partition_for
from steps import Context, Drop, Pipeline
from tables.expiry import ExpiryIndex

SWEEP_KEYS_PER_MESSAGE = 1000  # as agents/enrich.py
STATEFUL = ("dedup", "bots", "sessions")


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def templates(pipeline: Pipeline, events: int, parties: int) -> list[list[dict]]:
    """Per template party, its events as the full pipeline enriched them (duplicates left out)."""
    states: dict[str, dict] = {}
    per_party: dict[str, list[dict]] = collections.defaultdict(list)
    for record in traffic(events, parties):
        record["client_session_id"] = record.pop("session_id")
        ctx = Context(party=states.setdefault(record["party_id"], {}))
        try:
            per_party[record["party_id"]].append(pipeline.process(dict(record), ctx))
        except Drop:
            continue
    return list(per_party.values())


def make_states(pipeline: Pipeline, tpl: list[list[dict]], n: int, partitions: int,
                seed: int = 11) -> tuple[dict[str, dict], dict[str, int], int]:
    """``n`` party states (party id -> state), their partitions, and the time 'now' they are set at."""
    rng = random.Random(seed)
    stateful = [pipeline.step(name) for name in STATEFUL if name in pipeline.names]
    now = max(e["server_time"] for events in tpl for e in events) + 2 * 3600_000
    states: dict[str, dict] = {}
    where: dict[str, int] = {}
    for i in range(n):
        events = tpl[i % len(tpl)]
        party_id = "%022x" % rng.getrandbits(88)  # 22 characters, as the collector's ids
        shift = now - rng.randrange(3600_000) - events[-1]["server_time"]
        partition = partition_for(party_id.encode(), partitions)
        ctx = Context(party={}, ips={})
        for event in events:
            record = dict(event, party_id=party_id, server_time=event["server_time"] + shift)
            try:
                for step in stateful:
                    record = step(record, ctx)
            except Drop:
                continue
        states[party_id] = ctx.party
        where[party_id] = partition
    return states, where, now


def sweep_one(pipeline: Pipeline, session, state: dict, clock: int) -> tuple[bool, list[bytes]]:
    ctx = Context(party=state, ips={})
    empty = pipeline.sweep(ctx, clock)
    return empty, [schemas.encode_rows(session, [s]) for s in ctx.sessions]


def by_index(pipeline: Pipeline, index: ExpiryIndex, store, partitions: int, clock: int, as_json: bool) -> dict:
    """pop_due per partition, then sweep each due state (read, sweep, write back or delete, re-index)."""
    session = schemas.current("Session")
    timings: collections.Counter[str] = collections.Counter()
    swept = closed = deleted = 0
    started = time.perf_counter()
    for partition in range(partitions):
        while True:
            t = time.perf_counter()
            keys = index.pop_due(partition, clock, SWEEP_KEYS_PER_MESSAGE)
            # typeshed types Counter values as int; these hold float seconds
            timings["pop_due"] += time.perf_counter() - t  # type: ignore[assignment]
            if not keys:
                break
            t = time.perf_counter()
            for key in keys:
                raw = store.get(key.encode() if as_json else key)
                state = codecs.loads("json", raw) if as_json else raw
                empty, rows = sweep_one(pipeline, session, state, clock)
                closed += len(rows)
                swept += 1
                if empty:
                    del store[key.encode() if as_json else key]
                    index.set(partition, key, None)
                    deleted += 1
                else:
                    if as_json:
                        store[key.encode()] = codecs.dumps("json", state)
                    index.set(partition, key, pipeline.due_at(state))
            # typeshed types Counter values as int; these hold float seconds
            timings["sweep"] += time.perf_counter() - t  # type: ignore[assignment]
    total = time.perf_counter() - started
    return {"seconds": total, "pop_due_s": timings["pop_due"], "sweep_s": timings["sweep"], "swept": swept,
            "sessions_closed": closed, "deleted": deleted}


def by_scan(pipeline: Pipeline, store, clock: int, as_json: bool) -> dict:
    """Every state read and tested with Pipeline.due (the timer before the index), then the due ones swept."""
    session = schemas.current("Session")
    started = time.perf_counter()
    due = []
    items = store.items()
    for key, value in items:
        state = codecs.loads("json", value) if as_json else value
        if pipeline.due(state, clock):
            due.append((key, state))
    scanned = time.perf_counter()
    closed = deleted = 0
    for key, state in due:
        empty, rows = sweep_one(pipeline, session, state, clock)
        closed += len(rows)
        if empty:
            del store[key]
            deleted += 1
        elif as_json:
            store[key] = codecs.dumps("json", state)
    done = time.perf_counter()
    return {"seconds": done - started, "scan_s": scanned - started, "sweep_s": done - scanned, "swept": len(due),
            "sessions_closed": closed, "deleted": deleted}


def rocksdb(path: Path, states: dict[str, dict]):
    from rocksdict import Options, Rdict, WriteBatch

    shutil.rmtree(path, ignore_errors=True)
    db = Rdict(str(path), options=Options(raw_mode=True))
    batch = WriteBatch(raw_mode=True)
    for i, (key, state) in enumerate(states.items()):
        batch.put(key.encode(), codecs.dumps("json", state))
        if i % 10_000 == 9_999:
            db.write(batch)
            batch = WriteBatch(raw_mode=True)
    db.write(batch)
    db.flush()
    return db


def index_memory(n: int, partitions: int, seed: int = 5) -> dict:
    """Bytes per entry of an ExpiryIndex of ``n`` party keys, measured by tracemalloc.

    'fresh': every key set once (keys allocated inside the measurement: in the worker the index
    is what keeps a key string alive). 'updated': then every key set to a later time three more
    times (superseded heap entries linger until the heap is rebuilt at twice the live entries).
    """
    rng = random.Random(seed)
    base = int(time.time() * 1000)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index: ExpiryIndex[str] = ExpiryIndex()
    keys = []
    for _ in range(n):
        key = "%022x" % rng.getrandbits(88)
        keys.append(key)
        index.set(partition_for(key.encode(), partitions), key, base + rng.randrange(3600_000))
    gc.collect()
    fresh = tracemalloc.get_traced_memory()[0] - before
    keys_list = sys.getsizeof(keys)  # the benchmark's own list of the keys, not the index's
    for round_ in range(3):
        for key in keys:
            due = base + 3600_000 * (round_ + 1) + rng.randrange(60_000)
            index.set(partition_for(key.encode(), partitions), key, due)
    gc.collect()
    updated = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    key_bytes = sys.getsizeof("x" * 22)
    return {"entries": len(index), "fresh_bytes_per_entry": (fresh - keys_list) / n,
            "updated_bytes_per_entry": (updated - keys_list) / n, "key_string_bytes": key_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, default=1_000_000)
    parser.add_argument("--due", type=float, default=0.01, help="fraction of the parties due at the sweep")
    parser.add_argument("--template-events", type=int, default=60_000)
    parser.add_argument("--template-parties", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=2, help="sweeps of each kind, each on a fresh copy")
    parser.add_argument("--rocksdb", action="store_true", help="also with the states as JSON in RocksDB")
    parser.add_argument("--index-entries", type=int, default=1_000_000, help="0: skip the memory measurement")
    args = parser.parse_args()
    step_settings = load(test_database_env(settings.cache_dir))
    partitions = step_settings.partitions
    pipeline = Pipeline(step_settings)
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_1min": [load_average()],
                    "parties": args.parties, "partitions": partitions}

    t = time.perf_counter()
    tpl = templates(pipeline, args.template_events, args.template_parties)
    states, where, now = make_states(pipeline, tpl, args.parties, partitions)
    report["build_s"] = round(time.perf_counter() - t, 1)
    # every state the bench builds has a due time (due_at is None only for a state with nothing left to expire)
    dues = sorted(cast(int, pipeline.due_at(s)) for s in states.values())
    clock = dues[max(0, int(args.due * len(dues)) - 1)]
    expected = sum(1 for d in dues if d <= clock)
    stored = [codecs.dumps("json", s) for s in states.values()]
    report.update({"due": expected, "clock_minus_now_s": round((clock - now) / 1000, 1),
                   "mean_state_bytes_stored": round(sum(map(len, stored)) / len(stored)),
                   "states_with": {k: sum(1 for s in states.values() if k in s) for k in ("dedup", "bots", "session")}})
    del stored, dues
    frozen = {k: codecs.dumps("json", s) for k, s in states.items()}  # each repeat starts from these

    def fresh_states() -> dict[str, dict]:
        return {k: codecs.loads("json", v) for k, v in frozen.items()}

    def fresh_index(current: dict[str, dict]) -> ExpiryIndex:
        index: ExpiryIndex[str] = ExpiryIndex()
        for key, state in current.items():
            index.set(where[key], key, pipeline.due_at(state))
        return index

    runs: list[dict] = []
    kinds = [("memory", False)] + ([("rocksdb", True)] if args.rocksdb else [])
    tmp = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    try:
        for repeat in range(1, args.repeat + 1):
            for kind, as_json in kinds:
                for way in ("scan", "index"):
                    del states
                    gc.collect()
                    states = fresh_states()
                    index = fresh_index(states) if way == "index" else None
                    store: Any = rocksdb(tmp / f"{way}-{repeat}", states) if as_json else states
                    gc.collect()
                    load_before = load_average()
                    gc.disable()  # the worker's sweep is short; keep collector pauses out of the figure
                    try:
                        if way == "index":
                            assert index is not None
                            result = by_index(pipeline, index, store, partitions, clock, as_json)
                        else:
                            result = by_scan(pipeline, store, clock, as_json)
                    finally:
                        gc.enable()
                    result.update({"repeat": repeat, "store": kind, "way": way,
                                   "load_1min": [load_before, load_average()]})
                    runs.append(result)
                    print(f"{kind} {way} #{repeat}: {result['seconds']:.3f} s, swept {result['swept']}, "
                          f"load {result['load_1min']}", file=sys.stderr, flush=True)
                    if as_json:
                        store.close()
                        shutil.rmtree(tmp / f"{way}-{repeat}", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["runs"] = runs
    if args.index_entries:
        del states, frozen
        gc.collect()
        report["index_memory"] = index_memory(args.index_entries, partitions)
    report["load_1min"].append(load_average())
    report["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(report, indent=2))
    print()
    print(summary(report))


def summary(report: dict) -> str:
    lines = [f"{report['parties']:,} parties in {report['partitions']} partitions, {report['due']:,} due "
             f"({report['due'] / report['parties']:.1%}); states with dedup / bots / open session: "
             + " / ".join(f"{v:,}" for v in report["states_with"].values())
             + f"; mean state {report['mean_state_bytes_stored']} bytes of JSON",
             "",
             "| store | # | scan: find due (s) | scan: sweep due (s) | **scan total (s)** | index: pop_due (s) "
             "| index: sweep due (s) | **index total (s)** | scan / index | load before→after (scan; index) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    pairs: collections.defaultdict[tuple[str, int], dict[str, dict]] = collections.defaultdict(dict)
    for r in report["runs"]:
        pairs[(r["store"], r["repeat"])][r["way"]] = r
    for (store, repeat), p in pairs.items():
        s, i = p["scan"], p["index"]
        lines.append(f"| {store} | {repeat} | {s['scan_s']:.3f} | {s['sweep_s']:.3f} | **{s['seconds']:.3f}** "
                     f"| {i['pop_due_s']:.3f} | {i['sweep_s']:.3f} | **{i['seconds']:.3f}** "
                     f"| {s['seconds'] / i['seconds']:.0f}× | {'→'.join(map(str, s['load_1min']))}; "
                     f"{'→'.join(map(str, i['load_1min']))} |")
    m = report.get("index_memory")
    if m:
        lines += ["", f"ExpiryIndex memory (tracemalloc, {m['entries']:,} entries): "
                      f"{m['fresh_bytes_per_entry']:.0f} bytes per entry fresh, {m['updated_bytes_per_entry']:.0f} "
                      f"after three updates per key (of which the {m['key_string_bytes']}-byte key string)"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
