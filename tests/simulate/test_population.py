"""The catalogues of simulate.population against published data (never against the pipeline's
rules: a kind must be what it claims to be in the world, whatever the rules make of it)."""

from __future__ import annotations

import ipaddress
import json
import random
from pathlib import Path

import maxminddb
import pytest

import steps
from simulate import population as pop
from steps.geo import lookup_for


@pytest.fixture(scope="module")
def geo(geo_settings):
    return lookup_for(geo_settings)


@pytest.fixture(scope="module")
def anonymous_ip(geo_env):
    """MaxMind's Anonymous-IP test database, shipped beside the City test database."""
    path = Path(geo_env["CLICKPIPE_GEOIP_CITY_DB"]).with_name("GeoIP2-Anonymous-IP-Test.mmdb")
    with maxminddb.open_database(path) as db:
        yield db


@pytest.mark.parametrize("network", [n for n, _ in pop.HUMAN_NETWORKS])
def test_human_networks_resolve_and_are_not_anonymous(geo, anonymous_ip, network):
    rng = random.Random(network)
    for _ in range(5):
        address = pop.address_in(rng, network)
        assert geo.lookup(address).country, network
        assert not (anonymous_ip.get(address) or {}).get("is_anonymous"), address


def test_offices_are_inside_human_networks():
    nets = [ipaddress.ip_network(n) for n, _ in pop.HUMAN_NETWORKS]
    assert all(any(ipaddress.ip_address(a) in n for n in nets) for a in pop.OFFICE_ADDRESSES)


def test_carrier_nat_addresses_are_cellular_by_maxmind(geo_env):
    path = Path(geo_env["CLICKPIPE_GEOIP_CITY_DB"]).with_name("GeoIP2-Connection-Type-Test.mmdb")
    with maxminddb.open_database(path) as db:
        assert all((db.get(a) or {}).get("connection_type") == "Cellular" for a in pop.CARRIER_NAT_ADDRESSES)
    nets = [ipaddress.ip_network(n) for n, _ in pop.HUMAN_NETWORKS]
    assert all(any(ipaddress.ip_address(a) in n for n in nets) for a in pop.CARRIER_NAT_ADDRESSES)


def test_company_egress_includes_a_hosting_address_by_maxmind(anonymous_ip):
    assert any((anonymous_ip.get(a) or {}).get("is_hosting_provider") for a in pop.HOSTING_ADDRESSES)


def test_human_networks_cover_ipv4_and_ipv6():
    versions = {ipaddress.ip_network(n).version for n, _ in pop.HUMAN_NETWORKS}
    assert versions == {4, 6}
    assert pop.HUMAN_V6_NETWORKS and all(":" in n for n, _ in pop.HUMAN_V6_NETWORKS)


def test_client_hints_only_for_chromium_89_and_later_outside_ios():
    chrome = pop.client_hints(pop.DESKTOP_UAS[0])
    assert chrome["Sec-CH-UA"].startswith('"Google Chrome";v="131"') and chrome["Sec-CH-UA-Platform"] == '"Windows"'
    assert pop.client_hints(pop.MOBILE_UAS[1])["Sec-CH-UA-Mobile"] == "?1"
    assert pop.client_hints(pop.DESKTOP_UAS[2]) == {}  # Firefox
    assert pop.client_hints(pop.MOBILE_UAS[0]) == {}  # Safari on iOS
    assert all(pop.client_hints(ua) == {} for ua in pop.OLD_UAS)


def test_address_in_stays_inside_the_network():
    rng = random.Random(5)
    for network, _ in pop.HUMAN_NETWORKS:
        net = ipaddress.ip_network(network)
        assert all(ipaddress.ip_address(pop.address_in(rng, network)) in net for _ in range(20))


def _published(source: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """One source of the published IP ranges shipped with clickpipe (as their operators publish them)."""
    ranges = json.loads((Path(steps.__file__).with_name("ip-ranges.json")).read_text())["ranges"]
    return [ipaddress.ip_network(n) for n in ranges[source]]


def test_hosting_network_is_a_cloud_providers_and_googlebot_googles():
    aws = _published("aws")
    assert any(ipaddress.ip_network(pop.HOSTING_NETWORK).subnet_of(n) for n in aws if n.version == 4)
    assert any(ipaddress.ip_address(pop.HOSTING_ADDRESSES[0]) in n for n in aws)
    googlebot = _published("googlebot")
    assert any(ipaddress.ip_network(pop.GOOGLEBOT_NETWORK).subnet_of(n) for n in googlebot if n.version == 4)
