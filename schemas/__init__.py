"""The schemas of every topic, and the one way to encode and decode their messages.

Each ``*.avsc`` file in this folder is an Avro schema; it is the single source of truth for
the topic that carries it and for the Druid datasource built from it. Every message carries
two Kafka headers naming its writer schema:

- ``schema``: the full name, for example ``clickpipe.RawClick``;
- ``schema-fingerprint``: the hex CRC-64-AVRO fingerprint of the writer schema.

Message formats, by topic:

- **raw** (collector -> worker): a ``RawBatch`` (:func:`encode_batch`): many RawClick events
  of one partition, each its own raw Avro binary, so a bad event can be set aside alone.
  Single RawClick messages (older producers, re-produced dead letters) stay valid;
  :func:`raw_events` reads both kinds as a list of (event bytes, event headers).
- **enriched, sessions** (worker -> Druid): newline-delimited JSON rows (:func:`encode_rows`),
  many per message, with the header ``content-type: application/x-ndjson``. The fields of a
  row are exactly the schema's; Druid's core ``json`` input format reads them, and one bad
  line never stops ingestion. :func:`decode_rows` reads them back (also the framed or plain
  Avro values older versions of the pipeline wrote, see :func:`decode_message`).

A reader looks a writer schema up by fingerprint (every schema version it knows, see
:func:`register`) and resolves it to the current reader schema, so producers and consumers
can be upgraded in either order as long as each change is backward compatible.
"""

from __future__ import annotations

import functools
import io
import json
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, cast

import fastavro
import orjson
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from schemas.encoder import compile_record

SCHEMA_DIR = Path(__file__).resolve().parent
HEADER_NAME = "schema"
HEADER_FINGERPRINT = "schema-fingerprint"
HEADER_CONTENT_TYPE = "content-type"
NDJSON = b"application/x-ndjson"
FRAME_VERSION = 1


class SchemaError(ValueError):
    """A record could not be encoded or decoded; the message says why."""


@dataclass(frozen=True, eq=False)  # identity: a schema version is registered once
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
        """The first five bytes of a framed value written with this schema (pipeline versions before
        JSON rows wrote the Druid-facing topics so; still read by :func:`decode_message`)."""
        return bytes([FRAME_VERSION]) + self.druid_id.to_bytes(4, "big")

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers that identify this schema as the writer."""
        return [(HEADER_NAME, self.name.encode()), (HEADER_FINGERPRINT, self.fingerprint.encode())]

    @property
    def row_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers of a message of JSON rows (:func:`encode_rows`) of this schema."""
        return self.headers + [(HEADER_CONTENT_TYPE, NDJSON)]

    @cached_property
    def row_field_names(self) -> frozenset[str]:
        """The columns of a JSON row: the schema's field names."""
        return frozenset(f["name"] for f in self.source["fields"])

    @cached_property
    def row_defaults(self) -> dict[str, tuple[bool, Any]]:
        """Field name -> (has a default, the default)."""
        return {f["name"]: ("default" in f, f.get("default")) for f in self.source["fields"]}


def _make(source: Mapping[str, Any]) -> Schema:
    parsed = parse_schema(dict(source))  # keeps fastavro's parsed hint: no re-parse per record
    fp = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
    return Schema(name=cast(dict[str, Any], parsed)["name"], fingerprint=fp, parsed=parsed, source=source)


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


def encoder(schema: Schema) -> Callable[[Mapping[str, Any]], bytes]:
    """:func:`encode` for the record schema ``schema``, compiled once (:mod:`schemas.encoder`):
    the same bytes at a fraction of the cost, for a writer of many records."""
    write = compile_record(schema.source)

    def encode_compiled(record: Mapping[str, Any]) -> bytes:
        try:
            return write(record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error) as exc:
            raise SchemaError(f"record does not fit {schema.name}: {exc!r}") from exc

    return encode_compiled


def versions(name: str) -> list[Schema]:
    """Every known version of the schema with full or short ``name`` (writers Druid must accept)."""
    full = current(name).name
    return [s for s in _by_fingerprint.values() if s.name == full]


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
    fp = None
    for name, value in headers or ():
        if name == HEADER_FINGERPRINT and value is not None:
            fp = value  # the last one wins, as in a mapping of the headers
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
        # no reader schema when it is the writer: fastavro then skips resolution (about 40 % faster)
        record = fastavro.schemaless_reader(buf, writer.parsed, None if reader is writer else reader.parsed)
    except (EOFError, ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError, OverflowError) as exc:
        raise SchemaError(f"undecodable {writer.name}: {type(exc).__name__}: {exc}") from exc
    if buf.tell() != len(data):
        raise SchemaError(f"undecodable {writer.name}: {len(data) - buf.tell()} trailing bytes")
    return cast(dict[str, Any], record)


