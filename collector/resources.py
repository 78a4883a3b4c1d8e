"""Falcon (ASGI) resources: thin wiring from HTTP to :mod:`collector.mapping` and the intake."""

from __future__ import annotations

import asyncio

import falcon
import falcon.asgi
import orjson

from collector import divolte, metrics
from collector.intake import GIF, Intake, backpressure, media_type, query_pairs, reject
from collector.mapping import Rejection, pixel_event, to_record
from collector.sink import Unavailable
from collector.tag import Tag

NO_STORE = "no-store, max-age=0"


def _error(resp: falcon.asgi.Response, status: str, reason: str, detail: str, events: int = 1) -> None:
    reject(reason, events)
    resp.status = status
    resp.media = {"error": reason, "detail": detail}


class TagResource:
    """``GET /tag.js``: the generated tag, gzipped when accepted, with a strong ETag."""

    def __init__(self, tag: Tag):
        self.tag = tag

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.cache_control = ["public", "max-age=300"]
        resp.vary = ["Accept-Encoding"]
        resp.etag = self.tag.etag
        if any(e == "*" or e == self.tag.etag for e in req.if_none_match or ()):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = "application/javascript; charset=utf-8"
        if "gzip" in (req.get_header("Accept-Encoding") or ""):
            resp.set_header("Content-Encoding", "gzip")
            resp.data = self.tag.gzipped
        else:
            resp.data = self.tag.body

    on_head = on_get  # Falcon sends no body for HEAD


