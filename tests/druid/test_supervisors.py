"""`clickpipe druid apply | status | suspend | resume | reset` against the real Druid."""

from __future__ import annotations

import json

from druid_support import druid_status, run_cli

from clickpipe.config import load
from druid import supervisors
from tests.support.druid import private_druid, private_env, wait_for


def _supervisor_rows(stdout: str) -> list[list[str]]:
    """The rows of `druid apply`'s supervisor table (the retention table follows it)."""
    rows = []
    for line in stdout.splitlines()[1:]:
        if line.startswith("DATASOURCE"):
            break
        rows.append(line.split())
    return rows


def test_apply_is_idempotent_and_status_suspend_resume_reset_follow(stack):
    env = private_env()
    cfg = load(env)
    ids = [cfg.druid_clicks_datasource, cfg.druid_sessions_datasource, cfg.druid_bot_sessions_datasource]

    before = druid_status(env)
    assert {i: before[i]["state"] for i in ids} == dict.fromkeys(ids, "NOT APPLIED")
    with private_druid(cfg) as client:
        first = run_cli(env, "druid", "apply")
        assert first.returncode == 0, first.stderr
        assert _supervisor_rows(first.stdout) == [[i, "created"] for i in ids]

        again = run_cli(env, "druid", "apply")
        assert again.returncode == 0, again.stderr
        assert _supervisor_rows(again.stdout) == [[i, "unchanged"] for i in ids]
        assert [len(client.supervisor_history(i)) for i in ids] == [1, 1, 1]

        changed = run_cli({**env, "CLICKPIPE_DRUID_TASK_DURATION": "PT11M"}, "druid", "apply")
        assert changed.returncode == 0, changed.stderr
        assert _supervisor_rows(changed.stdout) == [[i, "updated"] for i in ids]
        assert [len(client.supervisor_history(i)) for i in ids] == [2, 2, 2]

        running = wait_for(lambda: druid_status(env), lambda s: all(s[i]["state"] == "RUNNING" for i in ids), 60)
        assert all(running[i]["state"] == "RUNNING" and running[i]["last_error"] is None for i in ids)
        assert all(isinstance(running[i]["lag"], int) for i in ids)
        assert all((running[i]["unparseable"], running[i]["with_errors"], running[i]["parse_exceptions"])
                   == (0, 0, []) for i in ids)
        table = run_cli(env, "druid", "status")
        assert table.returncode == 0 and table.stdout.split("\n")[0].split() == [
            "SUPERVISOR", "TOPIC", "STATE", "LAG", "UNPARSEABLE", "WITH_ERRORS", "LAST_ERROR"]
        assert "Parse exceptions" not in table.stdout

        suspended = run_cli(env, "druid", "suspend", ids[0])
        assert suspended.returncode == 0, suspended.stderr
        states = wait_for(lambda: druid_status(env), lambda s: s[ids[0]]["state"] == "SUSPENDED", 60)
        assert [states[i]["state"] for i in ids] == ["SUSPENDED", "RUNNING", "RUNNING"]
        assert run_cli(env, "druid", "status").returncode == 3

        resumed = run_cli(env, "druid", "resume")
        assert resumed.returncode == 0, resumed.stderr
        assert [line.split(None, 2) for line in resumed.stdout.splitlines()[1:]] == [
            [ids[0], "resume", "done"], [ids[1], "resume", "already running"], [ids[2], "resume", "already running"]]
        states = wait_for(lambda: druid_status(env), lambda s: all(s[i]["state"] == "RUNNING" for i in ids), 60)
        assert all(states[i]["state"] == "RUNNING" for i in ids)

        refused = run_cli(env, "druid", "reset")
        assert refused.returncode == 2 and "--yes" in refused.stderr
        reset = run_cli(env, "druid", "reset", "--yes", ids[1])
        assert reset.returncode == 0 and reset.stdout.splitlines()[1].split() == [ids[1], "reset", "done"]

        foreign = run_cli(env, "druid", "suspend", "someone-elses-supervisor")
        assert foreign.returncode == 1 and "not a clickpipe supervisor" in foreign.stderr


