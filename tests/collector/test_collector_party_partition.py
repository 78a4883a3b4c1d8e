"""New party ids are issued on the raw-topic partition of their address (IPv4 or IPv6 /64)."""

import pytest

from clickpipe.topics import partition_for
from collector.ids import is_valid_id, new_party_id
from steps.signals import address_key


@pytest.mark.parametrize("partitions", [1, 2, 4, 7, 32])
def test_new_parties_of_an_address_share_its_partition(partitions):
    for ip in ("203.0.113.9", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9"):
        key = address_key(ip)
        ids = {new_party_id(key, partitions) for _ in range(50)}
        assert len(ids) == 50 and all(is_valid_id(i) for i in ids)  # still random, valid ids
        assert {partition_for(i.encode(), partitions) for i in ids} == {partition_for(key.encode(), partitions)}


def test_without_an_address_any_partition_will_do():
    ids = {new_party_id(None, 8) for _ in range(200)}
    assert len({partition_for(i.encode(), 8) for i in ids}) > 4
