"""The JavaScript tag: ``tag.js`` with the collector's configuration filled in, built once.

Comment lines and indentation are stripped: comments in ``tag.js`` always start their
own line (``//``, or a ``/* ... */`` block whose lines all belong to it), so this is safe
without a real minifier.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from clickpipe.config import Settings

TEMPLATE = Path(__file__).with_name("tag.js")
BATCH_MAX = 20
FLUSH_MS = 500


@dataclass(frozen=True)
class Tag:
    """The rendered tag; ``etag`` is unquoted (Falcon quotes it)."""

    body: bytes
    gzipped: bytes
    etag: str


def config_of(settings: Settings) -> dict:
    """The settings the tag needs, by the names ``tag.js`` uses."""
    return {
        "endpoint": settings.collector_public_url,
        "sessionCookie": settings.collector_session_cookie,
        "optOutCookie": settings.collector_optout_cookie,
        "consentCookie": settings.collector_consent_cookie,
        "cookieDomain": settings.collector_cookie_domain,
        "sessionTimeout": settings.collector_session_timeout_seconds,
        "honorDnt": settings.collector_honor_dnt,
        "honorGpc": settings.collector_honor_gpc,
        "batchMax": min(BATCH_MAX, settings.collector_max_events),
        "flushMs": FLUSH_MS,
    }


def build(settings: Settings) -> Tag:
    """Render the tag for ``settings``; the ETag is a hash of the rendered bytes."""
    lines, in_block = [], False
    for line in TEMPLATE.read_text().splitlines():
        line = line.strip()
        if line.startswith("/*"):
            in_block = True
        if not in_block and line and not line.startswith("//"):
            lines.append(line)
        if in_block and line.endswith("*/"):
            in_block = False
    source = "\n".join(lines)
    body = source.replace("__CONFIG__", json.dumps(config_of(settings), separators=(",", ":"))).encode()
    return Tag(body=body, gzipped=gzip.compress(body, 9, mtime=0), etag=hashlib.sha256(body).hexdigest()[:20])
