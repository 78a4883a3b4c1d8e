"""Agents over a topic of JSON rows (enriched clicks, sessions) as one small function.

The data engineer writes ``fn(rows, emit)``: ``rows`` iterates the records of one Kafka
message (decoded with :func:`schemas.decode_rows`), ``emit(output, record)`` queues a record
for one of the agent's outputs. Underneath, the records emitted for each output go out as
one message of JSON rows, to the source message's partition number, through the source
partition's transactional producer and attached to the source offset (:mod:`app.outbox`):
exactly-once, as the pipeline's own outputs. ``fn`` is a plain function, so it cannot
suspend half-way through a message, the invariant exactly-once rests on.

A message that cannot be decoded is counted (``dropped{reason="undecodable"}``), logged and
skipped, and so is one for which ``fn`` raises or emits a record that does not fit the
output's schema (``dropped{reason="error"}``, with the traceback in the log): an output agent
has no dead-letter topic of its own, and the source topic keeps the original.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Mapping

import faust

import schemas
from app.metrics import Metrics
from app.outbox import output_topic

log = logging.getLogger(__name__)

Emit = Callable[[str, Mapping[str, Any]], None]
RowFunction = Callable[[Iterator[dict[str, Any]], Emit], None]


def row_agent(app: faust.App, source_topic: str, outputs: Mapping[str, str], metrics: Metrics,
              schema: str | None = None, name: str | None = None) -> Callable[[RowFunction], Any]:
    """Decorator: run ``fn(rows, emit)`` on every message of ``source_topic``.

    ``outputs`` maps the names ``fn`` emits to, to topic names (created like the pipeline's,
    with the same partition count). Emitted records are written with ``schema`` (a schema
    name of :mod:`schemas`), by default the source message's own schema. Emitting to a name
    not in ``outputs`` raises ``KeyError`` at once (a bug, not data).
    """
    partitions = app.conf.topic_partitions

    def decorate(fn: RowFunction):
        source = app.topic(source_topic, key_serializer="raw", value_serializer="raw")
        on_error = lambda topic, exc: metrics.send_errors.labels(topic).inc()  # noqa: E731
        out = {key: output_topic(app, topic, source_topic, partitions, on_error) for key, topic in outputs.items()}
        records_out = {key: metrics.records_out.labels(topic) for key, topic in outputs.items()}

        @app.agent(source, name=name or fn.__name__, concurrency=1)
        async def agent(stream):
            async for event in stream.events():
                msg = event.message
                try:
                    rows = schemas.decode_rows(msg.value, msg.headers)
                    writer = schemas.current(schema) if schema else schemas.writer_from_headers(msg.headers)
                except schemas.SchemaError as exc:
                    metrics.dropped.labels("undecodable").inc()
                    log.error("message skipped: %s", exc, extra={"topic": msg.topic, "partition": msg.partition,
                                                                  "offset": msg.offset})
                    continue
                emitted: dict[str, list[Mapping[str, Any]]] = {key: [] for key in out}
                try:
                    fn(iter(rows), lambda output, record, emitted=emitted: emitted[output].append(record))
                    values = {key: schemas.encode_rows(writer, records) for key, records in emitted.items() if records}
                except Exception as exc:  # a bug in fn, or a record that does not fit: skip the message, loudly
                    metrics.dropped.labels("error").inc()
                    log.exception("message skipped: %s", exc, extra={"topic": msg.topic, "partition": msg.partition,
                                                                      "offset": msg.offset})
                    continue
                for key, value in values.items():
                    await out[key].send(key=None, value=value, partition=msg.partition, headers=writer.row_headers)
                    records_out[key].inc(len(emitted[key]))

        return agent

    return decorate
