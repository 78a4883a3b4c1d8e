"""Compiled Avro encoders: fastavro's bytes for a record schema, without interpreting it per record.

fastavro walks the schema for every record it writes. The collector writes one RawClick per
event, and that walk was 40 % of a batch request's time (docs/benchmarks.md, "Collector").
:func:`compile_record` turns a record schema, once, into one Python function with a line per
field. Fields of the common types (boolean, int, long, float, double, string, bytes, a map of
strings, and a union of null with one of those) are written inline; any other field type
(a nested record, an array, an enum, a wider union...) is written by fastavro itself, field by
field (a record's encoding is its fields' encodings in order), so every schema is supported.
tests/test_schema_encoder.py proves the output identical to fastavro's for generated records.
"""

from __future__ import annotations

import io
import struct
from functools import lru_cache
from typing import Any, Callable, Mapping

import fastavro
from fastavro.schema import parse_schema

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


# Cached: the large numbers that repeat are timestamps, shared by all the events of a request.
@lru_cache(maxsize=4096)
def _zigzag(n: int) -> bytes:
    """Avro's variable-length zig-zag encoding of a long."""
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = {n: _zigzag(n) for n in range(-8192, 8192)}  # lengths, counts, small numbers: no arithmetic


def _long(n: int) -> bytes:
    if n.__class__ is int or n.__class__ is bool:
        small = _SMALL.get(n)
        return small if small is not None else _zigzag(n)
    raise TypeError(f"{n!r} is not an int")


def _str(v: str) -> bytes:
    if v.__class__ is not str:
        raise TypeError(f"{v!r} is not a string")
    b = v.encode()
    return _long(len(b)) + b


def _bytes(v: bytes) -> bytes:
    if not isinstance(v, (bytes, bytearray)):
        raise TypeError(f"{v!r} is not bytes")
    return _long(len(v)) + bytes(v)


def _bool(v: bool) -> bytes:
    if v.__class__ is not bool:
        raise TypeError(f"{v!r} is not a boolean")
    return b"\x01" if v else b"\x00"


def _string_map(v: Mapping[str, str]) -> bytes:
    if not v:
        return b"\x00"
    return b"".join([_long(len(v)), *(_str(k) + _str(x) for k, x in v.items()), b"\x00"])


_float = struct.Struct("<f").pack
_double = struct.Struct("<d").pack

# The most common field, inline: a str (only str has .encode) as its UTF-8 length and bytes.
_STRING = ["    b = v.encode()", "    n = len(b)", "    a(_SMALL[n] if n < 8192 else _long(n))", "    a(b)"]

# Avro type -> the name of the function that writes it (in the generated code's namespace).
_INLINE = {"boolean": "_bool", "int": "_long", "long": "_long", "float": "_float", "double": "_double",
           "string": "_str", "bytes": "_bytes"}


def _inline(avro_type: Any) -> str | None:
    """The writer function's name for ``avro_type`` if it is written inline, else None."""
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "map" and avro_type.get("values") == "string":
            return "_string_map"
        avro_type = avro_type["type"] if isinstance(avro_type.get("type"), str) and len(avro_type) == 1 else None
    return _INLINE.get(avro_type) if isinstance(avro_type, str) else None


def compile_record(source: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bytes]:
    """A function writing a record of schema ``source`` (a record schema as in its ``.avsc``) as
    fastavro's ``schemaless_writer`` does. A value that does not fit raises TypeError,
    ValueError, KeyError, AttributeError, OverflowError or struct.error."""
    named: dict[str, Any] = {}
    parse_schema(dict(source), named_schemas=named)  # validates; knows the named types for fallbacks
    namespace: dict[str, Any] = {
        "_long": _long, "_str": _str, "_bytes": _bytes, "_bool": _bool, "_float": _float, "_double": _double,
        "_string_map": _string_map, "_SMALL": _SMALL,
    }
    lines = ["def encode(r):", "    p = []", "    a = p.append"]
    for i, field in enumerate(source["fields"]):
        name, avro_type = field["name"], field["type"]
        get = f"r.get({name!r}, _default_{i})" if "default" in field else f"r[{name!r}]"
        namespace[f"_default_{i}"] = field.get("default")
        lines.append(f"    v = {get}")
        writer = _inline(avro_type)
        union = avro_type if isinstance(avro_type, list) and len(avro_type) == 2 and "null" in avro_type else None
        other = _inline(next(t for t in avro_type if t != "null")) if union else None
        if writer == "_str":
            lines += _STRING
        elif writer == "_bool":
            lines.append("    a(b'\\x01' if v is True else b'\\x00' if v is False else _bool(v))")
        elif writer is not None:
            lines.append(f"    a({writer}(v))")
        elif union and other is not None:
            null_index, other_index = _long(union.index("null")), _long(1 - union.index("null"))
            lines.append(f"    if v is None:\n        a({null_index!r})\n    else:\n        a({other_index!r})")
            lines += ["    " + line for line in _STRING] if other == "_str" else [f"        a({other}(v))"]
        else:  # written by fastavro, with the field's own schema
            namespace[f"_field_{i}"] = _fallback(avro_type, named)
            lines.append(f"    a(_field_{i}(v))")
    lines.append("    return b''.join(p)")
    code = compile("\n".join(lines), f"<encoder of {source['name']}>", "exec")  # named so in profiles
    exec(code, namespace)  # code generated from the schema alone, never from data
    return namespace["encode"]


def _fallback(avro_type: Any, named: dict[str, Any]) -> Callable[[Any], bytes]:
    parsed = parse_schema(avro_type, named_schemas=dict(named)) if not isinstance(avro_type, str) or avro_type in (
        "null", "boolean", "int", "long", "float", "double", "string", "bytes") else named[avro_type]

    def write(value: Any) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, value)
        return buf.getvalue()

    return write
