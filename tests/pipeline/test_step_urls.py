import pytest

from steps import Context
from steps.urls import Urls, campaign


def test_parts_of_a_normal_url():
    r = Urls()({"location": "HTTPS://Shop.Example.com:8443/a/b?x=1&utm_source=news#top"}, Context())
    assert (r["url_scheme"], r["url_host"], r["url_path"], r["url_query"], r["url_fragment"]) == (
        "https", "shop.example.com", "/a/b", "x=1&utm_source=news", "top")
    assert r["utm_source"] == "news" and r["utm_medium"] is None


def test_all_utm_parameters_first_value_wins():
    c = campaign("utm_source=a&utm_medium=b&utm_campaign=c&utm_term=d%20e&utm_content=f&utm_source=z")
    assert c == {"utm_source": "a", "utm_medium": "b", "utm_campaign": "c", "utm_term": "d e", "utm_content": "f"}


def test_gclid_without_utm_is_google_cpc():
    assert campaign("gclid=abc")["utm_source"] == "google"
    assert campaign("gclid=abc")["utm_medium"] == "cpc"
    assert campaign("gclid=abc&utm_source=bing")["utm_source"] == "bing"


def test_ipv6_host():
    r = Urls()({"location": "http://[2001:db8::1]:8080/p"}, Context())
    assert r["url_host"] == "2001:db8::1" and r["url_path"] == "/p"


@pytest.mark.parametrize("location", [None, "", "http://[::1", "http://[nothex]/x", "https://a]b/"])
def test_missing_or_malformed_urls_leave_fields_empty(location):
    r = Urls()({"location": location}, Context())
    assert r["url_host"] is None and r["url_path"] is None and r["utm_source"] is None


@pytest.mark.parametrize("location, path", [("not a url", "not a url"), ("javascript:alert(1)", "alert(1)"),
                                             ("/relative/only?utm_source=x", "/relative/only")])
def test_odd_but_splittable_urls_keep_what_they_have(location, path):
    r = Urls()({"location": location}, Context())
    assert r["url_host"] is None
    assert r["url_path"] == path


def test_huge_url():
    r = Urls()({"location": "https://example.com/" + "a" * 1_000_000 + "?utm_campaign=big"}, Context())
    assert r["url_host"] == "example.com" and r["utm_campaign"] == "big"
