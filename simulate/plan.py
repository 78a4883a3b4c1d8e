"""A deterministic stream of simulated parties: their requests, events and expected sessions.

A *party* is one client as the simulation knows it: a browser with its cookie, a crawler,
a script. Given the same seed, run id and timing, :class:`Planner` produces the same parties
with the same requests at the same offsets, so a run can be reproduced and a plan can be
checked without any service running.

Kinds are described by what the client does on the wire (transport, cookies, addresses,
pace, the interaction its pages report), never by the pipeline rule meant to catch it; each
kind has the session verdict a careful human judge would give it (``Party.bot``, the same for
all of its sessions). :data:`KINDS` lists them with that verdict; docs/simulate.md describes
each.

Session boundaries in real time
-------------------------------
The collector stamps ``server_time`` itself, so the pipeline separates sessions by real gaps
of more than ``session_gap_seconds`` (``CLICKPIPE_SESSION_GAP_SECONDS``). A short run cannot
contain 30-minute gaps, so evaluation runs configure a short gap (tens of seconds) for the
worker, and the plan is built from the same :class:`Timing`:

- inside a visit, consecutive requests of a party are at most ``gap / 3`` apart, which
  leaves two thirds of the gap for delivery delays;
- visits of one party are separated by more than ``gap + sweep + margin``: the worker's
  idle sweep (every ``CLICKPIPE_SESSION_SWEEP_SECONDS``) has then closed the session before
  the next visit starts, as it would after a real absence.

Expected sessions (:meth:`Party.sessions`) therefore follow the pipeline's gap rule: one per
visit of a party that keeps its cookie, and one per request of a party that does not (the
collector gives each cookie-less request a new party id). Campaign parameters appear only on
a visit's landing URL, so the pipeline's campaign split never cuts a visit.
"""

from __future__ import annotations

import ipaddress
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

from simulate import population as pop

EVENTS = "events"  # POST /events?via=tag, JSON batch, as the tag sends
TAG_PIXEL = "tag-pixel"  # GET /p.gif?via=tag: the tag in a browser without fetch
PIXEL = "pixel"  # GET /p.gif, one event in the query, as a <noscript> image or a bare fetch

# kind -> expected session verdict (True: bot)
KINDS: dict[str, bool] = {
    "human": False,
    "human-spa": False,
    "human-nojs-reader": False,
    "human-office": False,
    "human-carrier-nat": False,
    "human-cloud-egress": False,
    "human-old-browser": False,
    "stealth-browser": True,
    "cookie-dropper-v4": True,
    "cookie-dropper-v6": True,
    "monitor": True,
    "lighthouse": True,
    "spoofed-googlebot": True,
    "googlebot": True,
    "crawler": True,
    "headless": True,
    "scraper": True,
    "pixel-bot": True,
}
HUMAN_KINDS = tuple(k for k, bot in KINDS.items() if not bot)
BOT_KINDS = tuple(k for k, bot in KINDS.items() if bot)

MAX_PAGES_PER_VISIT = 10
MAX_VISITS = 4
MIN_DWELL_S = 1.5  # a human reads a page at least this long (route bursts of a single-page app aside)
NOJS_READER_PAGES = 6


@dataclass(frozen=True)
class Timing:
    """Session rule the plan must respect; mirror of the worker's settings."""

    gap_s: float
    sweep_s: float

    @property
    def max_step_s(self) -> float:
        """Longest pause between two requests of one visit."""
        return self.gap_s / 3

    @property
    def median_dwell_s(self) -> float:
        return max(MIN_DWELL_S, min(20.0, self.gap_s / 8))

    def visit_separation(self, rng: random.Random) -> float:
        """Pause between visits of one party: beyond the gap, the sweep and a margin."""
        margin = max(5.0, self.gap_s / 2)
        return self.gap_s + self.sweep_s + margin + rng.uniform(0, self.gap_s / 2)

    def dwell(self, rng: random.Random) -> float:
        value = rng.lognormvariate(math.log(self.median_dwell_s), 0.8)
        return min(max(value, MIN_DWELL_S), self.max_step_s)


