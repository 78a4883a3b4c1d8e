"""Published IP ranges: parsing each operator's format, lookups, the refresh command's logic and
the network type. The operators are played by a local HTTP server serving small fixture documents."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from app.ipranges import refresh
from steps import Context, ipranges
from steps.network import build as build_network

GOOGLE = {"creationTime": "2026-08-20T14:46:45.000000",
          "prefixes": [{"ipv4Prefix": "66.249.64.0/27"}, {"ipv6Prefix": "2001:4860:4801:10::/64"}]}
BING = {"creationTime": "2026-08-01T00:00:00", "prefixes": [{"ipv4Prefix": "157.55.39.0/24"}]}
AWS = {"syncToken": "1", "prefixes": [{"ip_prefix": "3.5.140.0/22", "region": "eu-west-1", "service": "AMAZON"}],
       "ipv6_prefixes": [{"ipv6_prefix": "2600:1f18::/36", "service": "AMAZON"}]}
ORACLE = {"regions": [{"region": "mx-monterrey-1", "cidrs": [{"cidr": "40.233.0.0/19", "tags": ["OCI"]}]}]}


@pytest.fixture
def operators():
    """A server on 127.0.0.1: ``documents[path] = bytes`` (missing paths answer 404)."""
    documents: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            body = documents.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            if body is not None:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield documents, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_every_published_format_gives_its_prefixes():
    assert ipranges.prefixes_in(GOOGLE) == ["2001:4860:4801:10::/64", "66.249.64.0/27"]
    assert ipranges.prefixes_in(AWS) == ["2600:1f18::/36", "3.5.140.0/22"]
    assert ipranges.prefixes_in(ORACLE) == ["40.233.0.0/19"]
    with pytest.raises(ipranges.RangesError, match="no prefixes"):
        ipranges.prefixes_in({"prefixes": []})
    with pytest.raises(ipranges.RangesError, match="not an IP network"):
        ipranges.prefixes_in({"prefixes": [{"ipv4Prefix": "66.249.64.0/33"}]})


def test_lookups_find_every_source_of_an_address_v4_v6_and_mapped():
    ranges = ipranges.RangeSet({"googlebot": ["66.249.64.0/27", "2001:4860:4801:10::/64"],
                                "google-cloud": ["66.249.0.0/16"], "aws": ["3.5.140.0/22"]})
    assert ranges.sources_of("66.249.64.5") == {"googlebot", "google-cloud"}
    assert ranges.sources_of("66.249.64.32") == {"google-cloud"}
    assert ranges.sources_of("::ffff:66.249.64.5") == {"googlebot", "google-cloud"}
    assert ranges.sources_of("2001:4860:4801:10::1") == {"googlebot"}
    assert ranges.sources_of("3.5.143.255") == {"aws"} and ranges.sources_of("3.5.144.0") == frozenset()
    assert ranges.sources_of("not an ip") == frozenset()
    assert ipranges.crawlers_of(ranges.sources_of("66.249.64.5")) == {"google"}
    assert ipranges.is_hosting(ranges.sources_of("3.5.140.9"))


def test_the_shipped_file_verifies_googlebot_and_knows_the_big_clouds():
    ranges = ipranges.load(Path("/nonexistent/ip-ranges.json"))
    assert ipranges.crawlers_of(ranges.sources_of("66.249.66.1")) == {"google"}
    assert ipranges.is_hosting(ranges.sources_of("3.5.140.1"))  # AWS
    assert ranges.sources_of("89.160.20.112") == frozenset()


def test_refresh_writes_every_source_and_keeps_the_previous_ranges_of_one_that_fails(operators, tmp_path):
    documents, base = operators
    documents.update({"/googlebot.json": json.dumps(GOOGLE).encode(), "/bingbot.json": json.dumps(BING).encode(),
                      "/aws.json": json.dumps(AWS).encode(), "/oracle-cloud.json": b"<html>maintenance</html>"})
    urls = {s.name: f"{base}/{s.name}.json" for s in ipranges.SOURCES}
    target = tmp_path / "ip-ranges.json"
    results = {r.name: r for r in refresh(target, urls, timeout=5)}
    assert (results["googlebot"].prefixes, results["bingbot"].prefixes, results["aws"].prefixes) == (2, 1, 2)
    assert results["oracle-cloud"].prefixes is None and "not JSON" in results["oracle-cloud"].error
    assert results["applebot"].prefixes is None and "404" in results["applebot"].error
    data = ipranges.read(target)
    assert data["ranges"]["bingbot"] == ["157.55.39.0/24"]
    # a source that failed keeps what the shipped copy had
    assert data["ranges"]["oracle-cloud"] == ipranges.read(ipranges.SHIPPED)["ranges"]["oracle-cloud"]
    assert data["sources"]["bingbot"]["url"] == urls["bingbot"]

    # a second refresh with Bing down keeps Bing's ranges from the first
    del documents["/bingbot.json"]
    refresh(target, urls, timeout=5)
    assert ipranges.read(target)["ranges"]["bingbot"] == ["157.55.39.0/24"]


def test_refreshed_ranges_verify_a_crawler_the_shipped_copy_cannot(operators, tmp_path, make_settings, decoded):
    from steps.bots import build as build_bots

    documents, base = operators
    documents["/bingbot.json"] = json.dumps(BING).encode()
    target = tmp_path / "ip-ranges.json"
    refresh(target, {s.name: f"{base}/{s.name}.json" for s in ipranges.SOURCES}, timeout=5)
    bots = build_bots(make_settings(IP_RANGES_FILE=str(target)))
    bingbot = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"

    def reason(ip):
        record = decoded(user_agent=bingbot, ip=ip)
        record["session_id"] = "s"
        return bots(record, Context())["bot_reason"]

    assert (reason("157.55.39.7"), reason("89.160.20.112")) == ("verified-crawler", "spoofed-crawler")


def test_a_broken_ranges_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "ip-ranges.json"
    bad.write_text('{"ranges": {"aws": ["300.1.1.0/24"]}}')
    with pytest.raises(ipranges.RangesError, match="not an IP ranges file"):
        ipranges.read(bad)


@pytest.mark.parametrize("ip, as_org, network_type", [
    ("1.124.213.1", None, "tor"),  # MaxMind Anonymous IP test database
    ("6.1.0.3", None, "proxy"),
    ("1.2.0.1", None, "vpn"),
    ("71.160.223.45", None, "hosting"),
    ("3.5.140.1", None, "hosting"),  # AWS's published ranges
    ("89.160.20.112", "Hetzner Online GmbH", "hosting"),  # AS organisation
    ("89.160.20.112", "Bredband2 AB", None),
    ("1.0.1.1", None, "cellular"),  # MaxMind Connection Type test database
    ("216.160.83.57", None, "corporate"),
    ("1.0.0.1", None, "residential"),
    (None, None, None),
    ("garbage", None, None),
])
def test_network_type_from_data(make_settings, decoded, ip, as_org, network_type):
    step = build_network(make_settings())
    assert step(decoded(ip=ip, as_org=as_org), Context())["network_type"] == network_type


def test_network_type_without_maxmind_databases_uses_the_published_ranges(make_settings, decoded, tmp_path):
    step = build_network(make_settings(GEOIP_ANONYMOUS_DB=str(tmp_path / "none.mmdb"),
                                       GEOIP_CONNECTION_TYPE_DB=str(tmp_path / "none.mmdb")))
    assert step(decoded(ip="3.5.140.1"), Context())["network_type"] == "hosting"
    assert step(decoded(ip="1.124.213.1"), Context())["network_type"] is None


def test_the_refresh_command_reports_each_source_and_exits_3_when_one_failed(operators, tmp_path):
    import os
    import subprocess
    import sys

    from tests.support import ROOT

    documents, base = operators
    for name, doc in (("googlebot", GOOGLE), ("bingbot", BING), ("aws", AWS), ("oracle-cloud", ORACLE)):
        documents[f"/{name}.json"] = json.dumps(doc).encode()
    target = tmp_path / "ip-ranges.json"
    sources = [arg for s in ipranges.SOURCES for arg in ("--source", f"{s.name}={base}/{s.name}.json")]
    env = {**os.environ, "CLICKPIPE_IP_RANGES_FILE": str(target)}
    done = subprocess.run([sys.executable, "-m", "commands.cli", "ipranges", "refresh", *sources], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr  # applebot and others answer 404 here
    assert "bingbot" in done.stdout and "kept previous" in done.stdout
    assert ipranges.read(target)["ranges"]["bingbot"] == ["157.55.39.0/24"]
    bad = subprocess.run([sys.executable, "-m", "commands.cli", "ipranges", "refresh", "--source", "nosuch=x"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "unknown source nosuch" in bad.stderr
