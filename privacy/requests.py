"""``clickpipe privacy export|erase PARTY``: carry out one request and log it.

- :func:`export` writes every row Druid holds for the party (clicks and sessions) as JSON lines.
- :func:`erase` removes the party, in this order:

  1. adds it to the erased list (:mod:`clickpipe.erased`): from then on no worker processes
     an event of the party from before now, on the raw topic or in a replay of it;
  2. sends an erase message into the party's raw partition and waits until a worker has
     deleted the party's state (dedup memory, bot counters, open session): the tombstone for
     the party in the ``parties`` table's changelog. Everything the pipeline wrote for the
     party is in the output topics by then (same transaction, or earlier);
  3. rewrites Druid's datasources without the party (:func:`druid.parties.erase`) once their
     supervisors have read their topics up to that point, and checks no query finds it.

Each request carried out appends one JSON line to ``CLICKPIPE_PRIVACY_LOG``: time, kind, the
party's digest (never the id), counts; never the data. A party Druid holds no rows of is
refused (:class:`UnknownParty`) unless ``force`` (its events may still be in the pipeline).
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, cast

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from agents.messages import CONTROL_HEADER, ERASE_PARTY, Erasure
from clickpipe import erased
from clickpipe.config import Settings
from clickpipe.party import digest, party_key
from clickpipe.topics import partition_for
from druid import parties
from druid.client import DruidClient

Echo = Callable[[str], None]


class UnknownParty(LookupError):
    """Druid holds no row of the party; the message says where it looked."""


class RequestError(RuntimeError):
    """A stage of a request failed or timed out; the message says which and what is left to do."""


def _unknown(settings: Settings, party_id: str) -> UnknownParty:
    names = ", ".join(ds.name(settings) for ds in parties.declared(settings))
    salted = " (pseudonymised with CLICKPIPE_PRIVACY_PARTY_SALT: is it the salt the pipeline uses?)" \
        if settings.privacy_party_salt else ""
    return UnknownParty(f"unknown party {party_id!r}: Druid holds no row of it in {names}{salted}")


def export(settings: Settings, party_id: str, out: IO[str], client: DruidClient | None = None) -> dict[str, int]:
    """Write the party's rows to ``out``, one JSON object per line; returns rows per datasource."""
    client = client or DruidClient(settings, timeout=settings.druid_query_timeout_seconds)
    written: dict[str, int] = {ds.name(settings): 0 for ds in parties.declared(settings)}
    for row in parties.rows(client, settings, party_key(party_id, settings.privacy_party_salt)):
        out.write(orjson.dumps(row).decode() + "\n")
        written[row["datasource"]] += 1
    if not any(written.values()):
        raise _unknown(settings, party_id)
    log_request(settings, "export", party_id, {"rows": written})
    return written


def erase(settings: Settings, party_id: str, force: bool = False, echo: Echo = lambda line: None,
          client: DruidClient | None = None) -> dict[str, Any]:
    """Erase the party everywhere clickpipe can (module docstring); returns what was done, as logged."""
    started = time.monotonic()
    client = client or DruidClient(settings, timeout=settings.druid_query_timeout_seconds)
    key = party_key(party_id, settings.privacy_party_salt)
    before = parties.counts(client, settings, key)
    if not force and not any(c["rows"] for c in before.values()):
        raise _unknown(settings, party_id)
    timeout = settings.privacy_timeout_seconds
    erased_at = int(time.time() * 1000)
    stages: dict[str, float] = {}

    def done(stage: str, since: float) -> float:
        now = time.monotonic()
        stages[stage] = round(now - since, 1)
        echo(f"{stage}: done in {stages[stage]} s")
        return now

    try:
        erased.ensure_topic(settings.kafka_bootstrap, settings.topic_erased, settings.partitions,
                            replication=settings.kafka_replication,
                            min_insync_replicas=settings.kafka_min_insync_replicas)
        erased.record(settings.kafka_bootstrap, settings.topic_erased, digest(party_id), erased_at)
        mark = done("erased list", started)
        partition = partition_for(party_id.encode(), settings.partitions)
        _forget_state(settings, party_id, erased_at, partition, timeout)
        mark = done(f"worker state (raw partition {partition})", mark)
        targets = {ds.name(settings): {partition: _committed_end(settings, ds.topic(settings), partition)}
                   for ds in parties.declared(settings)}
    except KafkaException as exc:
        raise RequestError(f"Kafka: {exc}") from exc
    druid = parties.erase(client, settings, key, targets, timeout, suspension_marker(settings), echo)
    done("druid", mark)
    entry = {"erased_at": erased_at, "druid": druid, "stages_seconds": stages,
             "seconds": round(time.monotonic() - started, 1)}
    log_request(settings, "erase", party_id, entry)
    return entry


def _forget_state(settings: Settings, party_id: str, erased_at: int, partition: int, timeout: float) -> None:
    """Send the erase message into the party's raw partition; wait for the worker's tombstone in
    the ``parties`` changelog (read_committed: the worker committed it with everything before)."""
    changelog = f"{settings.pipeline_app_id}-parties-changelog"
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"privacy-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        start = consumer.get_watermark_offsets(TopicPartition(changelog, partition), timeout=30)[1]
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
        producer.produce(settings.topic_raw, key=party_id.encode(), value=Erasure(party_id, erased_at).encode(),
                         partition=partition, headers=[(CONTROL_HEADER, ERASE_PARTY)])
        if producer.flush(30):
            raise RequestError(f"the erase message to {settings.topic_raw} was not acknowledged after 30s")
        consumer.assign([TopicPartition(changelog, partition, start)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is None and msg.value() is None and table_key(msg.key()) == party_id:
                    return
        raise RequestError(f"no worker deleted the party's state within {timeout}s (is a worker running? "
                           f"the erase message waits in {settings.topic_raw}; run erase again once it runs)")
    finally:
        consumer.close()


def table_key(raw: bytes | None) -> str | None:
    """The key of a table's changelog record (the pipeline's tables serialize keys as JSON)."""
    try:
        key = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return None
    return key if isinstance(key, str) else None


def _committed_end(settings: Settings, topic: str, partition: int, window: int = 256) -> int:
    """The offset after the last committed record of ``topic``'s ``partition`` (0: none): how far a
    reader must have read to have every record committed so far (trailing transaction markers
    are never handed to a reader, so the high watermark itself may never be reached)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"privacy-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        start = high
        while start > low:
            start = max(low, start - window)
            consumer.assign([TopicPartition(topic, partition, start)])
            last = -1
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                batch = consumer.consume(num_messages=10_000, timeout=1.0)
                offsets = [cast(int, m.offset()) for m in batch if m.error() is None]
                last = max([last, *(o for o in offsets if o < high)])
                if not batch or any(o >= high - 1 for o in offsets):
                    break
            if last >= 0:
                return last + 1
            window *= 16
        return 0
    finally:
        consumer.close()


def suspension_marker(settings: Settings) -> Path:
    """Where an erase lists the supervisors it has suspended, beside the request log."""
    return settings.privacy_log.with_name("privacy-suspended-supervisors.json")


def log_request(settings: Settings, kind: str, party_id: str, details: dict[str, Any]) -> None:
    """Append one line to the request log, created owner-only (0600)."""
    path = settings.privacy_log
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "kind": kind, "party_digest": digest(party_id), **details}
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as f:
        f.write(orjson.dumps(line) + b"\n")
