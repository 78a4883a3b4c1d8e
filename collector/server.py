"""The collector's gunicorn worker class: uvicorn (uvloop, httptools) running the ASGI app.

Gunicorn stays the process manager (worker restarts, graceful reload, SIGTERM drain); each
worker is one event loop serving many connections, so a slow client costs a socket, not a
thread. uvicorn itself bounds neither the time a client may take to send a request's head
nor the head's size (with httptools it accumulates the URL and the headers as they come),
so :class:`GuardedProtocol` adds both: a connection whose request line and headers take
longer than ``COLLECTOR_HEADER_TIMEOUT_MS`` is closed, and an oversized head is answered 400
and closed, as gunicorn's own parser did. Slow *bodies* are the app's business
(``COLLECTOR_BODY_TIMEOUT_MS``, :class:`collector.resources.EventsResource`). It also writes
a response's head and body to the socket at once (:class:`CoalescingTransport`).
"""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from clickpipe.config import settings

# Page URLs and referrers travel in pixel queries: gunicorn's old limits, kept.
MAX_REQUEST_LINE = 8190
MAX_HEADER_FIELDS = 100
MAX_HEADER_BYTES = 32768


class CoalescingTransport:
    """A transport whose writes during one event-loop callback leave as one write.

    uvicorn writes a response's head and its body separately: for a 43-byte GIF, two system
    calls and two TCP segments (the socket has no Nagle delay). Here they are joined and
    written once, at the end of the callback that produced them, in order.
    """

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str):  # everything else is the real transport's
        return getattr(self._transport, name)


class HeadTooLarge(Exception):
    """The request line or headers exceed their limits (raised in a parser callback: uvicorn answers 400)."""


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and size limits on each request's head."""

    header_timeout = settings.collector_header_timeout_ms / 1000

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_fields = 0
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._start_head_deadline()  # also covers a connection that never sends a byte

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_fields = 0
        self._start_head_deadline()

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > MAX_REQUEST_LINE:
            raise HeadTooLarge("request line too long")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        self._head_fields += 1
        if self._head_bytes > MAX_HEADER_BYTES or self._head_fields > MAX_HEADER_FIELDS:
            raise HeadTooLarge("headers too large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_head_deadline()
        super().on_headers_complete()

    def _start_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class Worker(UvicornWorker):
    """gunicorn worker class ``collector.server.Worker``: uvloop, :class:`GuardedProtocol`, and at
    most ``COLLECTOR_MAX_CONNECTIONS`` connections or requests in progress (beyond that, 503)."""

    CONFIG_KWARGS = {
        "loop": "uvloop",
        "http": GuardedProtocol,
        "limit_concurrency": settings.collector_max_connections,
        "lifespan": "off",  # the app has no startup or shutdown of its own: the sink is built with it
        # X-Forwarded-For is the app's to judge (COLLECTOR_TRUSTED_HOPS): uvicorn must not rewrite the peer.
        "proxy_headers": False,
        "server_header": False,
        # In-flight requests get this long after SIGTERM; then worker_exit flushes the sink.
        "timeout_graceful_shutdown": 10,
    }

    def init_signals(self) -> None:
        super().init_signals()
        # Once uvicorn has drained, it raises again the signal that stopped it; with the default
        # action (which the base class leaves) that would kill the process before gunicorn's
        # worker_exit hook has flushed the sink. A handler turns it into a plain return.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stopped)

    def _stopped(self, sig: int, frame: FrameType | None) -> None:
        self.alive = False
