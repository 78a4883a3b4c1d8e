"""The catalogues of simulate.population against the pipeline's own data and rules."""

from __future__ import annotations

import ipaddress
import random

import pytest

from simulate import population as pop
from steps.bots import UserAgentRules
from steps.geo import lookup_for
from steps.useragent import UserAgentParser


@pytest.fixture(scope="module")
def geo(geo_settings):
    return lookup_for(geo_settings)


@pytest.fixture(scope="module")
def ua_rules():
    return UserAgentRules(UserAgentParser(100), 100)


@pytest.mark.parametrize("network", [n for n, _ in pop.HUMAN_NETWORKS])
def test_human_networks_resolve_and_are_not_data_centres(geo, geo_settings, network):
    rng = random.Random(network)
    for _ in range(5):
        info = geo.lookup(pop.address_in(rng, network))
        assert info.country, network
        assert info.asn not in geo_settings.datacenter_asns


def test_human_networks_cover_ipv4_and_ipv6():
    versions = {ipaddress.ip_network(n).version for n, _ in pop.HUMAN_NETWORKS}
    assert versions == {4, 6}


def test_data_centre_network_maps_to_a_data_centre_asn(geo, geo_settings):
    rng = random.Random(1)
    for _ in range(5):
        assert geo.lookup(pop.address_in(rng, pop.DATACENTER_NETWORK)).asn in geo_settings.datacenter_asns


def test_human_user_agents_pass_every_user_agent_rule(ua_rules):
    assert [ua for ua in pop.HUMAN_UAS if ua_rules(ua) is not None] == []


def test_crawler_and_headless_user_agents_are_caught(ua_rules):
    assert all(ua_rules(ua) in ("ua-spider", "crawler-pattern") for ua in pop.CRAWLER_UAS)
    assert all(ua_rules(ua) == "headless" for ua in pop.HEADLESS_UAS)


def test_address_in_stays_inside_the_network():
    rng = random.Random(5)
    for network, _ in pop.HUMAN_NETWORKS:
        net = ipaddress.ip_network(network)
        assert all(ipaddress.ip_address(pop.address_in(rng, network)) in net for _ in range(20))
