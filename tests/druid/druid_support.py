"""Helper of the Druid tests that is about the command line (the rest is in tests/support/druid.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Mapping


def run_cli(env: Mapping[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``clickpipe *args`` in a child process whose configuration is ``env`` (CLICKPIPE_* only)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}
    return subprocess.run([sys.executable, "-m", "commands.cli", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=timeout)


def druid_status(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``clickpipe druid status --format json`` in ``env``, by supervisor id."""
    result = run_cli(env, "druid", "status", "--format", "json")
    assert result.returncode in (0, 3), result.stderr
    return {row["supervisor"]: row for row in json.loads(result.stdout)}
