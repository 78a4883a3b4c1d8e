"""User agent to browser, OS and device class, through :mod:`ua_parser` with an LRU cache.

Strings longer than :data:`MAX_UA_LENGTH` are parsed (and cached) by their prefix: real user
agents are far shorter and regexes on megabyte strings would stall the stream.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import ua_parser

from steps import Context, Record

MAX_UA_LENGTH = 1024
MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS", "Symbian OS",
                       "webOS", "Tizen", "HarmonyOS"})
DESKTOP_OS = frozenset({"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Chrome OS", "ChromeOS", "Fedora",
                        "Debian", "FreeBSD", "OpenBSD", "NetBSD", "Red Hat", "SUSE", "Solaris"})
TABLET_DEVICES = ("iPad", "Kindle", "Tablet", "Nexus 7", "Nexus 9", "Nexus 10", "Galaxy Tab", "SM-T")


class UserAgentInfo(NamedTuple):
    ua_family: str | None = None
    ua_version: str | None = None
    os_family: str | None = None
    os_version: str | None = None
    device_family: str | None = None
    device_class: str = "unknown"


NO_UA = UserAgentInfo()


def _version(major: str | None, minor: str | None) -> str | None:
    if not major:
        return None
    return f"{major}.{minor}" if minor else major


def device_class(ua: str, os_family: str | None, device_family: str | None) -> str:
    """desktop, mobile, tablet, bot or unknown (same rules as the user-agents package, on ua-parser output)."""
    if device_family == "Spider":
        return "bot"
    if device_family and device_family.startswith(TABLET_DEVICES) or "Tablet" in ua:
        return "tablet"
    if os_family == "Android" and "Mobile" not in ua:
        return "tablet"
    if os_family in MOBILE_OS or "Mobile" in ua or "Mobi" in ua:
        return "mobile"
    if os_family in DESKTOP_OS:
        return "desktop"
    return "unknown"


def _parse(ua: str) -> UserAgentInfo:
    result = ua_parser.parse(ua)
    agent, os_, device = result.user_agent, result.os, result.device
    os_family = os_.family if os_ else None
    device_family = device.family if device else None
    return UserAgentInfo(
        ua_family=agent.family if agent else None,
        ua_version=_version(agent.major, agent.minor) if agent else None,
        os_family=os_family,
        os_version=_version(os_.major, os_.minor) if os_ else None,
        device_family=device_family,
        device_class=device_class(ua, os_family, device_family),
    )


class UserAgentParser:
    """Cached ``str -> UserAgentInfo``; empty or missing strings give :data:`NO_UA`."""

    def __init__(self, cache_size: int):
        self._cached = functools.lru_cache(maxsize=cache_size)(_parse)

    def parse(self, ua: str | None) -> UserAgentInfo:
        if not ua or not ua.strip():
            return NO_UA
        return self._cached(ua[:MAX_UA_LENGTH])


class UserAgent:
    """Step: sets ua_family, ua_version, os_family, os_version, device_family, device_class."""

    reads = frozenset({"user_agent"})
    reads_if_present: frozenset[str] = frozenset()
    writes = frozenset(UserAgentInfo._fields)

    def __init__(self, parser: UserAgentParser):
        self.parser = parser

    def __call__(self, record: Record, ctx: Context) -> Record:
        info = self.parser.parse(record.get("user_agent"))
        record["ua_family"], record["ua_version"], record["os_family"], record["os_version"], \
            record["device_family"], record["device_class"] = info
        return record


def build(settings) -> UserAgent:
    return UserAgent(UserAgentParser(settings.ua_cache_size))
