"""Send a plan to a real collector over HTTP, at a rate, for a duration; record what was accepted.

Every party plays its requests in order, each at its planned time (or as soon as the
previous one is answered, if that is later): a browser does not overlap its own requests,
and a new visitor's second request must carry the cookie the first one received. Parties
that keep cookies send the collector's party cookie back; the others never send one. The
client hints of Chromium-based browsers travel as their headers; the client IP (the party's,
or the request's own for a client rotating addresses) in ``X-Forwarded-For``, so the collector
must trust one proxy hop (``CLICKPIPE_COLLECTOR_TRUSTED_HOPS=1``) to attribute it; everything
stays on the given URL.

Bounds: at most ``concurrency`` requests in flight; every request has a timeout; a 503
(backpressure) is retried at most :data:`RETRIES` times after its Retry-After; no request
is started after ``duration`` and the run waits at most ``drain_s`` for parties still playing.
A party whose planned requests would not all fit before the end is not started, so every
party in the ground truth is complete (a pixel bot cut after two hits would look human to
any rule); the achieved rate therefore tapers off in the last party lifetime of a run.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import aiohttp

from simulate.plan import EVENTS, TAG_PIXEL, Party, Request, pixel_query
from simulate.truth import TruthWriter

RETRIES = 2
REQUEST_TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 10.0
LAG_SAMPLE = 100_000  # lags kept for the p99: the latest requests (an endless run must not grow)


@dataclass
class Stats:
    """Counters of one run (events are counted once per event id unless said otherwise)."""

    parties: int = 0
    requests: int = 0
    accepted: int = 0  # distinct events the collector accepted
    resent: int = 0  # accepted copies of events sent before (duplicates)
    failed: int = 0  # events not accepted (rejected, 5xx after retries, network errors)
    retries: int = 0
    lag_max_s: float = 0.0  # worst delay of a request behind its planned time
    lags: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LAG_SAMPLE))  # latest only
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LAG_SAMPLE))
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        def p99(values) -> float:
            ordered = sorted(values)
            return round(ordered[int(0.99 * (len(ordered) - 1))], 3) if ordered else 0.0

        return {"parties": self.parties, "requests": self.requests, "accepted": self.accepted, "resent": self.resent,
                "failed": self.failed, "retries": self.retries, "elapsed_s": round(self.elapsed_s, 2),
                "events_per_s": round((self.accepted + self.resent) / self.elapsed_s, 1) if self.elapsed_s else 0.0,
                "lag_p99_s": p99(self.lags), "lag_max_s": round(self.lag_max_s, 3),
                "response_p99_s": p99(self.latencies), "response_max_s": round(max(self.latencies, default=0.0), 3)}


class Sender:
    """Plays parties against ``url`` (the collector's base URL)."""

    def __init__(self, url: str, session: aiohttp.ClientSession, cookie_name: str, stats: Stats,
                 concurrency: int):
        self.url = url.rstrip("/")
        self.session = session
        self.cookie_name = cookie_name
        self.stats = stats
        self.slots = asyncio.Semaphore(concurrency)

    async def play(self, party: Party, t0: float, deadline: float) -> dict:
        """Send the party's requests; returns its ground-truth line (sessions of accepted events)."""
        cookie: str | None = None
        accepted: set[str] = set()
        failed: set[str] = set()
        resent = 0
        for request in party.requests:
            due = t0 + party.start + request.at
            if due > deadline:
                break
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            lag = max(0.0, time.monotonic() - due)
            self.stats.lags.append(lag)
            self.stats.lag_max_s = max(self.stats.lag_max_s, lag)
            ok, new_cookie = await self.send(party, request, cookie)
            if party.cookies and new_cookie:
                cookie = new_cookie
            for event in request.events:
                event_id = event["event_id"]
                if event_id in ok:
                    resent += event_id in accepted
                    accepted.add(event_id)
                    failed.discard(event_id)
                elif event_id not in accepted:
                    failed.add(event_id)
        self.stats.parties += 1
        self.stats.accepted += len(accepted)
        self.stats.resent += resent
        self.stats.failed += len(failed)
        return {"key": party.key, "kind": party.kind, "bot": party.bot, "cookies": party.cookies, "ip": party.ip,
                "ips": party.ips, "user_agent": party.user_agent, "sessions": party.sessions(accepted),
                "resent": resent, "failed": len(failed)}

    def _headers(self, party: Party, request: Request, cookie: str | None) -> dict[str, str]:
        headers = {"X-Forwarded-For": request.ip or party.ip, "User-Agent": party.user_agent or "", **party.hints}
        if cookie:
            headers["Cookie"] = f"{self.cookie_name}={cookie}"
        return headers

    async def send(self, party: Party, request: Request, cookie: str | None) -> tuple[set[str], str | None]:
        """One request (with bounded retries on 503); returns (accepted event ids, party cookie set)."""
        headers = self._headers(party, request, cookie)
        ids = [e["event_id"] for e in request.events]
        if request.transport == EVENTS:
            now_ms = int(time.time() * 1000)
            events = [{**e, "client_time": now_ms} for e in request.events]
            method, url, data = "POST", self.url + "/events?via=tag", json.dumps(events)
            headers["Content-Type"] = "application/json"
        else:
            query = pixel_query(request.events[0], via_tag=request.transport == TAG_PIXEL)
            method, url, data = "GET", self.url + "/p.gif?" + query, None
        for attempt in range(RETRIES + 1):
            async with self.slots:
                self.stats.requests += 1
                sent_at = time.monotonic()
                try:
                    async with self.session.request(method, url, data=data, headers=headers) as resp:
                        body = await resp.read()
                        morsel = resp.cookies.get(self.cookie_name)
                        new_cookie = morsel.value if morsel is not None else None
                        status, retry_after = resp.status, resp.headers.get("Retry-After")
                        rejected_header = resp.headers.get("X-Clickpipe-Rejected")
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    return set(), None
                finally:
                    self.stats.latencies.append(time.monotonic() - sent_at)
            if status == 503 and attempt < RETRIES:
                self.stats.retries += 1
                await asyncio.sleep(float(retry_after or 1))
                continue
            if status != 200:
                return set(), new_cookie
            if request.transport != EVENTS:
                return (set() if rejected_header else set(ids)), new_cookie
            answer = json.loads(body)
            refused = {ids[r["index"]] for r in answer.get("rejected", ())}
            return set(ids) - refused, new_cookie
        return set(), None


async def _run(parties: Iterator[Party], url: str, duration_s: float, concurrency: int, cookie_name: str,
               truth: TruthWriter | None, drain_s: float, log: Callable[[str], None]) -> Stats:
    stats = Stats()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(),
                                     skip_auto_headers=("User-Agent",)) as session:
        sender = Sender(url, session, cookie_name, stats, concurrency)
        t0 = time.monotonic()
        deadline = t0 + duration_s
        tasks: set[asyncio.Task] = set()
        next_progress = t0 + PROGRESS_EVERY_S

        async def play(party: Party) -> None:
            line = await sender.play(party, t0, deadline)
            if truth is not None:
                truth.party(line)

        for party in parties:
            start = t0 + party.start
            if start > deadline:
                break
            if start + party.duration > deadline:
                continue  # would be cut short: its ground truth would describe behaviour it never showed
            while time.monotonic() < start:
                await asyncio.sleep(min(start - time.monotonic(), 1.0))
                if time.monotonic() >= next_progress:
                    next_progress += PROGRESS_EVERY_S
                    log(f"[simulate] {time.monotonic() - t0:.0f}s: {stats.requests} requests, "
                        f"{stats.accepted} events done, {len(tasks)} parties playing")
            task = asyncio.create_task(play(party))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        remaining = max(0.0, deadline - time.monotonic())
        if tasks:
            done, pending = await asyncio.wait(set(tasks), timeout=remaining + drain_s)
            for task in pending:
                task.cancel()
            for task in done:
                exc = task.exception()
                if exc is not None:
                    raise exc
        if time.monotonic() < deadline:  # the run lasts its duration even if the plan ran out early
            await asyncio.sleep(deadline - time.monotonic())
        stats.elapsed_s = min(time.monotonic(), deadline) - t0
    return stats


def run(parties: Iterator[Party], url: str, duration_s: float, concurrency: int, cookie_name: str,
        truth: TruthWriter | None = None, drain_s: float = 2 * REQUEST_TIMEOUT_S,
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> Stats:
    """Play ``parties`` (planned with start times) against ``url`` for ``duration_s`` seconds.

    Writes one ground-truth line per party to ``truth`` when the party is done. Returns the
    counters; raises nothing for HTTP failures (they are counted as failed events).
    """
    return asyncio.run(_run(parties, url, duration_s, concurrency, cookie_name, truth, drain_s, log))
