"""Sending outputs inside the transaction of the record being processed.

With ``processing_guarantee='exactly_once'`` Faust runs one transactional producer per
source partition and commits the consumer offset in that producer's transaction. Faust's own
``topic.send()`` picks the producer from the *destination* topic's partition group, which
only exists for topics the app consumes; for the output topics it would fall back to the
non-transactional producer (at-least-once). :class:`Outbox` sends every output to the same
partition number as the source record, through the source partition's transactional
producer, so outputs, table changelogs and the offset commit are one atomic transaction.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Sequence

import faust

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, app: faust.App, source_topic: str, on_error: Callable[[str, BaseException], None]):
        self.app = app
        self.source_topic = source_topic
        self.on_error = on_error

    def _transactional_id(self, partition: int) -> str | None:
        if not self.app.in_transaction:
            return None
        group = self.app.assignor.group_for_topic(self.source_topic)
        return f"{self.app.conf.id}-{group}-{partition}"

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int,
                   headers: Sequence[tuple[str, bytes]] | None = None, transactional: bool = True) -> None:
        """Queue one record (delivery is batched by the producer; failures reach ``on_error``)."""
        tid = self._transactional_id(partition) if transactional else None
        fut = await self.app.producer.send(topic, key, value, partition, None, list(headers or ()),
                                           transactional_id=tid)
        fut.add_done_callback(lambda f: self._delivered(topic, f))

    def _delivered(self, topic: str, fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            log.error("delivery to %s failed: %r", topic, exc)
            self.on_error(topic, exc)
