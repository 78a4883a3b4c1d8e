"""Published IP ranges: the crawlers' operators and the cloud providers, from one data file.

Crawler operators (Google, Microsoft, Apple, OpenAI, ...) and cloud providers publish the
address ranges their crawlers and machines use, as JSON at stable URLs (:data:`SOURCES`).
``clickpipe ipranges refresh`` downloads them into one data file (``CLICKPIPE_IP_RANGES_FILE``);
until it has run, the copy shipped with clickpipe (:data:`SHIPPED`) is used. The file:

    {"sources": {name: {"url": ..., "fetched": ISO time, "prefixes": count}},
     "ranges": {name: ["66.249.64.0/27", "2001:4860:4801:10::/64", ...]}}

:class:`RangeSet` answers "which source publishes this address" with a binary search over
merged integer intervals, so a lookup costs the same for ten or ten thousand prefixes.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("ip-ranges.json")


@dataclass(frozen=True)
class Source:
    """One published list: ``kind`` is ``crawler`` (the ranges verify ``crawler``'s user agents)
    or ``hosting`` (machines for rent: a network type, never a verdict alone)."""

    name: str
    kind: str
    url: str
    crawler: str = ""


SOURCES = (
    Source("googlebot", "crawler", "https://developers.google.com/static/search/apis/ipranges/googlebot.json",
           "google"),
    Source("google-special", "crawler",
           "https://developers.google.com/static/search/apis/ipranges/special-crawlers.json", "google"),
    Source("google-fetchers", "crawler",
           "https://developers.google.com/static/search/apis/ipranges/user-triggered-fetchers.json", "google"),
    Source("bingbot", "crawler", "https://www.bing.com/toolbox/bingbot.json", "bing"),
    Source("applebot", "crawler", "https://search.developer.apple.com/applebot.json", "apple"),
    Source("gptbot", "crawler", "https://openai.com/gptbot.json", "openai"),
    Source("chatgpt-user", "crawler", "https://openai.com/chatgpt-user.json", "openai"),
    Source("oai-searchbot", "crawler", "https://openai.com/searchbot.json", "openai"),
    Source("perplexitybot", "crawler", "https://www.perplexity.com/perplexitybot.json", "perplexity"),
    Source("aws", "hosting", "https://ip-ranges.amazonaws.com/ip-ranges.json"),
    Source("google-cloud", "hosting", "https://www.gstatic.com/ipranges/cloud.json"),
    Source("oracle-cloud", "hosting", "https://docs.oracle.com/en-us/iaas/tools/public_ip_ranges.json"),
)

# The user agents of each verifiable crawler: one that names itself so from an address outside
# its operator's ranges is spoofed.
CRAWLERS = {
    "google": re.compile(r"Googlebot|Google-InspectionTool|GoogleOther|Storebot-Google|AdsBot-Google|"
                         r"Mediapartners-Google|APIs-Google|FeedFetcher-Google|Google-Extended", re.IGNORECASE),
    "bing": re.compile(r"bingbot|BingPreview|msnbot|adidxbot", re.IGNORECASE),
    "apple": re.compile(r"Applebot", re.IGNORECASE),
    "openai": re.compile(r"GPTBot|ChatGPT-User|OAI-SearchBot", re.IGNORECASE),
    "perplexity": re.compile(r"PerplexityBot|Perplexity-User", re.IGNORECASE),
}

# Keys under which the published formats hold a prefix (Google/Bing/Apple/OpenAI: ipv4Prefix,
# ipv6Prefix; AWS: ip_prefix, ipv6_prefix; Oracle: cidr).
PREFIX_KEYS = frozenset({"ipv4Prefix", "ipv6Prefix", "ip_prefix", "ipv6_prefix", "cidr"})


class RangesError(ValueError):
    """A ranges document or data file cannot be read; the message says which and why."""


def prefixes_in(document: Any) -> list[str]:
    """Every network named under a key of :data:`PREFIX_KEYS` anywhere in a published JSON
    document, normalised (``66.249.64.0/27``); raises :class:`RangesError` if there is none or
    one is not a network."""
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in PREFIX_KEYS and isinstance(value, str) and value:
                    try:
                        found.append(str(ipaddress.ip_network(value.strip(), strict=False)))
                    except ValueError:
                        raise RangesError(f"{value!r} under {key!r} is not an IP network") from None
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    if not found:
        raise RangesError("no prefixes (ipv4Prefix, ipv6Prefix, ip_prefix, ipv6_prefix or cidr) in the document")
    return sorted(set(found))


def _intervals(networks: Iterable[str]) -> Iterator[tuple[int, int, int]]:
    for text in networks:
        net = ipaddress.ip_network(text, strict=False)
        yield net.version, int(net.network_address), int(net.broadcast_address)


class RangeSet:
    """Address -> the names of the sources that publish it (ranges of several sources may overlap)."""

    def __init__(self, ranges: dict[str, list[str]]):
        by_version: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for name, networks in ranges.items():
            for version, start, end in _intervals(networks):
                by_version[version].append((start, end, name))
        self._starts: dict[int, list[int]] = {}
        self._rows: dict[int, list[tuple[int, int, str]]] = {}
        self._widest: dict[int, int] = {}
        for version, rows in by_version.items():
            rows.sort()
            merged: list[tuple[int, int, str]] = []
            for start, end, name in rows:  # adjacent or nested ranges of one source become one
                if merged and merged[-1][2] == name and start <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(end, merged[-1][1]), name)
                else:
                    merged.append((start, end, name))
            self._rows[version] = merged
            self._starts[version] = [r[0] for r in merged]
            self._widest[version] = max((end - start for start, end, _ in merged), default=0)
        self.nonempty = frozenset(name for name, networks in ranges.items() if networks)
        self.sources_of = functools.lru_cache(maxsize=65536)(self._sources_of)

    def _sources_of(self, ip: str) -> frozenset[str]:
        try:
            address = ipaddress.ip_address(ip.strip().strip("[]"))
        except ValueError:
            return frozenset()
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        value = int(address)
        starts, rows, widest = self._starts[address.version], self._rows[address.version], self._widest[address.version]
        found = set()
        # every range that starts at or before the address and is no wider than the widest one
        i = bisect.bisect_right(starts, value) - 1
        while i >= 0 and value - rows[i][0] <= widest:
            if rows[i][1] >= value:
                found.add(rows[i][2])
            i -= 1
        return frozenset(found)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())


def read(path: Path) -> dict[str, Any]:
    """The data file at ``path``; :class:`RangesError` if it is not one."""
    try:
        data = json.loads(Path(path).read_text())
        ranges = data["ranges"]
        if not isinstance(ranges, dict):
            raise TypeError("ranges is not an object")
        for networks in ranges.values():
            list(_intervals(networks))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RangesError(f"{path}: not an IP ranges file: {exc}") from exc
    return data


@functools.cache
def load(path: Path) -> RangeSet:
    """The ranges of the data file ``path``, or of the shipped copy while ``path`` does not exist."""
    chosen = Path(path) if Path(path).exists() else SHIPPED
    if chosen == SHIPPED and Path(path) != SHIPPED:
        log.info("IP ranges file %s not found: using the copy shipped with clickpipe "
                 "(refresh with `clickpipe ipranges refresh`)", path)
    return RangeSet(read(chosen)["ranges"])


def crawlers_of(sources: frozenset[str]) -> frozenset[str]:
    """The crawlers whose operators publish one of ``sources``."""
    return frozenset(s.crawler for s in SOURCES if s.name in sources and s.kind == "crawler")


def is_hosting(sources: frozenset[str]) -> bool:
    """True if one of ``sources`` is a cloud provider's list."""
    return any(s.name in sources and s.kind == "hosting" for s in SOURCES)
