"""Pruning the jar cache: closures of poms the checkout no longer uses go, current ones stay."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from clickpipe.config import load
from stack import jars


def closure(settings, name: str) -> None:
    (settings.cache_dir / "jars" / name).mkdir(parents=True)
    (settings.cache_dir / "jars" / name / "some.jar").write_bytes(b"x" * 2048)


def test_outdated_closures_are_deleted_current_and_running_ones_kept(tmp_path):
    settings = load({"CLICKPIPE_CACHE_DIR": str(tmp_path / "cache")})
    current = [jars._closure_dir(settings, name) for name in jars.CLOSURES]
    for root in current:
        closure(settings, root.name)
    for name in ("kafka-000000000000", "druid-111111111111", "druid-222222222222"):
        closure(settings, name)
    (settings.cache_dir / "maven-repo").mkdir()

    busy = settings.cache_dir / "jars" / "druid-222222222222"
    pruned = jars.prune(settings, running=lambda root: root == busy)

    assert [(root.name, state) for root, _, state in pruned] == [
        ("druid-111111111111", "deleted"), ("druid-222222222222", "in use"), ("kafka-000000000000", "deleted")]
    left = sorted(p.name for p in (settings.cache_dir / "jars").iterdir())
    assert left == sorted([r.name for r in current] + ["druid-222222222222"])
    assert (settings.cache_dir / "maven-repo").is_dir()
    assert jars.prune(settings, running=lambda root: False) == [(busy, 0, "deleted")]


def test_an_empty_cache_prunes_nothing(tmp_path):
    assert jars.prune(load({"CLICKPIPE_CACHE_DIR": str(tmp_path / "none")})) == []


def test_a_closure_on_a_running_process_command_line_is_in_use(tmp_path):
    root = tmp_path / "jars" / "kafka-333333333333"
    root.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", f"-cp={root}/libs/*"])
    try:
        # Popen returns after fork; until the child has exec'd, its command line is still pytest's
        deadline = time.monotonic() + 10
        while str(root).encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.01)
        assert jars._in_use(root)
    finally:
        proc.kill()
        proc.wait()
    assert not jars._in_use(root)
