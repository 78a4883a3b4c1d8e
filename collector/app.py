"""ASGI wiring: routes, CORS and the per-worker sink.

Start with ``gunicorn -c collector/gunicorn.conf.py`` (the config names the app factory
``collector.app:asgi()`` and the ASGI worker class, :class:`collector.server.Worker`; each
worker builds its own producer after the fork).
"""

from __future__ import annotations

import falcon
import falcon.asgi
import falcon.media
import orjson

from clickpipe.config import Settings, settings
from collector import tag
from collector.intake import Intake
from collector.resources import (
    DivolteResource,
    EventsResource,
    HealthResource,
    MetricsResource,
    PixelResource,
    ReadyResource,
    RobotsResource,
    TagResource,
)
from collector.sink import Sink

_sink: Sink | None = None


def create_app(config: Settings, sink: Sink) -> falcon.asgi.App:
    """The Falcon app for ``config`` producing through ``sink``."""
    middleware: list[falcon.CORSMiddleware] = []
    if config.collector_cors_origins:
        # Exact origins only (never "*"): the tag sends the party cookie with credentials.
        origins = list(config.collector_cors_origins)
        # The tag reads Retry-After on a 503 to time its retry.
        middleware.append(
            falcon.CORSMiddleware(allow_origins=origins, allow_credentials=origins, expose_headers=["Retry-After"])
        )
    app = falcon.asgi.App(middleware=middleware)
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(dumps=orjson.dumps)
    intake = Intake(config, sink)
    app.add_route("/tag.js", TagResource(tag.build(config)))
    app.add_route("/p.gif", PixelResource(intake))
    app.add_route("/csc-event", DivolteResource(intake))
    app.add_route("/events", EventsResource(intake))
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadyResource(intake))
    app.add_route("/metrics", MetricsResource())
    app.add_route("/robots.txt", RobotsResource())
    return app


def asgi() -> falcon.asgi.App:
    """Gunicorn's app factory: one sink (Kafka producer) per worker process."""
    global _sink
    _sink = Sink(settings)
    return create_app(settings, _sink)


def shutdown(timeout: float = 30.0) -> int:
    """Flush this worker's sink (called on worker exit); returns events Kafka has not acknowledged."""
    return _sink.close(timeout) if _sink is not None else 0
