import pytest

from steps import Context
from steps.referrer import Referrer


@pytest.mark.parametrize(
    "referrer, utm_source, expected",
    [
        (None, None, ("direct", None, None, None)),
        ("", None, ("direct", None, None, None)),
        ("https://shop.example.com/cart", None, ("internal", "shop.example.com", None, None)),
        ("https://www.google.com/search?q=red+shoes&hl=en", None, ("search", "www.google.com", "Google", "red shoes")),
        ("https://www.google.co.uk/", None, ("search", "www.google.co.uk", "Google", None)),
        ("https://www.bing.com/search?q=clickpipe", None, ("search", "www.bing.com", "Bing", "clickpipe")),
        ("https://duckduckgo.com/", None, ("search", "duckduckgo.com", "DuckDuckGo", None)),
        ("https://yandex.ru/search/?text=analytics", None, ("search", "yandex.ru", "Yandex", "analytics")),
        ("https://l.facebook.com/l.php?u=x", None, ("social", "l.facebook.com", "Facebook", None)),
        ("https://t.co/abc", None, ("social", "t.co", "X", None)),
        ("https://news.ycombinator.com/item?id=1", None, ("social", "news.ycombinator.com", "Hacker News", None)),
        ("https://blog.other.org/post", None, ("other", "blog.other.org", None, None)),
        ("https://mail.google.com/", None, ("other", "mail.google.com", None, None)),
        ("http://[::1", None, ("other", None, None, None)),
        ("android-app://com.google.android.gm", None, ("other", "com.google.android.gm", None, None)),
        ("https://www.google.com/", "newsletter", ("campaign", "www.google.com", "newsletter", None)),
        (None, "newsletter", ("campaign", None, "newsletter", None)),
    ],
)
def test_classification(referrer, utm_source, expected):
    assert Referrer().classify(referrer, "shop.example.com", utm_source) == expected


def test_www_and_configured_internal_hosts():
    r = Referrer(internal_hosts=("example.com",))
    assert r.classify("https://example.com/x", "www.example.com", None)[0] == "internal"
    assert r.classify("https://docs.example.com/x", "shop.example.com", None)[0] == "internal"
    assert Referrer().classify("https://docs.example.com/x", "shop.example.com", None)[0] == "other"


def test_step_sets_fields():
    record = {"referrer": "https://www.bing.com/search?q=x", "url_host": "a.com", "utm_source": None}
    Referrer()(record, Context())
    assert record["referrer_class"] == "search" and record["search_term"] == "x"
