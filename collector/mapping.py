"""The one declarative mapping from an incoming event to a ``RawClick`` record.

:data:`FIELDS` lists every field a sender may set, with the same name in a JSON event
(``POST /events``) and in a pixel query string (``GET /p.gif``; custom parameters there
are spelt ``params.<name>``). :func:`to_record` applies it; the collector adds the fields
it knows itself (:class:`Context`). The Divolte endpoint has its own table
(:mod:`collector.divolte`) feeding the same :func:`build`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from collector.ids import is_valid_id, sequence_id

MAX_URL = 4096
MAX_USER_AGENT = 1024
MAX_PARAM_KEY = 64
MAX_PARAM_VALUE = 1024
PIXEL_PARAM_PREFIX = "params."
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_DECIMAL = re.compile(r"-?[0-9]{1,19}")
_MAX_TIME_MS = 2**53  # beyond what JavaScript can represent exactly
MAX_CLIENT_HINT = 256
MAX_INTERACTION_COUNT = 10_000_000
MAX_INTERACTION_MS = 366 * 86_400_000  # a page open for a year
_MAX_INTERACTION_TEXT = 256  # the object as JSON text in a pixel query


class Invalid(ValueError):
    """A field value is unusable; ``args[0]`` is a short reason."""


@dataclass(frozen=True)
class Rejection:
    """Why an event was not accepted; ``reason`` is a short, bounded, machine-readable code."""

    reason: str


@dataclass(frozen=True)
class Context:
    """What the collector itself contributes to every event of one request."""

    server_time: int
    source: str  # tag, pixel, batch or divolte
    ip: str | None
    user_agent: str | None
    party_id: str | None  # from the party cookie or newly issued; None if the sender must give one
    new_party: bool = False
    no_js: bool = False
    ch_ua: str | None = None  # client hints (Sec-CH-UA, -Mobile, -Platform) as sent
    ch_ua_mobile: str | None = None
    ch_ua_platform: str | None = None


# --- converters: raw value (JSON-typed, or a query-string str) -> field value, or Invalid


def _text(max_len: int, pattern: re.Pattern | None = None) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_len or (pattern and not pattern.fullmatch(value)):
            raise Invalid("invalid")
        return value

    return convert


def _identifier(value: Any) -> str:
    if not is_valid_id(value):
        raise Invalid("invalid")
    return value


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, str) and _DECIMAL.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid("invalid")
        return value

    return convert


def _ratio(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise Invalid("invalid") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < 100 and math.isfinite(value)):
        raise Invalid("invalid")
    return float(value)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise Invalid("invalid")


def _consent(value: Any) -> str:
    if value not in ("granted", "denied", "unknown"):
        raise Invalid("invalid")
    return value


_pixels = _integer(0, 100_000)
_INTERACTION: dict[str, Callable[[Any], Any]] = {
    "pointer": _integer(0, MAX_INTERACTION_COUNT),
    "touch": _integer(0, MAX_INTERACTION_COUNT),
    "keys": _integer(0, MAX_INTERACTION_COUNT),
    "scrolls": _integer(0, MAX_INTERACTION_COUNT),
    "visible_ms": _integer(0, MAX_INTERACTION_MS),
    "focused_ms": _integer(0, MAX_INTERACTION_MS),
    "ever_visible": _flag,
}


def _interaction(value: Any) -> dict[str, Any]:
    """The tag's interaction evidence: an object with exactly the keys of :data:`_INTERACTION`
    (in a pixel query, that object as JSON text)."""
    if isinstance(value, str):
        if len(value) > _MAX_INTERACTION_TEXT:
            raise Invalid("invalid")
        try:
            value = json.loads(value)
        except ValueError:
            raise Invalid("invalid") from None
    if not isinstance(value, dict) or value.keys() != _INTERACTION.keys():
        raise Invalid("invalid")
    out = {name: convert(value[name]) for name, convert in _INTERACTION.items()}
    if out["focused_ms"] > out["visible_ms"]:
        raise Invalid("invalid")  # focus is only counted while visible
    return out


FIELDS: dict[str, Callable[[Any], Any]] = {
    "event_type": _text(64, _NAME),
    "event_id": _identifier,
    "party_id": _identifier,
    "session_id": _identifier,
    "page_view_id": _identifier,
    "client_time": _integer(0, _MAX_TIME_MS),
    "location": _text(MAX_URL),
    "referrer": _text(MAX_URL),
    "screen_width": _pixels,
    "screen_height": _pixels,
    "viewport_width": _pixels,
    "viewport_height": _pixels,
    "device_pixel_ratio": _ratio,
    "webdriver": _flag,
    "consent": _consent,
    "interaction": _interaction,
}
"""Sender-settable fields: name -> converter. ``params`` (a string map) is handled apart."""


def params_of(raw: Any, max_params: int) -> dict[str, str]:
    """Custom parameters: an object of scalar values, stringified; raises :class:`Invalid`."""
    if not isinstance(raw, dict):
        raise Invalid("invalid")
    if len(raw) > max_params:
        raise Invalid("too_many")
    out = {}
    for key, value in raw.items():
        if not _NAME.fullmatch(key):
            raise Invalid("invalid_key")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)) and not (isinstance(value, float) and not math.isfinite(value)):
            value = str(value)
        elif not isinstance(value, str):
            raise Invalid("invalid_value")
        if len(value) > MAX_PARAM_VALUE:
            raise Invalid("value_too_long")
        out[key] = value
    return out


def to_record(event: Mapping[str, Any], ctx: Context, max_params: int) -> dict | Rejection:
    """Map one sender event (JSON object or pixel parameters) to a RawClick record.

    Unknown fields are rejected (so typos surface instead of vanishing); absent optional
    fields become null; a missing ``event_type`` means ``pageView``; a missing
    ``event_id`` gets a :func:`collector.ids.sequence_id`.
    """
    if not isinstance(event, Mapping):
        return Rejection("not_an_object")
    values: dict[str, Any] = {}
    for name, raw in event.items():
        if name == "params":
            try:
                values["params"] = params_of(raw, max_params)
            except Invalid as exc:
                return Rejection(f"params_{exc.args[0]}")
            continue
        convert = FIELDS.get(name)
        if convert is None:
            return Rejection("unknown_field")
        if raw is None:
            continue
        try:
            values[name] = convert(raw)
        except Invalid:
            return Rejection(f"invalid_{name}")
    return build(values, ctx)


def pixel_event(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Fold pixel query pairs into an event object: first value wins, ``params.x`` nests.

    Parameters that are not fields (cache busters, ``via``) are left out, since anyone
    may append them to an image URL.
    """
    event: dict[str, Any] = {}
    params: dict[str, str] = {}
    for key, value in pairs:
        if key.startswith(PIXEL_PARAM_PREFIX):
            params.setdefault(key[len(PIXEL_PARAM_PREFIX):], value)
        elif key in FIELDS:
            event.setdefault(key, value)
    if params:
        event["params"] = params
    return event


