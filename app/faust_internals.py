"""The one seam to Faust's internals: every private hook the pipeline relies on, and a check of them.

Exactly-once for this pipeline needs more of Faust 0.15.3 than its public API offers. Every
use of a private attribute, a private method or an undocumented call form is in this
module, so that an upgrade that changes one breaks here, loudly, at start-up
(:func:`check`), instead of as duplicates that only a Kafka fault test would notice.

What it provides:

- :func:`attach` — queue a message on the current event's offset (``Event._attach``), so the
  commit that covers the offset publishes it (outputs and table changelog writes alike).
- :func:`source_transactional_id` and :func:`send` — send through the transactional
  producer of a *source* partition (Faust's transactional id format, the producer's
  positional ``send``).
- :func:`assigned_partitions`, :func:`highwater` and :func:`partition_items` — what this
  worker holds, the latest offset it knows of a partition, and a table's entries by partition.
- :class:`App` — the app class with the rebalance fixes (below).

Faust 0.15.3 under ``processing_guarantee='exactly_once'`` breaks in three places when
partitions move between live workers; found by
``tests/pipeline/test_pipeline_faults.py::test_workers_added_and_removed_mid_stream...``:

1. Changelog highwaters (where table recovery stops reading) come from the consumer's fetch
   state, the last stable offset of the latest fetch response. Right after a rebalance
   nothing has been fetched for the partitions just assigned, so they read as unknown (-1),
   and recovery crashes the worker with ``ConsistencyError`` whenever its local tables
   already hold data for such a partition (robinhood/faust#658). Here they come from a
   ListOffsets request at read_committed isolation, which the broker answers with the last
   stable offset.
2. On revocation Faust's consumer forgets which records of the revoked partitions were
   processed (acked) *before* the app's handler commits them, so that commit commits
   nothing. The records since the last periodic commit are read again after the rebalance,
   while their outputs and table writes are still pending in memory; the next commit
   publishes both copies (measured: about 100 clicks twice per scale-out). Here the consumer
   commits first: it stops the flow, waits for the records being handled and commits, as
   Faust's handler means to — and that commit, should a periodic commit be running, waits
   for it and then commits, where Faust's returns without committing.
3. Should anything still be pending for a revoked partition after that commit, the local
   tables are ahead of the committed changelog and the pending outputs would be published a
   second time: the worker stops with an error instead (its restart rebuilds the tables from
   the changelogs, :mod:`app.localstate`).

And one delay: table recovery waited ~10 s per changelog partition after every restart or
rebalance, since a transactional changelog ends with a marker, not a record (see
:meth:`App.marker_ended_topics`).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, cast

import faust
from faust.app._attached import Attachments
from faust.assignor.partition_assignor import PartitionAssignor
from faust.events import Event
from faust.stores import rocksdb
from faust.streams import current_event
from faust.tables.base import Collection
from faust.transport.drivers import aiokafka as driver
from faust.types import AppT

if TYPE_CHECKING:
    from agents.enrich import Enricher
    from tables import Tables


class FaustIncompatible(RuntimeError):
    """The installed Faust lacks a hook this module relies on; the message names it."""


# (owner, attribute, the leading parameter names it must accept, or None for "exists").
# Keep in step with every use below: check() is what makes an upgrade fail at start-up.
HOOKS: list[tuple[Any, str, tuple[str, ...] | None]] = [
    (Event, "_attach", ("self", "channel", "key", "value", "partition", "timestamp", "headers", "schema",
                        "key_serializer", "value_serializer", "callback")),
    (Collection, "_on_changelog_sent", ("self", "fut")),
    (Attachments, "_pending", None),  # an instance attribute, declared on the class
    (PartitionAssignor, "group_for_topic", ("self", "topic")),
    (PartitionAssignor, "assigned_actives", ("self",)),
    (driver.Producer, "send", ("self", "topic", "key", "value", "partition", "timestamp", "headers",
                               "transactional_id")),
    (driver.AIOKafkaConsumerThread, "_highwaters", ("self", "partitions")),
    (driver.AIOKafkaConsumerThread, "_ensure_consumer", ("self",)),
    (driver.Consumer, "_new_consumer_thread", ("self",)),
    (driver.Consumer, "on_partitions_revoked", ("self", "revoked")),
    (driver.Consumer, "commit_and_end_transactions", ("self",)),
    (driver.Consumer, "maybe_wait_for_commit_to_finish", ("self",)),
    (driver.Consumer, "stop_flow", ("self",)),
    (driver.Consumer, "pause_partitions", ("self", "tps")),
    (driver.Consumer, "wait_empty", ("self",)),
    (driver.Consumer, "highwater", ("self", "tp")),
    (driver.Transport, "Consumer", None),
    (rocksdb.Store, "_dbs", None),
    (rocksdb.Store, "_visible_items", ("self", "db")),
    (rocksdb.Store, "_decode_key", ("self", "key")),
    (rocksdb.Store, "_decode_value", ("self", "value")),
    (faust.App, "_new_transport", ("self",)),
    (faust.App, "_on_partitions_revoked", ("self", "revoked")),
    (faust.App, "crash", ("self", "reason")),
    (faust.App, "in_transaction", None),
]


def check(hooks: list[tuple[Any, str, tuple[str, ...] | None]] | None = None) -> None:
    """Raise :class:`FaustIncompatible` naming the first hook (of :data:`HOOKS`) the installed Faust lacks or has
    changed."""
    version = getattr(faust, "__version__", "?")
    for owner, name, params in HOOKS if hooks is None else hooks:
        where = f"{owner.__module__}.{owner.__qualname__}.{name}"
        if not hasattr(owner, name) and name not in getattr(owner, "__annotations__", {}):
            raise FaustIncompatible(f"faust {version}: {where} is missing; clickpipe needs it for exactly-once "
                                    f"(see app/faust_internals.py)")
        if params is None:
            continue
        try:
            found = tuple(inspect.signature(getattr(owner, name)).parameters)
        except (TypeError, ValueError):
            raise FaustIncompatible(f"faust {version}: cannot read the signature of {where}") from None
        if found[:len(params)] != params:
            raise FaustIncompatible(f"faust {version}: {where} takes {found}, clickpipe expects {params} "
                                    f"(see app/faust_internals.py)")


# --- outputs and table writes attached to the current record's offset --------------------

def attach(channel, key, value, partition: int, key_serializer, value_serializer,
           callback: Callable | None = None) -> Awaitable:
    """Queue a message on the offset of the record being handled; the commit covering it publishes it.

    Raises ``RuntimeError`` outside stream iteration (no record to attach to).
    """
    event = current_event()
    if event is None:
        raise RuntimeError("nothing to attach to: not handling a record (write only while handling one)")
    return cast(Event, event)._attach(channel, key, value, partition=partition, key_serializer=key_serializer,
                         value_serializer=value_serializer, callback=callback)


def changelog_sent_callback(table: faust.Table) -> Callable:
    """The table's own bookkeeping of a delivered changelog write (the persisted offset)."""
    return table._on_changelog_sent


