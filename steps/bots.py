"""Bot verdicts: per event at once for what an event proves, per session for behaviour.

Sets ``is_bot`` and ``bot_reason`` on every event; bots stay in the stream. Reasons are a
short stable vocabulary (:data:`IMMEDIATE`, :data:`BEHAVIOURAL`).

Immediate rules flag the event they see, first match wins:

- ``empty-ua``: no user agent; ``webdriver``: the tag reported ``navigator.webdriver``;
- ``headless``: a headless browser or automation framework names itself in the user agent;
- ``monitor``: uptime monitors, synthetic checks and page-speed tools (:data:`MONITOR`);
- ``verified-crawler``: a crawler that its operator lets us verify (:data:`steps.ipranges.CRAWLERS`)
  from an address in that operator's published ranges; ``spoofed-crawler``: the same user
  agent from anywhere else (only for crawlers whose ranges the data file has);
- ``declared-crawler``: any other user agent that says it is a program (ua-parser's spiders
  and the community ``crawler-user-agents`` list).

Behavioural evidence (:mod:`steps.signals`) decides the SESSION: once one rule holds, the
session is a bot from then on, and every later event of it is flagged at once:

- ``party-churn``: this new party is one of too many throw-away parties of its address (limits
  four times higher for an address the data calls cellular: carrier-grade NAT);
- ``page-rate``: page views above the sustained rate, past the burst, for a while;
- ``regular-timing``: page-view intervals more regular than a person's;
- ``no-interaction``: several page views visible long enough without a pointer, touch or key;
- ``pixel-only``: many pixel hits from a party never seen with the tag, or six in a row less
  than 1.2 s apart on average (no reader without JavaScript goes that fast);
- ``hosting``: a hosting network (``network_type``) AND weak bot-like evidence (a few
  pixel-only hits, three page views without interaction, or a page rate above the sustained
  rate); a hosting network alone never decides (people browse through company proxies).

Events of a session that came before its verdict are already on their way to Druid as
human. The step therefore emits a verdict record (schema BotVerdict, ``ctx.verdicts``) when a
session is decided after its first event, and for the earlier throw-away parties of an
address found churning; human reports exclude those sessions (druid/queries.py). A session
decided on its first event needs none: all its events carry ``is_bot``. Closed sessions
(``ctx.sessions``) get the verdict of their session.

The step runs after ``sessions`` (it needs ``session_id``).

State: ``party["bots"]`` = ``{"js": tag seen, "ck": churn keys it was counted under, "ct": when,
"s": the current session's evidence}``; ``ctx.ips[key]``: :class:`steps.signals.PartyChurn`.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import crawleruseragents

from steps import Context, Record, ipranges, signals
from steps.useragent import MAX_UA_LENGTH, UserAgentParser

KEY = "bots"
IMMEDIATE = ("empty-ua", "webdriver", "headless", "monitor", "verified-crawler", "spoofed-crawler",
             "declared-crawler")
BEHAVIOURAL = ("party-churn", "page-rate", "regular-timing", "no-interaction", "pixel-only", "hosting")
REASONS = IMMEDIATE + BEHAVIOURAL
HEADLESS = re.compile(r"Headless|PhantomJS|SlimerJS|puppeteer|Playwright|Selenium|WebDriver|Cypress|Nightmare",
                      re.IGNORECASE)
MONITOR = re.compile(
    r"Synthetics|Lighthouse|PageSpeed|Page Speed|GTmetrix|PTST/|WebPageTest|Pingdom|UptimeRobot|StatusCake|"
    r"Site24x7|Uptime-?Kuma|Uptime\.com|Better ?Uptime|Betterstack|Checkly|Freshping|HetrixTools|NodePing|"
    r"updown\.io|Catchpoint|ThousandEyes|Dynatrace|RuxitSynthetic|Uptrends|Oh Dear|Monitis|Montastic|"
    r"NewRelicPinger|New Relic Synthetics|Datadog",
    re.IGNORECASE)
PIXEL_WEAK = 3  # pixel hits without the tag that count as weak evidence (with a hosting network)
INTERACTION_WEAK = 3  # judged page views without interaction that count as weak evidence
# Page views without JavaScript this close together, this many in a row, are no reader's:
# a person without JavaScript loads whole pages and reads them (no route changes to burst).
HURRIED_MS, HURRIED_PAGES = 1200, 6


class UserAgentRules:
    """The user-agent-only verdict, cached per string: a reason, ``crawler:<name>`` for a
    crawler whose address can be verified, or None."""

    def __init__(self, parser: UserAgentParser, cache_size: int):
        self.parser = parser
        self.verdict = functools.lru_cache(maxsize=cache_size)(self._verdict)

    def _verdict(self, ua: str) -> str | None:
        if HEADLESS.search(ua):
            return "headless"
        if MONITOR.search(ua):
            return "monitor"
        crawler = next((name for name, pattern in ipranges.CRAWLERS.items() if pattern.search(ua)), None)
        if crawler is not None:
            return f"crawler:{crawler}"
        if self.parser.parse(ua).device_class == "bot" or crawleruseragents.is_crawler(ua):
            return "declared-crawler"
        return None

    def __call__(self, ua: str) -> str | None:
        return self.verdict(ua[:MAX_UA_LENGTH])


class Bots:
    reads = frozenset({"server_time", "party_id", "session_id", "event_type", "page_view_id", "ip", "no_js",
                       "user_agent", "webdriver", "new_party"})
    reads_if_present = frozenset({"network_type", "interaction"})
    writes = frozenset({"is_bot", "bot_reason"})

    def __init__(self, ua_rules: UserAgentRules, ranges: ipranges.RangeSet, churn: signals.PartyChurn,
                 rate: signals.PageRate, regular_intervals: int, regular_max_cv: float,
                 interaction: signals.Interaction, pixel_only_events: int):
        self.ua_rules = ua_rules
        self.ranges = ranges
        # a crawler can be found spoofed only when the data file has its operator's ranges
        self.verifiable = frozenset(s.crawler for s in ipranges.SOURCES if s.name in ranges.nonempty and s.crawler)
        self.churn = churn
        self.rate = rate
        self.regular_intervals = regular_intervals
        self.regular_max_cv = regular_max_cv
        self.interaction = interaction
        self.pixel_only_events = pixel_only_events

    # --- per event -------------------------------------------------------------------------

    def immediate(self, record: Record) -> str | None:
        """The reason an event alone proves it comes from a program, or None."""
        ua = record.get("user_agent")
        if not ua or not ua.strip():
            return "empty-ua"
        if record.get("webdriver"):
            return "webdriver"
        verdict = self.ua_rules(ua)
        if verdict is None or not verdict.startswith("crawler:"):
            return verdict
        crawler = verdict.removeprefix("crawler:")
        if crawler not in self.verifiable:
            return "declared-crawler"
        ip = record.get("ip") or ""
        return "verified-crawler" if crawler in ipranges.crawlers_of(self.ranges.sources_of(ip)) else "spoofed-crawler"

    # --- per session -----------------------------------------------------------------------

    def __call__(self, record: Record, ctx: Context) -> Record:
        t = record["server_time"]
        state = ctx.party.setdefault(KEY, {"js": False})
        s = state.get("s")
        if s is not None:
            self._close(s, ctx.sessions)
        if s is None or s["sid"] != record["session_id"]:
            s = state["s"] = {"sid": record["session_id"], "t0": t, "n": 0, "v": None,
                              "r": self.rate.start(t), "pt": [], "ia": {}, "px": 0, "fast": False}
        s["n"] += 1
        if record.get("no_js"):
            s["px"] += 1
        else:
            state["js"] = True

        churned = self._churn(record, state, ctx, t)
        if record["event_type"] == signals.PAGE_VIEW:
            sustained = self.rate.page_view(s["r"], t)
            s["fast"] = s["fast"] or s["r"][2] is not None
            s["pt"] = (s["pt"] + [t])[-(self.regular_intervals + 1):]
        else:
            sustained = False
        self.interaction.observe(s["ia"], record.get("page_view_id"), record.get("interaction"))

        immediate = self.immediate(record)
        if s["v"] is None:
            reason = immediate or self._behaviour(record, state, s, churned, sustained)
            if reason is not None:
                s["v"] = reason
                if s["n"] > 1:  # earlier events went out as human: tell Druid about the session
                    ctx.verdicts.append(self._verdict(record["party_id"], s["sid"], s["t0"], t, reason))
        reason = immediate or s["v"]
        record["is_bot"] = reason is not None
        record["bot_reason"] = reason
        return record

    def _churn(self, record: Record, state: dict[str, Any], ctx: Context, t: int) -> bool:
        """Count a new party, forget one that came back; True if this party is one too many."""
        if "ck" in state:  # counted as new before
            if t > state["ct"]:  # and back with a later request (events of one request share its time)
                self.churn.came_back(ctx.ips, state.pop("ck"), record["party_id"], t)
                del state["ct"]
            return False
        if not record.get("new_party"):
            return False
        keys = self.churn.keys(record.get("ip"), record.get("user_agent"))
        if not keys:
            return False
        party, session = record["party_id"], record["session_id"]
        self.churn.add(ctx.ips, keys, t, party, session)
        state["ck"], state["ct"] = [key for _, key in keys], t
        if not self.churn.over(ctx.ips, keys, t, signals.CELLULAR_SCALE if record.get("network_type") == "cellular"
                               else 1):
            return False
        for sid, (start, other, _) in self.churn.claim(ctx.ips, keys, t).items():
            if sid != session:  # the earlier throw-away parties of this address: bots too
                ctx.verdicts.append(self._verdict(other, sid, start, t, "party-churn"))
        return True

    def _behaviour(self, record: Record, state: dict[str, Any], s: dict[str, Any], churned: bool,
                   sustained: bool) -> str | None:
        if churned:
            return "party-churn"
        if sustained:
            return "page-rate"
        if signals.regular_timing(s["pt"], self.regular_intervals, self.regular_max_cv):
            return "regular-timing"
        if self.interaction.none(s["ia"]):
            return "no-interaction"
        pixel_only = not state["js"]
        if pixel_only and (s["px"] >= self.pixel_only_events or (s["px"] >= PIXEL_WEAK and _hurried(s["pt"]))):
            return "pixel-only"
        if record.get("network_type") == "hosting" and (
                (pixel_only and s["px"] >= PIXEL_WEAK) or s["fast"]
                or self.interaction.none(s["ia"], INTERACTION_WEAK)):
            return "hosting"
        return None

    @staticmethod
    def _verdict(party: str, session: str, start: int, t: int, reason: str) -> Record:
        return {"session_id": session, "party_id": party, "session_start": start, "decided_time": t,
                "reason": reason}

    @staticmethod
    def _close(s: dict[str, Any], closed: list[Record]) -> None:
        """Give the closed session records of this session its verdict."""
        for session in closed:
            if session["session_id"] == s["sid"] and s["v"] is not None:
                session["is_bot"], session["bot_reason"] = True, s["v"]

    # --- state -----------------------------------------------------------------------------

    def ip_due_at(self, value: dict[str, Any]) -> int:
        """When a churn counter's entries have all left the window: the sweep deletes it then."""
        return self.churn.due_at(value)

    def sweep(self, ctx: Context, now_ms: int) -> None:
        # Runs after the sessions step's sweep: a session it just closed gets its verdict, and
        # the evidence goes with the session (the pixel-only memory lasts while the party is active).
        state = ctx.party.get(KEY)
        if state is None:
            return
        s = state.get("s")
        if s is not None:
            self._close(s, ctx.sessions)
        if ctx.party.get("session") is None:
            del ctx.party[KEY]


def _hurried(times: list[int]) -> bool:
    """True if the last :data:`HURRIED_PAGES` page views came less than :data:`HURRIED_MS` apart on average."""
    if len(times) < HURRIED_PAGES:
        return False
    last = times[-HURRIED_PAGES:]
    return (last[-1] - last[0]) / (HURRIED_PAGES - 1) < HURRIED_MS


def build(settings) -> Bots:
    parser = UserAgentParser(settings.ua_cache_size)
    return Bots(
        UserAgentRules(parser, settings.ua_cache_size), ipranges.load(settings.ip_ranges_file),
        signals.PartyChurn(settings.bot_churn_window_seconds * 1000, settings.bot_churn_max_parties,
                           settings.bot_churn_max_parties_per_ua),
        signals.PageRate(settings.bot_page_burst, settings.bot_page_rate_per_minute,
                         settings.bot_page_sustain_seconds * 1000),
        settings.bot_regular_intervals, settings.bot_regular_max_cv_percent / 100,
        signals.Interaction(settings.bot_no_interaction_pages), settings.bot_pixel_only_events)
