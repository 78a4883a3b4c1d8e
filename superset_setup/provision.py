"""Provision Superset (metadata schema, roles, admin, Druid database, datasets, dashboard) and
build its server's command line.

Every step is idempotent: ``superset db upgrade`` and ``superset init`` only add what is
missing (and run once per Superset environment: a marker in the home records it), the admin is
created once, and the assets import overwrites the bundle's objects, matched by uuid (charts and
datasets edited in the UI are reset to the committed assets; copies saved under another name are
kept).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

from clickpipe.config import Settings
from superset_setup import bundle
from superset_setup.home import Credentials, Home
from superset_setup.install import SupersetError, ensure_installed

IMPORT_SCRIPT = Path(__file__).resolve().with_name("import_assets.py")
COMMAND_TIMEOUT_S = 600  # one `superset` command; the first `db upgrade` runs every migration


def provision(settings: Settings, echo: Callable[[str], None] = print) -> Credentials:
    """Install Superset when missing, then bring its home up to date with the settings and assets.

    Returns the admin's credentials; ``created`` is true when they were generated now (the one
    time they are printed).
    """
    env_dir = ensure_installed(settings, echo)
    home = Home(settings)
    credentials = home.prepare()
    echo(f"[superset] provisioning {home.path}")
    # Schema, roles and admin change only with the environment: done once per environment.
    prepared = home.path / f".prepared-{env_dir.name}"
    if not prepared.exists():
        superset = SupersetCommand(env_dir, home)
        superset("db", "upgrade")
        superset("init")
        superset("fab", "create-admin", "--username", credentials.username, "--password", credentials.password,
                 "--firstname", "clickpipe", "--lastname", "admin", "--email", "admin@localhost")
        for old in home.path.glob(".prepared-*"):
            old.unlink()
        prepared.touch()
    archive = home.path / "click-stream.zip"
    archive.write_bytes(bundle.build(settings))
    run(env_dir, home, str(env_dir / "bin" / "python"), str(IMPORT_SCRIPT), str(archive), credentials.username)
    return credentials


class SupersetCommand:
    """Runs ``superset <args>`` of the environment in ``env_dir`` against ``home``."""

    def __init__(self, env_dir: Path, home: Home):
        self.env_dir = env_dir
        self.home = home

    def __call__(self, *args: str) -> str:
        return run(self.env_dir, self.home, str(self.env_dir / "bin" / "superset"), *args)


def run(env_dir: Path, home: Home, *command: str) -> str:
    """Run ``command`` (a program of the environment in ``env_dir``) against ``home``; its output,
    or :class:`SupersetError` with the output's end."""
    name = " ".join(Path(command[0]).name if i == 0 else Path(part).name for i, part in enumerate(command[:3]))
    try:
        result = subprocess.run(list(command), cwd=home.path, env=server_env(home), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise SupersetError(f"`{name}` took more than {COMMAND_TIMEOUT_S} s") from exc
    if result.returncode != 0:
        raise SupersetError(f"`{name}` failed ({result.returncode}):\n{result.stdout[-3000:]}")
    return result.stdout


def server_env(home: Home) -> dict[str, str]:
    """The environment of Superset's processes: this one's, plus its home, minus the pipeline's
    virtualenv (Superset runs from its own)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(home.environment())
    return env


def server_command(settings: Settings) -> list[str]:
    """gunicorn serving Superset on ``superset_host:superset_port`` (one process, threads for
    the dashboard's parallel chart requests; working directory Superset's home, which also puts
    the home in the command line, so the process is found by its state directory; no control
    socket, whose default path in the user's home directory every gunicorn would share)."""
    env_dir = ensure_installed(settings)
    return [str(env_dir / "bin" / "gunicorn"), "--bind", f"{settings.superset_host}:{settings.superset_port}",
            "--workers", "1", "--worker-class", "gthread", "--threads", "8", "--timeout", "120",
            "--chdir", str(settings.superset_home), "--no-control-socket",
            "--limit-request-line", "0", "--limit-request-field_size", "0",
            "superset.app:create_app()"]
