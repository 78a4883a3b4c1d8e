"""Creating Kafka topics the project owns, and waiting until the cluster serves them.

Used by ``clickpipe stack topics`` (the pipeline's topics), by a starting worker (its
tables' changelog topics), and by tests and benchmarks for their own topics. Keyed state is
partition-local, so a topic that exists with another partition count than configured is an
error, never silently used.
"""

from __future__ import annotations

import time
import zlib

from confluent_kafka.admin import AdminClient, NewTopic


def partition_for(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default partitioner (``consistent_random``) gives a non-empty ``key``.

    CRC-32 of the key modulo the partition count: producers that batch events of one
    partition into one message must put each key where single-event producers put it.
    """
    return zlib.crc32(key) % partitions


class TopicError(Exception):
    """A topic could not be created, has the wrong partition count, or never became ready."""


def ensure_topics(bootstrap: str, names: list[str], partitions: int, config: dict[str, str] | None = None,
                  timeout: float = 30.0) -> list[str]:
    """Create the missing topics of ``names``; return once all are served with leaders. Returns those created.

    "Served" means the cluster's metadata lists ``partitions`` partitions for each topic, each
    with a leader: a client whose first metadata request comes after this sees every topic
    whole. A consumer group that assigns partitions from a picture missing one of its topics
    keeps that assignment until the next rebalance. Raises :class:`TopicError` naming the
    topic on a partition-count mismatch, a failed creation, or after ``timeout`` seconds.
    """
    client = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    deadline = time.monotonic() + timeout
    existing = _describe(client, names, timeout, partitions)
    missing = [n for n in names if n not in existing]
    if missing:
        futures = client.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1,
                                                 config=dict(config or {})) for n in missing])
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - a concurrent creator is fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TopicError(f"creating topic {name} failed: {exc}") from exc
    while True:
        served = _describe(client, names, max(deadline - time.monotonic(), 1.0), partitions)
        waiting = [n for n in names if served.get(n) != partitions]
        if not waiting:
            return missing
        if time.monotonic() > deadline:
            raise TopicError(f"topics {', '.join(waiting)} have no leader for every partition after {timeout:.0f}s")
        time.sleep(0.2)


def _describe(client: AdminClient, names: list[str], timeout: float, partitions: int) -> dict[str, int]:
    """For each of ``names`` the cluster lists: how many of its partitions have a leader.

    Raises :class:`TopicError` if one has a partition count other than 0 (being created) and ``partitions``.
    """
    topics = _list_topics(client, timeout)
    led = {}
    for name in names:
        meta = topics.get(name)
        if meta is None or meta.error is not None:
            continue
        if len(meta.partitions) not in (0, partitions):
            raise TopicError(f"topic {name} has {len(meta.partitions)} partitions, configured {partitions}; "
                             f"change CLICKPIPE_PARTITIONS or recreate it")
        led[name] = sum(1 for p in meta.partitions.values() if p.leader >= 0 and p.error is None)
    return led


def _list_topics(client: AdminClient, timeout: float) -> dict:
    """The cluster's topic metadata by name; :class:`TopicError` if Kafka does not answer."""
    try:
        return client.list_topics(timeout=timeout).topics
    except Exception as exc:  # noqa: BLE001 - KafkaException: broker unreachable
        raise TopicError(f"Kafka metadata unavailable: {exc}") from exc


def delete_topics(bootstrap: str, names: list[str], prefix: str | None = None, timeout: float = 30.0) -> list[str]:
    """Delete ``names`` and, if ``prefix`` is given, every topic whose name starts with it; returns what was deleted.

    For cleaning up after tests and benchmarks: a topic that is already gone is not an error.
    """
    client = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    names = list(names)
    if prefix is not None:
        names += sorted(t for t in _list_topics(client, timeout) if t.startswith(prefix) and t not in names)
    if not names:
        return []
    deleted = []
    for name, future in client.delete_topics(names, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            deleted.append(name)
        except Exception as exc:  # noqa: BLE001 - KafkaException
            if "UNKNOWN_TOPIC_OR_PART" not in str(exc):
                raise TopicError(f"deleting topic {name} failed: {exc}") from exc
    return deleted