@dataclass(frozen=True)
class Mix:
    """Shares of party kinds. ``bot_share`` of parties are bots, split by ``bot_weights``."""

    bot_share: float = 0.2
    human_weights: tuple[tuple[str, float], ...] = (
        ("human", 0.49), ("human-spa", 0.1), ("human-nojs-reader", 0.05), ("human-office", 0.12),
        ("human-carrier-nat", 0.06),
        ("human-cloud-egress", 0.08), ("human-old-browser", 0.1))
    bot_weights: tuple[tuple[str, float], ...] = (
        ("stealth-browser", 0.12), ("cookie-dropper-v4", 0.06), ("cookie-dropper-v6", 0.06), ("monitor", 0.1),
        ("lighthouse", 0.08), ("spoofed-googlebot", 0.06), ("googlebot", 0.08), ("crawler", 0.1),
        ("headless", 0.1), ("scraper", 0.12), ("pixel-bot", 0.12))

    def __post_init__(self):
        if not 0 <= self.bot_share <= 1:
            raise ValueError(f"bot share must be within [0, 1], not {self.bot_share}")


@dataclass(frozen=True)
class Request:
    """One HTTP request of a party, ``at`` seconds after the party's start.

    ``events`` are sender fields as the collector documents them (collector/openapi.yaml);
    ``session`` numbers the expected session the events belong to; a ``resend`` repeats the
    previous request's events unchanged, as the tag does when a response is lost; ``ip``
    overrides the party's address (a client rotating addresses).
    """

    at: float
    transport: str
    events: tuple[dict, ...]
    session: int
    resend: bool = False
    ip: str | None = None


@dataclass
class Party:
    """One simulated client: what it is (``kind``, ``bot``), how it looks on the wire, what it sends.

    ``hints`` are the client-hint headers its browser sends (Chromium-based browsers only).
    """

    key: str
    kind: str
    bot: bool
    cookies: bool
    ip: str
    user_agent: str | None
    requests: list[Request] = field(default_factory=list)
    start: float = 0.0  # seconds after the run's start (set by Planner.parties)
    hints: dict[str, str] = field(default_factory=dict)

    @property
    def event_ids(self) -> list[str]:
        """Every distinct event id, in sending order."""
        return [e["event_id"] for r in self.requests if not r.resend for e in r.events]

    @property
    def ips(self) -> list[str]:
        """Every address the party sends from, in order of first use."""
        return list(dict.fromkeys(r.ip or self.ip for r in self.requests))

    @property
    def duration(self) -> float:
        """Seconds from the party's first request to its last."""
        return max((r.at for r in self.requests), default=0.0)

    def sessions(self, accepted: set[str] | None = None) -> list[list[str]]:
        """Expected sessions as lists of event ids, restricted to ``accepted`` if given."""
        grouped: dict[int, list[str]] = {}
        for index, r in enumerate(self.requests):
            if r.resend:
                continue
            ids = [e["event_id"] for e in r.events if accepted is None or e["event_id"] in accepted]
            if ids:  # without its cookie, every request is a new party: a session of its own
                grouped.setdefault(r.session if self.cookies else index, []).extend(ids)
        return list(grouped.values())


def interaction(pointer: int = 0, touch: int = 0, keys: int = 0, scrolls: int = 0, visible_s: float = 0.0,
                focused: float = 1.0, ever_visible: bool = True) -> dict:
    """The tag's interaction evidence; ``focused`` is the share of visible time with focus."""
    visible_ms = int(visible_s * 1000) if ever_visible else 0
    return {"pointer": pointer, "touch": touch, "keys": keys, "scrolls": scrolls, "visible_ms": visible_ms,
            "focused_ms": int(visible_ms * focused), "ever_visible": ever_visible}


# What a page view's visitor did by the time it ends: (seconds on the page, rng, touch device)
# -> interaction (None: the tag is not running). Counters grow linearly over the page view.
Engagement = Callable[[float, random.Random, bool], dict]


