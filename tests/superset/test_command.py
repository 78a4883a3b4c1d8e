"""`clickpipe superset` refuses what it cannot do with a clear message and exit code 1, before
installing or starting anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT


def _superset(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")},
               "CLICKPIPE_STATE_DIR": str(tmp_path / "state"), **env}
    return subprocess.run([sys.executable, "-m", "commands.cli", "superset", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_serve_without_provisioning_says_what_to_run(tmp_path):
    result = _superset(tmp_path, "serve")
    assert result.returncode == 1
    assert "nothing provisioned" in result.stderr and "clickpipe superset provision" in result.stderr
    assert not (tmp_path / "state" / "superset").exists()


@pytest.mark.parametrize("action", ["run", "provision"])
def test_a_version_without_pinned_requirements_is_refused(tmp_path, action):
    result = _superset(tmp_path, action, CLICKPIPE_SUPERSET_VERSION="9.9.9",
                       CLICKPIPE_SUPERSET_HOME=str(tmp_path / "home"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no pinned requirements for Superset 9.9.9" in result.stderr
    assert not (tmp_path / "home" / "admin-credentials.json").exists()
