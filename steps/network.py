"""Network type of the client's address, from data: ``network_type``.

Values (first that applies):

- ``tor``, ``proxy``, ``vpn``, ``hosting``: MaxMind's Anonymous IP database
  (``CLICKPIPE_GEOIP_ANONYMOUS_DB``, GeoIP2-Anonymous-IP), where configured;
- ``hosting``: an address in a cloud provider's published ranges (:mod:`steps.ipranges`, the
  default every user has), or an autonomous system whose organisation is a hosting business
  (:data:`HOSTING_ORG`, from the ASN database's ``as_org``);
- ``cellular``, ``corporate``, ``satellite``, ``residential``: MaxMind's Connection Type
  database (``CLICKPIPE_GEOIP_CONNECTION_TYPE_DB``), where configured;
- null: nothing known.

A network type is evidence about the place, never about the visitor: people browse from
company proxies in clouds, VPNs and carrier-grade NAT. The bots step uses ``hosting`` only
together with bot-like behaviour (:mod:`steps.bots`).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from steps import Context, Record, ipranges
from steps.geo import LOOKUP_ERRORS, GeoDatabase

NETWORK_TYPES = ("tor", "proxy", "vpn", "hosting", "cellular", "corporate", "satellite", "residential")
# Organisation names of autonomous systems that rent machines (a company named so hosts servers).
HOSTING_ORG = re.compile(
    r"\b(hosting|hoster|host europe|data ?cent(er|re)s?|datacenter|colo(cation)?|dedicated|vps|server(s)?|"
    r"cloud|amazon(\.com)?|aws|digitalocean|hetzner|ovh|linode|akamai connected|vultr|choopa|contabo|scaleway|"
    r"leaseweb|alibaba|tencent|oracle|m247|upcloud|kamatera|hostinger|ionos|gcore|fly\.io)\b",
    re.IGNORECASE)
_CONNECTION = {"Cellular": "cellular", "Corporate": "corporate", "Satellite": "satellite", "Cable/DSL": "residential"}


class NetworkLookup:
    """IP (and AS organisation) -> network type, cached."""

    def __init__(self, ranges: ipranges.RangeSet, anonymous_db: Path, connection_db: Path, check_every_s: float,
                 cache_size: int):
        self.ranges = ranges
        self.anonymous = GeoDatabase(anonymous_db, "Anonymous-IP", check_every_s, on_reload=self._clear)
        self.connection = GeoDatabase(connection_db, "Connection-Type", check_every_s, on_reload=self._clear)
        self._cached = functools.lru_cache(maxsize=cache_size)(self._lookup)

    def _clear(self) -> None:
        if hasattr(self, "_cached"):
            self._cached.cache_clear()

    def lookup(self, ip: str | None, as_org: str | None = None) -> str | None:
        self.anonymous.maybe_reload()
        self.connection.maybe_reload()
        if not ip:
            return None
        return self._cached(ip.strip(), as_org)

    def _lookup(self, ip: str, as_org: str | None) -> str | None:
        if self.anonymous.reader is not None:
            try:
                a = self.anonymous.reader.anonymous_ip(ip)
            except LOOKUP_ERRORS:
                pass
            else:
                if a.is_tor_exit_node:
                    return "tor"
                if a.is_public_proxy or a.is_residential_proxy:
                    return "proxy"
                if a.is_anonymous_vpn:
                    return "vpn"
                if a.is_hosting_provider:
                    return "hosting"
        if ipranges.is_hosting(self.ranges.sources_of(ip)) or (as_org and HOSTING_ORG.search(as_org)):
            return "hosting"
        if self.connection.reader is not None:
            try:
                c = self.connection.reader.connection_type(ip)
            except LOOKUP_ERRORS:
                pass
            else:
                return _CONNECTION.get(c.connection_type or "")
        return None


@functools.cache
def shared_lookup(ranges_file: Path, anonymous_db: Path, connection_db: Path, check_every_s: float,
                  cache_size: int) -> NetworkLookup:
    """One lookup per set of files in a process (the network and bots steps share it)."""
    return NetworkLookup(ipranges.load(ranges_file), anonymous_db, connection_db, check_every_s, cache_size)


def lookup_for(settings) -> NetworkLookup:
    return shared_lookup(settings.ip_ranges_file, settings.geoip_anonymous_db, settings.geoip_connection_type_db,
                         float(settings.geoip_reload_seconds), settings.geo_cache_size)


class Network:
    """Step: sets ``network_type`` from ``ip`` (and ``as_org`` when the geo step ran before)."""

    reads = frozenset({"ip"})
    reads_if_present = frozenset({"as_org"})
    writes = frozenset({"network_type"})

    def __init__(self, lookup: NetworkLookup):
        self.lookup = lookup

    def __call__(self, record: Record, ctx: Context) -> Record:
        record["network_type"] = self.lookup.lookup(record.get("ip"), record.get("as_org"))
        return record


def build(settings) -> Network:
    return Network(lookup_for(settings))
