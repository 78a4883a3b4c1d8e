"""Bot flagging: sets ``is_bot`` and ``bot_reason``; bots stay in the stream.

Rules, first match wins (the order of :data:`REASONS`):

- ``empty-ua``: no user agent at all;
- ``webdriver``: the tag reported ``navigator.webdriver``;
- ``headless``: a headless browser or automation framework names itself in the user agent;
- ``ua-spider``: ua-parser classifies the device as a spider;
- ``crawler-pattern``: the user agent matches the community ``crawler-user-agents`` list;
- ``datacenter``: the IP's autonomous system is in ``datacenter_asns``;
- ``rate-party``: the party sent more than ``bot_max_party_events`` events in one
  ``bot_rate_window_seconds`` (event time, fixed windows);
- ``rate-ip``: same per IP, counted within the partition (the raw topic is keyed by party,
  so one IP's parties spread over partitions: the limit applies per partition);
- ``pixel-only``: the ``bot_pixel_only_events``-th pixel hit (no JavaScript) from a party
  never seen with the tag.

State: ``party["bots"]`` = ``{"w": window, "n": events in it, "js": tag seen, "px": pixel hits}``
and ``ctx.ips[ip]`` = ``[window, events in it]``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import crawleruseragents

from steps import Context, Record
from steps.geo import GeoLookup, lookup_for
from steps.useragent import MAX_UA_LENGTH, UserAgentParser

KEY = "bots"
REASONS = ("empty-ua", "webdriver", "headless", "ua-spider", "crawler-pattern", "datacenter", "rate-party",
           "rate-ip", "pixel-only")
HEADLESS = re.compile(r"Headless|PhantomJS|SlimerJS|puppeteer|Playwright|Selenium|WebDriver|Cypress|Nightmare",
                      re.IGNORECASE)


class UserAgentRules:
    """The user-agent-only verdict (reason or None), cached per string."""

    def __init__(self, parser: UserAgentParser, cache_size: int):
        self.parser = parser
        self.verdict = functools.lru_cache(maxsize=cache_size)(self._verdict)

    def _verdict(self, ua: str) -> str | None:
        if HEADLESS.search(ua):
            return "headless"
        if self.parser.parse(ua).device_class == "bot":
            return "ua-spider"
        if crawleruseragents.is_crawler(ua):
            return "crawler-pattern"
        return None

    def __call__(self, ua: str) -> str | None:
        return self.verdict(ua[:MAX_UA_LENGTH])


class Bots:
    reads = frozenset({"server_time", "ip", "no_js", "user_agent", "webdriver"})
    reads_if_present: frozenset[str] = frozenset()
    writes = frozenset({"is_bot", "bot_reason"})

    def __init__(self, ua_rules: UserAgentRules, geo: GeoLookup, datacenter_asns: frozenset[int], window_ms: int,
                 max_party_events: int, max_ip_events: int, pixel_only_events: int):
        self.ua_rules = ua_rules
        self.geo = geo
        self.datacenter_asns = datacenter_asns
        self.window_ms = window_ms
        self.max_party_events = max_party_events
        self.max_ip_events = max_ip_events
        self.pixel_only_events = pixel_only_events

    def __call__(self, record: Record, ctx: Context) -> Record:
        window = record["server_time"] // self.window_ms
        state = ctx.party.setdefault(KEY, {"w": window, "n": 0, "js": False, "px": 0})
        if state["w"] != window:
            state["w"], state["n"] = window, 0
        state["n"] += 1
        ip = record.get("ip")
        ip_events = 0
        if ip:
            counter = ctx.ips.get(ip)
            ip_events = counter[1] + 1 if counter and counter[0] == window else 1
            ctx.ips[ip] = [window, ip_events]
        if record.get("no_js"):
            state["px"] += 1
        else:
            state["js"] = True

        ua = record.get("user_agent")
        reason: str | None
        if not ua or not ua.strip():
            reason = "empty-ua"
        elif record.get("webdriver"):
            reason = "webdriver"
        else:
            reason = self.ua_rules(ua) or self._other_reason(record, state, ip_events)
        record["is_bot"] = reason is not None
        record["bot_reason"] = reason
        return record

    def _other_reason(self, record: Record, state: dict[str, Any], ip_events: int) -> str | None:
        if self.datacenter_asns and self.geo.lookup(record.get("ip")).asn in self.datacenter_asns:
            return "datacenter"
        if state["n"] > self.max_party_events:
            return "rate-party"
        if ip_events > self.max_ip_events:
            return "rate-ip"
        if record.get("no_js") and not state["js"] and state["px"] >= self.pixel_only_events:
            return "pixel-only"
        return None

    def ip_due_at(self, counter: list[int]) -> int:
        """When an IP counter's window is over: from then on it is useless and the sweep deletes it."""
        return (counter[0] + 1) * self.window_ms

    def sweep(self, ctx: Context, now_ms: int) -> None:
        # The rate counters are stale once their window is over; the pixel-only memory goes
        # with them, so it lasts as long as the party stays active.
        state = ctx.party.get(KEY)
        if state is not None and state["w"] < now_ms // self.window_ms:
            del ctx.party[KEY]


def build(settings) -> Bots:
    parser = UserAgentParser(settings.ua_cache_size)
    return Bots(UserAgentRules(parser, settings.ua_cache_size), lookup_for(settings), settings.datacenter_asns,
                settings.bot_rate_window_seconds * 1000, settings.bot_max_party_events, settings.bot_max_ip_events,
                settings.bot_pixel_only_events)
