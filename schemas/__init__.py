"""The Avro schemas of every topic, and the one way to encode and decode them.

Each ``*.avsc`` file in this folder is a schema; it is the single source of truth for the
topic that carries it and for the Druid datasource built from it. Records travel as raw
Avro binary (no framing) with two Kafka headers naming the writer schema:

- ``schema``: the full name, for example ``clickpipe.RawClick``;
- ``schema-fingerprint``: the hex CRC-64-AVRO fingerprint of the writer schema.

A reader looks the writer schema up by fingerprint (every schema version it knows, see
:func:`register`) and resolves it to the current reader schema, so producers and consumers
can be upgraded in either order as long as each change is backward compatible.

Topics that Druid ingests (enriched clicks, sessions) cannot rely on headers: Druid's Avro
parser sees only the value. Their values are *framed* (:func:`encode_framed`): one version
byte (1), the writer schema's 4-byte big-endian id (:attr:`Schema.druid_id`), then the raw
Avro binary — the layout of Druid's ``multiple_schemas_inline`` decoder, which is given every
known version of the schema, so evolving a schema never stops ingestion. The headers are
set on those topics too.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent
HEADER_NAME = "schema"
HEADER_FINGERPRINT = "schema-fingerprint"
FRAME_VERSION = 1


class SchemaError(ValueError):
    """A record could not be encoded or decoded; the message says why."""


@dataclass(frozen=True)
class Schema:
    """One parsed schema version."""

    name: str
    fingerprint: str
    parsed: Any
    source: Mapping[str, Any]

    @property
    def druid_id(self) -> int:
        """Schema id in framed values: the fingerprint's low 31 bits (Druid keys ids as Java ints)."""
        return int(self.fingerprint, 16) & 0x7FFFFFFF

    @cached_property
    def frame_prefix(self) -> bytes:
        """The first five bytes of a framed value written with this schema."""
        return bytes([FRAME_VERSION]) + self.druid_id.to_bytes(4, "big")

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers that identify this schema as the writer."""
        return [(HEADER_NAME, self.name.encode()), (HEADER_FINGERPRINT, self.fingerprint.encode())]


def _make(source: Mapping[str, Any]) -> Schema:
    parsed = parse_schema(dict(source))  # keeps fastavro's parsed hint: no re-parse per record
    fp = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
    return Schema(name=parsed["name"], fingerprint=fp, parsed=parsed, source=source)


_current: dict[str, Schema] = {}
_by_fingerprint: dict[str, Schema] = {}


def register(source: Mapping[str, Any], current: bool = False) -> Schema:
    """Make a schema version known to readers (and the current one for writers if ``current``)."""
    schema = _make(source)
    _by_fingerprint[schema.fingerprint] = schema
    if current or schema.name not in _current:
        _current[schema.name] = schema
    return schema


def load_file(path: Path) -> Schema:
    return register(json.loads(path.read_text()), current=True)


def current(name: str) -> Schema:
    """The current version of the schema with full ``name`` (or short name, e.g. ``RawClick``)."""
    full = name if "." in name else f"clickpipe.{name}"
    try:
        return _current[full]
    except KeyError:
        raise SchemaError(f"unknown schema {name!r}; known: {sorted(_current)}") from None


def all_current() -> list[Schema]:
    return list(_current.values())


def encode(schema: Schema, record: Mapping[str, Any]) -> bytes:
    """Raw Avro binary of ``record``; raises :class:`SchemaError` if it does not fit ``schema``."""
    buf = io.BytesIO()
    try:
        fastavro.schemaless_writer(buf, schema.parsed, record)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise SchemaError(f"record does not fit {schema.name}: {exc}") from exc
    return buf.getvalue()


def encode_framed(schema: Schema, record: Mapping[str, Any]) -> bytes:
    """Version byte + schema id + raw Avro: the value format of Druid-facing topics."""
    return schema.frame_prefix + encode(schema, record)


def versions(name: str) -> list[Schema]:
    """Every known version of the schema with full or short ``name`` (writers Druid must accept)."""
    full = current(name).name
    return [s for s in _by_fingerprint.values() if s.name == full]


def decode_framed(data: bytes, reader: Schema | None = None) -> dict[str, Any]:
    """Inverse of :func:`encode_framed`; :class:`SchemaError` for a bad frame or unknown id."""
    if len(data) < 5 or data[0] != FRAME_VERSION:
        raise SchemaError("not a framed record (expected version byte 1 and a 4-byte schema id)")
    schema_id = int.from_bytes(data[1:5], "big")
    for schema in _by_fingerprint.values():
        if schema.druid_id == schema_id:
            return decode(data[5:], schema, reader)
    raise SchemaError(f"unknown schema id {schema_id} in framed record")


def decode_message(value: bytes, headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, Any]:
    """Decode a Kafka value of any clickpipe topic, framed or plain, using its headers.

    The headers name the writer; the value is framed when it starts with the frame version
    and that writer's id (a plain Avro record starting with those exact five bytes is
    practically impossible), else it is plain Avro. :class:`SchemaError` if it is neither.
    """
    writer = writer_from_headers(headers)
    if value[:5] == writer.frame_prefix:
        return decode(value[5:], writer)
    return decode(value, writer)


def writer_from_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> Schema:
    """The writer schema named by Kafka headers; :class:`SchemaError` if missing or unknown."""
    found = {k: v for k, v in (headers or ()) if v is not None}
    fp = found.get(HEADER_FINGERPRINT)
    if fp is None:
        raise SchemaError(f"missing {HEADER_FINGERPRINT!r} header")
    try:
        return _by_fingerprint[fp.decode("ascii")]
    except (KeyError, UnicodeDecodeError):
        raise SchemaError(f"unknown writer schema fingerprint {fp!r}") from None


def decode(data: bytes, writer: Schema, reader: Schema | None = None) -> dict[str, Any]:
    """Decode raw Avro ``data`` written with ``writer`` into the ``reader`` (default: current) shape.

    Raises :class:`SchemaError` for truncated, trailing or otherwise invalid bytes.
    """
    reader = reader or current(writer.name)
    buf = io.BytesIO(data)
    try:
        record = fastavro.schemaless_reader(buf, writer.parsed, reader.parsed)
    except (EOFError, ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError, OverflowError) as exc:
        raise SchemaError(f"undecodable {writer.name}: {type(exc).__name__}: {exc}") from exc
    if buf.tell() != len(data):
        raise SchemaError(f"undecodable {writer.name}: {len(data) - buf.tell()} trailing bytes")
    return record


for _path in sorted(SCHEMA_DIR.glob("*.avsc")):
    load_file(_path)
