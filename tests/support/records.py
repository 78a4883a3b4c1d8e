"""Records of the current schemas with realistic defaults, for tests and benchmarks.

Each factory returns a new dict: its defaults overridden by the keyword ``fields``. Event and
page view ids, and a Session's id, are numbered within the process, so unique unless given.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

_ids = itertools.count(1)


def raw_click(**fields: Any) -> dict[str, Any]:
    """A RawClick dict (what the collector writes to the raw topic); ``server_time`` defaults to
    a fixed moment in November 2023 plus the record's number, so records are ordered."""
    n = next(_ids)
    record: dict[str, Any] = {
        "server_time": 1_700_000_000_000 + n,
        "client_time": None,
        "source": "tag",
        "party_id": "party-1",
        "session_id": None,
        "page_view_id": f"pv-{n}",
        "event_id": f"ev-{n}",
        "event_type": "pageView",
        "location": "https://shop.example.com/products/42?color=red",
        "referrer": None,
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/120.0.0.0 Safari/537.36",
        "ip": "81.2.69.142",
        "screen_width": 1920,
        "screen_height": 1080,
        "viewport_width": 1200,
        "viewport_height": 800,
        "device_pixel_ratio": 1.0,
        "params": {},
        "new_party": False,
        "corrupted": False,
        "no_js": False,
        "webdriver": None,
        "consent": "unknown",
    }
    record.update(fields)
    return record


def decoded(**fields: Any) -> dict[str, Any]:
    """A raw click as the decode step returns it: :func:`raw_click` with ``session_id`` (the
    client's) renamed ``client_session_id``."""
    record = raw_click(**fields)
    record["client_session_id"] = record.pop("session_id")
    return record


def enriched_click(**fields: Any) -> dict[str, Any]:
    """An EnrichedClick dict (what the pipeline writes for Druid); ``server_time`` defaults to now."""
    n = next(_ids)
    record: dict[str, Any] = {
        "server_time": int(time.time() * 1000),
        "client_time": None,
        "source": "tag",
        "party_id": "party-1",
        "event_id": f"ev-{n}",
        "event_type": "pageView",
        "page_view_id": f"pv-{n}",
        "client_session_id": None,
        "session_id": "session-1",
        "session_seq": 1,
        "first_in_session": False,
        "location": "https://shop.example.com/products/42",
        "url_scheme": "https",
        "url_host": "shop.example.com",
        "url_path": "/products/42",
        "url_query": None,
        "url_fragment": None,
        "utm_source": None, "utm_medium": None, "utm_campaign": None, "utm_term": None, "utm_content": None,
        "referrer": None,
        "referrer_host": None,
        "referrer_class": "direct",
        "referrer_source": None,
        "search_term": None,
        "ip": "81.2.69.142",
        "geo_country": "GB", "geo_region": "ENG", "geo_city": "London",
        "geo_latitude": 51.5142, "geo_longitude": -0.0931, "geo_time_zone": "Europe/London",
        "asn": 1221, "as_org": "Telstra",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36",
        "ua_family": "Chrome", "ua_version": "120.0", "os_family": "Windows", "os_version": "10",
        "device_family": "Other", "device_class": "desktop",
        "screen_width": 1920, "screen_height": 1080, "viewport_width": 1200, "viewport_height": 800,
        "device_pixel_ratio": 1.0,
        "params": {},
        "new_party": False, "corrupted": False, "no_js": False, "webdriver": None,
        "consent": "unknown",
        "is_bot": False,
        "bot_reason": None,
    }
    record.update(fields)
    return record


def session(**fields: Any) -> dict[str, Any]:
    """A Session dict (what the pipeline writes when a session closes): 30 s, ending 30 s ago."""
    n = next(_ids)
    start = int(time.time() * 1000) - 60_000
    record: dict[str, Any] = {
        "session_id": f"session-{n}", "party_id": "party-1",
        "start_time": start, "end_time": start + 30_000, "duration_ms": 30_000,
        "page_views": 3, "events": 4,
        "landing_page": "https://shop.example.com/", "exit_page": "https://shop.example.com/cart",
        "entry_referrer": None, "referrer_class": "direct", "referrer_source": None,
        "utm_source": None, "utm_medium": None, "utm_campaign": None, "utm_term": None, "utm_content": None,
        "geo_country": "GB", "geo_region": "ENG", "geo_city": "London",
        "device_class": "desktop", "ua_family": "Chrome", "os_family": "Windows",
        "bounce": False, "is_bot": False, "bot_reason": None, "close_reason": "gap",
    }
    record.update(fields)
    return record
