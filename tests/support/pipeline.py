"""Run pipeline workers and drive their topics, for the end-to-end tests and the benchmarks.

Everything here talks to a real broker. Each :class:`Run` gets its own topic names, app id
and data directory, so runs never share state with each other or with a real deployment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from confluent_kafka import Consumer, Producer, TopicPartition

import schemas
from clickpipe.topics import delete_topics, ensure_topics, partition_for
from tests.support import ROOT
from tests.support.net import free_port


class WorkerProcess(subprocess.Popen):
    """A pipeline worker's process, with the port of its web server and the path of its log."""

    web_port: int
    log_path: Path


@dataclass
class Run:
    """One isolated pipeline deployment: topics, app id, state directory, worker processes.

    As a context manager: creates the topics on entry; on exit stops the workers (SIGTERM)
    and deletes the topics (unless ``delete_topics_on_exit`` is false, e.g. when the broker
    itself goes away with the test).
    """

    bootstrap: str
    workdir: Path
    partitions: int = 4
    env: dict[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    workers: list[WorkerProcess] = field(default_factory=list)
    delete_topics_on_exit: bool = True
    replication: int = 1  # replicas of its topics and its workers' changelogs (min.insync.replicas: one fewer)

    def __enter__(self) -> "Run":
        self.create_topics()
        return self

    def __exit__(self, *exc) -> None:
        self.kill_workers(signal.SIGTERM)
        if self.delete_topics_on_exit:
            self.delete_topics()

    @property
    def topics(self) -> dict[str, str]:
        return {kind: f"test.{self.tag}.{kind}"
                for kind in ("raw", "enriched", "sessions", "dead-letters", "verdicts", "erased")}

    @property
    def min_insync_replicas(self) -> int:
        return max(self.replication - 1, 1)

    def create_topics(self) -> None:
        ensure_topics(self.bootstrap, list(self.topics.values()), self.partitions,
                      {"min.insync.replicas": str(self.min_insync_replicas)}, replication=self.replication)

    def delete_topics(self) -> None:
        delete_topics(self.bootstrap, list(self.topics.values()), prefix=f"pipeline-{self.tag}-")

    def worker_env(self, web_port: int, datadir: str = "state") -> dict[str, str]:
        t = self.topics
        env = dict(os.environ)
        env.update({
            "CLICKPIPE_KAFKA_BOOTSTRAP": self.bootstrap,
            "CLICKPIPE_TOPIC_RAW": t["raw"],
            "CLICKPIPE_TOPIC_ENRICHED": t["enriched"],
            "CLICKPIPE_TOPIC_SESSIONS": t["sessions"],
            "CLICKPIPE_TOPIC_DEAD_LETTERS": t["dead-letters"],
            "CLICKPIPE_TOPIC_VERDICTS": t["verdicts"],
            "CLICKPIPE_TOPIC_ERASED": t["erased"],
            "CLICKPIPE_PARTITIONS": str(self.partitions),
            "CLICKPIPE_PIPELINE_APP_ID": f"pipeline-{self.tag}",
            "CLICKPIPE_PIPELINE_DATADIR": str(self.workdir / datadir),
            "CLICKPIPE_PIPELINE_WEB_PORT": str(web_port),
            "CLICKPIPE_KAFKA_REPLICATION": str(self.replication),
            "CLICKPIPE_KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas),
        })
        env.update(self.env)
        return env

    def start_worker(self, log_name: str = "worker.log", app_module: str = "app.main",
                     datadir: str = "state") -> WorkerProcess:
        """Start ``faust -A <app_module> worker``; the process has ``web_port`` (for /metrics) set.

        Workers running at the same time need their own ``datadir`` (under the work directory),
        as they would on one host; a restarted worker given the same one finds its local tables.
        """
        port = free_port()
        with open(self.workdir / log_name, "ab") as log:
            proc = WorkerProcess([sys.executable, "-m", "faust", "-A", app_module, "worker", "-l", "info"],
                                    cwd=ROOT, env=self.worker_env(port, datadir), stdout=log,
                                    stderr=subprocess.STDOUT)
        proc.web_port = port
        proc.log_path = self.workdir / log_name
        self.workers.append(proc)
        return proc

    def wait_ready(self, proc: WorkerProcess, timeout: float = 90.0) -> None:
        """Block until the worker has joined the group, recovered its tables and started its agents."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}; see {proc.log_path}")
            if b"Worker ready" in proc.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s; see {proc.log_path}")

    def kill_9_during(self, feeder, kills: int, warmup_s: float) -> WorkerProcess:
        """Start a worker, then the ``feeder`` thread; after ``warmup_s`` SIGKILL the worker
        ``kills`` times while the feeder is still producing, restarting it each time (the later
        kills hit it while it works through the backlog). Returns the last worker, running."""
        worker = self.start_worker("worker-0.log")
        self.wait_ready(worker)
        feeder.start()
        time.sleep(warmup_s)
        for k in range(kills):
            assert worker.poll() is None, "worker died on its own"
            assert feeder.is_alive(), "the stream ended before the kills: not a mid-stream test"
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            self.workers.remove(worker)
            worker = self.start_worker(f"worker-{k + 1}.log")
            self.wait_ready(worker)
            time.sleep(0.5 if k < kills - 1 else 0)
        return worker

    def metrics(self, proc: WorkerProcess) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{proc.web_port}/metrics", timeout=10) as resp:
            return resp.read().decode()

    def kill_workers(self, sig: int = signal.SIGKILL) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.workers.clear()

    def producer(self) -> Producer:
        return Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "acks": "all"})

    def produce(self, records: Iterable[Mapping], producer: Producer | None = None, batch: int | None = 50,
                event_time: bool = False) -> int:
        """Produce RawClick dicts to the raw topic; returns how many.

        As the collector does by default: RawBatch messages of up to ``batch`` events, each
        holding events of the partition their party's key hashes to, in order. With
        ``batch=None``, as older producers do: one RawClick message per event, keyed by party.
        With ``event_time``, each message's Kafka timestamp is its first event's ``server_time``
        (as if the collector had sent it then) instead of now.
        """
        raw = schemas.current("RawClick")
        own = producer is None
        producer = producer or self.producer()
        pending: dict[int, list[bytes]] = {}
        first_time: dict[int, int | None] = {}
        n = 0
        for record in records:
            key, value = record["party_id"].encode(), schemas.encode(raw, record)
            when = record["server_time"] if event_time else None
            n += 1
            if batch is None:
                self.produce_bytes(producer, key, value, raw.headers, timestamp=when)
                continue
            partition = partition_for(key, self.partitions)
            events = pending.setdefault(partition, [])
            if not events:
                first_time[partition] = when
            events.append(value)
            if len(events) >= batch:
                self.produce_batch(producer, partition, pending.pop(partition), first_time[partition])
        for partition, events in pending.items():
            self.produce_batch(producer, partition, events, first_time[partition])
        if own:
            producer.flush(60)
        return n

    def produce_batch(self, producer: Producer, partition: int, events: list[bytes],
                      timestamp: int | None = None) -> None:
        """One RawBatch message of already encoded RawClick ``events`` to ``partition`` of the raw topic
        (Kafka timestamp ``timestamp`` ms, default now)."""
        value = schemas.encode_batch(events, schemas.current("RawClick"))
        self.produce_bytes(producer, None, value, schemas.current("RawBatch").headers, partition, timestamp)

    def produce_bytes(self, producer: Producer, key: bytes | None, value: bytes | None, headers,
                      partition: int | None = None, timestamp: int | None = None) -> None:
        where: dict[str, Any] = {} if partition is None else {"partition": partition}
        if timestamp is not None:
            where["timestamp"] = timestamp
        while True:
            try:
                producer.produce(self.topics["raw"], value=value, key=key, headers=headers, **where)
                return
            except BufferError:
                producer.poll(0.1)

    def consume(self, kind: str, expected: int, timeout: float, settle: float = 3.0) -> list:
        """Read ``kind``'s topic (read_committed) from the start until its messages hold ``expected``
        records and nothing more arrived for ``settle`` seconds, or until ``timeout``. Returns the
        messages (:func:`decode_all` gives their records). ``kind`` may also be a topic's full name."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "isolation.level": "read_committed"})
        topic = self.topics.get(kind, kind)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(self.partitions)])
        out: list = []
        records = 0
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        try:
            while time.monotonic() < deadline:
                batch = consumer.consume(num_messages=10_000, timeout=0.5)
                for m in batch:
                    if m.error() is None:
                        out.append(m)
                        records += record_count(m)
                if batch:
                    last_new = time.monotonic()
                elif records >= expected and time.monotonic() - last_new >= settle:
                    break
        finally:
            consumer.close()
        return out


def record_count(message) -> int:
    """Records a consumed message holds: its JSON rows, or one (an Avro value, a dead letter)."""
    if (schemas.HEADER_CONTENT_TYPE, schemas.NDJSON) in (message.headers() or ()):
        return sum(1 for line in message.value().splitlines() if line.strip())
    return 1


def decode_all(messages) -> list[dict]:
    """The records of consumed messages (JSON rows or Avro), decoded as the writer named in their headers."""
    return [record for m in messages for record in schemas.decode_rows(m.value(), m.headers())]