class _PixelBase:
    """Common to the image endpoints: always the GIF, never cached; 503 only for backpressure."""

    def __init__(self, intake: Intake):
        self.intake = intake

    @staticmethod
    def _gif(resp: falcon.asgi.Response) -> None:
        resp.content_type = "image/gif"
        resp.cache_control = [NO_STORE]
        resp.data = GIF

    def _refuse(self, resp: falcon.asgi.Response, reason: str) -> None:
        reject(reason)
        resp.set_header("X-Clickpipe-Rejected", reason)

    def _admit(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> list[tuple[str, str]] | None:
        """Answer the GIF; the query's pairs, or None (reason recorded) if the request is refused."""
        self._gif(resp)
        pairs = query_pairs(req.query_string)
        if pairs is None:
            self._refuse(resp, "too_many_fields")
            return None
        blocked = self.intake.blocked(req)
        if blocked:
            self._refuse(resp, blocked)
            return None
        return pairs

    async def _queue(self, resp: falcon.asgi.Response, record: dict, source: str) -> bool:
        try:
            await self.intake.accept([record], source)
            return True
        except Unavailable as exc:
            backpressure(resp, reason=exc.reason)
            return False


class PixelResource(_PixelBase):
    """``GET /p.gif``: one event, all fields in the query (``params.<name>`` for custom ones).

    ``via=tag`` marks the tag's own fallback; otherwise the event is a no-JS one.
    Bad input still answers 200 and the GIF (an image cannot show an error); the reason is
    in the ``X-Clickpipe-Rejected`` header and the rejected-events metric.
    """

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        pairs = self._admit(req, resp)
        if pairs is None:
            return
        source = "tag" if ("via", "tag") in pairs else "pixel"
        event = pixel_event(pairs)
        ctx = self.intake.context(req, source, no_js=source == "pixel", with_party="party_id" not in event)
        record = to_record(event, ctx, self.intake.settings.collector_max_params)
        if isinstance(record, Rejection):
            return self._refuse(resp, record.reason)
        if await self._queue(resp, record, source) and ctx.party_id is not None and record["party_id"] == ctx.party_id:
            self.intake.set_party_cookie(req, resp, ctx.party_id)


class DivolteResource(_PixelBase):
    """``GET /csc-event``: Divolte's tag, unchanged (see :mod:`collector.divolte`)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        pairs = self._admit(req, resp)
        if pairs is None:
            return
        record = divolte.to_record(pairs, self.intake.context(req, "divolte", with_party=False),
                                   self.intake.settings.collector_max_params)
        if isinstance(record, Rejection):
            return self._refuse(resp, record.reason)
        if record["corrupted"]:
            resp.set_header("X-Clickpipe-Corrupted", "true")
        await self._queue(resp, record, "divolte")


class EventsResource:
    """``POST /events``: a JSON array of events (see :data:`collector.mapping.FIELDS`).

    200 ``{"accepted": n, "rejected": [{"index": i, "reason": r}, ...]}`` when at least
    one event was accepted (or the browser opted out: ``dropped`` says why); 400 with the
    same body when none was valid; 400/413/415 with ``{"error", "detail"}`` for a request
    that cannot be read; 503 with Retry-After and the same body when the producer's queue is
    full (``queue_full``) or, with an acknowledgement wait configured, Kafka did not
    acknowledge in time (``not_delivered``); 408 ``body_timeout`` (and the connection closed)
    when the body takes longer than ``COLLECTOR_BODY_TIMEOUT_MS`` to arrive.
    """

    def __init__(self, intake: Intake):
        self.intake = intake
        s = intake.settings
        self.max_body = s.collector_max_body_bytes
        self.max_events = s.collector_max_events
        self.max_params = s.collector_max_params
        self.body_timeout = s.collector_body_timeout_ms / 1000

    async def _read(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> list | None:
        if media_type(req.content_type) != "application/json":
            _error(resp, falcon.HTTP_415, "content_type", "send Content-Type: application/json")
            return None
        if req.content_length is not None and req.content_length > self.max_body:
            _error(resp, falcon.HTTP_413, "too_large", f"body exceeds {self.max_body} bytes")
            return None
        # Capped at max_body + 1 also for a chunked body (no Content-Length); a client trickling
        # its body cannot hold the request (and its memory) longer than the body timeout.
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await req.stream.read(self.max_body + 1)
        except TimeoutError:
            _error(resp, falcon.HTTP_408, "body_timeout", f"body not received within {self.body_timeout:g} s")
            resp.set_header("Connection", "close")
            return None
        if len(body) > self.max_body:
            _error(resp, falcon.HTTP_413, "too_large", f"body exceeds {self.max_body} bytes")
            return None
        try:
            events = orjson.loads(body)
        except orjson.JSONDecodeError:
            _error(resp, falcon.HTTP_400, "invalid_json", "body is not valid UTF-8 JSON")
            return None
        if not isinstance(events, list) or not events:
            _error(resp, falcon.HTTP_400, "not_a_batch", "body must be a non-empty JSON array of events")
            return None
        if len(events) > self.max_events:
            _error(
                resp, falcon.HTTP_413, "too_many_events", f"at most {self.max_events} events per request", len(events)
            )
            return None
        return events

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.cache_control = [NO_STORE]
        events = await self._read(req, resp)
        if events is None:
            return
        blocked = self.intake.blocked(req)
        if blocked:
            reject(blocked, len(events))
            resp.media = {"accepted": 0, "rejected": [], "dropped": blocked}
            return
        source = "tag" if req.get_param("via") == "tag" else "batch"
        # Only requests with an event lacking its own party id read or issue the cookie.
        needs_party = any(not isinstance(e, dict) or e.get("party_id") is None for e in events)
        ctx = self.intake.context(req, source, with_party=needs_party)
        records, rejected = [], []
        for index, event in enumerate(events):
            record = to_record(event, ctx, self.max_params)
            if isinstance(record, Rejection):
                reject(record.reason)
                rejected.append({"index": index, "reason": record.reason})
            else:
                records.append((index, record))
        accepted = 0
        if records:
            try:
                accepted = await self.intake.accept([r for _, r in records], source)
            except Unavailable as exc:
                backpressure(resp, len(records), exc.reason)
                detail = str(exc) or "collector busy"
                resp.media = {"error": exc.reason, "detail": f"{detail}; retry after the given seconds"}
                return
            for index, _ in records[accepted:]:
                reject("queue_full")
                rejected.append({"index": index, "reason": "queue_full"})
            if ctx.party_id is not None and any(r["party_id"] == ctx.party_id for _, r in records[:accepted]):
                self.intake.set_party_cookie(req, resp, ctx.party_id)
        resp.status = falcon.HTTP_200 if accepted else falcon.HTTP_400
        resp.media = {"accepted": accepted, "rejected": rejected}


class HealthResource:
    """``GET /healthz``: the process answers."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"status": "ok"}


class ReadyResource:
    """``GET /readyz``: 200 when Kafka answers and the producer queue has room, else 503."""

    def __init__(self, intake: Intake):
        self.sink = intake.sink

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        ready, why = await asyncio.to_thread(self.sink.ready)  # may ask Kafka: off the event loop
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        resp.media = {"ready": ready, "detail": why, "queue_depth": self.sink.depth()}


class MetricsResource:
    """``GET /metrics``: Prometheus text format, all workers summed."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.data, resp.content_type = await asyncio.to_thread(metrics.exposition)  # reads every worker's file


class RobotsResource:
    """``GET /robots.txt``: crawlers have nothing to do here."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "User-agent: *\nDisallow: /\n"
