"""Measure the local stack: cold and warm `stack up`, idle memory, jar cache size.

Runs a private stack (own ports, state and — for the cold run — cache directory under a
temporary folder) through the real command line, so a stack already running is untouched.

    .venv/bin/python -m bench.stack_startup [--keep-cache DIR]

Cold = empty jar cache and empty state (first run on a fresh machine: Maven downloads
everything). Warm = jars cached, fresh state. Restart = jars cached, existing state
(`down` then `up`). Idle memory is the summed resident set of the stack's processes after
30 s idle.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORTS = {
    "KAFKA_PORT": 29092, "KAFKA_CONTROLLER_PORT": 29093, "ZOOKEEPER_PORT": 22181, "DERBY_PORT": 21527,
    "DRUID_COORDINATOR_PORT": 28081, "DRUID_BROKER_PORT": 28082, "DRUID_HISTORICAL_PORT": 28083,
    "DRUID_INDEXER_PORT": 28091, "DRUID_ROUTER_PORT": 28888,
}


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _rss_mb(pid_dir: Path) -> tuple[float, dict[str, float]]:
    per = {}
    for pid_file in pid_dir.glob("*.pid"):
        pid = pid_file.read_text().split()[0]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                per[pid_file.stem] = int(line.split()[1]) / 1024
    return sum(per.values()), per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep-cache", help="use this cache dir (skips the cold run if it is filled)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clickpipe-bench-") as tmp:
        cache = Path(args.keep_cache) if args.keep_cache else Path(tmp) / "cache"
        env = {**os.environ, **{f"CLICKPIPE_{k}": str(v) for k, v in PORTS.items()},
               "CLICKPIPE_CACHE_DIR": str(cache), "CLICKPIPE_STATE_DIR": str(Path(tmp) / "state")}

        def cli(*a: str) -> float:
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-m", "commands.cli", "stack", *a], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            return time.monotonic() - t0

        results = {}
        try:
            results["cold up (empty cache, empty state)"] = cli("up")
            results["jar cache (MB)"] = _dir_mb(cache / "jars")
            results["maven repository in cache (MB)"] = _dir_mb(cache / "maven-repo")
            time.sleep(30)
            total, per = _rss_mb(Path(tmp) / "state" / "run")
            results["idle resident memory, all services (MB)"] = total
            for name, mb in sorted(per.items()):
                results[f"  {name} (MB)"] = mb
            cli("down")
            results["restart up (cached jars, existing state)"] = cli("up")
            cli("reset")
            results["warm up (cached jars, empty state)"] = cli("up")
        finally:
            subprocess.run([sys.executable, "-m", "commands.cli", "stack", "down"], env=env,
                           stdout=subprocess.DEVNULL)
        for k, v in results.items():
            print(f"{k:45s} {v:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
