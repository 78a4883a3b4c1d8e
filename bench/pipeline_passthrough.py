"""Baseline for the pipeline benchmark: decode each raw click and re-encode it, nothing else.

Same Faust runtime as the pipeline (exactly_once, outputs attached to offsets) without
steps or tables, so the ratio full/pass-through isolates the cost of the
processing itself. Run as ``faust -A bench.pipeline_passthrough worker``.
"""

import schemas
from app.factory import base_app
from app.metrics import Metrics
from app.outbox import output_topic
from clickpipe.config import settings
from steps import Drop
from steps.decode import decode

RAW = schemas.current("RawClick")
metrics = Metrics()
app = base_app(settings, metrics)
raw = app.topic(settings.topic_raw, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
out = output_topic(app, settings.topic_enriched, settings.topic_raw, settings.partitions,
                   lambda topic, exc: metrics.send_errors.labels(topic).inc())
records_in = metrics.records_in.labels(settings.topic_raw)
records_out = metrics.records_out.labels(settings.topic_enriched)


@app.agent(raw, name="passthrough", concurrency=1)
async def passthrough(stream):
    async for event in stream.events():
        records_in.inc()
        msg = event.message
        try:
            record = decode(msg.value, msg.headers)
        except Drop:
            continue
        record["session_id"] = record.pop("client_session_id")
        await out.send(key=msg.key, value=schemas.encode(RAW, record), partition=msg.partition, headers=RAW.headers)
        records_out.inc()
