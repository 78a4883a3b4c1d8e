"""Baseline for the pipeline benchmark: read each raw message's events, decode them, write them back.

Same Faust runtime as the pipeline (exactly_once, outputs attached to offsets) without
steps or tables, so the ratio full/pass-through isolates the cost of the processing itself.
Per raw message (a RawBatch, or a single RawClick) it does what the plain confluent-kafka
baseline does (:func:`bench.confluent_passthrough.passthrough`): each event decoded alone,
each decoded dict written as a JSON row, one output message of rows per input message, to the
source message's partition number. ``records_in`` / ``records_out`` count events, as the
pipeline's do. Run as ``faust -A bench.pipeline_passthrough worker``.
"""

from app.factory import base_app
from app.metrics import Metrics
from app.outbox import output_topic
from bench.confluent_passthrough import ROW_HEADERS, passthrough
from clickpipe.config import settings

metrics = Metrics()
app = base_app(settings, metrics)
raw = app.topic(settings.topic_raw, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
out = output_topic(app, settings.topic_enriched, settings.topic_raw, settings.partitions,
                   lambda topic, exc: metrics.send_errors.labels(topic).inc())
records_in = metrics.records_in.labels(settings.topic_raw)
records_out = metrics.records_out.labels(settings.topic_enriched)


@app.agent(raw, name="passthrough", concurrency=1)
async def passthrough_agent(stream):
    async for event in stream.events():
        msg = event.message
        value, events = passthrough(msg.value, msg.headers)
        records_in.inc(events)
        await out.send(key=None, value=value, partition=msg.partition, headers=list(ROW_HEADERS))
        records_out.inc(events)