RawEvent = tuple[bytes | None, list[tuple[str, bytes]]]


def encode_batch(events: Iterable[bytes], event_writer: Schema) -> bytes:
    """A RawBatch value holding ``events``, each already encoded with ``event_writer`` (:func:`encode`)."""
    return encode(current("RawBatch"), {"event_schema": event_writer.fingerprint, "events": list(events)})


def raw_events(value: bytes | None, headers: Iterable[tuple[str, bytes | None]] | None) -> list[RawEvent]:
    """The events of a raw-topic message as (value, headers) pairs, each as a single-event message.

    A RawBatch gives one pair per event, its headers naming the event schema the batch declares
    (decoding each event, and refusing an unknown schema, is the reader's job: one bad event
    stays one bad event). Any other message is returned as its own single event, untouched.
    Raises :class:`SchemaError` only for a RawBatch whose envelope cannot be decoded.
    """
    present: list[tuple[str, bytes]] = [(k, v) for k, v in (headers or ()) if v is not None]
    try:
        writer = writer_from_headers(present)
    except SchemaError:
        return [(value, present)]
    if writer.name != "clickpipe.RawBatch":
        return [(value, present)]
    batch = decode(value or b"", writer)  # no value reads as empty: undecodable
    fingerprint_ = batch["event_schema"].encode()
    known = _by_fingerprint.get(batch["event_schema"])
    event_headers = [(HEADER_NAME, (known.name if known else "clickpipe.RawClick").encode()),
                     (HEADER_FINGERPRINT, fingerprint_)]
    return [(event, event_headers) for event in batch["events"]]


def encode_rows(schema: Schema, records: Iterable[Mapping[str, Any]]) -> bytes:
    """Newline-delimited JSON, one row per record with exactly ``schema``'s fields.

    A field the record lacks takes its schema default, keys the schema does not have are
    left out; :class:`SchemaError` if a field without a default is missing or the record
    holds a value JSON cannot carry.
    """
    lines = []
    for record in records:
        extra, defaults = _row_shape(schema, tuple(record))
        if extra or defaults:
            record = dict(record)
            for name in extra:
                del record[name]
            record.update(defaults)
        try:
            lines.append(orjson.dumps(record))
        except TypeError as exc:
            raise SchemaError(f"record does not fit {schema.name}: {exc}") from exc
    return b"\n".join(lines)


@functools.lru_cache(maxsize=256)
def _row_shape(schema: Schema, keys: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """For records with these keys: the keys to leave out, and the defaults to add.

    Records of one pipeline share a handful of key sequences, so this is computed once for each.
    """
    fields = schema.row_field_names
    missing = fields.difference(keys)
    required = sorted(n for n in missing if not schema.row_defaults[n][0])
    if required:
        raise SchemaError(f"record does not fit {schema.name}: no value for {', '.join(map(repr, required))}")
    return tuple(k for k in keys if k not in fields), {n: schema.row_defaults[n][1] for n in missing}


def decode_rows(value: bytes, headers: Iterable[tuple[str, bytes | None]] | None) -> list[dict[str, Any]]:
    """The records of a message of an output topic, in the current shape of the writer's schema.

    JSON rows (:func:`encode_rows`) gain the defaults of fields they lack; Avro values (framed
    or plain, :func:`decode_message`) are one record. :class:`SchemaError` for a line that is
    not a JSON object, or a value that fits neither.
    """
    headers = list(headers or ())
    if (HEADER_CONTENT_TYPE, NDJSON) not in headers:
        return [decode_message(value, headers)]
    reader = current(writer_from_headers(headers).name)
    rows = []
    for line in value.splitlines():
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise SchemaError(f"not a JSON row of {reader.name}: {exc}") from None
        if not isinstance(row, dict):
            raise SchemaError(f"not a JSON row of {reader.name}: {type(row).__name__}")
        for name, (has_default, default) in reader.row_defaults.items():
            if name not in row and has_default:
                row[name] = default.copy() if isinstance(default, (dict, list)) else default
        rows.append(row)
    return rows


_MISSING = object()

for _path in sorted(SCHEMA_DIR.glob("*.avsc")):
    load_file(_path)
