"""A deterministic stream of simulated parties: their requests, events and expected sessions.

A *party* is one client as the simulation knows it: a browser with its cookie, a crawler,
a script. Given the same seed, run id and timing, :class:`Planner` produces the same parties
with the same requests at the same offsets, so a run can be reproduced and a plan can be
checked without any service running.

Session boundaries in real time
-------------------------------
The collector stamps ``server_time`` itself, so the pipeline separates sessions by real gaps
of more than ``session_gap_seconds`` (``CLICKPIPE_SESSION_GAP_SECONDS``). A short run cannot
contain 30-minute gaps, so evaluation runs configure a short gap (tens of seconds) for the
worker, and the plan is built from the same :class:`Timing`:

- inside a visit, consecutive requests of a party are at most ``gap / 3`` apart, which
  leaves two thirds of the gap for delivery delays;
- visits of one party are separated by more than ``gap + sweep + margin``: the worker's
  idle sweep (every ``CLICKPIPE_SESSION_SWEEP_SECONDS``) has then closed the session and
  cleared the party's bot counters before the next visit starts, as it would after a real
  absence.

Expected sessions (:meth:`Party.sessions`) therefore follow the pipeline's gap rule: one per
visit of a party that keeps its cookie, and one per request of a party that does not (the
collector gives each cookie-less request a new party id). Campaign parameters appear only on
a visit's landing URL, so the pipeline's campaign split never cuts a visit.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlencode

from simulate import population as pop

EVENTS = "events"  # POST /events?via=tag, JSON batch, as the tag sends
PIXEL = "pixel"  # GET /p.gif, one event in the query, as a <noscript> image or a bare fetch

HUMAN_KINDS = ("human", "human-nojs")
BOT_KINDS = ("crawler", "headless", "scraper", "pixel-bot")
KINDS = HUMAN_KINDS + BOT_KINDS

MAX_PAGES_PER_VISIT = 10
MAX_VISITS = 4
MIN_DWELL_S = 1.5  # keeps a human far below the per-party rate rule even in a fast run


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
    human_weights: tuple[tuple[str, float], ...] = (("human", 0.95), ("human-nojs", 0.05))
    bot_weights: tuple[tuple[str, float], ...] = (("crawler", 0.3), ("headless", 0.2), ("scraper", 0.2),
                                                  ("pixel-bot", 0.3))

    def __post_init__(self):
        if not 0 <= self.bot_share <= 1:
            raise ValueError(f"bot share must be within [0, 1], not {self.bot_share}")


@dataclass(frozen=True)
class Request:
    """One HTTP request of a party, ``at`` seconds after the party's start.

    ``events`` are sender fields as the collector documents them (collector/openapi.yaml);
    ``session`` numbers the expected session the events belong to; a ``resend`` repeats the
    previous request's events unchanged, as the tag does when a response is lost.
    """

    at: float
    transport: str
    events: tuple[dict, ...]
    session: int
    resend: bool = False


@dataclass
class Party:
    """One simulated client: what it is (``kind``, ``bot``), how it looks on the wire, what it sends."""

    key: str
    kind: str
    bot: bool
    cookies: bool
    ip: str
    user_agent: str | None
    requests: list[Request] = field(default_factory=list)
    start: float = 0.0  # seconds after the run's start (set by Planner.parties)

    @property
    def event_ids(self) -> list[str]:
        """Every distinct event id, in sending order."""
        return [e["event_id"] for r in self.requests if not r.resend for e in r.events]

    @property
    def duration(self) -> float:
        """Seconds from the party's first request to its last."""
        return max((r.at for r in self.requests), default=0.0)

    def sessions(self, accepted: set[str] | None = None) -> list[list[str]]:
        """Expected sessions as lists of event ids, restricted to ``accepted`` if given."""
        grouped: dict[int, list[str]] = {}
        for r in self.requests:
            if r.resend:
                continue
            ids = [e["event_id"] for e in r.events if accepted is None or e["event_id"] in accepted]
            if ids:
                grouped.setdefault(r.session, []).extend(ids)
        return list(grouped.values())


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
        if self.party.cookies and len(requests) > 1 and self.rng.random() < self.planner.resend_rate:
            requests.append(Request(request.at + 0.05, request.transport, request.events, request.session,
                                    resend=True))

    def walk(self, t: float, session: int, kind: str, url: str, referrer: str | None, tag: dict | None,
             max_pages: int, pause, custom: bool) -> float:
        """One visit along the site graph from ``url`` (a page of ``kind``); returns the last page's time.

        ``tag`` holds the tag's device fields (None: pixel requests without JavaScript);
        ``pause(rng)`` gives the time spent on a page; with ``custom``, custom events of the
        page kind happen while on the page.
        """
        rng = self.rng
        visit_id = self.id("v")
        for page in range(max_pages):
            pv = self.id("pv")
            view = {"event_type": "pageView", "event_id": self.id(), "location": url}
            if referrer is not None:
                view["referrer"] = referrer
            if tag is not None:
                view.update(tag, page_view_id=pv, session_id=visit_id)
            self.add(Request(t, EVENTS if tag is not None else PIXEL, (view,), session))
            stay = pause(rng)
            if custom and tag is not None:
                chosen = [e for e, p in pop.CUSTOM_EVENTS.get(kind, ()) if rng.random() < p]
                offsets = sorted(rng.uniform(0.2, 0.9) for _ in chosen)
                for event_type, offset in zip(chosen, offsets, strict=False):
                    event = {"event_type": event_type, "event_id": self.id(), "location": url,
                             "page_view_id": pv, "session_id": visit_id,
                             "params": pop.custom_params(rng, event_type, url), **tag}
                    self.add(Request(t + offset * stay, EVENTS, (event,), session))
            if page == max_pages - 1:
                return t
            if kind in pop.SPA_KINDS and rng.random() < pop.SPA_SHARE:
                referrer, url = url, pop.spa_url(rng, url)  # same kind of page, new route
            else:
                nxt = pop.pick(rng, pop.SITE_GRAPH[kind])
                if nxt == "exit":
                    return t
                referrer, kind, url = url, nxt, pop.page_url(rng, nxt)
            t += stay
        return t

    def hits(self, count: int, pause, tag: dict | None) -> None:
        """``count`` pages fetched one after another, ``pause(rng)`` apart (bots)."""
        rng, t = self.rng, 0.0
        for i in range(count):
            kind = pop.pick(rng, pop.LANDING)
            event = {"event_type": "pageView", "event_id": self.id(), "location": pop.page_url(rng, kind)}
            if tag is not None:
                event.update(tag, page_view_id=self.id("pv"))
            session = 0 if self.party.cookies else i
            self.add(Request(t, EVENTS if tag is not None else PIXEL, (event,), session))
            t += pause(rng)


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
        return getattr(self, "_" + kind.replace("-", "_"))(rng, f"p{index:06d}")

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
    def _device(rng: random.Random) -> tuple[str, dict]:
        """A human device: user agent and the tag's screen fields."""
        device = "desktop" if rng.random() < 0.55 else "mobile"
        ua = rng.choice(pop.DESKTOP_UAS if device == "desktop" else pop.MOBILE_UAS)
        return ua, _tag_fields(rng.choice(pop.SCREENS[device]), webdriver=False)

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

    # --- party kinds: one method each, named after the kind --------------------------------

    def _human(self, rng: random.Random, key: str) -> Party:
        """A browser running the tag: 1-4 visits (returning visitor), pages, SPA views, custom events."""
        ua, tag = self._device(rng)
        b = _Builder(self, rng, Party(key, "human", False, True, pop.human_ip(rng), ua))
        visits = 1
        while visits < MAX_VISITS and rng.random() < 0.3:
            visits += 1
        t = 0.0
        for visit in range(visits):
            kind, url, referrer = self._landing(rng)
            t = b.walk(t, visit, kind, url, referrer, tag, MAX_PAGES_PER_VISIT, self.timing.dwell, custom=True)
            t += self.timing.visit_separation(rng)
        return b.party

    def _human_nojs(self, rng: random.Random, key: str) -> Party:
        """A browser without JavaScript: the <noscript> pixel on one or two pages of one visit.

        At most two: the pipeline calls the third pixel hit of a party never seen with the
        tag a bot (``bot_pixel_only_events``, default 3).
        """
        ua, _ = self._device(rng)
        b = _Builder(self, rng, Party(key, "human-nojs", False, True, pop.human_ip(rng), ua))
        kind, url, referrer = self._landing(rng)
        b.walk(0.0, 0, kind, url, referrer, None, 2, self.timing.dwell, custom=False)
        return b.party

    def _crawler(self, rng: random.Random, key: str) -> Party:
        """A declared search or AI crawler rendering pages (so the tag runs), keeping no cookies."""
        ua = rng.choice(pop.CRAWLER_UAS)
        network = pop.DATACENTER_NETWORK if "Googlebot" in ua else rng.choice(pop.CRAWLER_NETWORKS[1:])
        b = _Builder(self, rng, Party(key, "crawler", True, False, pop.address_in(rng, network), ua))
        step = min(3.0, self.timing.max_step_s)
        b.hits(rng.randint(3, 15), lambda r: r.uniform(step / 3, step), _tag_fields((1024, 1024, 1.0), False))
        return b.party

    def _headless(self, rng: random.Random, key: str) -> Party:
        """Automation (Puppeteer/Selenium style): HeadlessChrome in the UA, or webdriver=true, or both."""
        variant = rng.random()
        headless_ua = variant < 0.6
        ua = rng.choice(pop.HEADLESS_UAS) if headless_ua else rng.choice(pop.DESKTOP_UAS)
        webdriver = not headless_ua or variant < 0.3
        b = _Builder(self, rng, Party(key, "headless", True, True, pop.human_ip(rng), ua))
        kind, url, _ = self._landing(rng)
        b.walk(0.0, 0, kind, url, None, _tag_fields((1280, 720, 1.0), webdriver), rng.randint(5, 25),
               lambda r: r.uniform(0.3, 1.5), custom=True)
        return b.party

    def _scraper(self, rng: random.Random, key: str) -> Party:
        """A fast scraper from a data-centre network with a browser UA, fetching pages and their
        <noscript> pixel several times a second; half keep cookies."""
        b = _Builder(self, rng, Party(key, "scraper", True, rng.random() < 0.5,
                                      pop.address_in(rng, pop.DATACENTER_NETWORK), rng.choice(pop.DESKTOP_UAS)))
        b.hits(rng.randint(15, 60), lambda r: r.uniform(0.05, 0.3), None)
        return b.party

    def _pixel_bot(self, rng: random.Random, key: str) -> Party:
        """Pixel-only hits from a residential network (image prefetchers, click fraud), with cookies;
        one in five sends no User-Agent at all."""
        ua = None if rng.random() < 0.2 else rng.choice(pop.HUMAN_UAS)
        b = _Builder(self, rng, Party(key, "pixel-bot", True, True, pop.human_ip(rng), ua))
        step = min(3.0, self.timing.max_step_s)
        b.hits(rng.randint(3, 8), lambda r: r.uniform(0.5, step), None)
        return b.party


def _tag_fields(screen: tuple[int, int, float], webdriver: bool) -> dict:
    w, h, dpr = screen
    return {"screen_width": w, "screen_height": h, "viewport_width": w, "viewport_height": max(h - 120, 100),
            "device_pixel_ratio": dpr, "webdriver": webdriver}