def test_a_rejected_spec_shows_druids_message(stack):
    env = private_env(DRUID_TASK_DURATION="ten minutes")
    cfg = load(env)
    with private_druid(cfg):
        result = run_cli(env, "druid", "apply")
    assert result.returncode == 1
    assert f"Druid rejected the spec of '{cfg.druid_clicks_datasource}'" in result.stderr
    assert "HTTP 400" in result.stderr and "ten minutes" in result.stderr


ROWS = [
    {"supervisor": "clicks", "topic": "clicks.enriched", "state": "RUNNING", "lag": 0, "unparseable": 7,
     "with_errors": 1, "last_error": None,
     "parse_exceptions": [{"time": f"2026-01-01T00:00:0{9 - n}.000Z", "type": "unparseable",
                           "detail": f"Unable to parse row [bad {9 - n}] (Record: 1, Line: 1)"} for n in range(7)]},
    {"supervisor": "sessions", "topic": "clicks.sessions", "state": "NOT APPLIED", "lag": None, "unparseable": None,
     "with_errors": None, "last_error": None, "parse_exceptions": []},
]


def test_status_table_shows_counts_and_the_latest_parse_exceptions_of_each_supervisor():
    lines = supervisors.render_status(ROWS, shown=5).splitlines()
    assert [line.split() for line in lines[:3]] == [
        ["SUPERVISOR", "TOPIC", "STATE", "LAG", "UNPARSEABLE", "WITH_ERRORS", "LAST_ERROR"],
        ["clicks", "clicks.enriched", "RUNNING", "0", "7", "1", "-"],
        ["sessions", "clicks.sessions", "NOT", "APPLIED", "-", "-", "-", "-"]]
    assert lines[3:6] == ["", "Parse exceptions saved by the current tasks of clicks (newest first; "
                              "2 more with --format json):", lines[5]]
    assert lines[5].split() == ["TIME", "TYPE", "DETAIL"]
    assert [line.split(None, 2) for line in lines[6:]] == [
        [f"2026-01-01T00:00:0{9 - n}.000Z", "unparseable", f"Unable to parse row [bad {9 - n}] (Record: 1, Line: 1)"]
        for n in range(5)]


def test_status_json_has_every_parse_exception_and_csv_one_line_per_supervisor():
    assert json.loads(supervisors.render_status(ROWS, "json")) == ROWS
    csv = supervisors.render_status(ROWS, "csv").splitlines()
    assert csv[0] == "supervisor,topic,state,lag,unparseable,with_errors,last_error" and len(csv) == 3


def test_counts_add_task_groups_and_count_replicas_once():
    def task(unparseable):
        return {"totals": {"buildSegments": {"processed": 10, "unparseable": unparseable, "processedWithError": 0}}}

    stats = {"0": {"replica-a": task(3), "replica-b": task(2)}, "1": {"other": task(4), "silent": "timed out"},
             "2": {}}
    assert supervisors._counted(stats, "unparseable") == 7
    assert supervisors._counted(stats, "processedWithError") == 0
    assert supervisors._counted({}, "unparseable") == 0


def test_a_saved_parse_exception_becomes_one_printable_line_without_the_row():
    saved = supervisors._parse_exception({
        "input": "{ip=81.2.69.142, n=wide}", "errorType": "processedWithError", "timeOfExceptionMillis": 1796186953455,
        "details": ["Could not convert value [wide] to long for dimension [n].", "Unable to parse row [\x00\x01]"]})
    assert saved == {"time": "2026-12-02T04:49:13.455Z", "type": "processedWithError",
                     "detail": "Could not convert value [wide] to long for dimension [n]. Unable to parse row [??]"}
