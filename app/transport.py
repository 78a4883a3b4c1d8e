"""The pipeline's Faust app class: exactly-once that survives rebalances (workers added or removed).

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

import faust
from faust.transport.drivers import aiokafka as driver


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

    def marker_ended_topics(self) -> frozenset[str]:
        """Changelog topics written only in transactions: their last offset is a transaction marker.

        Their highwater is reported one lower, so table recovery ends when the last record
        has been read instead of waiting for a record at the marker's offset, which never
        comes (Faust gives up after two 5 s polls: "Aborted tx until highwater").
        """
        if not (self.in_transaction and self.conf.stream_publish_on_commit):
            return frozenset()
        return frozenset(t.changelog_topic_name for t in self.tables.values() if getattr(t, "transactional_only", False))

    def _new_transport(self):
        return _Transport(self.conf.broker_consumer, self)

    async def _on_partitions_revoked(self, revoked) -> None:
        await super()._on_partitions_revoked(revoked)
        if self.should_stop or not self.in_transaction:
            return
        pending = sorted(str(tp) for tp in revoked if self._attachments._pending.get(tp))
        if pending:
            await self.crash(UncommittedWork(f"revoked with uncommitted outputs: {', '.join(pending)}"))
