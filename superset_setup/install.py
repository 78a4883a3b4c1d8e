"""Superset's own virtual environment, under the cache directory, keyed by its pinned requirements.

``requirements-<version>.txt`` beside this module pins Superset and every dependency (Superset's
loose ranges let pip pick releases it does not run with). The environment lives in
``<cache dir>/superset/<version>-<hash of that file>``: reused by every clone and run, rebuilt
only when the pins change. It is built in a temporary directory and renamed into place when
complete, so an interrupted install never looks finished.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from clickpipe.config import Settings

HERE = Path(__file__).resolve().parent


class SupersetError(RuntimeError):
    """Superset could not be installed, provisioned or started; the message says what to look at."""


def requirements(version: str) -> Path:
    """The pinned requirements of Superset ``version``; :class:`SupersetError` if none are committed."""
    path = HERE / f"requirements-{version}.txt"
    if not path.exists():
        known = sorted(p.stem.removeprefix("requirements-") for p in HERE.glob("requirements-*.txt"))
        raise SupersetError(f"no pinned requirements for Superset {version} (CLICKPIPE_SUPERSET_VERSION); "
                            f"pinned: {', '.join(known)}")
    return path


def environment(settings: Settings) -> Path:
    """Where the environment of ``settings.superset_version`` lives (installed or not)."""
    pins = requirements(settings.superset_version)
    digest = hashlib.sha256(pins.read_bytes()).hexdigest()[:12]
    return settings.cache_dir / "superset" / f"{settings.superset_version}-{digest}"


def installed(settings: Settings) -> bool:
    return (environment(settings) / "bin" / "superset").exists()


def ensure_installed(settings: Settings, echo: Callable[[str], None] = print) -> Path:
    """The environment's directory, installing it first when missing (a few minutes, ~700 MB)."""
    target = environment(settings)
    if installed(settings):
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    echo(f"[superset] installing Apache Superset {settings.superset_version} into {target} (once; a few minutes)")
    started = time.monotonic()
    try:
        _run([sys.executable, "-m", "venv", str(partial)])
        pip = [str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run(pip + ["--upgrade", "pip"])
        _run(pip + ["--requirement", str(requirements(settings.superset_version))])
    except SupersetError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    # Renamed only when complete; pip's scripts name the interpreter by absolute path, so they
    # are pointed at the final place.
    partial.rename(target)
    _relocate_scripts(target, partial)
    echo(f"[superset] installed in {time.monotonic() - started:.0f} s, {_size_mb(target)} MB")
    return target


def _relocate_scripts(env: Path, old: Path) -> None:
    """Point the environment's scripts and activation files at ``env`` instead of ``old``."""
    for path in [*(env / "bin").iterdir(), env / "pyvenv.cfg"]:
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if bytes(old) in data:
                path.write_bytes(data.replace(bytes(old), bytes(env)))


def _run(command: list[str]) -> None:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise SupersetError(f"{' '.join(command[:6])} … failed ({result.returncode}):\n{result.stdout[-3000:]}")


def _size_mb(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) // 2**20
