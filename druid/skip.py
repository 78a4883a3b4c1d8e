"""Finding and skipping Kafka records a supervisor cannot decode (``clickpipe druid skip``).

With the Avro extension available for Druid 33, a value Druid cannot decode (not framed, or
framed with a schema id the spec lacks) fails the reading task instead of being counted as
unparseable, and every retry fails on the same offset. While that goes on nothing is
committed: the supervisor status shows no active task and a lag as if nothing had been read,
and each failed task's payload starts at the committed offset of each partition.

:func:`scan` reads each partition from the offset Druid has committed (the start of the
supervisor's current or latest failed task) and checks each value the way Druid's
``multiple_schemas_inline`` decoder will: version byte, a schema id of the running spec, Avro
of that schema with nothing left over. :func:`skip` then moves the supervisor past the first
bad record of each partition without losing the valid records before it, which the failed
tasks never committed:

1. suspend the supervisor;
2. ingest ``[committed offset, bad offset)`` of those partitions with one bounded Kafka
   indexing task of the running spec (it commits segments and offsets together, as the
   supervisor's tasks do) and wait for it to succeed;
3. resume the supervisor and set its offsets to ``bad offset + 1`` (``resetOffsets``).

Functions raise :class:`druid.client.DruidError` (Druid unreachable or refusing).
"""

from __future__ import annotations

import io
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import fastavro
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

import schemas
from clickpipe.config import Settings
from druid import specs
from druid.client import DruidClient, DruidError

DEFAULT_SCAN = 10_000


@dataclass
class Finding:
    """One partition of one supervisor after a scan."""

    supervisor: str
    topic: str
    partition: int
    druid_offset: int
    end_offset: int
    scanned: int
    bad_offset: int | None = None
    reason: str | None = None

    @property
    def stopped_early(self) -> bool:
        """The scan ended at its limit before the end of the partition."""
        return self.bad_offset is None and self.druid_offset + self.scanned < self.end_offset


class Decoder:
    """Checks values as Druid's ``multiple_schemas_inline`` decoder of a spec reads them."""

    def __init__(self, schemas_by_id: Mapping[str | int, Mapping[str, Any]]):
        self.writers = {int(k): fastavro.parse_schema(json.loads(json.dumps(v))) for k, v in schemas_by_id.items()}

    @classmethod
    def of_spec(cls, spec: Mapping[str, Any]) -> "Decoder":
        body = spec.get("spec", spec)
        return cls(body["dataSchema"]["parser"]["avroBytesDecoder"]["schemas"])

    def problem(self, value: bytes | None) -> str | None:
        """Why Druid cannot decode ``value``, or None when it can."""
        if not value:
            return "empty value"
        if len(value) < 5 or value[0] != schemas.FRAME_VERSION:
            return f"not framed (first byte {value[0]}, expected version {schemas.FRAME_VERSION})"
        schema_id = int.from_bytes(value[1:5], "big")
        writer = self.writers.get(schema_id)
        if writer is None:
            return f"schema id {schema_id} is not in the spec (known: {', '.join(map(str, sorted(self.writers)))})"
        buf = io.BytesIO(value[5:])
        try:
            fastavro.schemaless_reader(buf, writer, None)
        except Exception as exc:  # any failure of the Avro reader means Druid fails too
            return f"not Avro of schema id {schema_id}: {type(exc).__name__}: {exc}"
        if buf.tell() != len(value) - 5:
            return f"not Avro of schema id {schema_id}: {len(value) - 5 - buf.tell()} trailing bytes"
        return None


def first_bad(values: Iterable[tuple[int, bytes | None]], decoder: Decoder) -> tuple[int | None, str | None, int]:
    """(offset, reason) of the first undecodable value of ``(offset, value)`` pairs, and how many were read."""
    count = 0
    for offset, value in values:
        count += 1
        reason = decoder.problem(value)
        if reason is not None:
            return offset, reason, count
    return None, None, count


def druid_offsets(client: DruidClient, supervisor_id: str) -> dict[int, int]:
    """The offset Druid has committed per partition (where its next task starts reading).

    The start of the supervisor's active (or publishing) tasks; when none runs — tasks that
    fail on a record come and go — the start of its latest completed task if that failed;
    else the latest offsets less the lag the supervisor reports.
    """
    payload = client.supervisor_status(supervisor_id)["payload"]
    found: dict[int, int] = {}
    for task in (payload.get("activeTasks") or []) + (payload.get("publishingTasks") or []):
        for p, o in (task.get("startingOffsets") or {}).items():
            found[int(p)] = min(o, found.get(int(p), o))
    if found:
        return found
    task = client.latest_task(supervisor_id)
    if task and task.get("status") == "FAILED":
        body = client.task(task["id"])
        start = (body.get("payload") or {}).get("ioConfig", {}).get("startSequenceNumbers", {})
        if start.get("partitionSequenceNumberMap"):
            return {int(p): o for p, o in start["partitionSequenceNumberMap"].items()}
    latest, lag = payload.get("latestOffsets") or {}, payload.get("minimumLag") or {}
    return {int(p): o - lag.get(p, 0) for p, o in latest.items()}


def _consumer(settings: Settings) -> Consumer:
    return Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"clickpipe-skip-{uuid.uuid4().hex}",
                     "enable.auto.commit": False, "isolation.level": "read_committed",
                     "enable.partition.eof": True, "auto.offset.reset": "earliest"})


