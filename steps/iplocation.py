"""Readers of the freely licensed ip-location-db databases that ``clickpipe geoip fetch`` downloads.

The ip-location-db project publishes, on the npm registry, a city database as MMDB files in a
flat layout (``country_code``, ``state1``, ``city``, ``latitude``, ``longitude``, ``timezone``;
one file for IPv4 and one for IPv6) and an ASN database as CSV files of integer ranges
(``start,end,asn,organisation``, one per IP version). The geo step reads them when
``CLICKPIPE_GEOIP_CITY_DB`` / ``CLICKPIPE_GEOIP_ASN_DB`` name the directory holding them
(:mod:`steps.geo`). Both are read once, when the worker starts.
"""

from __future__ import annotations

import bisect
import csv
import ipaddress
from array import array
from pathlib import Path
from typing import Any

import maxminddb


class IpLocationError(RuntimeError):
    """The directory holds no usable file of the expected kind."""


class CityDirectory:
    """Every ``*.mmdb`` of a directory in ip-location-db's city layout."""

    def __init__(self, directory: Path):
        files = sorted(Path(directory).glob("*.mmdb"))
        if not files:
            raise IpLocationError(f"{directory}: no .mmdb file")
        self.readers = [maxminddb.open_database(str(f)) for f in files]

    def city(self, ip: str) -> dict[str, Any] | None:
        """Geo fields of ``ip`` (as :class:`steps.geo.GeoInfo` names them), or None if unknown."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for reader in self.readers:
            if reader.metadata().ip_version == 4 and address.version == 6:
                continue
            try:
                found = reader.get(ip)
            except ValueError:
                continue
            if isinstance(found, dict) and found.get("country_code"):
                return {"country": found.get("country_code") or None, "city": found.get("city") or None,
                        "latitude": found.get("latitude"), "longitude": found.get("longitude"),
                        "time_zone": found.get("timezone") or None}
        return None


class AsnDirectory:
    """Every ``*-num.csv`` (``start,end,asn,organisation`` as integers) of a directory, for binary search."""

    def __init__(self, directory: Path):
        files = sorted(Path(directory).glob("*-num.csv"))
        if not files:
            raise IpLocationError(f"{directory}: no *-num.csv file")
        self.tables: dict[int, tuple[Any, Any, array, list[int]]] = {}
        names: dict[str, int] = {}
        self.orgs: list[str] = []
        rows: dict[int, list[tuple[int, int, int, int]]] = {4: [], 6: []}
        for path in files:
            with open(path, newline="", encoding="utf-8") as f:
                for start, end, asn, org in csv.reader(f):
                    first = int(start)
                    index = names.setdefault(org, len(names))
                    if index == len(self.orgs):
                        self.orgs.append(org)
                    rows[4 if int(end) < 2 ** 32 and "ipv6" not in path.name else 6].append(
                        (first, int(end), int(asn), index))
        for version, table in rows.items():
            table.sort()
            starts = array("Q", (r[0] for r in table)) if version == 4 else [r[0] for r in table]
            ends = array("Q", (r[1] for r in table)) if version == 4 else [r[1] for r in table]
            self.tables[version] = (starts, ends, array("L", (r[2] for r in table)), [r[3] for r in table])

    def asn(self, ip: str) -> tuple[int, str] | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        starts, ends, asns, orgs = self.tables[address.version]
        value = int(address)
        i = bisect.bisect_right(starts, value) - 1
        if i < 0 or ends[i] < value:
            return None
        return asns[i], self.orgs[orgs[i]]
