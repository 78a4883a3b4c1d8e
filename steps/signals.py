"""Behavioural bot signals: plain functions over small JSON-friendly state, one per concept.

Each signal answers "does this session (or address) behave like a program?" from what the
pipeline has seen so far. None of them looks at a single event in isolation, and none is
tripped by one burst: :mod:`steps.bots` combines them into a session verdict.

- :class:`PartyChurn` (``party-churn``): new parties per address that never came back, in a
  sliding window, per IPv4 address or IPv6 /64 and per address + user agent. A client that
  drops its cookie makes a new party on every request; an office or a carrier's NAT has many
  people behind one address, but each keeps its cookie, so its parties come back (their
  second event removes them from the count) and the count stays low.
- :class:`PageRate` (``page-rate``): a token bucket of page views per session: a burst of up
  to ``burst`` page views at once (single-page-app route changes, the tag's batched retries)
  is free; only a session that stays above ``per_minute`` for ``sustain_ms`` is judged.
- :func:`regular_timing` (``regular-timing``): the last page-view intervals, seconds apart,
  vary less than a person's ever do (coefficient of variation below a bound).
- :class:`Interaction` (``no-interaction``): page views visible long enough, whose tag
  reported no pointer, touch or key at all: people click or tap from page to page, a script
  navigates by itself. Null interaction is no evidence.

Partitions: the raw topic is keyed by party, and each partition keeps its own per-address
state. The collector issues every new party id of an address (IPv4, or IPv6 /64) on that
address's partition (:func:`collector.ids.new_party_id`), so all the new parties of an address
are counted in one partition, whole, whatever the partition count; returning parties keep
their own partitions and are never counted (bench/bot_partitions.py measures it).
"""

from __future__ import annotations

import hashlib
import ipaddress
import statistics
from typing import Any

PAGE_VIEW = "pageView"
VISIBLE_ENOUGH_MS = 500  # the tag reports a page view's engagement once it was visible this long
# What a person does to get from page to page: point, tap or type. Scrolls are not counted: a
# script scrolls as easily, and reading by wheel alone never leaves a page.
ACTIONS = ("pointer", "touch", "keys")
# A mobile carrier puts thousands of phones behind one address (carrier-grade NAT): where the
# data says an address is cellular, the churn limits are this many times higher.
CELLULAR_SCALE = 4
# Below this mean gap, page views are route changes or a batch flushed on the tag's timer (its
# own regular clock): the page-rate rule judges those, timing regularity does not.
REGULAR_MIN_MEAN_MS = 2000


