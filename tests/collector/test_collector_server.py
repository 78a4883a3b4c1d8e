"""collector.server's transport: a response's writes leave as one (unit test over a recording transport;
the real server is exercised by the integration, slow-client and kill tests)."""

from __future__ import annotations

import asyncio

from collector.server import CoalescingTransport


class Recording:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str):
        return ("127.0.0.1", 1) if name == "peername" else None


def test_writes_of_one_callback_leave_as_one_write_in_order_and_close_flushes_first():
    async def run() -> Recording:
        real = Recording()
        transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"GIF89a")
        assert real.writes == []  # not yet: the callback is still running
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nGIF89a"]
        transport.write(b"last")
        transport.close()
        assert real.writes[-1] == b"last" and real.closed
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the real transport's
        await asyncio.sleep(0)  # the scheduled flush finds nothing left
        return real

    assert len(asyncio.run(run()).writes) == 2
