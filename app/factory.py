"""Build the Faust app of the pipeline from :class:`clickpipe.config.Settings`."""

from __future__ import annotations

from pathlib import Path

import tables
from agents import enrich
from app import faust_internals, localstate, logs
from app.faust_internals import App
from app.metrics import Metrics


def brokers(bootstrap: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


def base_app(settings, metrics: Metrics) -> App:
    """A Faust app with the pipeline's runtime settings and ``/metrics``, without agents or tables.

    As a worker starts, the changelog topics of every table defined by then are created and
    awaited (:func:`tables.declare_changelogs`), before the worker joins its group.
    """
    logs.configure(settings.pipeline_log_json)
    faust_internals.check()  # an upgraded Faust without a hook we rely on stops here, not as duplicates later
    app = App(
        settings.pipeline_app_id,
        broker=brokers(settings.kafka_bootstrap),
        store="rocksdb://",  # the library default is memory://
        datadir=str(settings.pipeline_datadir),
        processing_guarantee="exactly_once",
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.kafka_replication,
        web_port=settings.pipeline_web_port,
        stream_buffer_maxsize=settings.pipeline_stream_buffer,
        broker_commit_interval=settings.pipeline_commit_interval_ms / 1000,
        broker_commit_every=10_000,
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        consumer_auto_offset_reset="earliest",
        stream_publish_on_commit=True,  # outputs travel with the commit of their offset (app.outbox)
        # a worker killed without leaving the group holds its partitions until this expires
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        # a commit waits for every output it covers: allow a slow broker time before failing
        producer_request_timeout=60.0,
    )

    @app.on_worker_init.connect  # type: ignore[arg-type]  # mode's signal handler type rejects any plain handler
    def declare_changelogs(sender, **kwargs):
        tables.declare_changelogs(settings, app.tables.values())  # the tables defined by then: all

    @app.page("/metrics")
    async def prometheus(web, request):
        return web.bytes(metrics.exposition(), content_type="text/plain; version=0.0.4")

    return app


def create_app(settings) -> App:
    """The pipeline: tables, the enrich agent, the sweep timer, ``/metrics``."""
    metrics = Metrics()
    app = base_app(settings, metrics)
    app.clickpipe_tables = tables.define(app, settings)
    app.clickpipe_enricher = enrich.register(app, settings, app.clickpipe_tables, metrics)

    @app.on_worker_init.connect  # type: ignore[arg-type]  # mode's signal handler type rejects any plain handler
    def claim_local_state(sender, **kwargs):
        localstate.claim(settings.pipeline_datadir, Path(app.conf.tabledir))

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode's signal handler type rejects any plain handler
    async def release_local_state(sender, **kwargs):
        if getattr(app, "crash_reason", None) is None:
            localstate.release(settings.pipeline_datadir)

    return app
