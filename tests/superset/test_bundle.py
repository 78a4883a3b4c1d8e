"""The Superset bundle built from superset_setup/assets: placeholders filled from the settings,
every reference resolvable, columns and metrics consistent with druid/datasources.toml."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
import yaml

from clickpipe.config import load
from druid.specs import load_declaration
from superset_setup import bundle
from superset_setup.install import SupersetError, requirements


@pytest.fixture(scope="module")
def parsed():
    cfg = load({"CLICKPIPE_DRUID_CLICKS_DATASOURCE": "my-clicks",
                "CLICKPIPE_DRUID_SESSIONS_DATASOURCE": "my 'sessions'",
                "CLICKPIPE_DRUID_BROKER_URL": "http://10.0.0.7:18082", "CLICKPIPE_SUPERSET_FUNNEL_PAGES": "/a,/b"})
    with zipfile.ZipFile(io.BytesIO(bundle.build(cfg))) as archive:
        names = archive.namelist()
        assert all(n.startswith(f"{bundle.ROOT}/") for n in names)
        return {n.removeprefix(f"{bundle.ROOT}/"): yaml.safe_load(archive.read(n)) for n in names}


def _of(parsed, folder):
    return {name: body for name, body in parsed.items() if name.startswith(folder + "/")}


def test_settings_fill_the_placeholders(parsed):
    [database] = _of(parsed, "databases").values()
    assert database["sqlalchemy_uri"] == "druid://10.0.0.7:18082/druid/v2/sql/"
    tables = {d["table_name"]: d for d in _of(parsed, "datasets").values()}
    assert set(tables) == {"my-clicks", "my 'sessions'", "clickpipe weekly retention"}
    assert 'FROM "my-clicks"' in tables["clickpipe weekly retention"]["sql"]
    [funnel] = [c for c in _of(parsed, "charts").values() if c["viz_type"] == "funnel"]
    assert [f["comparator"] for f in funnel["params"]["adhoc_filters"] if f["subject"] == "url_path"] == [["/a", "/b"]]
    assert parsed["metadata.yaml"]["type"] == "assets"


def test_columns_are_the_declared_dimensions(parsed):
    declaration = load_declaration()
    by_name = {d["uuid"]: d for d in _of(parsed, "datasets").values()}
    clicks = next(d for d in by_name.values() if d["table_name"] == "my-clicks")
    columns = {c["column_name"] for c in clicks["columns"]}
    assert columns == {"__time", *declaration["clicks"].dimensions}
    assert [c["column_name"] for c in clicks["columns"] if c["is_dttm"]] == ["__time"]


def test_metrics_use_only_declared_columns(parsed):
    declaration = load_declaration()
    for dataset in _of(parsed, "datasets").values():
        if dataset["sql"]:
            continue  # a virtual dataset's metrics use its query's columns
        ds = declaration["clicks" if dataset["table_name"] == "my-clicks" else "sessions"]
        known = {"count", *ds.dimensions, *(m.name for m in ds.metrics)}
        for metric in dataset["metrics"]:
            names = set(re.findall(r'"(\w+)"|\b([a-z_]+)\b(?!\s*\()', metric["expression"]))
            used = {a or b for a, b in names} - {"as", "double", "filter", "where", "true", "false"}
            assert used <= known, (metric["metric_name"], used - known)


def test_every_chart_and_dashboard_reference_resolves(parsed):
    datasets = {d["uuid"]: {m["metric_name"] for m in d["metrics"]} for d in _of(parsed, "datasets").values()}
    [database] = _of(parsed, "databases").values()
    assert {d["database_uuid"] for d in _of(parsed, "datasets").values()} == {database["uuid"]}
    charts = _of(parsed, "charts").values()
    assert len({c["uuid"] for c in charts}) == len(charts)
    for chart in charts:
        params = chart["params"]
        metrics = params.get("metrics", []) + [params[k] for k in ("metric", "timeseries_limit_metric") if k in params]
        assert set(metrics) <= datasets[chart["dataset_uuid"]], chart["slice_name"]
    [dashboard] = _of(parsed, "dashboards").values()
    placed = {v["meta"]["uuid"] for v in dashboard["position"].values() if isinstance(v, dict) and v["type"] == "CHART"}
    assert placed == {c["uuid"] for c in charts}
    assert dashboard["slug"] == bundle.DASHBOARD_SLUG


def test_an_unpinned_version_is_refused():
    with pytest.raises(SupersetError, match=r"no pinned requirements for Superset 9\.9\.9.*pinned: 5\.0\.0"):
        requirements("9.9.9")
