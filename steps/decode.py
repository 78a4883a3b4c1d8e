"""Decode a raw click: Avro bytes plus Kafka headers to a validated record.

Every failure raises :class:`steps.Drop` with one of the reasons ``empty``,
``unknown-schema``, ``wrong-schema``, ``undecodable`` or ``invalid``; nothing else escapes.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import schemas
from steps import Drop, Record

RAW_CLICK = "clickpipe.RawClick"
MAX_ID_LENGTH = 256  # ids become state keys and Druid dimensions: refuse absurd ones

Headers = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


def decode(value: bytes | None, headers: Headers) -> Record:
    """The RawClick in ``value`` as a dict in the current RawClick shape.

    The client's ``session_id`` is renamed ``client_session_id`` (``session_id`` is the
    server-side session from here on).
    """
    if not value:
        raise Drop("empty", "no value")
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    try:
        writer = schemas.writer_from_headers(headers)
    except schemas.SchemaError as exc:
        raise Drop("unknown-schema", str(exc)) from None
    if writer.name != RAW_CLICK:
        raise Drop("wrong-schema", f"{writer.name} on the raw topic")
    try:
        record: dict[str, Any] = schemas.decode(value, writer)
    except schemas.SchemaError as exc:
        raise Drop("undecodable", str(exc)) from None
    for name in ("party_id", "event_id", "event_type"):
        text = record[name]
        if not text or len(text) > MAX_ID_LENGTH:
            raise Drop("invalid", f"{name} is empty or longer than {MAX_ID_LENGTH}")
    if record["server_time"] <= 0:
        raise Drop("invalid", f"server_time {record['server_time']} is not a positive epoch ms")
    record["client_session_id"] = record.pop("session_id")
    return record