def reading(stay: float, rng: random.Random, touch: bool) -> dict:
    """A person reading: scrolls, and the click or tap that leads on; one page in eight untouched."""
    if rng.random() < 0.125:
        return interaction(visible_s=stay, focused=rng.uniform(0.5, 1.0))
    taps = rng.randint(1, 4)
    return interaction(pointer=taps, touch=taps if touch else 0, keys=rng.choice((0, 0, 0, rng.randint(3, 20))),
                       scrolls=rng.randint(1, 3 + int(stay)), visible_s=stay, focused=rng.uniform(0.6, 1.0))


def untouched(stay: float, rng: random.Random, touch: bool) -> dict:
    """A page that is loaded and shown, and nothing else happens on it."""
    return interaction(visible_s=stay)


def scripted_scroll(stay: float, rng: random.Random, touch: bool) -> dict:
    """A script scrolling the page to make it load (scrollTo gives trusted scroll events), no input."""
    return interaction(scrolls=rng.randint(1, 3), visible_s=stay)


def _scaled(final: dict, share: float) -> dict:
    """The counters of ``final`` a share of the way through the page view."""
    return {k: (v if isinstance(v, bool) else int(v * share)) for k, v in final.items()}


class _Builder:
    """Adds one party's requests: event ids, resends, and walks along the site graph."""

    def __init__(self, planner: "Planner", rng: random.Random, party: Party):
        self.planner = planner
        self.rng = rng
        self.party = party
        self.n = 0

    def id(self, kind: str = "e") -> str:
        self.n += 1
        return f"{self.planner.run_id}.{self.party.key}.{kind}{self.n}"

    def add(self, request: Request) -> None:
        requests = self.party.requests
        requests.append(request)
        # A lost response makes the tag send the same batch again; only once the party has its
        # cookie, since without it the collector could not tell the copy from a new party.
        if (self.party.cookies and len(requests) > 1 and request.transport == EVENTS
                and self.rng.random() < self.planner.resend_rate):
            requests.append(Request(request.at + 0.05, request.transport, request.events, request.session,
                                    resend=True, ip=request.ip))

    def page(self, t: float, session: int, url: str, referrer: str | None, tag: dict | None, transport: str,
             stay: float, engage: Engagement | None, custom_kind: str | None, visit_id: str) -> None:
        """One page view at ``t`` lasting ``stay`` seconds: its page view, custom events while on it
        (of ``custom_kind`` pages) and, as the tag does, a final ``engagement`` event as the page
        is left when the visitor did something, or the page was visible for half a second or
        more, since the last event."""
        rng = self.rng
        pv = self.id("pv")
        view: dict[str, Any] = {"event_type": "pageView", "event_id": self.id(), "location": url}
        if referrer is not None:
            view["referrer"] = referrer
        # engage None: a client that sends the tag's fields but no interaction evidence at all
        final = engage(stay, rng, tag["screen_width"] < 1000) if engage and tag is not None else None
        if tag is not None:
            view.update(tag, page_view_id=pv, session_id=visit_id)
        if final is not None:
            view["interaction"] = interaction(visible_s=rng.uniform(0.02, 0.2))
        self.add(Request(t, transport, (view,), session))
        last: dict | None = view.get("interaction")
        if tag is None:
            return
        chosen = [e for e, p in pop.CUSTOM_EVENTS.get(custom_kind or "", ()) if rng.random() < p]
        offsets = sorted(rng.uniform(0.2, 0.9) for _ in chosen)
        for event_type, offset in zip(chosen, offsets, strict=False):
            event = {"event_type": event_type, "event_id": self.id(), "location": url, "page_view_id": pv,
                     "session_id": visit_id, "params": pop.custom_params(rng, event_type, url), **tag}
            if final is not None:
                event["interaction"] = last = _scaled(final, offset)
            self.add(Request(t + offset * stay, transport, (event,), session))
        if final is not None and last is not None and (
                _counts(final) != _counts(last) or final["visible_ms"] - last["visible_ms"] >= 500):
            leave = {"event_type": "engagement", "event_id": self.id(), "location": url, "page_view_id": pv,
                     "session_id": visit_id, "interaction": final, **tag}
            self.add(Request(t + stay - 0.02, transport, (leave,), session))

    def walk(self, t: float, session: int, kind: str, url: str, referrer: str | None, tag: dict | None,
             transport: str, max_pages: int, pause, engage: Engagement | None, custom: bool) -> float:
        """One visit along the site graph from ``url`` (a page of ``kind``); returns the time the
        last page is left.

        ``tag`` holds the tag's device fields (None: pixel requests without JavaScript);
        ``pause(rng)`` gives the time spent on a page; with ``custom``, custom events of the
        page kind happen while on the page.
        """
        rng = self.rng
        visit_id = self.id("v")
        for page in range(max_pages):
            stay = pause(rng)
            self.page(t, session, url, referrer, tag, transport, stay, engage, kind if custom else None, visit_id)
            t += stay
            if page == max_pages - 1:
                return t
            if kind in pop.SPA_KINDS and rng.random() < pop.SPA_SHARE:
                referrer, url = url, pop.spa_url(rng, url)  # same kind of page, new route
            else:
                nxt = pop.pick(rng, pop.SITE_GRAPH[kind])
                if nxt == "exit":
                    return t
                referrer, kind, url = url, nxt, pop.page_url(rng, nxt)
        return t

    def hits(self, count: int, pause, tag: dict | None, transport: str = EVENTS, engage: Engagement | None = None,
             ips: Callable[[random.Random], str] | None = None, page: Callable[[random.Random], str] | None = None,
             t: float = 0.0) -> None:
        """``count`` pages fetched one after another, ``pause(rng)`` apart, from ``t`` on.

        Each from ``ips(rng)`` if given (else the party's address); pages from ``page(rng)``
        (else random landing pages).
        """
        rng = self.rng
        for i in range(count):
            url = page(rng) if page else pop.page_url(rng, pop.pick(rng, pop.LANDING))
            stay = pause(rng)
            session = 0 if self.party.cookies else i
            before = len(self.party.requests)
            self.page(t, session, url, None, tag, transport if tag is not None else PIXEL, stay, engage, None,
                      self.id("v"))
            if ips is not None:
                ip = ips(rng)
                self.party.requests[before:] = [Request(r.at, r.transport, r.events, r.session, r.resend, ip)
                                                for r in self.party.requests[before:]]
            t += stay


