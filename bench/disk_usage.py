"""Disk use per million events: Kafka topics, the worker's RocksDB tables, Druid's segments.

One run on the local stack (its Kafka, its Druid), with private topics and datasources:
``--events`` events of the pipeline benchmark's realistic traffic (bench/pipeline_bench.py:
browser and bot user agents, 1 % duplicates, 10 % of events end a session; ~5 events per
party by default) are produced to a raw topic as the collector does (RawBatch messages of
``--batch`` events, lz4), one pipeline worker processes them, and Druid ingests the outputs.
Then it measures:

- Kafka: the bytes of the log segments (``.log`` files; indexes are preallocated and sparse)
  of the raw, enriched, sessions and dead-letter topics and of the tables' changelogs, read
  from the brokers' data directories. A changelog is compacted only once its segments roll
  (every 7 days or 1 GB by default), so its size here is all it was written; its size once
  compacted (the latest value of each key) is computed by reading it.
- RocksDB: the worker's table directory after a clean stop.
- Druid: the size of the published segments (``sys.segments``) once every row is in one, as
  streaming ingestion left them (hourly clicks segments, one per task and partition), then
  after a compaction task rewrote them into day segments (what automatic compaction does
  to intervals older than ``CLICKPIPE_DRUID_COMPACTION_SKIP_OFFSET``).

Figures are scaled linearly to a million events. That holds for the topics and for Druid's
rows; the tables hold per-party state (and a per-IP counter), so their size grows with the
parties active within the dedup memory and session gap, not with the events: the report
gives the bytes per party too.

``--compression`` sets ``CLICKPIPE_TOPIC_COMPRESSION`` for the run's topics and changelogs.

Usage: python -m bench.disk_usage [--events 100000] [--parties 20000] [--batch 100] [--compression lz4]
       [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from app.geodata import test_database_env
from bench.pipeline_bench import end_offsets, raw_messages, traffic, wait_committed
from clickpipe.config import Settings, load, settings
from clickpipe.topics import set_configs
from druid import supervisors
from druid.client import DruidClient
from stack.kafka import brokers
from tests.support.druid import count_rows, private_druid, private_env, wait_for
from tests.support.pipeline import Run

MB = 1_000_000


def log_bytes(cfg: Settings, topic: str) -> int:
    """Bytes of ``topic``'s log segments on every broker of the local stack (all replicas)."""
    return sum(f.stat().st_size for broker in brokers(cfg) for d in broker.data.glob(f"{topic}-*")
               if d.name.rsplit("-", 1)[0] == topic for f in d.glob("*.log"))


def topics_with_prefix(cfg: Settings, prefix: str) -> list[str]:
    return sorted({d.name.rsplit("-", 1)[0] for broker in brokers(cfg) for d in broker.data.glob(f"{prefix}*")})


def compacted_bytes(bootstrap: str, topic: str, partitions: int) -> tuple[int, int]:
    """(bytes of the latest record of each key, keys): what compaction would leave of ``topic``
    (a key whose latest value is a tombstone leaves nothing, after delete.retention.ms)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"disk-{topic}", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    latest: dict[tuple[int, bytes | None], int] = {}
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            for m in consumer.consume(10_000, timeout=1):
                if m.error() is None:
                    value = m.value()
                    latest[(cast(int, m.partition()), m.key())] = (0 if value is None
                                                                   else len(m.key() or b"") + len(value))
            # the position passes transaction markers and aborted records, which are never returned
            if all(ends[tp.partition] == 0 or tp.offset >= ends[tp.partition] for tp in consumer.position(
                    [TopicPartition(topic, p) for p in range(partitions)])):
                break
    finally:
        consumer.close()
    live = [size for size in latest.values() if size]
    return sum(live), len(live)


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def segments(client: DruidClient, datasource: str) -> dict[str, Any]:
    """Count, rows and bytes of the datasource's published, visible segments, and the oldest version."""
    rows = client.sql('SELECT num_rows, "size", "version" FROM sys.segments WHERE datasource = ? '
                      "AND is_published = 1 AND is_overshadowed = 0 AND is_available = 1",
                      [{"type": "VARCHAR", "value": datasource}])
    return {"segments": len(rows), "rows": sum(r["num_rows"] for r in rows), "bytes": sum(r["size"] for r in rows),
            "oldest_version": min((r["version"] for r in rows), default="")}


def all_published(client: DruidClient, datasource: str) -> dict[str, Any] | None:
    """The published segments once they hold every row Druid serves (nothing only in real-time tasks)."""
    [row] = client.sql(f'SELECT COUNT(*) AS n FROM "{datasource}"')
    published = segments(client, datasource)
    return published if published["rows"] == row["n"] and row["n"] > 0 else None