def build(values: Mapping[str, Any], ctx: Context) -> dict | Rejection:
    """Complete validated sender values with the collector's own fields into a record."""
    party_id = values.get("party_id") or ctx.party_id
    if party_id is None:
        return Rejection("missing_party_id")
    ua = ctx.user_agent
    return {
        "server_time": ctx.server_time,
        "client_time": values.get("client_time"),
        "source": ctx.source,
        "party_id": party_id,
        "session_id": values.get("session_id"),
        "page_view_id": values.get("page_view_id"),
        "event_id": values.get("event_id") or sequence_id(),
        "event_type": values.get("event_type", "pageView"),
        "location": values.get("location"),
        "referrer": values.get("referrer"),
        "user_agent": ua[:MAX_USER_AGENT] if ua else None,
        "ip": ctx.ip,
        "screen_width": values.get("screen_width"),
        "screen_height": values.get("screen_height"),
        "viewport_width": values.get("viewport_width"),
        "viewport_height": values.get("viewport_height"),
        "device_pixel_ratio": values.get("device_pixel_ratio"),
        "params": values.get("params", {}),
        "new_party": ctx.new_party and "party_id" not in values,
        "corrupted": bool(values.get("corrupted", False)),
        "no_js": ctx.no_js,
        "webdriver": values.get("webdriver"),
        "consent": values.get("consent", "unknown"),
        "duplicate": False,
        "interaction": values.get("interaction"),
        "ch_ua": ctx.ch_ua,
        "ch_ua_mobile": ctx.ch_ua_mobile,
        "ch_ua_platform": ctx.ch_ua_platform,
    }
