"""Calling an ASGI app directly, without a server or Falcon's test client: for requests the
test client cannot express (a body in chunks without Content-Length) and for measuring the
app's own cost per request."""

from __future__ import annotations

from typing import Any, Sequence


def scope(method: str, path: str, query: bytes = b"", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An HTTP/1.1 scope from 127.0.0.1 (``headers`` names in any case)."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "server": ("127.0.0.1", 8090), "client": ("127.0.0.1", 50000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }


async def call(app, request: dict[str, Any], chunks: Sequence[bytes] = ()) -> tuple[int, dict[bytes, bytes], bytes]:
    """Run one request through ``app`` with the body sent as ``chunks``; (status, headers, body)."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    messages = messages or [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(request, receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])
