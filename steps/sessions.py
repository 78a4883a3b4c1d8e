"""Server-side sessionization on event time (``server_time``, the collector's clock).

A party's open session ends when

- the next event comes more than ``session_gap_seconds`` after the session's latest event (``gap``),
- the next event comes ``session_cap_seconds`` or more after the session's start (``cap``),
- the next event carries a campaign (utm source/medium/campaign) different from the
  session's, if ``session_split_on_campaign`` (``campaign``),
- or a sweep at wall-clock time ``now`` finds it idle for more than the gap or older than the
  cap (``idle`` / ``cap``).

The closing event starts the next session. Each click gets ``session_id`` (derived from the
party and the opening event id, so reprocessing gives the same id), ``session_seq`` (1-based,
processing order) and ``first_in_session``. Closed sessions are appended to ``ctx.sessions``
as Session records, human: the bots step, which runs after this one, gives them their verdict.

Out-of-order events (earlier than the session's latest) join the open session and may move
its start and landing page earlier. An event earlier than the open session's start by more
than the gap belongs to a session that is already closed: it is counted in the open session
(sequence, counts) without moving its start, end, landing or exit page.

State: ``party["session"]``, a dict with short keys (it is stored once per event).
"""

from __future__ import annotations

import uuid
from typing import Any

from steps import Context, Record

KEY = "session"
PAGE_VIEW = "pageView"
_NAMESPACE = uuid.UUID("6f1c7a53-3b5e-4f0e-9a59-0d4c3c1e5a11")
_CAMPAIGN = ("utm_source", "utm_medium", "utm_campaign")
_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


def session_id(party_id: str, first_event_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{party_id}\x00{first_event_id}"))


def _campaign(record: Record) -> list[str | None] | None:
    values = [record.get(name) for name in _CAMPAIGN]
    return values if any(values) else None


class Sessions:
    reads = frozenset({"server_time", "party_id", "event_id", "event_type", "location", "referrer"})
    # what the Session record carries from its first event, when the pipeline computes it
    reads_if_present = frozenset({"referrer_class", "referrer_source", *_UTM, "geo_country", "geo_region",
                                  "geo_city", "device_class", "ua_family", "os_family"})
    writes = frozenset({"session_id", "session_seq", "first_in_session"})

    def __init__(self, gap_ms: int, cap_ms: int, split_on_campaign: bool):
        self.gap_ms = gap_ms
        self.cap_ms = cap_ms
        self.split_on_campaign = split_on_campaign

    def __call__(self, record: Record, ctx: Context) -> Record:
        t = record["server_time"]
        s = ctx.party.get(KEY)
        if s is not None:
            reason = self._close_reason(s, record, t)
            if reason is not None:
                ctx.sessions.append(self._closed(s, reason))
                s = None
        if s is None:
            s = self._open(record, t)
            ctx.party[KEY] = s
        else:
            self._add(s, record, t)
        record["session_id"] = s["id"]
        record["session_seq"] = s["seq"]
        record["first_in_session"] = s["seq"] == 1
        return record

    def _close_reason(self, s: dict[str, Any], record: Record, t: int) -> str | None:
        if t - s["last"] > self.gap_ms:
            return "gap"
        if t - s["start"] >= self.cap_ms:
            return "cap"
        if self.split_on_campaign:
            campaign = _campaign(record)
            if campaign is not None and campaign != s["camp"]:
                return "campaign"
        return None

    def _open(self, record: Record, t: int) -> dict[str, Any]:
        page = record.get("location") if record["event_type"] == PAGE_VIEW else None
        return {
            "id": session_id(record["party_id"], record["event_id"]), "party": record["party_id"],
            "start": t, "last": t, "seq": 1, "ev": 1, "pv": int(page is not None),
            "land": page, "land_t": t if page else None, "exit": page, "exit_t": t if page else None,
            "ref": record.get("referrer"), "rc": record.get("referrer_class", "direct"),
            "rs": record.get("referrer_source"),
            "utm": [record.get(name) for name in _UTM], "camp": _campaign(record),
            "geo": [record.get("geo_country"), record.get("geo_region"), record.get("geo_city")],
            "dev": [record.get("device_class", "unknown"), record.get("ua_family"), record.get("os_family")],
        }

    def _add(self, s: dict[str, Any], record: Record, t: int) -> None:
        s["seq"] += 1
        s["ev"] += 1
        page = record.get("location") if record["event_type"] == PAGE_VIEW else None
        if page is not None:
            s["pv"] += 1
        if t < s["start"] - self.gap_ms:
            return  # late: its own session was closed long ago; counted, never reshapes this one
        s["start"] = min(s["start"], t)
        s["last"] = max(s["last"], t)
        if page is not None:
            if s["land_t"] is None or t < s["land_t"]:
                s["land"], s["land_t"] = page, t
            if s["exit_t"] is None or t >= s["exit_t"]:
                s["exit"], s["exit_t"] = page, t

    def _closed(self, s: dict[str, Any], reason: str) -> Record:
        utm = s["utm"]
        return {
            "session_id": s["id"], "party_id": s["party"],
            "start_time": s["start"], "end_time": s["last"], "duration_ms": s["last"] - s["start"],
            "page_views": s["pv"], "events": s["ev"], "landing_page": s["land"], "exit_page": s["exit"],
            "entry_referrer": s["ref"], "referrer_class": s["rc"], "referrer_source": s["rs"],
            "utm_source": utm[0], "utm_medium": utm[1], "utm_campaign": utm[2], "utm_term": utm[3],
            "utm_content": utm[4],
            "geo_country": s["geo"][0], "geo_region": s["geo"][1], "geo_city": s["geo"][2],
            "device_class": s["dev"][0], "ua_family": s["dev"][1], "os_family": s["dev"][2],
            "bounce": s["ev"] <= 1, "is_bot": False, "bot_reason": None, "close_reason": reason,
        }

    def _idle_reason(self, s: dict[str, Any], now_ms: int) -> str | None:
        if now_ms - s["last"] > self.gap_ms:
            return "idle"
        if now_ms - s["start"] >= self.cap_ms:
            return "cap"
        return None

    def due_at(self, state: dict[str, Any]) -> int | None:
        """The earliest sweep time that closes the open session (idle past the gap, or at the cap)."""
        s = state.get(KEY)
        return None if s is None else min(s["last"] + self.gap_ms + 1, s["start"] + self.cap_ms)

    def sweep(self, ctx: Context, now_ms: int) -> None:
        s = ctx.party.get(KEY)
        if s is None:
            return
        reason = self._idle_reason(s, now_ms)
        if reason is not None:
            ctx.sessions.append(self._closed(s, reason))
            del ctx.party[KEY]


def build(settings) -> Sessions:
    return Sessions(settings.session_gap_seconds * 1000, settings.session_cap_seconds * 1000,
                    settings.session_split_on_campaign)
