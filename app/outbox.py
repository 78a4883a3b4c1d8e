"""Exactly-once outputs: each record's outputs, table writes and offset in one transaction.

With ``processing_guarantee='exactly_once'`` Faust runs one transactional producer per source
partition and commits the consumed offsets in those transactions. Two gaps in Faust 0.15.3
break exactly-once for this pipeline, and this module closes them:

1. ``topic.send()`` picks the transactional producer from the *destination* topic's
   partition group, which exists only for topics the app consumes; for our output topics it
   falls back to the non-transactional producer. :class:`OutputTopic` publishes through the
   transactional producer of the *source* partition (outputs keep the source partition
   number, so a party's records stay in one partition downstream too).
2. Outputs sent while a record is processed are published later; a commit could take an
   offset whose outputs were not yet published (lost after a crash) or publish outputs of a
   record whose offset it does not commit (duplicated after a crash). Outputs (and table
   changelog writes, see :class:`tables.AttachedTable`) are therefore attached to their
   source offset (``stream_publish_on_commit``) and published by the commit that covers it.

Invariant the agents keep: handling a record never suspends between its first output (or
table write) and its end. Attaching and table access are synchronous, and Faust acks a
record before the stream awaits the next one, so whenever a commit runs, every record is
either untouched or fully handled and acked. (Faust publishes the attachments of offsets up
to *and including* the offset it commits, which is the next, unhandled record: harmless
only because of this invariant.) An earlier version that held a lock across each commit
instead was correct too, but blocked processing for the whole commit (over a second under
load).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, cast

import faust

from app import faust_internals

log = logging.getLogger(__name__)


class OutputTopic(faust.Topic):
    """A topic written by the pipeline: raw bytes, published in the source partition's transaction."""

    source_topic: str = ""
    on_error: Callable[[str, BaseException], None] = staticmethod(lambda topic, exc: None)

    async def publish_message(self, fut, wait: bool = False):
        message = fut.message
        topic = self.get_topic_name()
        tid = faust_internals.source_transactional_id(self.app, self.source_topic, message.partition)
        # the producer's send gives a future (typed as a plain Awaitable)
        sent = await faust_internals.send(self.app, topic, message.key, message.value, message.partition,
                                          message.headers, transactional_id=tid)
        delivery = cast(asyncio.Future, sent)
        delivery.add_done_callback(lambda f: self._delivered(topic, f))
        if wait:
            await delivery
        return delivery

    def _delivered(self, topic: str, fut: asyncio.Future) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None:
            log.error("delivery to %s failed: %r", topic, exc)
            self.on_error(topic, exc)


def output_topic(app: faust.App, name: str, source_topic: str, partitions: int,
                 on_error: Callable[[str, BaseException], None]) -> OutputTopic:
    topic = OutputTopic(app, topics=[name], partitions=partitions, key_serializer="raw", value_serializer="raw")
    topic.source_topic = source_topic
    topic.on_error = on_error
    return topic
