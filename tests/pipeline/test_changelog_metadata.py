"""The enrich agent's wait for changelog metadata (tables.await_changelog_metadata).

A fake consumer stands in for the Kafka consumer's metadata snapshot; the integration tests
run the agent against the real broker.
"""

from __future__ import annotations

import asyncio

import pytest
from faust.exceptions import PartitionsMismatch

from tables import await_changelog_metadata

CHANGELOGS = ["app-parties-changelog", "app-ips-changelog"]


class Metadata:
    """Partition counts that become ``final`` after ``stale_refreshes`` refreshes."""

    def __init__(self, stale: dict, final: dict, stale_refreshes: int):
        self.counts, self.final, self.left = dict(stale), final, stale_refreshes
        self.refreshes = 0

    def topic_partitions(self, topic):
        return self.counts.get(topic)

    async def refresh(self):
        self.refreshes += 1
        if self.refreshes >= self.left:
            self.counts = dict(self.final)


def wait(meta: Metadata):
    asyncio.run(await_changelog_metadata(meta, meta.refresh, "raw", CHANGELOGS, interval=0.01))


def test_known_changelogs_need_no_refresh():
    meta = Metadata({"raw": 4, **dict.fromkeys(CHANGELOGS, 4)}, {}, 0)
    wait(meta)
    assert meta.refreshes == 0


@pytest.mark.parametrize("stale", [{"raw": 4, CHANGELOGS[0]: 4, CHANGELOGS[1]: 0},  # created, no partitions yet
                                   {"raw": 4, CHANGELOGS[0]: 4},  # not in the metadata yet
                                   {}])  # nothing fetched yet
def test_missing_partitions_are_waited_for_with_refreshes(stale):
    meta = Metadata(stale, {"raw": 4, **dict.fromkeys(CHANGELOGS, 4)}, stale_refreshes=3)
    wait(meta)
    assert meta.refreshes == 3


def test_a_real_partition_mismatch_is_an_error_naming_the_topics():
    meta = Metadata({"raw": 4, CHANGELOGS[0]: 4, CHANGELOGS[1]: 2}, {}, 0)
    with pytest.raises(PartitionsMismatch, match="app-ips-changelog"):
        wait(meta)
