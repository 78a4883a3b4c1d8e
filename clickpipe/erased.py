"""The erased list: which parties were erased, and when, as a compacted Kafka topic.

Each record is keyed by the party's :func:`clickpipe.party.digest` (never the id) and holds
``{"erased_at": epoch ms}``; the topic (``CLICKPIPE_TOPIC_ERASED``) is compacted, so it keeps
the latest record per party for good. ``clickpipe privacy erase`` writes it before anything
else; a worker reads it whole whenever it is assigned partitions and drops every raw event of
an erased party whose ``server_time`` is not after the erasure (:func:`erased_event`). So
neither the events still on the raw topic nor a replay of that topic bring an erased party
back. Events after the erasure are new visits and are processed (erasure is not an opt-out).
"""

from __future__ import annotations

import time
import uuid
from typing import Mapping, cast

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from clickpipe.topics import ensure_topics

# Compacted: the latest record per digest is kept forever (erasures are never undone).
TOPIC_CONFIG = {"cleanup.policy": "compact"}


def ensure_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 60, replication: int = 1,
                 min_insync_replicas: int = 1) -> None:
    ensure_topics(bootstrap, [topic], partitions, {**TOPIC_CONFIG, "min.insync.replicas": str(min_insync_replicas)},
                  timeout=timeout, replication=replication)


def record(bootstrap: str, topic: str, party_digest: str, erased_at_ms: int, timeout: float = 30) -> None:
    """Add ``party_digest`` to the list, durably (acks=all); raises ``KafkaException`` on failure."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures: list = []
    producer.produce(topic, key=party_digest.encode(), value=orjson.dumps({"erased_at": erased_at_ms}),
                     on_delivery=lambda err, msg: failures.append(err) if err else None)
    if producer.flush(timeout) or failures:
        raise KafkaException(failures[0] if failures else f"erased list write to {topic} not acknowledged "
                                                          f"after {timeout:.0f}s")


def load(bootstrap: str, topic: str, timeout: float = 60) -> dict[str, int]:
    """Every erased party's digest -> erasure time (epoch ms), read to the end of the topic.

    A record that is not ``{"erased_at": int}`` is skipped (nothing but ``record`` writes here).
    Raises ``KafkaException`` if the topic cannot be read to its end within ``timeout``.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"erased-list-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    deadline = time.monotonic() + timeout
    erased: dict[str, int] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        ends = {}
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        position = {p: 0 for p in ends}
        while any(position[p] < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise KafkaException(f"erased list {topic} not read to its end after {timeout:.0f}s")
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error() is not None:
                    continue
                position[cast(int, msg.partition())] = cast(int, msg.offset()) + 1
                _apply(erased, msg.key(), msg.value())
            for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                if tp.offset >= 0:  # past trailing transaction markers or compacted gaps
                    position[tp.partition] = max(position[tp.partition], tp.offset)
    finally:
        consumer.close()
    return erased


def _apply(erased: dict[str, int], key: bytes | None, value: bytes | None) -> None:
    if key is None:
        return
    if value is None:
        erased.pop(key.decode(errors="replace"), None)
        return
    try:
        at = orjson.loads(value)["erased_at"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return
    if isinstance(at, int):
        erased[key.decode(errors="replace")] = at


def erased_event(erased: Mapping[str, int], party_digest: str, server_time: int) -> bool:
    """True if an event of the party at ``server_time`` predates the party's erasure."""
    at = erased.get(party_digest)
    return at is not None and server_time <= at
