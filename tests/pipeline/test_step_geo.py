import os
import shutil
from pathlib import Path

import pytest

from steps import Context
from steps.geo import NO_GEO, Geo, GeoDatabase, GeoDataError, GeoLookup


@pytest.fixture
def data(maxmind) -> Path:
    return maxmind / "test-data"


@pytest.fixture
def lookup(data) -> GeoLookup:
    return GeoLookup(data / "GeoIP2-City-Test.mmdb", data / "GeoLite2-ASN-Test.mmdb", cache_size=100)


@pytest.mark.parametrize(
    "city_db, ip, country, city, tz",
    [
        ("GeoIP2-City-Test.mmdb", "81.2.69.142", "GB", "London", "Europe/London"),
        ("GeoIP2-City-Test.mmdb", "216.160.83.56", "US", "Milton", "America/Los_Angeles"),
        ("GeoIP2-City-Test.mmdb", "89.160.20.112", "SE", "Linköping", "Europe/Stockholm"),
        ("GeoIP2-City-Test.mmdb", "2001:218::", "JP", None, "Asia/Tokyo"),
        ("GeoLite2-City-Test.mmdb", "81.2.69.142", "GB", "London", "Europe/London"),
        ("GeoLite2-City-Test.mmdb", "89.160.20.112", "SE", "Linköping", "Europe/Stockholm"),
        ("GeoLite2-City-Test.mmdb", "2001:218::", "JP", None, "Asia/Tokyo"),
    ],
)
def test_known_entries_of_the_maxmind_test_databases(data, city_db, ip, country, city, tz):
    step = Geo(GeoLookup(data / city_db, data / "GeoLite2-ASN-Test.mmdb"))
    record = step({"ip": ip}, Context())
    assert (record["geo_country"], record["geo_city"], record["geo_time_zone"]) == (country, city, tz)
    assert isinstance(record["geo_latitude"], float) and isinstance(record["geo_longitude"], float)


def test_region_and_asn(lookup):
    g = lookup.lookup("216.160.83.56")
    assert g.region == "WA"
    a = lookup.lookup("89.160.20.112")
    assert (a.asn, a.as_org) == (29518, "Bredband2 AB")
    v6 = lookup.lookup("2600:6000::1")
    assert v6.asn == 237


@pytest.mark.parametrize(
    "ip", [None, "", "   ", "not-an-ip", "999.1.1.1", "1.2.3", "::zz", "81.2.69.142/24", "10.0.0.1", "127.0.0.1",
           "::1", "x" * 10_000],
)
def test_bad_private_or_unknown_ips_give_empty_fields(lookup, ip):
    record = Geo(lookup)({"ip": ip}, Context())
    assert record["geo_country"] is None and record["asn"] is None


def test_surrounding_whitespace_is_ignored(lookup):
    assert lookup.lookup(" 81.2.69.142 ").country == "GB"


def test_missing_files_disable_geo_without_error(tmp_path):
    lookup = GeoLookup(tmp_path / "none.mmdb", tmp_path / "none-asn.mmdb")
    assert lookup.lookup("81.2.69.142") == NO_GEO


def test_database_of_the_wrong_type_is_refused(data):
    with pytest.raises(GeoDataError, match="not a City database"):
        GeoDatabase(data / "GeoLite2-ASN-Test.mmdb", "City")


def _bad_files(maxmind):
    return sorted((maxmind / "bad-data").rglob("*.mmdb")) + [
        maxmind / "test-data" / name
        for name in ("GeoIP2-City-Test-Broken-Double-Format.mmdb", "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
                     "MaxMind-DB-test-broken-pointers-24.mmdb", "MaxMind-DB-test-broken-search-tree-24.mmdb")
    ]


def test_broken_files_are_refused_at_start_or_give_empty_fields(maxmind, tmp_path):
    files = _bad_files(maxmind)
    assert len(files) >= 20
    refused = 0
    for path in files:
        try:
            lookup = GeoLookup(path, tmp_path / "no-asn.mmdb")
        except GeoDataError:
            refused += 1
            continue
        for ip in ("81.2.69.142", "2001:218::", "1.1.1.1"):
            info = lookup.lookup(ip)
            assert info.asn is None
    assert refused >= len(files) // 2


def test_file_is_reloaded_when_it_changes(data, tmp_path):
    now = [0.0]
    path = tmp_path / "city.mmdb"
    shutil.copy(data / "GeoLite2-City-Test.mmdb", path)
    lookup = GeoLookup(path, tmp_path / "none.mmdb", check_every_s=5, clock=lambda: now[0])
    assert lookup.lookup("2.2.3.1").city is None  # not in the GeoLite2 test file
    shutil.copy(data / "GeoIP2-City-Test.mmdb", tmp_path / "new.mmdb")
    os.replace(tmp_path / "new.mmdb", path)
    assert lookup.lookup("2.2.3.1").city is None  # not checked again before 5 s
    now[0] = 6.0
    assert lookup.lookup("2.2.3.1").city == "Boxford"


def test_broken_replacement_keeps_the_previous_database(data, maxmind, tmp_path):
    now = [0.0]
    path = tmp_path / "city.mmdb"
    shutil.copy(data / "GeoIP2-City-Test.mmdb", path)
    lookup = GeoLookup(path, tmp_path / "none.mmdb", check_every_s=1, clock=lambda: now[0])
    shutil.copy(maxmind / "bad-data" / "maxminddb-golang" / "invalid-string-length.mmdb", tmp_path / "bad.mmdb")
    os.replace(tmp_path / "bad.mmdb", path)
    now[0] = 2.0
    assert lookup.lookup("81.2.69.142").city == "London"
    assert lookup.city.reader is not None
