"""The pipeline's tables: partition-local state in RocksDB, each backed by a changelog topic.

- ``parties``: party id -> the party's state (a JSON dict; each step owns one key, see
  :mod:`steps`): dedup memory, bot counters, the open session. Written once per raw message
  that has events of the party; deleted by the sweep when nothing is left to remember.
- ``ips``: IP -> the state a step keeps per IP (the bot rate's ``[window, events]``); deleted
  by the sweep once useless. The raw topic is keyed by party, so one IP has a separate entry
  in every partition where its parties live (counts are per partition).

Both are written only from the enrich agent (concurrency 1) inside stream iteration, so
every write goes to the changelog partition of the message being processed. Changelog writes
are attached to that record's offset (:class:`AttachedTable`) and published by the commit
that covers it, in the same transaction as the outputs and the consumer offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import faust

from app import faust_internals
from clickpipe.topics import changelog_config, ensure_topics

MIB = 1024 * 1024


class AttachedTable(faust.Table):
    """A table whose changelog writes are published by the commit of the record that made them.

    Faust queues changelog writes in a producer buffer that drains in the background, so a
    commit may cover a record whose writes are still queued (lost if the worker dies before
    the next commit) or carry writes of a record it does not cover (replayed after a crash
    on top of state that already has them). Attaching each write to the current record's
    offset, as outputs are (``stream_publish_on_commit``), ties them to that offset.

    Under exactly-once every write is therefore published in a transaction, so the changelog's
    last offset is always a transaction marker, which table recovery relies on
    (:meth:`app.faust_internals.App.marker_ended_topics`). A write outside stream iteration (from
    a timer, say) would be neither attached nor transactional: it raises instead.
    """

    transactional_only = True

    def send_changelog(self, partition, key, value, key_serializer=None, value_serializer=None):
        if not self.app.conf.stream_publish_on_commit:
            return super().send_changelog(partition, key, value, key_serializer, value_serializer)
        try:
            return faust_internals.attach(self.changelog_topic, key, value, partition,
                                          key_serializer or self.key_serializer,
                                          value_serializer or self.value_serializer,
                                          callback=faust_internals.changelog_sent_callback(self))
        except RuntimeError as exc:
            raise RuntimeError(f"table {self.name} written outside stream iteration: {exc}") from None


@dataclass(frozen=True)
class Tables:
    parties: faust.Table
    ips: faust.Table


def declare_changelogs(settings, tables: Iterable[faust.Table]) -> list[str]:
    """Create the changelog topics of ``tables`` if missing and wait until Kafka serves them; returns those created.

    Called as a worker starts, before it joins the consumer group. Left to Faust, the topics
    are created while the worker subscribes, and the group may be assigned from metadata
    that does not list one of them yet. That assignment lacks the topic's partitions, so every
    write to the table fails (PartitionsMismatch, or a KeyError in the transactional producer
    that crashes the worker at the next rebalance). Same topic settings as Faust's own, with the
    configured replication and ``min.insync.replicas``.
    """
    created = []
    for table in tables:
        topic = table.changelog_topic
        policy = [name for name, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
        config = {**(topic.config or {}), **({"cleanup.policy": ",".join(policy)} if policy else {})}
        created += ensure_topics(settings.kafka_bootstrap, [table.changelog_topic_name], settings.partitions,
                                 changelog_config(settings, config), timeout=60,
                                 replication=settings.kafka_replication)
    return created


def rocksdb_options(settings) -> dict:
    """Memory bounds for each table partition's RocksDB (the library default cache is 2 GiB each)."""
    return {
        "block_cache_size": settings.rocksdb_block_cache_mb * MIB,
        "write_buffer_size": settings.rocksdb_write_buffer_mb * MIB,
        "max_write_buffer_number": 2,
        "max_open_files": settings.rocksdb_max_open_files,
    }


def define(app: faust.App, settings) -> Tables:
    def table(name: str, help: str) -> AttachedTable:
        # keys: raw UTF-8 (the app default); values: JSON (the app default)
        attached = AttachedTable(app, name=name, beacon=app.tables.beacon, partitions=settings.partitions,
                                 help=help, options=rocksdb_options(settings))
        app.tables.add(attached)  # returns the table it adds
        return attached

    return Tables(
        parties=table("parties", "Per-party state: dedup, bot counters, open session"),
        ips=table("ips", "Per-IP event counters of the current bot-rate window"),
    )
