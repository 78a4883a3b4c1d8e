"""Helper of the Druid tests that is about the command line (the rest is in druid.testing)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Mapping


def run_cli(env: Mapping[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``clickpipe *args`` in a child process whose configuration is ``env`` (CLICKPIPE_* only)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}
    return subprocess.run([sys.executable, "-m", "clickpipe.cli", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=timeout)
