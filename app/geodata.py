"""Fetch MaxMind's test databases (for tests and local trials) into the cache directory.

MaxMind ships its official test databases (GeoIP2-City-Test, GeoLite2-City-Test,
GeoLite2-ASN-Test, ...) and deliberately broken files inside the ``maxminddb`` source
distribution on PyPI. :func:`fetch_test_databases` downloads that sdist with pip (the
ordinary PyPI client, so proxies and indexes configured for pip apply) and extracts
``tests/data/test-data`` and ``tests/data/bad-data`` into ``<cache_dir>/maxmind-test/``.
It does nothing when they are already there.

Run ``python -m app.geodata`` to fetch them by hand; it prints the directory.
Production users point ``CLICKPIPE_GEOIP_CITY_DB`` / ``CLICKPIPE_GEOIP_ASN_DB`` at their own
GeoLite2 or GeoIP2 downloads instead.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MAXMINDDB_VERSION = "3.2.0"
_MEMBERS = ("tests/data/test-data/", "tests/data/bad-data/")
_MARKER = ".complete"


def test_data_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "maxmind-test" / MAXMINDDB_VERSION


def fetch_test_databases(cache_dir: Path) -> Path:
    """The directory holding ``test-data/`` and ``bad-data/``; downloads them on first use.

    Raises :class:`RuntimeError` if pip cannot download the sdist.
    """
    target = test_data_dir(cache_dir)
    if (target / _MARKER).exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               f"maxminddb=={MAXMINDDB_VERSION}", "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"pip download of maxminddb {MAXMINDDB_VERSION} failed: {done.stderr.strip()}")
        sdist = next(Path(tmp).glob("maxminddb-*.tar.gz"))
        staging = Path(tmp) / "out"
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                inner = member.name.split("/", 1)[-1]
                prefix = next((p for p in _MEMBERS if inner.startswith(p)), None)
                if prefix is None or not member.isfile():
                    continue
                dest = staging / inner.removeprefix("tests/data/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:  # never for a regular file (isfile above)
                    continue
                with src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
        (staging / _MARKER).write_text(MAXMINDDB_VERSION)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # an earlier run was interrupted before the marker
            shutil.rmtree(target)
        shutil.move(str(staging), str(target))
    return target


def test_database_env(cache_dir: Path) -> dict[str, str]:
    """``CLICKPIPE_GEOIP_*`` variables naming MaxMind's City, ASN, Anonymous IP and Connection
    Type test databases (fetched once)."""
    data = fetch_test_databases(cache_dir) / "test-data"
    return {"CLICKPIPE_GEOIP_CITY_DB": str(data / "GeoIP2-City-Test.mmdb"),
            "CLICKPIPE_GEOIP_ASN_DB": str(data / "GeoLite2-ASN-Test.mmdb"),
            "CLICKPIPE_GEOIP_ANONYMOUS_DB": str(data / "GeoIP2-Anonymous-IP-Test.mmdb"),
            "CLICKPIPE_GEOIP_CONNECTION_TYPE_DB": str(data / "GeoIP2-Connection-Type-Test.mmdb")}


if __name__ == "__main__":
    from clickpipe.config import settings

    print(fetch_test_databases(settings.cache_dir))