def address_key(ip: str | None) -> str | None:
    """The key an address is counted under: an IPv4 address itself, an IPv6 address's /64
    (one subscriber usually holds a whole /64); None for a missing or malformed address."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def agent_key(address: str, user_agent: str | None) -> str:
    """The key of an address and a user agent (hashed: keys stay short whatever the UA)."""
    digest = hashlib.blake2b((user_agent or "").encode("utf-8", "replace"), digest_size=8).hexdigest()
    return f"{address}|{digest}"


class PartyChurn:
    """New parties per address key that have not come back, in a sliding window of event time.

    IP state (``ctx.ips[key]``): ``{"e": [[time, party, session], ...]}``, oldest first, at most
    ``keep`` entries (once over the limit, more entries change nothing). A party's state
    remembers the keys it was counted under, so its next event can remove it.
    """

    def __init__(self, window_ms: int, max_parties: int, max_parties_per_ua: int):
        self.window_ms = window_ms
        self.limit = {"ip": max_parties, "ua": max_parties_per_ua}
        self.keep = 2 * CELLULAR_SCALE * max(self.limit.values())

    def keys(self, ip: str | None, user_agent: str | None) -> list[tuple[str, str]]:
        """(kind, key) of the counters an event of this address and user agent touches."""
        address = address_key(ip)
        if address is None:
            return []
        return [("ip", address), ("ua", agent_key(address, user_agent))]

    def add(self, ips, keys: list[tuple[str, str]], t: int, party: str, session: str) -> None:
        """Count a new party under ``keys``."""
        for _, key in keys:
            entries = self._live(ips.get(key), t)
            entries.append([t, party, session])
            ips[key] = {"e": entries[-self.keep:]}

    def came_back(self, ips, keys: list[str], party: str, t: int) -> None:
        """The party sent another event: it is a visitor, not a throw-away identity."""
        for key in keys:
            value = ips.get(key)
            if value is None:
                continue
            entries = [e for e in self._live(value, t) if e[1] != party]
            ips[key] = {"e": entries}

    def over(self, ips, keys: list[tuple[str, str]], t: int, scale: int = 1) -> bool:
        """True if some key has more live entries than its limit (times ``scale``)."""
        return any(len(self._live(ips.get(key), t)) > self.limit[kind] * scale for kind, key in keys)

    def claim(self, ips, keys: list[tuple[str, str]], t: int) -> dict[str, list[Any]]:
        """The live entries of ``keys`` not claimed before, by session; each is marked claimed
        (a fourth element), so a throw-away party is reported once."""
        found: dict[str, list[Any]] = {}
        for _, key in keys:
            value = ips.get(key)
            entries = self._live(value, t)
            for entry in entries:
                if len(entry) == 3:
                    found.setdefault(entry[2], entry[:3])
                    entry.append(1)
            ips[key] = {"e": entries}
        return found

    def _live(self, value: Any, t: int) -> list[list[Any]]:
        if not isinstance(value, dict):  # nothing, or a counter of an older version (a list)
            return []
        return [e for e in value["e"] if e[0] > t - self.window_ms]

    def due_at(self, value: Any) -> int:
        """When every entry of the key has left the window (the sweep deletes it then); at once
        for a counter an older version wrote."""
        if not isinstance(value, dict):
            return 0
        return max((e[0] for e in value["e"]), default=0) + self.window_ms


class PageRate:
    """Token bucket of page views. State: ``[tokens, time, in_debt_since or None]``."""

    def __init__(self, burst: int, per_minute: int, sustain_ms: int):
        self.burst = burst
        self.per_ms = per_minute / 60_000
        self.sustain_ms = sustain_ms

    def start(self, t: int) -> list[Any]:
        return [float(self.burst), t, None]

    def page_view(self, state: list[Any], t: int) -> bool:
        """Spend a token for a page view at ``t``; True once the session has been over its rate
        (past its burst) for ``sustain_ms``."""
        tokens, last, since = state
        tokens = min(float(self.burst), tokens + max(0, t - last) * self.per_ms) - 1.0
        if tokens >= 0:
            since = None
        elif since is None:
            since = t
        state[:] = [tokens, max(t, last), since]
        return since is not None and t - since >= self.sustain_ms


def regular_timing(times: list[int], intervals: int, max_cv: float) -> bool:
    """True if the last ``intervals`` gaps between page views (``times``, ascending) vary by
    less than ``max_cv`` (standard deviation / mean). Same-millisecond page views (a batch)
    are no gap."""
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
    if len(gaps) < intervals:
        return False
    gaps = gaps[-intervals:]
    mean = statistics.fmean(gaps)
    return mean >= REGULAR_MIN_MEAN_MS and statistics.pstdev(gaps) / mean < max_cv


class Interaction:
    """Per page view of a session: ``{page_view_id: 1 (pointer, touch or key seen) or 0 (visible
    long enough, none)}``; a page view with no evidence yet is absent."""

    def __init__(self, pages: int, keep: int = 32):
        self.pages = pages
        self.keep = keep

    def observe(self, seen: dict[str, int], page_view_id: str | None, interaction: dict[str, Any] | None) -> None:
        if not page_view_id or not interaction:
            return
        acted = any(interaction.get(k) or 0 for k in ACTIONS)
        if acted:
            seen[page_view_id] = 1
        elif (interaction.get("visible_ms") or 0) >= VISIBLE_ENOUGH_MS and page_view_id not in seen:
            seen[page_view_id] = 0
        while len(seen) > self.keep:  # the oldest page views go first (dicts keep insertion order)
            del seen[next(iter(seen))]

    def none(self, seen: dict[str, int], pages: int | None = None) -> bool:
        """True if at least ``pages`` (default: the configured number) page views were judged and none had any."""
        return len(seen) >= (pages or self.pages) and not any(seen.values())