def _read(consumer: Consumer, topic: str, partition: int, start: int, end: int, limit: int,
          timeout: float = 30.0) -> Iterable[tuple[int, bytes | None]]:
    """(offset, value) of ``partition`` from ``start``, at most ``limit`` records, stopping at ``end``."""
    consumer.assign([TopicPartition(topic, partition, start)])
    read = 0
    deadline = time.monotonic() + timeout
    while read < limit and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                if consumer.position([TopicPartition(topic, partition)])[0].offset >= end:
                    return
                continue
            raise DruidError(f"reading {topic}[{partition}]: {msg.error()}")
        read += 1
        deadline = time.monotonic() + timeout
        yield msg.offset(), msg.value()
        if msg.offset() + 1 >= end:
            return


def scan(client: DruidClient, settings: Settings, ids: list[str] | None = None,
         limit: int = DEFAULT_SCAN) -> list[Finding]:
    """Every partition of the given declared supervisors (default: all), scanned from Druid's offset."""
    declared = {ds.name(settings): ds for ds in specs.load_declaration().values()}
    targets = ids or list(declared)
    unknown = [i for i in targets if i not in declared]
    if unknown:
        raise DruidError(f"not a clickpipe supervisor: {', '.join(unknown)} (known: {', '.join(declared)})")
    running = set(client.supervisor_ids())
    findings = []
    consumer = _consumer(settings)
    try:
        for supervisor_id in targets:
            if supervisor_id not in running:
                continue
            topic = declared[supervisor_id].topic(settings)
            decoder = Decoder.of_spec(client.supervisor_spec(supervisor_id))
            for partition, start in sorted(druid_offsets(client, supervisor_id).items()):
                try:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
                except KafkaException as exc:
                    raise DruidError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
                start = max(start, low)
                bad, reason, count = (None, None, 0) if start >= high else first_bad(
                    _read(consumer, topic, partition, start, high, limit), decoder)
                findings.append(Finding(supervisor_id, topic, partition, start, high, count, bad, reason))
    finally:
        consumer.close()
    return findings


def skip(client: DruidClient, findings: list[Finding], task_timeout: float = 600,
         on_step: Callable[[str], None] = lambda _: None) -> None:
    """Move each supervisor past the bad record of each finding that has one, keeping the valid ones before it."""
    by_supervisor: dict[str, list[Finding]] = {}
    for f in findings:
        if f.bad_offset is not None:
            by_supervisor.setdefault(f.supervisor, []).append(f)
    for supervisor_id, bad in by_supervisor.items():
        topic = bad[0].topic
        spec = client.supervisor_spec(supervisor_id)
        if not spec.get("suspended"):
            on_step(f"{supervisor_id}: suspending")
            client.supervisor_action(supervisor_id, "suspend")
        try:
            before = [f for f in bad if f.bad_offset > f.druid_offset]
            if before:
                on_step(f"{supervisor_id}: ingesting the records before the bad one(s) with a bounded task")
                _bridge(client, supervisor_id, spec, topic, before, task_timeout)
        finally:
            on_step(f"{supervisor_id}: resuming")
            client.supervisor_action(supervisor_id, "resume")
        offsets = {str(f.partition): f.bad_offset + 1 for f in bad}
        _reset_offsets(client, supervisor_id, topic, offsets)
        on_step(f"{supervisor_id}: offsets set to {offsets}")


def _bridge(client: DruidClient, supervisor_id: str, spec: Mapping[str, Any], topic: str, findings: list[Finding],
            timeout: float) -> None:
    """Ingest ``[druid_offset, bad_offset)`` of each finding with one Kafka task; committed with its offsets."""
    body = spec["spec"]
    name = f"clickpipe_skip_{supervisor_id}_{uuid.uuid4().hex[:8]}"
    task = {
        "type": "index_kafka",
        "id": name,
        "dataSchema": body["dataSchema"],
        "tuningConfig": body["tuningConfig"],
        "ioConfig": {
            "type": "kafka",
            "topic": topic,
            "consumerProperties": body["ioConfig"]["consumerProperties"],
            "baseSequenceName": name,
            "startSequenceNumbers": {"type": "start", "stream": topic,
                                     "partitionSequenceNumberMap": {str(f.partition): f.druid_offset for f in findings}},
            "endSequenceNumbers": {"type": "end", "stream": topic,
                                   "partitionSequenceNumberMap": {str(f.partition): f.bad_offset for f in findings}},
            "useTransaction": True,
        },
    }
    task_id = client.submit_task(task)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.task_status(task_id)
        if status.get("status") == "SUCCESS":
            return
        if status.get("status") == "FAILED":
            raise DruidError(f"the bounded task {task_id} failed: {status.get('errorMsg')}; nothing was skipped")
        time.sleep(2)
    raise DruidError(f"the bounded task {task_id} did not finish within {timeout:.0f} s; nothing was skipped "
                     f"(the supervisor is running again)")


def _reset_offsets(client: DruidClient, supervisor_id: str, topic: str, offsets: dict[str, int],
                   timeout: float = 60) -> None:
    """``resetOffsets``; Druid refuses it until the resumed supervisor runs again, so retry a while."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.reset_offsets(supervisor_id, topic, offsets)
            return
        except DruidError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def rows(findings: list[Finding], limit: int) -> list[dict[str, Any]]:
    """The report table: one row per partition."""
    out = []
    for f in findings:
        if f.bad_offset is not None:
            note = f.reason
        elif f.stopped_early:
            note = f"none in the first {limit} records (scan stopped early; raise --scan)"
        else:
            note = None
        out.append({"supervisor": f.supervisor, "topic": f.topic, "partition": f.partition,
                    "druid_offset": f.druid_offset, "end_offset": f.end_offset, "bad_offset": f.bad_offset,
                    "reason": note})
    return out
