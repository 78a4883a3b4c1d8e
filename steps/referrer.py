"""Referrer classification: internal, search, social, campaign, direct or other.

Runs after ``urls`` (reads ``url_host`` and ``utm_source``). The first class that applies:

- ``campaign``: the page URL carries a campaign (``utm_source``; source = utm_source);
- ``direct``: no referrer;
- ``internal``: the referrer's host is the page's host (ignoring ``www.``) or one of ``internal_hosts`` (or a
  subdomain of one);
- ``search``: a known search engine (source = its name, ``search_term`` from its query
  parameter when the referrer still carries it);
- ``social``: a known social network (source = its name);
- ``other``: anything else, including unparsable referrers.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import parse_qsl

from steps import Context, Record
from steps.urls import host_of, split

# (host pattern, source name, query parameter holding the search terms)
SEARCH_ENGINES = [
    (re.compile(p), name, param)
    for p, name, param in (
        (r"^(www\.)?google(\.com?)?\.[a-z]{2,3}$", "Google", "q"),
        (r"^(www\.|cn\.)?bing\.com$", "Bing", "q"),
        (r"^([a-z]{2}\.)?search\.yahoo\.(com|co\.jp)$", "Yahoo", "p"),
        (r"^(html\.|lite\.)?duckduckgo\.com$", "DuckDuckGo", "q"),
        (r"^(www\.|m\.)?baidu\.com$", "Baidu", "wd"),
        (r"^(www\.)?(yandex\.[a-z.]+|ya\.ru)$", "Yandex", "text"),
        (r"^(www\.)?ecosia\.org$", "Ecosia", "q"),
        (r"^(www\.)?qwant\.com$", "Qwant", "q"),
        (r"^(www\.)?startpage\.com$", "Startpage", "query"),
        (r"^search\.brave\.com$", "Brave", "q"),
        (r"^(search\.)?naver\.com$", "Naver", "query"),
        (r"^(www\.)?seznam\.cz$", "Seznam", "q"),
    )
]
SOCIAL_NETWORKS = {
    "facebook.com": "Facebook", "fb.com": "Facebook", "messenger.com": "Facebook",
    "twitter.com": "X", "x.com": "X", "t.co": "X",
    "linkedin.com": "LinkedIn", "lnkd.in": "LinkedIn",
    "instagram.com": "Instagram", "reddit.com": "Reddit", "pinterest.com": "Pinterest",
    "youtube.com": "YouTube", "youtu.be": "YouTube", "tiktok.com": "TikTok",
    "news.ycombinator.com": "Hacker News", "mastodon.social": "Mastodon", "bsky.app": "Bluesky",
    "threads.net": "Threads", "vk.com": "VK", "weibo.com": "Weibo", "snapchat.com": "Snapchat",
    "discord.com": "Discord", "t.me": "Telegram", "whatsapp.com": "WhatsApp", "quora.com": "Quora",
}


def _suffixes(host: str):
    """example.co.uk -> example.co.uk, co.uk, uk: lets a table match subdomains."""
    labels = host.split(".")
    return (".".join(labels[i:]) for i in range(len(labels)))


def _bare(host: str | None) -> str | None:
    return host[4:] if host and host.startswith("www.") else host


class Referrer:
    reads = frozenset({"referrer"})
    # the page's host tells internal referrers apart; a utm source makes it a campaign
    reads_if_present = frozenset({"url_host", "utm_source"})
    writes = frozenset({"referrer_class", "referrer_host", "referrer_source", "search_term"})

    def __init__(self, internal_hosts: tuple[str, ...] = (), cache_size: int = 20_000):
        self.internal_hosts = frozenset(internal_hosts)
        # referrers repeat (search engines, social sites, the site's own pages): classify each once
        self.classify = functools.lru_cache(maxsize=cache_size)(self._classify)

    def _classify(self, referrer: str | None, page_host: str | None, utm_source: str | None):
        """``(class, host, source, search_term)`` for a referrer URL seen on ``page_host``."""
        parts = split(referrer)
        host = host_of(parts)
        if utm_source:
            return "campaign", host, utm_source, None
        if not referrer or not referrer.strip():
            return "direct", None, None, None
        if host is None or parts is None:  # no parts gives no host
            return "other", None, None, None
        if _bare(host) == _bare(page_host) or any(s in self.internal_hosts for s in _suffixes(host)):
            return "internal", host, None, None
        for pattern, name, param in SEARCH_ENGINES:
            if pattern.match(host):
                term = next((v for k, v in parse_qsl(parts.query) if k == param and v), None)
                return "search", host, name, term
        for suffix in _suffixes(host):
            social = SOCIAL_NETWORKS.get(suffix)
            if social is not None:
                return "social", host, social, None
        return "other", host, None, None

    def __call__(self, record: Record, ctx: Context) -> Record:
        record["referrer_class"], record["referrer_host"], record["referrer_source"], record["search_term"] = \
            self.classify(record.get("referrer"), record.get("url_host"), record.get("utm_source"))
        return record


def build(settings) -> Referrer:
    return Referrer(settings.internal_hosts)
