"""What every collecting endpoint shares: who is asking, may we store it, and accepting it.

Plain functions of request values where possible; :class:`Intake` binds them to the
settings, the sink and the duplicate memory of one worker.
"""

from __future__ import annotations

import base64
import time
from functools import lru_cache

import falcon
from falcon.uri import decode

from clickpipe.config import Settings
from collector import metrics
from collector.dedup import DuplicateMemory
from collector.ids import is_valid_id, new_party_id
from collector.mapping import MAX_CLIENT_HINT, Context
from collector.network import anonymize, client_ip
from collector.sink import Sink
from steps.signals import address_key

SOURCES = ("tag", "pixel", "batch", "divolte")
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
MAX_QUERY_FIELDS = 200
RETRY_AFTER_SECONDS = "1"


def query_pairs(query_string: str) -> list[tuple[str, str]] | None:
    """Decoded query pairs in order (blank values kept); None if there are too many.

    The same pairs as ``urllib.parse.parse_qsl(query_string, keep_blank_values=True)``
    (tests/collector/test_collector_fuzz.py proves it), decoded by Falcon's compiled
    :func:`falcon.uri.decode`: a fifth of the cost, on the path of every pixel.
    """
    if query_string.count("&") >= MAX_QUERY_FIELDS:
        return None
    pairs = []
    for field in query_string.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((decode(name), decode(value)))
    return pairs


def cookie_domain(configured: str, host: str) -> str | None:
    """The Domain attribute for ``host``: the configured domain if ``host`` is inside it.

    Otherwise None (a host-only cookie): a cookie for a foreign domain would be dropped by
    the browser and turn every request into a new party (Divolte #140).
    """
    if configured and (host == configured or host.endswith("." + configured)):
        return configured
    return None


def client_hint(value: str | None) -> str | None:
    """A client-hint header as sent, or None when absent or longer than any browser sends."""
    return value if value is not None and len(value) <= MAX_CLIENT_HINT else None


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


# At most four keys: the configured domain or none, over http or https.
@lru_cache(maxsize=8)
def _cookie_attributes(max_age: int, domain: str | None, secure: bool) -> str:
    return (f"; Max-Age={max_age}" + (f"; Domain={domain}" if domain else "") + "; Path=/"
            + ("; Secure" if secure else "") + "; HttpOnly; SameSite=Lax")


class Intake:
    """Request → :class:`Context`, privacy decisions, cookies, and queuing of records."""

    def __init__(self, settings: Settings, sink: Sink):
        self.settings = settings
        self.sink = sink
        self.dedup = DuplicateMemory(settings.collector_dedup_slots)
        # Read once: settings do not change while the worker runs.
        self._party_cookie = settings.collector_party_cookie
        self._optout_cookie = settings.collector_optout_cookie
        self._party_max_age = settings.collector_party_days * 86400
        self._ip = (settings.collector_trusted_hops, settings.collector_anonymize_ip)
        self._accepted = {source: metrics.ACCEPTED.labels(source) for source in SOURCES}

    def ip_of(self, req: falcon.Request) -> str | None:
        hops, anonymized = self._ip
        ip = client_ip(req.remote_addr, req.get_header("X-Forwarded-For") if hops else None, hops)
        return anonymize(ip) if anonymized else ip

    def blocked(self, req: falcon.Request) -> str | None:
        """Why this browser's events must not be stored, or None.

        Opt-out cookie always; Global Privacy Control and Do Not Track when configured.
        """
        s = self.settings
        if req.cookies.get(self._optout_cookie) == "1":
            return "opted_out"
        if s.collector_honor_gpc and req.get_header("Sec-GPC") == "1":
            return "gpc"
        if s.collector_honor_dnt and req.get_header("DNT") == "1":
            return "dnt"
        return None

    def context(self, req: falcon.Request, source: str, no_js: bool = False, with_party: bool = True) -> Context:
        """The collector's view of ``req``; with ``with_party``, the party cookie or a new id."""
        party, new = None, False
        ip = self.ip_of(req)
        if with_party:
            party = req.cookies.get(self._party_cookie)
            if not is_valid_id(party):
                # on the partition of its address: the bots step counts an address's new parties there
                party, new = new_party_id(address_key(ip), self.settings.partitions), True
        return Context(
            server_time=int(time.time() * 1000),
            source=source,
            ip=ip,
            user_agent=req.user_agent,
            party_id=party,
            new_party=new,
            no_js=no_js,
            ch_ua=client_hint(req.get_header("Sec-CH-UA")),
            ch_ua_mobile=client_hint(req.get_header("Sec-CH-UA-Mobile")),
            ch_ua_platform=client_hint(req.get_header("Sec-CH-UA-Platform")),
        )

    def set_party_cookie(self, req: falcon.Request, resp: falcon.Response, party_id: str) -> None:
        """(Re)issue the party cookie: HttpOnly, SameSite=Lax, Secure over https.

        Set by the server, it is not subject to the 7-day cap browsers put on
        script-written cookies; reissuing on every use makes the lifetime sliding. The
        attributes are formatted once per (domain, scheme); the id is a valid cookie value
        (:func:`collector.ids.is_valid_id`), so it needs no quoting.
        """
        configured = self.settings.collector_cookie_domain
        domain = cookie_domain(configured, req.host) if configured else None
        if configured and domain is None:  # a metric, since every request of that host makes a new party
            metrics.COOKIE_DOMAIN_MISMATCH.inc()
        attributes = _cookie_attributes(self._party_max_age, domain, req.scheme == "https")
        resp.append_header("Set-Cookie", f"{self._party_cookie}={party_id}{attributes}")

    async def accept(self, records: list[dict], source: str) -> int:
        """Flag duplicates, queue ``records``; returns how many were queued.

        Raises :class:`collector.sink.Unavailable` when none could be (or, with an
        acknowledgement wait, Kafka did not acknowledge them).
        """
        for r in records:
            if self.dedup.contains(r["party_id"], r["event_id"]):
                r["duplicate"] = True
        queued = await self.sink.send(records)
        duplicates = 0
        for r in records[:queued]:
            self.dedup.remember(r["party_id"], r["event_id"])
            duplicates += r["duplicate"]
        if duplicates:
            metrics.DUPLICATES.inc(duplicates)
        self._accepted[source].inc(queued)
        return queued


def reject(reason: str, count: int = 1) -> None:
    metrics.REJECTED.labels(reason).inc(count)


def backpressure(resp: falcon.Response, events: int = 1, reason: str = "queue_full") -> None:
    """503 with Retry-After: the producer's queue is full, or Kafka did not acknowledge in time."""
    reject(reason, events)
    resp.status = falcon.HTTP_503
    resp.set_header("Retry-After", RETRY_AFTER_SECONDS)
