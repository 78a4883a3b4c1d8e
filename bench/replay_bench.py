"""Replay benchmark: events/s of `clickpipe replay`'s processing phase, against reading alone.

The pipeline benchmark's traffic (bench/pipeline_bench.py ``traffic``: realistic parties,
user agents, referrers, 1% duplicates, 5% bots) is moved three days back and produced to a
private raw topic as RawBatch messages of ``--batch`` events whose Kafka timestamps are
their events' time, as the collector would have written them. Then, in this process:

- **baseline**: a plain confluent-kafka consumer reads the same offsets and decodes every
  event (``agents.messages.read_events`` and ``steps.decode.decode``): the floor any replay
  pays, reading and Avro;
- **replay**: ``replay.run.Replayer`` over the whole day (warm-up included), every step of
  the pipeline, checkpoints every ``CLICKPIPE_REPLAY_CHECKPOINT_EVENTS`` events, row files
  written; no Druid.

Each is run ``--repeat`` times, alternating, in the same minutes; the ratio is replay/baseline.
With ``--profile``, one more replay runs under cProfile and the functions with the most own
time are printed.

Usage: python -m bench.replay_bench [--events 200000] [--parties 20000] [--batch 50] [--repeat 2] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

from confluent_kafka import Consumer, TopicPartition

from agents.messages import Headers, read_events
from app.geodata import test_database_env
from bench.pipeline_bench import traffic
from clickpipe.config import load, settings
from replay.checkpoint import Progress, Workdir
from replay.plan import locate, window
from replay.run import Replayer
from steps.decode import decode
from tests.support.pipeline import Run

SHIFT_MS = 3 * 86_400_000


def baseline(run: Run, offsets: dict[int, tuple[int, int]]) -> tuple[int, float, float]:
    consumer = Consumer({"bootstrap.servers": run.bootstrap, "group.id": "bench-replay-baseline",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(run.topics["raw"], p, first) for p, (first, _) in offsets.items()])
    remaining = {p: end - first for p, (first, end) in offsets.items() if end > first}
    events = 0
    started, cpu = time.perf_counter(), time.process_time()
    while remaining:
        for msg in consumer.consume(500, timeout=1.0):
            p = msg.partition()
            if msg.error() is not None or p not in remaining:
                continue
            batch = read_events(msg.key(), msg.value(), cast(Headers, list(msg.headers() or ())))
            assert isinstance(batch, list)
            for value, headers in batch:
                decode(value, headers)
            events += len(batch)
            remaining[p] -= 1
            if not remaining[p]:
                del remaining[p]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    consumer.close()
    return events, seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--parties", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    records = traffic(args.events, args.parties)
    for r in records:
        r["server_time"] -= SHIFT_MS
        r["client_time"] -= SHIFT_MS
    with Run(settings.kafka_bootstrap, workdir, partitions=4) as run:
        run.produce(records, batch=args.batch, event_time=True)
        env = {k: v for k, v in run.worker_env(1).items() if k.startswith("CLICKPIPE_")}
        env.update(test_database_env(settings.cache_dir))
        cfg = load({**os.environ, **env, "CLICKPIPE_REPLAY_DIR": str(workdir / "replay")})
        first = datetime.fromtimestamp(min(r["server_time"] for r in records) / 1000, timezone.utc)
        win = window(cfg, first, first + timedelta(hours=3), datetime.now(timezone.utc), 86_400_000)
        plan = locate(cfg, win)
        results: list[dict[str, Any]] = []
        for i in range(args.repeat):
            events, seconds, cpu = baseline(run, dict(plan.offsets))
            results.append({"run": i, "what": "baseline (read + decode)", "events": events,
                            "seconds": round(seconds, 2), "events_per_s": round(events / seconds),
                            "events_per_cpu_s": round(events / cpu)})
            work = Workdir(workdir / "replay" / f"run-{i}")
            progress = Progress(plan=plan.to_json())
            started, cpu = time.perf_counter(), time.process_time()
            Replayer(cfg, plan, work, progress, show_progress=False).run()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            events = int(progress.counts["events_read"])
            results.append({"run": i, "what": "replay (every step, checkpoints, row files)", "events": events,
                            "seconds": round(seconds, 2), "events_per_s": round(events / seconds),
                            "events_per_cpu_s": round(events / cpu),
                            "clicks_written": int(progress.counts.get("clicks_written", 0)),
                            "sessions_written": int(progress.counts.get("sessions_written", 0)),
                            "checkpoint_bytes": (work.path / "checkpoint.json").stat().st_size})
            shutil.rmtree(work.path)
        if args.profile:
            profiled = Replayer(cfg, plan, Workdir(workdir / "replay" / "profiled"), Progress(plan=plan.to_json()),
                                show_progress=False)
            profiler = cProfile.Profile()
            profiler.runcall(profiled.run)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    for row in results:
        print(json.dumps(row))
    def ratios(key: str) -> list[float]:
        base = [r[key] for r in results if r["what"].startswith("baseline")]
        rep = [r[key] for r in results if r["what"].startswith("replay")]
        return [round(r / b, 3) for r, b in zip(rep, base, strict=True)]

    print(json.dumps({"replay_over_baseline": ratios("events_per_s"),
                      "cpu_replay_over_baseline": ratios("events_per_cpu_s"),
                      "messages": plan.messages(), "batch": args.batch, "load_average": os.getloadavg()}))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