def source_transactional_id(app: AppT, source_topic: str, partition: int) -> str | None:
    """Faust's transactional id for ``partition`` of the consumed topic (None without transactions)."""
    if not app.in_transaction:
        return None
    group = app.assignor.group_for_topic(source_topic)
    return f"{app.conf.id}-{group}-{partition}"


async def send(app: AppT, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
               headers, transactional_id: str | None = None) -> Awaitable:
    """Hand raw bytes to the app's producer (with the transactional producer of ``transactional_id``)."""
    return await app.producer.send(topic, key, value, partition, None, headers, transactional_id=transactional_id)


# --- what this worker holds -----------------------------------------------------------------

def assigned_partitions(app: AppT, topic: str) -> list[int]:
    """The partitions of ``topic`` actively assigned to this worker, sorted."""
    return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)


def highwater(app: faust.App, topic: str, partition: int) -> int | None:
    """The latest offset the consumer knows of a partition; None before its first fetch."""
    try:
        return app.consumer.highwater(faust.types.TP(topic, partition))
    except Exception:  # noqa: BLE001 - not fetched yet: Faust raises from deep inside aiokafka
        return None


def partition_items(table: faust.Table) -> Iterator[tuple[int, Any, Any]]:
    """(partition, key, value) of every entry a RocksDB-backed table holds for this worker's active partitions.

    Each partition has its own database; reading them one by one is how to know an entry's
    partition (one key may have an entry in several).
    """
    store = cast(rocksdb.Store, table.data)  # the pipeline's tables are RocksDB-backed
    actives = set(assigned_partitions(table.app, table.changelog_topic_name))
    for partition, db in list(store._dbs.items()):
        if partition in actives:
            for key, value in store._visible_items(db):
                yield partition, store._decode_key(key), store._decode_value(value)


# --- the app class with the rebalance fixes -------------------------------------------------

class UncommittedWork(RuntimeError):
    """Outputs of records that a revocation did not commit: continuing would publish them twice."""


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions):
        # end offsets at the consumer's isolation level: read_committed under exactly_once
        ends = await self._ensure_consumer().end_offsets(partitions)
        marked = self.app.marker_ended_topics()
        return {tp: end - 1 if end and tp.topic in marked else end for tp, end in ends.items()}


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_revoked(self, revoked) -> None:
        assignment = self.assignment()
        if self.app.in_transaction and assignment and not self.app.should_stop:
            # the first steps of App._on_partitions_revoked, while what was acked is still known
            self.stop_flow()
            self.app.flow_control.suspend()
            self.pause_partitions(assignment)
            self.app.flow_control.clear()
            await self.wait_empty()  # the records in hand finish; commits and ends the transactions
        await super().on_partitions_revoked(revoked)

    async def commit_and_end_transactions(self) -> None:
        while await self.maybe_wait_for_commit_to_finish():
            pass  # another commit just finished; one more may have started meanwhile
        # nothing in flight now, and nothing can start before commit() claims the slot
        await self.commit(start_new_transaction=False)


class _Transport(driver.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A :class:`faust.App` with the rebalance fixes of this module."""

    # set by app.factory.create_app
    clickpipe_tables: Tables
    clickpipe_enricher: Enricher

    def marker_ended_topics(self) -> frozenset[str]:
        """Changelog topics written only in transactions: their last offset is a transaction marker.

        Their highwater is reported one lower, so table recovery ends when the last record
        has been read instead of waiting for a record at the marker's offset, which never
        comes (Faust gives up after two 5 s polls: "Aborted tx until highwater").
        """
        if not (self.in_transaction and self.conf.stream_publish_on_commit):
            return frozenset()
        return frozenset(t.changelog_topic_name for t in self.tables.values()
                         if getattr(t, "transactional_only", False))

    def _new_transport(self):
        return _Transport(self.conf.broker_consumer, self)

    async def _on_partitions_revoked(self, revoked) -> None:
        await super()._on_partitions_revoked(revoked)
        if self.should_stop or not self.in_transaction:
            return
        pending = sorted(str(tp) for tp in revoked if self._attachments._pending.get(tp))
        if pending:
            await self.crash(UncommittedWork(f"revoked with uncommitted outputs: {', '.join(pending)}"))
