"""Client IP behind proxies, anonymisation, ids and the duplicate memory."""

from __future__ import annotations

import os

import pytest

from collector.dedup import DuplicateMemory
from collector.ids import is_valid_id, new_id, sequence_id
from collector.network import anonymize, client_ip


@pytest.mark.parametrize(
    "remote,xff,hops,expected",
    [
        ("10.0.0.1", "203.0.113.7", 0, "10.0.0.1"),  # header ignored without trusted hops
        ("10.0.0.1", "203.0.113.7", 1, "203.0.113.7"),
        ("10.0.0.1", "1.1.1.1, 203.0.113.7", 1, "203.0.113.7"),  # leftmost entry is forgeable
        ("10.0.0.2", "1.1.1.1, 203.0.113.7, 10.0.0.1", 2, "203.0.113.7"),
        ("10.0.0.2", "203.0.113.7", 2, "203.0.113.7"),  # shorter than hops: furthest known
        ("10.0.0.1", "not-an-ip", 1, "10.0.0.1"),
        ("10.0.0.1", None, 1, "10.0.0.1"),
        ("10.0.0.1", " , ", 1, "10.0.0.1"),
        ("10.0.0.1", "2001:db8::1", 1, "2001:db8::1"),
    ],
)
def test_client_ip(remote, xff, hops, expected):
    assert client_ip(remote, xff, hops) == expected


def test_anonymize():
    assert anonymize("203.0.113.77") == "203.0.113.0"
    assert anonymize("2001:db8:abcd:1234::1") == "2001:db8:abcd::"
    assert anonymize("garbage") is None and anonymize(None) is None


def test_new_ids_are_valid_and_distinct():
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(is_valid_id(i) for i in ids)


def test_sequence_ids_are_valid_distinct_and_differ_after_fork():
    ids = [sequence_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(is_valid_id(i) for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next id and leave without running pytest's cleanup
        os.write(write, sequence_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode()
    assert is_valid_id(child) and child.split(".")[0] != ids[0].split(".")[0]


def test_duplicate_memory_remembers_only_what_it_was_told():
    memory = DuplicateMemory(1024)
    assert not memory.contains("p", "e1")
    memory.remember("p", "e1")
    assert memory.contains("p", "e1")
    assert not memory.contains("p", "e2") and not memory.contains("q", "e1")


def test_duplicate_memory_is_bounded_and_forgets():
    memory = DuplicateMemory(1)
    memory.remember("p", "e1")
    memory.remember("p", "e2")
    assert not memory.contains("p", "e1") and memory.contains("p", "e2")