def compact(client: DruidClient, datasource: str, timeout: float = 600) -> dict[str, Any]:
    """Run a compaction task into DAY segments over all of ``datasource``; its segments after, once
    only the compacted ones are visible and Druid knows their rows."""
    before = segments(client, datasource)
    task = client.post("/druid/indexer/v1/task", {
        "type": "compact", "dataSource": datasource,
        "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2000-01-01/2100-01-01"}},
        "granularitySpec": {"segmentGranularity": "DAY"},
        "tuningConfig": {"type": "index_parallel", "partitionsSpec": {"type": "dynamic"}},
    })["task"]
    status = wait_for(lambda: client.get(f"/druid/indexer/v1/task/{task}/status")["status"]["status"],
                      lambda s: s in ("SUCCESS", "FAILED"), timeout, interval=2)
    if status != "SUCCESS":
        raise RuntimeError(f"compaction task {task} of {datasource}: {status}")
    return wait_for(lambda: segments(client, datasource),
                    # rollup may merge rows across the old segments: fewer rows, never none
                    lambda s: s["oldest_version"] > before["oldest_version"] and s["rows"] > 0,
                    timeout, interval=2)


def produce(run: Run, messages: list[tuple]) -> None:
    """As the collector produces: idempotent, acks=all, lz4."""
    producer = Producer({"bootstrap.servers": run.bootstrap, "enable.idempotence": True, "acks": "all",
                         "compression.type": "lz4", "linger.ms": 5})
    for partition, key, value, headers in messages:
        run.produce_bytes(producer, key, value, headers, partition)
    assert producer.flush(120) == 0


def per_million(value: float, events: int) -> float:
    return round(value / events * 1_000_000 / MB, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--parties", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="events per raw message")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--compression", default="producer", help="CLICKPIPE_TOPIC_COMPRESSION of the run's topics")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()

    records = traffic(args.events, args.parties)
    unique = len({(r["party_id"], r["event_id"]) for r in records})
    parties = len({r["party_id"] for r in records})
    messages = raw_messages(records, args.batch, args.partitions)
    workdir = Path(tempfile.mkdtemp(prefix="disk-bench-"))
    report: dict[str, Any] = {"events": len(records), "unique_events": unique, "parties": parties,
                              "raw_messages": len(messages), "started": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                       time.gmtime())}
    env = {**test_database_env(settings.cache_dir), "CLICKPIPE_TOPIC_COMPRESSION": args.compression}
    report["topic_compression"] = args.compression
    with Run(settings.kafka_bootstrap, workdir, partitions=args.partitions, env=env) as run:
        set_configs(AdminClient({"bootstrap.servers": run.bootstrap}), list(run.topics.values()),
                    {"compression.type": args.compression})  # as clickpipe.topics.pipeline_topics does
        cfg = load(private_env("bench-disk", TOPIC_ENRICHED=run.topics["enriched"],
                               TOPIC_SESSIONS=run.topics["sessions"], DRUID_TASK_DURATION="PT1M"))
        with private_druid(cfg, create_topics=False) as client:
            supervisors.apply(client, cfg)
            produce(run, messages)
            began = time.monotonic()
            worker = run.start_worker()
            run.wait_ready(worker)
            assert wait_committed(run, end_offsets(run), timeout=1200), f"worker did not finish; see {worker.log_path}"
            print(f"pipeline: {len(records)} events in {time.monotonic() - began:.0f} s", flush=True)
            run.kill_workers(signal.SIGTERM)  # a clean stop: RocksDB flushed, its directory kept

            kafka = {kind: log_bytes(settings, topic) for kind, topic in run.topics.items()}
            changelogs = topics_with_prefix(settings, f"pipeline-{run.tag}-")
            kafka["changelogs"] = sum(log_bytes(settings, t) for t in changelogs)
            live = [compacted_bytes(run.bootstrap, t, args.partitions) for t in changelogs if t.endswith("-changelog")]
            kafka["changelogs_compacted"] = sum(b for b, _ in live)
            report["changelog_keys"] = sum(k for _, k in live)
            report["kafka_bytes"] = kafka
            rocksdb = directory_bytes(workdir / "state")
            report["rocksdb_bytes"] = rocksdb

            clicks, sessions = cfg.druid_clicks_datasource, cfg.druid_sessions_datasource
            assert wait_for(lambda: count_rows(client, clicks), lambda n: n == unique, 600, 3) == unique, \
                "Druid did not count every unique event"
            druid: dict[str, Any] = {}
            for ds, kind in ((clicks, "clicks"), (sessions, "sessions")):
                streamed = wait_for(lambda ds=ds: all_published(client, ds),  # type: ignore[misc]
                                    lambda s: s is not None, 600, 5)
                assert streamed is not None, f"{kind}: rows still not all in published segments"
                druid[kind] = {"streamed": streamed}
            print(json.dumps(report | {"druid": druid}), flush=True)  # so far, in case what follows fails
            client.supervisor_action(clicks, "suspend")  # no task holds a lock on what is compacted
            client.supervisor_action(sessions, "suspend")
            for ds, kind in ((clicks, "clicks"), (sessions, "sessions")):
                druid[kind]["compacted"] = compact(client, ds)
            report["druid"] = druid
    report["per_million_events_mb"] = {
        **{f"kafka {k}": per_million(v, len(records)) for k, v in kafka.items()},
        "rocksdb": per_million(rocksdb, len(records)),
        **{f"druid {kind} {state}": per_million(druid[kind][state]["bytes"], len(records))
           for kind in druid for state in ("streamed", "compacted")},
    }
    report["rocksdb_bytes_per_party"] = round(rocksdb / parties)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