def _counts(evidence: dict) -> tuple[int, ...]:
    return tuple(evidence[k] for k in ("pointer", "touch", "keys", "scrolls"))


class Planner:
    """Builds parties from a seed. ``run_id`` prefixes every event id (unique across runs)."""

    def __init__(self, seed: int, run_id: str, timing: Timing, mix: Mix = Mix(), resend_rate: float = 0.01):
        self.seed = seed
        self.run_id = run_id
        self.timing = timing
        self.mix = mix
        self.resend_rate = resend_rate

    def party(self, index: int) -> Party:
        """The ``index``-th party; depends only on the seed, run id, timing, mix and index."""
        rng = random.Random(f"{self.seed}:{index}")
        if rng.random() < self.mix.bot_share:
            kind = pop.pick(rng, self.mix.bot_weights)
        else:
            kind = pop.pick(rng, self.mix.human_weights)
        return self.of_kind(kind, rng, f"p{index:06d}")

    def of_kind(self, kind: str, rng: random.Random, key: str) -> Party:
        """A party of ``kind`` (one of :data:`KINDS`)."""
        party = getattr(self, "_" + kind.replace("-", "_"))(rng, key)
        assert party.kind == kind and party.bot == KINDS[kind]
        return party

    def parties(self, rate: float, limit: int | None = None) -> Iterator[Party]:
        """Parties with start times spaced so that planned events arrive at ``rate`` per second.

        Each party starts ``events / rate`` after the previous one, so in steady state the
        planned event rate is ``rate``; it ramps up over the first parties' lifetimes.
        """
        if rate <= 0:
            raise ValueError("rate must be positive")
        start, index = 0.0, 0
        while limit is None or index < limit:
            party = self.party(index)
            party.start = start
            yield party
            start += len(party.event_ids) / rate
            index += 1

    @staticmethod
    def _device(rng: random.Random, uas: tuple[str, ...] | None = None) -> tuple[str, dict, dict[str, str]]:
        """A human device: user agent, the tag's screen fields and the client hints it sends."""
        device = "desktop" if rng.random() < 0.55 else "mobile"
        ua = rng.choice(uas or (pop.DESKTOP_UAS if device == "desktop" else pop.MOBILE_UAS))
        screen = rng.choice(pop.SCREENS["mobile" if "Mobile" in ua or "iPad" in ua else "desktop"])
        return ua, _tag_fields(screen, webdriver=False), pop.client_hints(ua)

    @staticmethod
    def _landing(rng: random.Random) -> tuple[str, str, str | None]:
        """(landing page kind, its URL with campaign parameters if any, external referrer)."""
        kind = pop.pick(rng, pop.LANDING)
        url = pop.page_url(rng, kind)
        if rng.random() < 0.2:
            source, medium, campaign = rng.choice(pop.CAMPAIGNS)
            url += ("&" if "?" in url else "?") + urlencode(
                {"utm_source": source, "utm_medium": medium, "utm_campaign": campaign})
            referrer = "https://mail.google.com/" if medium == "email" else pop.pick(rng, pop.REFERRERS)
        else:
            referrer = pop.pick(rng, pop.REFERRERS)
        return kind, url, referrer

    def _visits(self, b: _Builder, rng: random.Random, tag: dict, transport: str = EVENTS) -> Party:
        """1-4 visits (a returning visitor) of a person reading pages, with custom events."""
        visits = 1
        while visits < MAX_VISITS and rng.random() < 0.3:
            visits += 1
        t = 0.0
        for visit in range(visits):
            kind, url, referrer = self._landing(rng)
            t = b.walk(t, visit, kind, url, referrer, tag, transport, MAX_PAGES_PER_VISIT, self.timing.dwell,
                       reading, custom=True)
            t += self.timing.visit_separation(rng)
        return b.party

    def _person(self, rng: random.Random, key: str, kind: str, ip: str,
                uas: tuple[str, ...] | None = None) -> tuple[_Builder, dict]:
        """A person's browser that keeps its cookie: the builder and the tag's device fields."""
        ua, tag, hints = self._device(rng, uas)
        return _Builder(self, rng, Party(key, kind, False, True, ip, ua, hints=hints)), tag

    # --- people -----------------------------------------------------------------------------

    def _human(self, rng: random.Random, key: str) -> Party:
        """A browser running the tag at home or on a phone: visits, pages, route changes, custom events."""
        b, tag = self._person(rng, key, "human", pop.human_ip(rng))
        return self._visits(b, rng, tag)

    def _human_office(self, rng: random.Random, key: str) -> Party:
        """One of many people of one office, all behind the office's single public IPv4 address."""
        b, tag = self._person(rng, key, "human-office", rng.choice(pop.OFFICE_ADDRESSES))
        return self._visits(b, rng, tag)

    def _human_carrier_nat(self, rng: random.Random, key: str) -> Party:
        """A person on a phone whose carrier puts many subscribers behind one public address."""
        b, tag = self._person(rng, key, "human-carrier-nat", rng.choice(pop.CARRIER_NAT_ADDRESSES), pop.MOBILE_UAS)
        return self._visits(b, rng, tag)

    def _human_cloud_egress(self, rng: random.Random, key: str) -> Party:
        """A person at work whose traffic leaves through the company's proxy in a cloud provider's
        (hosting) network: one address for the whole company."""
        b, tag = self._person(rng, key, "human-cloud-egress", rng.choice(pop.HOSTING_ADDRESSES), pop.DESKTOP_UAS)
        return self._visits(b, rng, tag)

    def _human_old_browser(self, rng: random.Random, key: str) -> Party:
        """An old browser (no client hints, no fetch): the tag sends every event as a pixel."""
        ua = rng.choice(pop.OLD_UAS)
        b = _Builder(self, rng, Party(key, "human-old-browser", False, True, pop.human_ip(rng), ua))
        return self._visits(b, rng, _tag_fields(rng.choice(pop.SCREENS["old"]), webdriver=False), TAG_PIXEL)

    def _human_spa(self, rng: random.Random, key: str) -> Party:
        """A single-page-app user: lands, then clicks through filters, sort orders and result pages
        in a burst of route changes a few hundred milliseconds apart, then reads on."""
        b, tag = self._person(rng, key, "human-spa", pop.human_ip(rng))
        landing = pop.page_url(rng, rng.choice(("category", "search")))
        visit_id = b.id("v")
        url, referrer, t = landing, pop.pick(rng, pop.REFERRERS), rng.uniform(2.0, 5.0)
        b.page(0.0, 0, url, referrer, tag, EVENTS, t, reading, "category", visit_id)
        for _ in range(rng.randint(5, 12)):  # the burst: each route change follows a click
            stay = rng.uniform(0.15, 0.6)
            referrer, url = url, pop.spa_url(rng, landing)
            b.page(t, 0, url, referrer, tag, EVENTS, stay, _clicked, None, visit_id)
            t += stay
        kind, url = "product", pop.page_url(rng, "product")
        b.walk(t, 0, kind, url, referrer, tag, EVENTS, 3, self.timing.dwell, reading, custom=True)
        return b.party

    def _human_nojs_reader(self, rng: random.Random, key: str) -> Party:
        """A browser with JavaScript disabled reading six pages: the site's <noscript> pixel only."""
        ua, _, _ = self._device(rng)
        b = _Builder(self, rng, Party(key, "human-nojs-reader", False, True, pop.human_ip(rng), ua))
        t = 0.0
        url, referrer = pop.page_url(rng, "blog"), pop.pick(rng, pop.REFERRERS)
        visit_id = b.id("v")
        for _ in range(NOJS_READER_PAGES):
            stay = self.timing.dwell(rng)
            b.page(t, 0, url, referrer, None, PIXEL, stay, None, None, visit_id)
            t += stay
            referrer, url = url, pop.page_url(rng, rng.choice(("blog", "product", "category")))
        return b.party

    # --- bots that look like browsers -----------------------------------------------------

    def _stealth_browser(self, rng: random.Random, key: str) -> Party:
        """Automation in a real browser hiding itself: a current Chrome user agent and client hints,
        no webdriver flag, the tag running, its cookie kept; about one page a second, from a
        residential proxy or a hosting network; pages load and are shown, nobody touches them
        (some scripts scroll to trigger lazy loading)."""
        ua = rng.choice(pop.CURRENT_CHROME_UAS)
        ip = pop.human_ip(rng) if rng.random() < 0.5 else pop.address_in(rng, pop.HOSTING_NETWORK)
        b = _Builder(self, rng, Party(key, "stealth-browser", True, True, ip, ua, hints=pop.client_hints(ua)))
        engage = scripted_scroll if rng.random() < 0.3 else untouched
        b.hits(rng.randint(12, 30), lambda r: r.uniform(0.8, 1.25), _tag_fields((1920, 1080, 1.0), False),
               engage=engage)
        return b.party

    def _cookie_dropper_v4(self, rng: random.Random, key: str) -> Party:
        """A script replaying the tag's request without ever keeping a cookie: two requests a second
        from one IPv4 address, a current browser user agent."""
        ua = rng.choice(pop.CURRENT_CHROME_UAS)
        ip = pop.human_ip_v4(rng) if rng.random() < 0.5 else pop.address_in(rng, pop.HOSTING_NETWORK)
        b = _Builder(self, rng, Party(key, "cookie-dropper-v4", True, False, ip, ua))
        tag = _tag_fields((1920, 1080, 1.0), False) if rng.random() < 0.5 else None
        b.hits(rng.randint(12, 30), lambda r: r.uniform(0.45, 0.55), tag)
        return b.party

    def _cookie_dropper_v6(self, rng: random.Random, key: str) -> Party:
        """The same, five requests a second, each from another address of one IPv6 /64."""
        ua = rng.choice(pop.CURRENT_CHROME_UAS)
        net = ipaddress.ip_network(pop.address_in(rng, pop.pick(rng, pop.HUMAN_V6_NETWORKS)) + "/64", strict=False)
        b = _Builder(self, rng, Party(key, "cookie-dropper-v6", True, False, str(net.network_address), ua))
        tag = _tag_fields((1920, 1080, 1.0), False) if rng.random() < 0.5 else None
        b.hits(rng.randint(20, 60), lambda r: r.uniform(0.18, 0.22), tag, ips=lambda r: pop.address_in(r, str(net)))
        return b.party

    def _monitor(self, rng: random.Random, key: str) -> Party:
        """A synthetic uptime/browser check from a hosting network: the same page loaded in a fresh
        browser (no cookie kept) at a fixed period."""
        ua = rng.choice(pop.MONITOR_UAS)
        b = _Builder(self, rng, Party(key, "monitor", True, False, pop.address_in(rng, pop.HOSTING_NETWORK), ua))
        period = rng.uniform(2.0, min(5.0, self.timing.max_step_s))
        url = pop.SITE + rng.choice(("/", "/c/shoes", "/health"))
        b.hits(rng.randint(4, 10), lambda r: period + r.uniform(-0.02, 0.02), _tag_fields((1280, 720, 1.0), False),
               engage=untouched, page=lambda r: url)
        return b.party

    def _lighthouse(self, rng: random.Random, key: str) -> Party:
        """A performance audit (Lighthouse, PageSpeed Insights): one or two cold loads of a page in an
        emulated phone, nothing touched, from Google's network or a developer's own line."""
        ua = rng.choice(pop.LIGHTHOUSE_UAS)
        ip = pop.address_in(rng, pop.HOSTING_NETWORK) if "Page Speed" in ua or rng.random() < 0.5 else pop.human_ip(rng)
        b = _Builder(self, rng, Party(key, "lighthouse", True, False, ip, ua))
        url = pop.page_url(rng, pop.pick(rng, pop.LANDING))
        b.hits(rng.randint(1, 2), lambda r: r.uniform(3.0, min(8.0, self.timing.max_step_s)),
               _tag_fields((412, 823, 1.75), False), engage=untouched, page=lambda r: url)
        return b.party

    def _spoofed_googlebot(self, rng: random.Random, key: str) -> Party:
        """A scraper calling itself Googlebot, from an address that is not Google's."""
        ua = rng.choice(pop.GOOGLEBOT_UAS)
        ip = pop.human_ip(rng) if rng.random() < 0.5 else pop.address_in(rng, pop.HOSTING_NETWORK)
        b = _Builder(self, rng, Party(key, "spoofed-googlebot", True, False, ip, ua))
        tag = _tag_fields((1024, 1024, 1.0), False) if rng.random() < 0.5 else None
        b.hits(rng.randint(3, 15), lambda r: r.uniform(0.3, 2.0), tag, engage=untouched)
        return b.party

    def _googlebot(self, rng: random.Random, key: str) -> Party:
        """Google's crawler from Google's published Googlebot ranges, rendering pages (so the tag runs)."""
        ua = rng.choice(pop.GOOGLEBOT_UAS)
        b = _Builder(self, rng, Party(key, "googlebot", True, False, pop.address_in(rng, pop.GOOGLEBOT_NETWORK), ua))
        step = min(3.0, self.timing.max_step_s)
        b.hits(rng.randint(3, 15), lambda r: r.uniform(step / 3, step), _tag_fields((1024, 1024, 1.0), False),
               engage=untouched)
        return b.party

    # --- the rest: declared crawlers, automation that names itself, scrapers, pixel hits ---

    def _crawler(self, rng: random.Random, key: str) -> Party:
        """A declared search, SEO or AI crawler (not Google) rendering pages, keeping no cookies."""
        ua = rng.choice(pop.CRAWLER_UAS)
        ip = pop.address_in(rng, rng.choice(pop.CRAWLER_NETWORKS))
        b = _Builder(self, rng, Party(key, "crawler", True, False, ip, ua))
        step = min(3.0, self.timing.max_step_s)
        b.hits(rng.randint(3, 15), lambda r: r.uniform(step / 3, step), _tag_fields((1024, 1024, 1.0), False),
               engage=untouched)
        return b.party

    def _headless(self, rng: random.Random, key: str) -> Party:
        """Automation (Puppeteer/Selenium style): HeadlessChrome in the UA, or webdriver=true, or both."""
        variant = rng.random()
        headless_ua = variant < 0.6
        ua = rng.choice(pop.HEADLESS_UAS) if headless_ua else rng.choice(pop.DESKTOP_UAS)
        webdriver = not headless_ua or variant < 0.3
        b = _Builder(self, rng, Party(key, "headless", True, True, pop.human_ip(rng), ua))
        kind, url, _ = self._landing(rng)
        b.walk(0.0, 0, kind, url, None, _tag_fields((1280, 720, 1.0), webdriver), EVENTS, rng.randint(5, 25),
               lambda r: r.uniform(0.3, 1.5), untouched, custom=True)
        return b.party

    def _scraper(self, rng: random.Random, key: str) -> Party:
        """A fast scraper from a hosting network with a browser UA, fetching pages and their
        <noscript> pixel several times a second; half keep cookies."""
        b = _Builder(self, rng, Party(key, "scraper", True, rng.random() < 0.5,
                                      pop.address_in(rng, pop.HOSTING_NETWORK), rng.choice(pop.DESKTOP_UAS)))
        b.hits(rng.randint(15, 60), lambda r: r.uniform(0.05, 0.3), None)
        return b.party

    def _pixel_bot(self, rng: random.Random, key: str) -> Party:
        """A script fetching page after page with their <noscript> pixel and no JavaScript, faster
        than anyone reads (every 0.3-1 s), from a residential network, with cookies (click fraud,
        content theft through a residential proxy); one in five sends no User-Agent at all."""
        ua = None if rng.random() < 0.2 else rng.choice(pop.HUMAN_UAS)
        b = _Builder(self, rng, Party(key, "pixel-bot", True, True, pop.human_ip(rng), ua))
        b.hits(rng.randint(8, 25), lambda r: r.uniform(0.3, 1.0), None)
        return b.party


def _clicked(stay: float, rng: random.Random, touch: bool) -> dict:
    """A route change's page in a burst: the click (or tap) on the next filter, little else."""
    return interaction(pointer=1, touch=1 if touch else 0, scrolls=rng.choice((0, 0, 1)), visible_s=stay)


def _tag_fields(screen: tuple[int, int, float], webdriver: bool) -> dict:
    w, h, dpr = screen
    return {"screen_width": w, "screen_height": h, "viewport_width": w, "viewport_height": max(h - 120, 100),
            "device_pixel_ratio": dpr, "webdriver": webdriver}


def pixel_query(event: dict, via_tag: bool) -> str:
    """The query string of a pixel request carrying ``event`` (the tag's fallback adds ``via=tag``
    and sends the interaction object as JSON text)."""
    fields = [("via", "tag")] if via_tag else []
    for name, value in event.items():
        if name == "params":
            fields += [(f"params.{k}", v) for k, v in value.items()]
        elif name == "interaction":
            fields.append((name, json.dumps(value, separators=(",", ":"))))
        elif isinstance(value, bool):
            fields.append((name, "true" if value else "false"))
        else:
            fields.append((name, value))
    return urlencode(fields)
