"""Discard local table state that a crashed worker may have left ahead of Kafka.

With ``exactly_once``, a table write reaches the changelog only when its transaction
commits, but it reaches the local RocksDB at once. A worker killed mid-transaction therefore
leaves local state that includes writes Kafka never committed, and Faust's recovery, which
trusts the offsets RocksDB recorded, then either replays the uncommitted input against that
state (a replayed click found in the dedup memory would be dropped) or refuses to start
(``ConsistencyError``). A marker file records that a worker is running; if it is still there
when the next worker starts, the previous one did not stop cleanly, and the tables are
rebuilt from their committed changelogs instead. A clean stop keeps the local state, so
restarts after a normal shutdown stay fast.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "worker.running"
# Who holds the marker: unique per process start, as a pid alone is not (in a container the
# worker is pid 1 on every start, so its own crash would look like its current claim).
OWNER = f"{os.getpid()}:{uuid.uuid4().hex}"


def claim(datadir: Path, tabledir: Path) -> bool:
    """Mark ``datadir`` as in use; wipe ``tabledir`` first if the last worker crashed. True if wiped."""
    datadir.mkdir(parents=True, exist_ok=True)
    marker = datadir / MARKER
    wiped = False
    if marker.exists() and marker.read_text().strip() == OWNER:
        return False  # claimed already by this process (Faust may signal worker init twice)
    if marker.exists():
        if tabledir.exists():
            shutil.rmtree(tabledir)
            wiped = True
        log.warning("previous worker did not stop cleanly: local tables discarded, restoring from changelogs",
                    extra={"tabledir": str(tabledir), "previous": marker.read_text().strip()})
    marker.write_text(OWNER)
    return wiped


def release(datadir: Path) -> None:
    """Mark a clean stop: the local state is consistent with what was committed."""
    (datadir / MARKER).unlink(missing_ok=True)
