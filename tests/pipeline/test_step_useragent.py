import time

import pytest

from steps import Context
from steps.useragent import NO_UA, UserAgent, UserAgentParser

CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.6099.109 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")
IPAD = ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.6 Mobile/15E148 Safari/604.1")
ANDROID_PHONE = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/120.0.0.0 Mobile Safari/537.36")
ANDROID_TABLET = ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0.0.0 Safari/537.36")
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:121.0) Gecko/20100101 Firefox/121.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(
    "ua, family, major, os_family, device_class",
    [
        (CHROME_WIN, "Chrome", "120.0", "Windows", "desktop"),
        (FIREFOX_MAC, "Firefox", "121.0", "Mac OS X", "desktop"),
        (IPHONE, "Mobile Safari", "17.0", "iOS", "mobile"),
        (IPAD, "Mobile Safari", "16.6", "iOS", "tablet"),
        (ANDROID_PHONE, "Chrome Mobile", "120.0", "Android", "mobile"),
        (ANDROID_TABLET, "Chrome", "120.0", "Android", "tablet"),
        (GOOGLEBOT, "Googlebot", "2.1", None, "bot"),
    ],
)
def test_browser_os_and_device_class(ua, family, major, os_family, device_class):
    record = UserAgent(UserAgentParser(100))({"user_agent": ua}, Context())
    assert record["ua_family"] == family
    assert record["ua_version"] == major
    assert record["os_family"] == os_family
    assert record["device_class"] == device_class


@pytest.mark.parametrize("ua", [None, "", "   "])
def test_missing_or_empty_user_agent(ua):
    assert UserAgentParser(10).parse(ua) == NO_UA


def test_garbage_user_agent_is_unknown_not_an_error():
    info = UserAgentParser(10).parse("\x00\xff)(*&^%$#@!" * 3)
    assert info.ua_family is None
    assert info.device_class == "unknown"


def test_huge_user_agent_is_parsed_by_its_prefix_quickly():
    parser = UserAgentParser(10)
    huge = CHROME_WIN + "A" * 5_000_000
    started = time.perf_counter()
    info = parser.parse(huge)
    assert info.ua_family == "Chrome"
    # generous bound: guards against parsing the 5 MB tail (seconds), not a benchmark
    assert time.perf_counter() - started < 2.0


def test_results_are_cached_per_string():
    parser = UserAgentParser(10)
    assert parser.parse(IPHONE) is parser.parse(IPHONE)
