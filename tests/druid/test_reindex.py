"""The reindex spec derived from the declaration, and the time chunks it rewrites (no Druid needed)."""

from __future__ import annotations

from clickpipe.config import load
from druid import reindex, specs


def test_a_reindex_rewrites_the_stored_rows_of_an_interval_through_a_filter():
    settings = load({})
    ds = specs.load_declaration()["sessions"]
    keep = {"type": "not", "field": {"type": "equals", "column": "party", "matchValueType": "STRING",
                                     "matchValue": "x"}}
    task = reindex.spec(ds, settings, "2025-01-01T00:00:00Z/2025-01-02T00:00:00Z", keep)
    schema, io = task["spec"]["dataSchema"], task["spec"]["ioConfig"]
    stream = specs.build(ds, settings)["spec"]["dataSchema"]
    assert io["inputSource"] == {"type": "druid", "dataSource": "sessions",
                                 "interval": "2025-01-01T00:00:00Z/2025-01-02T00:00:00Z"}
    assert (io["appendToExisting"], io["dropExisting"]) == (False, True)
    assert schema["dataSource"] == "sessions" and schema["transformSpec"] == {"filter": keep}
    assert schema["dimensionsSpec"] == stream["dimensionsSpec"] and "party" in schema["dimensionsSpec"]["dimensions"]
    assert schema["granularitySpec"]["intervals"] == ["2025-01-01T00:00:00Z/2025-01-02T00:00:00Z"]
    metrics = {m["name"]: (m["type"], m["fieldName"]) for m in schema["metricsSpec"]}
    assert metrics["count"] == ("longSum", "count")  # re-aggregated from the stored column
    assert metrics["visitors"] == ("thetaSketch", "visitors")
    assert metrics["duration_quantiles"] == ("quantilesDoublesSketch", "duration_quantiles")
    assert metrics["bounces"] == ("longSum", "bounces")  # a countWhere metric: its stored sum
    assert reindex.spec(ds, settings, "2025-01-01T00:00:00Z/2025-01-02T00:00:00Z", target="other")[
        "spec"]["dataSchema"]["dataSource"] == "other"


def test_chunks_are_the_aligned_intervals_holding_the_times_contiguous_ones_merged():
    hour = 3_600_000
    day0 = 1_764_633_600_000  # 2025-12-02T00:00:00Z
    assert reindex.chunks([day0 + 5 * hour + 1, day0 + 6 * hour, day0 + 6 * hour + 59, day0 + 9 * hour], "hour") == [
        "2025-12-02T05:00:00Z/2025-12-02T07:00:00Z", "2025-12-02T09:00:00Z/2025-12-02T10:00:00Z"]
    assert reindex.chunks([day0 + hour, day0 + 30 * hour], "day") == ["2025-12-02T00:00:00Z/2025-12-04T00:00:00Z"]
    assert reindex.chunks([], "day") == []
