"""Cluster ids for formatting a new Kafka broker's storage."""

from __future__ import annotations

import base64
import re

from stack.kafka import new_cluster_id


def test_an_id_that_would_read_as_an_option_is_drawn_again():
    # 0xF8 makes the first base64 character "-" (62 in the URL-safe alphabet).
    draws = iter([b"\xf8" + bytes(15), b"\x01" * 16])
    cluster_id = new_cluster_id(lambda n: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(b"\x01" * 16).rstrip(b"=").decode()


def test_ids_are_16_bytes_of_unpadded_url_safe_base64_and_differ():
    ids = {new_cluster_id() for _ in range(2_000)}
    assert len(ids) == 2_000
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", cluster_id)
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
