"""Generated specs against the real Druid: accepted, and JSON rows land as declared."""

from __future__ import annotations

import copy
import dataclasses

import pytest

import schemas
from druid import specs
from tests.support.druid import count_rows, private_druid, private_settings, produce_rows, wait_for
from tests.support.records import enriched_click, session

DECLARATION = specs.load_declaration()


@pytest.fixture
def newer_click_schema(monkeypatch):
    """A registered EnrichedClick version with one more field, forgotten after the test."""
    monkeypatch.setattr(schemas, "_by_fingerprint", dict(schemas._by_fingerprint))
    source = copy.deepcopy(dict(schemas.current("EnrichedClick").source))
    source["fields"].append({"name": "experiment", "type": ["null", "string"], "default": None})
    return schemas.register(source)


def test_clicks_spec_ingests_every_schema_version_booleans_maps_and_sketches(stack, newer_click_schema):
    cfg = private_settings()
    ds = dataclasses.replace(
        DECLARATION["clicks"],
        dimensions={**DECLARATION["clicks"].dimensions, "experiment": "string"},
        maps={"params": ("plan",)},
        # countWhere on `false` too, and on a nullable boolean (null matches neither value)
        metrics=DECLARATION["clicks"].metrics + (specs.Metric("returning", "countWhere", "new_party", "false"),
                                                 specs.Metric("no_webdriver", "countWhere", "webdriver", "false")),
    )
    current = schemas.current("EnrichedClick")
    assert newer_click_schema in schemas.versions("EnrichedClick") and newer_click_schema != current
    # 300 current-version clicks: 30 parties, 60 sessions, every 5th a bot, every 4th a custom event.
    old = [enriched_click(party_id=f"p{i % 30}", session_id=f"s{i % 60}", is_bot=i % 5 == 0,
                          bot_reason="ua-spider" if i % 5 == 0 else None,
                          event_type="pageView" if i % 4 else "signup", new_party=i < 30,
                          webdriver=[None, True, False][i % 3], params={"plan": f"plan-{i % 2}", "other": "x"},
                          url_path=f"/page/{i % 3}")
           for i in range(300)]
    # 100 clicks of the newer version from 10 new parties.
    new = [enriched_click(party_id=f"q{i % 10}", session_id=f"t{i % 10}", experiment=f"arm-{i % 2}")
           for i in range(100)]

    spec = specs.build(ds, cfg)
    with private_druid(cfg) as client:
        assert produce_rows(cfg, ds.topic(cfg), current, old) == 300
        assert produce_rows(cfg, ds.topic(cfg), newer_click_schema, new) == 100
        assert client.submit_supervisor(spec) == ds.name(cfg)

        total = wait_for(lambda: count_rows(client, ds.name(cfg)), lambda n: n == 400)
        assert total == 400
        table = f'"{ds.name(cfg)}"'
        [summary] = client.sql(
            f"SELECT SUM(page_views) AS page_views, SUM(new_visitors) AS new_visitors, SUM(returning) AS returning, "
            f"SUM(no_webdriver) AS no_webdriver, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(sessions) AS sessions, "
            f"SUM(\"count\") FILTER (WHERE is_bot = 'true') AS bots, "
            f"SUM(\"count\") FILTER (WHERE webdriver = 'true') AS webdriver, "
            f"SUM(\"count\") FILTER (WHERE webdriver = 'false') AS webdriver_false, "
            f"SUM(\"count\") FILTER (WHERE webdriver IS NULL) AS webdriver_unknown, "
            f"SUM(\"count\") FILTER (WHERE params_plan = 'plan-1') AS plan_1, "
            f"SUM(\"count\") FILTER (WHERE experiment = 'arm-1') AS arm_1, "
            f"SUM(\"count\") FILTER (WHERE experiment IS NULL) AS no_experiment, "
            f"SUM(screen_width * \"count\") AS screen_width FROM {table}")
        assert summary == {
            "page_views": sum(r["event_type"] == "pageView" for r in old + new),
            "new_visitors": 30,
            "returning": 370,
            "no_webdriver": 100,
            "visitors": 40,  # below the sketch's nominal entries a theta estimate is exact
            "sessions": 70,
            "bots": 60,
            "webdriver": 100,
            "webdriver_false": 100,
            "webdriver_unknown": 200,
            "plan_1": 150,
            "arm_1": 50,
            "no_experiment": 300,
            "screen_width": 1920 * 400,
        }
        columns = {r["COLUMN_NAME"] for r in client.sql(
            "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = ?",
            [{"type": "VARCHAR", "value": ds.name(cfg)}])}
        assert set(ds.excluded).isdisjoint(columns) and "params_other" not in columns

        assert client.supervisor_status(ds.name(cfg))["payload"]["recentErrors"] == []
        running = client.supervisor_spec(ds.name(cfg))
        assert running["context"][specs.SPEC_HASH_KEY] == specs.spec_hash(spec)


def test_sessions_spec_ingests_durations_bounces_and_visitors(stack):
    cfg = private_settings()
    ds = DECLARATION["sessions"]
    durations = [1000 * (i + 1) for i in range(101)]  # median 51 s
    records = [session(party_id=f"p{i % 25}", duration_ms=d, page_views=1 + i % 3, bounce=i % 4 == 0,
                       is_bot=i == 0, landing_page=f"https://shop.example.com/p{i % 2}?email=a%40b.example#top")
               for i, d in enumerate(durations)]

    with private_druid(cfg) as client:
        produce_rows(cfg, ds.topic(cfg), schemas.current("Session"), records)
        assert client.submit_supervisor(specs.build(ds, cfg)) == ds.name(cfg)
        assert wait_for(lambda: count_rows(client, ds.name(cfg)), lambda n: n == 101) == 101
        [row] = client.sql(
            f'SELECT SUM("count") AS sessions, SUM(bounces) AS bounces, SUM(duration_ms) AS duration, '
            f'SUM(page_views) AS page_views, APPROX_QUANTILE_DS(duration_quantiles, 0.5) AS median, '
            f'APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, '
            f'SUM("count") FILTER (WHERE is_bot = \'true\') AS bots FROM "{ds.name(cfg)}"')
        assert row == {
            "sessions": 101,
            "bounces": sum(r["bounce"] for r in records),
            "duration": sum(durations),
            "page_views": sum(r["page_views"] for r in records),
            "median": 51000.0,  # quantile sketches keep every value below k=128
            "visitors": 25,
            "bots": 1,
        }
        landing = client.sql(f'SELECT landing_page, SUM("count") AS n FROM "{ds.name(cfg)}" GROUP BY 1 ORDER BY 1')
        assert landing == [{"landing_page": "https://shop.example.com/p0", "n": 51},
                           {"landing_page": "https://shop.example.com/p1", "n": 50}]
        assert client.supervisor_status(ds.name(cfg))["payload"]["recentErrors"] == []
