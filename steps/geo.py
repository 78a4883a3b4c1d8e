"""Geo and network enrichment from MaxMind databases (City and ASN), IPv4 and IPv6.

Databases are opened with :mod:`geoip2`; each file is re-opened when its modification time,
size or inode changes (checked at most every ``geoip_reload_seconds``), so dropping a
new download in place updates a running worker. A missing file disables its fields; a file
that cannot be read as the expected database type raises :class:`GeoDataError` at start and
is ignored (the previous one is kept) when it appears on reload.

A setting may instead name a directory of the freely licensed ip-location-db databases that
``clickpipe geoip fetch`` downloads (:mod:`steps.iplocation`; read once, at start). Their city
data has no subdivision codes: ``geo_region`` stays empty.
"""

from __future__ import annotations

import functools
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import geoip2.database
import geoip2.errors
import maxminddb

from steps import Context, Record
from steps.iplocation import AsnDirectory, CityDirectory, IpLocationError

log = logging.getLogger(__name__)


class GeoDataError(RuntimeError):
    """A database file exists but is not a usable MaxMind database of the expected type."""


class GeoInfo(NamedTuple):
    country: str | None = None
    region: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    time_zone: str | None = None
    asn: int | None = None
    as_org: str | None = None


NO_GEO = GeoInfo()
LOOKUP_ERRORS = (geoip2.errors.AddressNotFoundError, ValueError, TypeError, maxminddb.InvalidDatabaseError)


class GeoDatabase:
    """One MaxMind file of type ``kind`` (``City`` or ``ASN``), reopened when the file changes."""

    def __init__(self, path: Path, kind: str, check_every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, on_reload: Callable[[], None] | None = None):
        self.path = Path(path)
        self.kind = kind
        self.check_every_s = check_every_s
        self.clock = clock
        self.on_reload = on_reload
        self.reader: geoip2.database.Reader | None = None
        self._stamp = self._stat()
        self._next_check = clock() + check_every_s
        if self._stamp is not None:
            self.reader = self._open()
        elif not self.path.is_dir():
            log.warning("geo database %s not found: its fields stay empty", self.path)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):  # a directory of ip-location-db files: read by steps.iplocation
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _open(self) -> geoip2.database.Reader:
        try:
            reader = geoip2.database.Reader(str(self.path))
        except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
            raise GeoDataError(f"{self.path}: not a readable MaxMind database: {exc}") from exc
        db_type = reader.metadata().database_type
        if self.kind not in db_type:
            reader.close()
            raise GeoDataError(f"{self.path}: database type {db_type!r} is not a {self.kind} database")
        return reader

    def maybe_reload(self) -> bool:
        """Reopen the file if it changed since the last check; True if a new reader is in use."""
        now = self.clock()
        if now < self._next_check:
            return False
        self._next_check = now + self.check_every_s
        stamp = self._stat()
        if stamp == self._stamp or stamp is None:
            return False
        self._stamp = stamp  # a broken new file is reported once, not on every check
        try:
            reader = self._open()
        except GeoDataError as exc:
            log.error("geo database not reloaded, keeping the previous one: %s", exc)
            return False
        old, self.reader = self.reader, reader
        if old is not None:
            old.close()
        log.info("geo database reloaded: %s", self.path)
        if self.on_reload is not None:
            self.on_reload()
        return True


class GeoLookup:
    """IP to :class:`GeoInfo` from a City and an ASN database, with an LRU cache."""

    def __init__(self, city_path: Path, asn_path: Path, check_every_s: float = 10.0, cache_size: int = 50000,
                 clock: Callable[[], float] = time.monotonic):
        self.city_dir = _directory(CityDirectory, city_path)
        self.asn_dir = _directory(AsnDirectory, asn_path)
        self.city = GeoDatabase(city_path, "City", check_every_s, clock, on_reload=self._clear)
        self.asn = GeoDatabase(asn_path, "ASN", check_every_s, clock, on_reload=self._clear)
        self._cached = functools.lru_cache(maxsize=cache_size)(self._lookup)

    def _clear(self) -> None:
        if hasattr(self, "_cached"):
            self._cached.cache_clear()

    def lookup(self, ip: str | None) -> GeoInfo:
        """Geo of ``ip``; :data:`NO_GEO` fields for unknown, private or malformed addresses."""
        self.city.maybe_reload()
        self.asn.maybe_reload()
        if not ip:
            return NO_GEO
        return self._cached(ip.strip())

    def _lookup(self, ip: str) -> GeoInfo:
        fields: dict[str, Any] = {}
        if self.city.reader is not None:
            try:
                c = self.city.reader.city(ip)
            except LOOKUP_ERRORS:
                pass
            else:
                sub = c.subdivisions.most_specific
                fields.update(country=c.country.iso_code, region=sub.iso_code, city=c.city.name,
                              latitude=c.location.latitude, longitude=c.location.longitude,
                              time_zone=c.location.time_zone)
        if self.asn.reader is not None:
            try:
                a = self.asn.reader.asn(ip)
            except LOOKUP_ERRORS:
                pass
            else:
                fields.update(asn=a.autonomous_system_number, as_org=a.autonomous_system_organization)
        if self.city_dir is not None:
            fields.update(self.city_dir.city(ip) or {})
        if self.asn_dir is not None:
            found = self.asn_dir.asn(ip)
            if found is not None:
                fields.update(asn=found[0], as_org=found[1])
        return GeoInfo(**fields) if fields else NO_GEO


def _directory(kind, path: Path):
    """The ip-location-db reader of ``path`` if it is a directory, else None."""
    if not Path(path).is_dir():
        return None
    try:
        return kind(path)
    except IpLocationError as exc:
        raise GeoDataError(str(exc)) from None


@functools.cache
def shared_lookup(city_path: Path, asn_path: Path, check_every_s: float, cache_size: int) -> GeoLookup:
    """One lookup per set of files in a process (the geo and bots steps share it)."""
    return GeoLookup(city_path, asn_path, check_every_s, cache_size)


def lookup_for(settings) -> GeoLookup:
    return shared_lookup(settings.geoip_city_db, settings.geoip_asn_db,
                         float(settings.geoip_reload_seconds), settings.geo_cache_size)


class Geo:
    """Step: sets geo_* fields, ``asn`` and ``as_org`` from ``record["ip"]``."""

    reads = frozenset({"ip"})
    reads_if_present: frozenset[str] = frozenset()
    writes = frozenset({"geo_country", "geo_region", "geo_city", "geo_latitude", "geo_longitude", "geo_time_zone",
                        "asn", "as_org"})

    def __init__(self, lookup: GeoLookup):
        self.lookup = lookup

    def __call__(self, record: Record, ctx: Context) -> Record:
        g = self.lookup.lookup(record.get("ip"))
        record["geo_country"] = g.country
        record["geo_region"] = g.region
        record["geo_city"] = g.city
        record["geo_latitude"] = g.latitude
        record["geo_longitude"] = g.longitude
        record["geo_time_zone"] = g.time_zone
        record["asn"] = g.asn
        record["as_org"] = g.as_org
        return record


def build(settings) -> Geo:
    return Geo(lookup_for(settings))
