"""The tables' contract with recovery: every changelog write is transactional (unit level, no broker)."""

from __future__ import annotations

import pytest

from app.faust_internals import App
from tables import AttachedTable


def make_app(**conf) -> App:
    app = App("tables-test", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False, **conf)
    app.in_worker = True  # as in a worker process: transactions apply only there
    return app


def test_a_table_write_outside_stream_iteration_raises():
    app = make_app(processing_guarantee="exactly_once", stream_publish_on_commit=True)
    table = app.tables.add(AttachedTable(app, name="parties", partitions=2))
    with pytest.raises(RuntimeError, match="table parties written outside stream iteration"):
        table.send_changelog(0, "party", {"a": 1})


def test_only_transactional_changelogs_have_their_highwater_lowered():
    app = make_app(processing_guarantee="exactly_once", stream_publish_on_commit=True)
    attached = app.tables.add(AttachedTable(app, name="parties", partitions=2))
    app.Table("plain", partitions=2)  # registers itself
    assert app.marker_ended_topics() == {attached.changelog_topic_name}
    for conf in ({"processing_guarantee": "at_least_once", "stream_publish_on_commit": True},
                 {"processing_guarantee": "exactly_once", "stream_publish_on_commit": False}):
        other = make_app(**conf)
        other.tables.add(AttachedTable(other, name="parties", partitions=2))
        assert other.marker_ended_topics() == frozenset()
