"""Who the simulated visitors are: user agents, client networks, the site and its traffic sources.

The catalogues are real-world strings and addresses; what they claim about the world is
checked against data, never against the pipeline's rules (tests/simulate/test_population.py):

- every human network resolves to a country in MaxMind's City *test* database (the one the
  pipeline uses in tests and trials; see :mod:`app.geodata`), and none is anonymous (hosting,
  VPN, proxy, Tor) in MaxMind's Anonymous-IP test database;
- :data:`HOSTING_NETWORK` and :data:`HOSTING_ADDRESSES` are hosting networks by published data
  (a cloud provider's published ranges, or MaxMind's Anonymous-IP test database);
- :data:`GOOGLEBOT_NETWORK` is in Google's published Googlebot ranges;
- user agents are verbatim strings of the browsers, crawlers, monitors and tools they name.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Iterable
from typing import TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

T = TypeVar("T")

DESKTOP_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
)
MOBILE_UAS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
)
HUMAN_UAS = DESKTOP_UAS + MOBILE_UAS
CURRENT_CHROME_UAS = DESKTOP_UAS[:2]
# Browsers of 2015-2017: no client hints, no fetch (the tag falls back to pixels)
OLD_UAS = (
    "Mozilla/5.0 (Windows NT 5.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/49.0.2623.112 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 9_3_5 like Mac OS X) AppleWebKit/601.1.46 (KHTML, like Gecko) Version/9.0 Mobile/13G36 Safari/601.1",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:38.0) Gecko/20100101 Firefox/38.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_6) AppleWebKit/602.4.8 (KHTML, like Gecko) Version/10.0.3 Safari/602.4.8",
    "Mozilla/5.0 (Linux; Android 4.4.2; GT-I9505 Build/KOT49H) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/30.0.0.0 Mobile Safari/537.36",
)

GOOGLEBOT_UAS = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
# Declared crawlers of other operators
CRAWLER_UAS = (
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
)
# Uptime and synthetic-browser monitors
MONITOR_UAS = (
    "Mozilla/5.0 (compatible; Datadog/Synthetics)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 DatadogSynthetics",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Checkly/1.0 (https://www.checklyhq.com)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Site24x7",
)
# Performance audits: Lighthouse (DevTools, CLI) and PageSpeed Insights
LIGHTHOUSE_UAS = (
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Chrome-Lighthouse",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2272.96 Mobile Safari/537.36 (compatible; Google Page Speed Insights)",
)
HEADLESS_UAS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36",
)

# (network, weight). IPv4 networks of the City test database (not 81.2.69.0/24: the Anonymous-IP
# test database calls it everything from VPN to Tor exit), and IPv6 networks there
# (JP, KR, TW, CN, HK, US, DE, FR, GB, SE, NL, ES, IT, PL).
HUMAN_NETWORKS = (
    ("89.160.20.112/28", 3), ("89.160.20.128/25", 5), ("216.160.83.56/29", 2), ("2.125.160.216/29", 2),
    ("175.16.199.0/24", 4), ("214.0.0.0/24", 3), ("214.0.1.0/24", 3), ("214.78.120.0/22", 4),
    ("2.2.3.0/24", 3), ("67.43.156.0/24", 2), ("149.101.100.0/28", 2), ("202.196.224.0/20", 3),
    ("2001:218::/32", 4), ("2001:220::/32", 3), ("2001:238::/32", 2), ("2001:250::/31", 3),
    ("2001:2e0::/32", 2), ("2001:480:10::/48", 3), ("2a02:d180::/29", 4), ("2a02:cfc0::/29", 3),
    ("2a02:d3c0::/29", 4), ("2a02:d900::/29", 2), ("2a02:e040::/29", 3), ("2a02:d5c0::/29", 2),
    ("2a02:d1c0::/29", 2), ("2a02:d100::/29", 2),
)
HUMAN_V6_NETWORKS = tuple((n, w) for n, w in HUMAN_NETWORKS if ":" in n)
# Two offices, each many people behind one public address (inside human networks above)
OFFICE_ADDRESSES = ("89.160.20.129", "216.160.83.58")
# Two mobile carriers' NAT addresses (carrier-grade NAT: many phones behind each), inside human
# networks that MaxMind's Connection-Type test database calls Cellular
CARRIER_NAT_ADDRESSES = ("67.43.156.10", "149.101.100.5")
# A cloud provider's network (AWS, in its published ip-ranges.json): scrapers, monitors, audits
HOSTING_NETWORK = "3.5.140.0/22"
# Company proxies in hosting networks, through which real people browse: an AWS address, and
# the address MaxMind's Anonymous-IP test database marks is_hosting_provider
HOSTING_ADDRESSES = ("3.5.141.20", "6.1.0.2")
# In Google's published Googlebot ranges (developers.google.com/static/search/apis/ipranges/googlebot.json)
GOOGLEBOT_NETWORK = "66.249.66.0/27"
# Other crawlers come from networks of the test database (not their operators' own)
CRAWLER_NETWORKS = ("214.78.120.0/22", "2001:480:10::/48")

SITE = "https://shop.example.com"
# page kind -> ((next kind, weight), ...); "exit" ends the visit.
SITE_GRAPH = {
    "home": (("category", 5), ("search", 2), ("product", 2), ("blog", 1), ("exit", 3)),
    "category": (("product", 6), ("category", 2), ("search", 1), ("home", 1), ("exit", 3)),
    "product": (("product", 3), ("cart", 2), ("category", 2), ("search", 1), ("exit", 4)),
    "search": (("product", 5), ("search", 1), ("category", 1), ("exit", 2)),
    "cart": (("checkout", 3), ("product", 1), ("exit", 3)),
    "checkout": (("home", 1), ("exit", 4)),
    "blog": (("blog", 2), ("product", 1), ("home", 1), ("exit", 4)),
}
LANDING = (("home", 4), ("category", 2), ("product", 4), ("search", 1), ("blog", 2))
CATEGORIES = ("shoes", "shirts", "bags", "sale", "outdoor")
SEARCH_TERMS = ("running shoes", "linen shirt", "backpack", "rain jacket", "gift")
BLOG_POSTS = ("care-for-leather", "summer-lookbook", "packing-list", "sizing-guide")
# Custom events per page kind: (event type, probability that it happens on such a page)
CUSTOM_EVENTS = {
    "product": (("addToCart", 0.25), ("imageZoom", 0.3)),
    "cart": (("beginCheckout", 0.4),),
    "checkout": (("purchase", 0.5),),
    "blog": (("scrollDepth", 0.6), ("videoPlay", 0.15)),
    "home": (("scrollDepth", 0.3),),
    "search": (("searchFilter", 0.3),),
    "category": (("scrollDepth", 0.3),),
}
# Pages whose single-page-application router changes the view without a page load; the tag
# reports each route change (history.pushState) as a page view of the new URL.
SPA_KINDS = frozenset({"product", "category", "search"})
SPA_SHARE = 0.3  # of navigations from such a page that are route changes within it

# (referrer or None for direct, weight)
REFERRERS = (
    (None, 30), ("https://www.google.com/", 30), ("https://www.bing.com/", 5), ("https://duckduckgo.com/", 3),
    ("https://www.facebook.com/", 6), ("https://t.co/", 3), ("https://www.reddit.com/r/malefashionadvice/", 2),
    ("https://news.ycombinator.com/", 1), ("https://blog.example.org/best-shops-2026", 4),
    ("https://mail.google.com/", 2),
)
# (utm_source, utm_medium, utm_campaign) given to a share of landings
CAMPAIGNS = (
    ("newsletter", "email", "winter-sale"), ("google", "cpc", "brand"), ("facebook", "social", "lookbook"),
    ("partner-blog", "referral", "gift-guide"),
)
SCREENS = {"desktop": ((1920, 1080, 1.0), (2560, 1440, 1.0), (1440, 900, 2.0), (1366, 768, 1.0)),
           "mobile": ((390, 844, 3.0), (412, 915, 2.625), (360, 800, 3.0), (820, 1180, 2.0)),
           "old": ((1024, 768, 1.0), (1280, 1024, 1.0), (320, 568, 2.0))}
_BRANDS = (("Edg/", "Microsoft Edge"), ("SamsungBrowser/", "Samsung Internet"), ("Chrome/", "Google Chrome"))
_PLATFORMS = (("Windows", "Windows"), ("Android", "Android"), ("Macintosh", "macOS"), ("Linux", "Linux"))


def pick(rng: random.Random, weighted: Iterable[tuple[T, float]]) -> T:
    """One value of a ((value, weight), ...) sequence."""
    values, weights = zip(*weighted, strict=False)
    return rng.choices(values, weights)[0]


def address_in(rng: random.Random, network: str) -> str:
    """A random address inside ``network`` (any address: lookups work on the network)."""
    net = ipaddress.ip_network(network)
    return str(net.network_address + rng.randrange(net.num_addresses))


def human_ip(rng: random.Random) -> str:
    return address_in(rng, pick(rng, HUMAN_NETWORKS))


def human_ip_v4(rng: random.Random) -> str:
    return address_in(rng, pick(rng, [(n, w) for n, w in HUMAN_NETWORKS if ":" not in n]))


def client_hints(ua: str) -> dict[str, str]:
    """The low-entropy client hints a Chromium-based browser with user agent ``ua`` sends (none for
    Firefox, Safari, older Chromium and anything on iOS, where every browser is WebKit)."""
    chrome = re.search(r"Chrome/(\d+)", ua)
    if not chrome or int(chrome.group(1)) < 89 or "iPhone" in ua or "iPad" in ua:
        return {}  # client hints shipped with Chromium 89
    version = chrome.group(1)
    brand, brand_version = next((name, re.search(re.escape(token) + r"(\d+)", ua)) for token, name in _BRANDS
                                if token in ua)
    own = brand_version.group(1) if brand_version else version
    return {"Sec-CH-UA": f'"{brand}";v="{own}", "Chromium";v="{version}", "Not_A Brand";v="24"',
            "Sec-CH-UA-Mobile": "?1" if "Mobile" in ua else "?0",
            "Sec-CH-UA-Platform": '"' + next(name for token, name in _PLATFORMS if token in ua) + '"'}


def page_url(rng: random.Random, kind: str) -> str:
    if kind == "home":
        return SITE + "/"
    if kind == "category":
        return f"{SITE}/c/{rng.choice(CATEGORIES)}"
    if kind == "product":
        return f"{SITE}/p/{rng.randrange(1, 500)}"
    if kind == "search":
        return f"{SITE}/search?q={rng.choice(SEARCH_TERMS).replace(' ', '+')}"
    if kind == "blog":
        return f"{SITE}/blog/{rng.choice(BLOG_POSTS)}"
    return f"{SITE}/{kind}"


def custom_params(rng: random.Random, event_type: str, url: str) -> dict[str, str]:
    if event_type == "addToCart":
        return {"product_id": url.rsplit("/", 1)[-1], "price": f"{rng.randrange(900, 19900) / 100:.2f}"}
    if event_type == "purchase":
        return {"value": f"{rng.randrange(2000, 40000) / 100:.2f}", "currency": "EUR"}
    if event_type == "scrollDepth":
        return {"percent": str(rng.choice((25, 50, 75, 100)))}
    if event_type == "searchFilter":
        return {"filter": rng.choice(("size", "colour", "price"))}
    return {}


def spa_url(rng: random.Random, url: str) -> str:
    """The URL after a client-side route change on ``url``: a result page, a sort order or a tab.

    Campaign parameters of a landing URL are not carried over (routers rebuild the query).
    """
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if parts.path == "/search":
        return f"{base}?{urlencode({'q': parse_qs(parts.query).get('q', [''])[0], 'page': rng.randint(2, 5)})}"
    if parts.path.startswith("/c/"):
        return f"{base}?sort={rng.choice(('price', 'new', 'popular'))}"
    return f"{base}#{rng.choice(('reviews', 'details', 'sizes'))}"
