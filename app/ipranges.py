"""``clickpipe ipranges refresh``: download the published IP ranges into the data file.

Each source of :data:`steps.ipranges.SOURCES` is fetched from its operator's URL and parsed
with :func:`steps.ipranges.prefixes_in`. The file is replaced atomically, and only when every
source was read; a source that fails keeps its previous ranges (from the current file, or the
shipped copy) and is reported, so one operator's outage never empties the verification of
the others. A running worker reads the file when it starts.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import requests

from steps import ipranges

MAX_DOCUMENT_BYTES = 32 * 1024 * 1024  # the largest list (AWS) is about 2 MB


@dataclass
class Fetched:
    name: str
    url: str
    prefixes: int | None  # None: failed, previous ranges kept
    error: str = ""


def _get(url: str, timeout: float) -> object:
    with requests.get(url, timeout=timeout, stream=True, headers={"Accept": "application/json"}) as response:
        response.raise_for_status()
        body = bytearray()
        for chunk in response.iter_content(65536):
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ipranges.RangesError(f"more than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ipranges.RangesError(f"not JSON: {exc}") from None


def refresh(target: Path, urls: Mapping[str, str] | None = None, timeout: float = 30.0) -> list[Fetched]:
    """Fetch every source (``urls`` overrides a source's URL, by name) and write ``target``.

    Returns one :class:`Fetched` per source. The previous ranges of a failed source are kept.
    """
    unknown = sorted(set(urls or {}) - {s.name for s in ipranges.SOURCES})
    if unknown:
        raise ipranges.RangesError(f"unknown source {', '.join(unknown)}; sources: "
                                   f"{', '.join(s.name for s in ipranges.SOURCES)}")
    target = Path(target)
    previous = ipranges.read(target if target.exists() else ipranges.SHIPPED)
    sources = dict(previous.get("sources", {}))
    ranges = dict(previous["ranges"])
    results = []
    for source in ipranges.SOURCES:
        url = (urls or {}).get(source.name, source.url)
        try:
            prefixes = ipranges.prefixes_in(_get(url, timeout))
        except (requests.RequestException, ipranges.RangesError) as exc:
            results.append(Fetched(source.name, url, None, f"{type(exc).__name__}: {exc}"))
            continue
        ranges[source.name] = prefixes
        sources[source.name] = {"kind": source.kind, "url": url, "prefixes": len(prefixes),
                                "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        results.append(Fetched(source.name, url, len(prefixes)))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, suffix=".tmp") as out:
        json.dump({"sources": sources, "ranges": ranges}, out, indent=0, sort_keys=True)
    os.chmod(out.name, 0o644)  # a public list, readable by the workers
    os.replace(out.name, target)
    return results
