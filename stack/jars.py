"""Resolve the stack's jars with Maven into the cache directory.

Each closure is resolved once into a directory named after the pom's content hash, so a
changed pom resolves anew and an unchanged one is reused across runs and clones. A
``.complete`` marker is written last: a half-finished download is never mistaken for a
usable closure. ``clickpipe stack prune`` deletes closures of poms no longer in the checkout.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from clickpipe.config import Settings

POM_DIR = Path(__file__).resolve().parent / "maven"
# Extension -> version. Druid core is 33.0.0, the newest release whose Kafka-indexing and
# datasketches extensions Maven Central serves here. The Druid-facing topics carry JSON rows,
# which Druid's core `json` input format reads: no format extension is needed.
DRUID_EXTENSIONS = {
    "druid-kafka-indexing-service": "33.0.0",
    "druid-datasketches": "33.0.0",
}
# Closure name -> (poms it is resolved from, extra input to its cache key).
CLOSURES = {
    "kafka": (("kafka.pom.xml",), ""),
    "druid": (("druid.pom.xml", "druid-extension.pom.xml"), repr(sorted(DRUID_EXTENSIONS.items()))),
}


class ResolveError(RuntimeError):
    """Maven could not resolve a closure; the message carries Maven's last lines."""


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
    return h.hexdigest()[:12]


def _copy_closure(settings: Settings, pom: str, target: Path, label: str, extra: tuple[str, ...] = ()) -> None:
    cmd = [
        settings.maven, "-B", "-s", str(POM_DIR / "settings.xml"), "-f", str(POM_DIR / pom),
        f"-Dmaven.repo.local={settings.cache_dir / 'maven-repo'}",
        "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={target}", *extra,
    ]
    print(f"[stack] resolving {label} jars with Maven into {target}", flush=True)
    downloads = 0
    tail: list[str] = []
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError:
        raise ResolveError(f"Maven not found ({settings.maven!r}); install it or set CLICKPIPE_MAVEN") from None
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-15:]
        if "Downloaded from" in line:
            downloads += 1
            if downloads % 25 == 0:
                print(f"[stack]   {label}: {downloads} artifacts downloaded", flush=True)
    if proc.wait() != 0:
        raise ResolveError(f"Maven failed resolving {label}:\n" + "\n".join(tail))


def _closure_dir(settings: Settings, name: str) -> Path:
    poms, salt = CLOSURES[name]
    digest = _digest(salt, *((POM_DIR / pom).read_text() for pom in (*poms, "settings.xml")))
    return settings.cache_dir / "jars" / f"{name}-{digest}"


def _resolve(settings: Settings, name: str, label: str, layout) -> Path:
    root = _closure_dir(settings, name)
    if (root / ".complete").exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    layout(root)
    (root / ".complete").write_text("ok\n")
    print(f"[stack] {label} jars ready ({_size_mb(root)} MB)", flush=True)
    return root


def prune(settings: Settings, running: Callable[[Path], bool] | None = None) -> list[tuple[Path, int, str]]:
    """Delete the cached closures this checkout's poms no longer resolve to.

    A closure that a running process has on its command line (another checkout's stack on
    older poms, say) is kept. Returns (directory, size in MB, "deleted" | "in use") for each
    closure that is not current; the Maven repository and current closures are never touched.
    """
    running = running or _in_use
    current = {_closure_dir(settings, name) for name in CLOSURES}
    jars_dir = settings.cache_dir / "jars"
    result = []
    for root in sorted(jars_dir.iterdir()) if jars_dir.is_dir() else ():
        if root in current or not root.is_dir():
            continue
        size = _size_mb(root)
        if running(root):
            result.append((root, size, "in use"))
        else:
            shutil.rmtree(root)
            result.append((root, size, "deleted"))
    return result


def _in_use(root: Path) -> bool:
    needle = str(root).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes():
                return True
        except OSError:  # the process ended meanwhile
            continue
    return False


def _size_mb(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) // (1024 * 1024)


def kafka_home(settings: Settings) -> Path:
    """Directory whose ``libs/`` holds the Kafka broker's runtime closure."""
    return _resolve(settings, "kafka", "Kafka",
                    lambda root: _copy_closure(settings, "kafka.pom.xml", root / "libs", "Kafka"))


def druid_home(settings: Settings) -> Path:
    """Directory laid out as Druid expects: ``lib/`` and ``extensions/<name>/``."""

    def layout(root: Path) -> None:
        _copy_closure(settings, "druid.pom.xml", root / "lib", "Druid")
        for ext, version in DRUID_EXTENSIONS.items():
            _copy_closure(settings, "druid-extension.pom.xml", root / "extensions" / ext, ext,
                          (f"-Dextension={ext}", f"-Dextension.version={version}"))

    return _resolve(settings, "druid", "Druid", layout)
