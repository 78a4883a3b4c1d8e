"""Divolte Collector compatibility: ``GET /csc-event`` as sent by Divolte's own tag.

Divolte's tag puts every field in a one-letter query parameter, numbers in base 36, and a
checksum ``x``: the signed 32-bit murmur3 (seed 0) of a canonical string of all other
parameters, sorted by name (``name=value,value,;`` for each). A failed checksum or an
unparseable value does not drop the event (Divolte logged and dropped; we keep it so the
loss is visible): the record is flagged ``corrupted`` and the bad value left null.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from collector import mincode
from collector.ids import is_valid_id
from collector.mapping import FIELDS, MAX_URL, Context, Invalid, Rejection, build, params_of

_BASE36 = re.compile(r"[+-]?[0-9A-Za-z]{1,13}")
_LONG = 2**63
_INT = 2**31
_MASK = 0xFFFFFFFF
CHECKSUM = "x"


def parse_base36(text: str, bound: int = _LONG) -> int:
    """Parse like Java's ``Long.parseLong(text, 36)`` (or ``Integer`` with ``bound=2**31``)."""
    if not _BASE36.fullmatch(text):
        raise Invalid("base36")
    value = int(text, 36)
    if not -bound <= value < bound:
        raise Invalid("base36")
    return value


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit of ``data``, as a signed int (what Guava's ``asInt()`` gives)."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & _MASK
    body = len(data) & ~3
    for i in range(0, body, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * c1) & _MASK
        h ^= (_rotl(k, 15) * c2) & _MASK
        h = (_rotl(h, 13) * 5 + 0xE6546B64) & _MASK
    tail = data[body:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= (_rotl((k * c1) & _MASK, 15) * c2) & _MASK
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def canonical(pairs: list[tuple[str, str]]) -> str:
    """The string Divolte checksums: parameters sorted by name (stable), ``x`` left out."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        if name != CHECKSUM:
            grouped.setdefault(name, []).append(value)
    return "".join(f"{name}={''.join(v + ',' for v in grouped[name])};" for name in sorted(grouped))


def checksum_ok(pairs: list[tuple[str, str]]) -> bool:
    """True if ``x`` is present, valid base 36, and matches the checksum of the other pairs."""
    given = next((v for k, v in pairs if k == CHECKSUM), None)
    try:
        expected = parse_base36(given) if given is not None else None
    except Invalid:
        return False
    return expected == murmur3_32(canonical(pairs).encode("utf-8"))


def _b36_int(text: str) -> int:
    value = parse_base36(text, _INT)
    if value < 0:
        raise Invalid("negative")
    return value


def _b36_time(text: str) -> int:
    return FIELDS["client_time"](parse_base36(text))


def _b36_ratio(text: str) -> float:
    return FIELDS["device_pixel_ratio"](parse_base36(text, _INT))


def _url(text: str) -> str:
    if len(text) > MAX_URL:
        raise Invalid("too_long")
    return text


MAPPING: dict[str, tuple[str, Callable[[str], Any]]] = {
    "s": ("session_id", FIELDS["session_id"]),
    "v": ("page_view_id", FIELDS["page_view_id"]),
    "e": ("event_id", FIELDS["event_id"]),
    "c": ("client_time", _b36_time),
    "t": ("event_type", FIELDS["event_type"]),
    "l": ("location", _url),
    "r": ("referrer", _url),
    "i": ("screen_width", _b36_int),
    "j": ("screen_height", _b36_int),
    "w": ("viewport_width", _b36_int),
    "h": ("viewport_height", _b36_int),
    "k": ("device_pixel_ratio", _b36_ratio),
}
"""Divolte parameter -> (RawClick field, converter). ``p`` (party), ``n`` (new party) and
``u`` (custom parameters, see :func:`custom_params`) are handled apart; ``f`` (first in
session) is recomputed downstream."""


def custom_params(encoded: str, max_params: int) -> dict[str, str]:
    """Divolte's custom parameters (``u``, an object in :mod:`collector.mincode`) as ``params``.

    Strings are kept as they are; numbers, booleans, null, arrays and objects become their
    JSON text, so nothing the page sent is lost. The usual ``params`` limits apply (names,
    count, value length). Raises :class:`Invalid` if ``encoded`` is not such an object.
    """
    try:
        value = mincode.decode(encoded)
    except mincode.MincodeError:
        raise Invalid("mincode") from None
    if not isinstance(value, dict):
        raise Invalid("mincode")
    return params_of({name: v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
                      for name, v in value.items()}, max_params)


def to_record(pairs: list[tuple[str, str]], ctx: Context, max_params: int) -> dict | Rejection:
    """Map a ``/csc-event`` query (decoded pairs, in order) to a RawClick record.

    Rejected only without a usable party id (the Kafka key); any other bad value or a
    checksum mismatch yields a record flagged ``corrupted``. Custom parameters that cannot be
    decoded or break the ``params`` limits are kept undecoded as ``params["divolte_u"]`` in a
    record flagged ``corrupted``.
    """
    first: dict[str, str] = {}
    for name, value in pairs:
        first.setdefault(name, value)
    party = first.get("p")
    if not is_valid_id(party):
        return Rejection("invalid_party_id")
    values: dict[str, Any] = {"party_id": party, "corrupted": not checksum_ok(pairs)}
    for param, (field, convert) in MAPPING.items():
        raw = first.get(param)
        if raw is None:
            continue
        try:
            values[field] = convert(raw)
        except Invalid:
            values["corrupted"] = True
    if "event_id" not in values:
        values["corrupted"] = True
    if "u" in first:
        try:
            values["params"] = custom_params(first["u"], max_params)
        except Invalid:
            values["params"] = {"divolte_u": first["u"][:MAX_URL]}
            values["corrupted"] = True
    record = build(values, ctx)
    if isinstance(record, dict):
        record["new_party"] = first.get("n") == "t"
    return record
