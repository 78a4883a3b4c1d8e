"""Page URL to scheme, host, path, query, fragment and campaign (``utm_*``) fields.

A URL that cannot be split leaves every field empty; the record is kept. A ``gclid`` without
``utm_source`` is attributed to google / cpc (auto-tagged Google Ads clicks carry no utm).
"""

from __future__ import annotations

import functools
from urllib.parse import SplitResult, parse_qsl, urlsplit

from steps import Context, Record

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
URL_FIELDS = ("url_scheme", "url_host", "url_path", "url_query", "url_fragment")
CACHE_SIZE = 20_000  # distinct URLs remembered: page URLs repeat heavily, and splitting one costs ~5 µs


def split(url: str | None) -> SplitResult | None:
    """``urlsplit`` that returns None instead of raising on malformed URLs."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        _ = parts.hostname  # raises for some malformed netlocs (bad brackets)
    except ValueError:
        return None
    return parts


def host_of(parts: SplitResult | None) -> str | None:
    if parts is None:
        return None
    try:
        return parts.hostname or None
    except ValueError:
        return None


def campaign(query: str) -> dict[str, str | None]:
    """The utm_* values of a query string (first occurrence of each)."""
    found: dict[str, str | None] = dict.fromkeys(UTM_FIELDS)
    if "utm_" not in query and "gclid" not in query:
        return found
    gclid = False
    for name, value in parse_qsl(query, keep_blank_values=False):
        name = name.lower()
        if name in found and found[name] is None:
            found[name] = value
        elif name == "gclid":
            gclid = True
    if gclid and found["utm_source"] is None:
        found["utm_source"], found["utm_medium"] = "google", found["utm_medium"] or "cpc"
    return found


@functools.lru_cache(maxsize=CACHE_SIZE)
def url_fields(location: str | None) -> tuple[tuple[str, str | None], ...]:
    """(field, value) of every url_* and utm_* field for a page URL (all None if it cannot be split)."""
    parts = split(location)
    if parts is None:
        return tuple((name, None) for name in URL_FIELDS + UTM_FIELDS)
    values = (parts.scheme.lower() or None, host_of(parts), parts.path or None, parts.query or None,
              parts.fragment or None)
    return tuple(zip(URL_FIELDS, values, strict=False)) + tuple(campaign(parts.query).items())


class Urls:
    """Step: sets url_* and utm_* fields from ``record["location"]``."""

    reads = frozenset({"location"})
    reads_if_present: frozenset[str] = frozenset()
    writes = frozenset(URL_FIELDS + UTM_FIELDS)

    def __call__(self, record: Record, ctx: Context) -> Record:
        record.update(url_fields(record.get("location")))
        return record


def build(settings) -> Urls:
    return Urls()
