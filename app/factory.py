"""Build the Faust app of the pipeline from :class:`clickpipe.config.Settings`."""

from __future__ import annotations

import faust

from agents import enrich
from app import logs
from app.metrics import Metrics
import tables


def brokers(bootstrap: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


def create_app(settings) -> faust.App:
    """The app with its tables, the enrich agent, the sweep timer and ``/metrics``."""
    logs.configure(settings.pipeline_log_json)
    app = faust.App(
        settings.pipeline_app_id,
        broker=brokers(settings.kafka_bootstrap),
        store="rocksdb://",  # the library default is memory://
        datadir=str(settings.pipeline_datadir),
        processing_guarantee="exactly_once",
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        web_port=settings.pipeline_web_port,
        stream_buffer_maxsize=settings.pipeline_stream_buffer,
        broker_commit_interval=settings.pipeline_commit_interval / 1000,
        broker_commit_every=10_000,
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        consumer_auto_offset_reset="earliest",
        # offsets and outputs commit together; the broker needs a generous transaction timeout
        # so a slow commit after a pause is not aborted
        producer_request_timeout=60.0,
    )
    metrics = Metrics()
    app.clickpipe_tables = tables.define(app, settings)
    app.clickpipe_enricher = enrich.register(app, settings, app.clickpipe_tables, metrics)

    @app.page("/metrics")
    async def prometheus(web, request):
        return web.bytes(metrics.exposition(), content_type="text/plain; version=0.0.4")

    return app
