"""Hostile HTTP clients for tests and benchmarks: slow-loris heads and trickled bodies.

:class:`SlowClients` keeps, from a background thread, ``loris`` connections that send a
request head one byte per ``interval`` and never finish it, and ``trickle`` connections that
send a complete ``POST /events`` head announcing a body, then the body one byte per
``interval``. A connection the server closes is opened again at once, so the pressure stays
constant; what the server did to them is counted.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from itertools import chain, repeat

LORIS_HEAD = b"GET /p.gif?event_type=pageView HTTP/1.1\r\nHost: 127.0.0.1\r\n"
LORIS_FILLER = b"X-Slow: loris\r\n"  # repeated for ever: the head never ends
TRICKLE_BODY_BYTES = 100_000
TRICKLE_HEAD = (b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n[" % TRICKLE_BODY_BYTES)


class SlowClients:
    """``loris`` slow-head and ``trickle`` slow-body connections to ``host:port`` (see the module doc).

    ``counts`` after :meth:`stop`: ``opened`` connections, ``closed`` by the server without an
    answer, and ``answered <status>`` for each status line the server sent before closing.
    """

    def __init__(self, host: str, port: int, loris: int = 500, trickle: int = 50, interval: float = 1.0,
                 max_seconds: float = 600.0):
        self.host, self.port = host, port
        self.loris, self.trickle, self.interval = loris, trickle, interval
        self.max_seconds = max_seconds
        self.counts: Counter[str] = Counter()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._started = threading.Event()

    def start(self) -> SlowClients:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> Counter[str]:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        return self.counts

    def connected(self) -> int:
        """Connections open now."""
        return self.counts["opened"] - self.counts["ended"]

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        tasks = [asyncio.create_task(self._client(lambda: chain([LORIS_HEAD], repeat(LORIS_FILLER))))
                 for _ in range(self.loris)]
        tasks += [asyncio.create_task(self._client(lambda: chain([TRICKLE_HEAD], repeat(b" "))))
                  for _ in range(self.trickle)]
        try:
            await asyncio.wait_for(self._stop.wait(), self.max_seconds)
        except TimeoutError:
            pass
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, pieces) -> None:
        """One hostile client: connect, send the first piece whole, then one byte per interval;
        reconnect whenever the server closes (bounded by the stop event)."""
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.counts["refused"] += 1
                await asyncio.sleep(self.interval)
                continue
            self.counts["opened"] += 1
            try:
                await self._dribble(reader, writer, pieces())
            finally:
                self.counts["ended"] += 1
                writer.close()

    async def _dribble(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pieces) -> None:
        first = True
        for piece in pieces:
            for byte in [piece] if first else (piece[i:i + 1] for i in range(len(piece))):
                if self._stop is None or self._stop.is_set():
                    return
                try:
                    writer.write(byte)
                    await writer.drain()
                    answer = await asyncio.wait_for(reader.read(256), self.interval)
                except TimeoutError:
                    continue  # still open, nothing said: the next byte
                except OSError:
                    self.counts["closed"] += 1
                    return
                if answer.startswith(b"HTTP/1.1 "):
                    self.counts[f"answered {answer[9:12].decode()}"] += 1
                else:
                    self.counts["closed"] += 1
                return
            first = False
