"""`clickpipe druid apply | status | suspend | resume | reset` against the real Druid."""

from __future__ import annotations

import json

from clickpipe.config import load
from druid.testing import private_druid, private_env, wait_for
from druid_support import run_cli


def _status(env) -> dict[str, dict]:
    result = run_cli(env, "druid", "status", "--format", "json")
    assert result.returncode in (0, 3), result.stderr
    return {row["supervisor"]: row for row in json.loads(result.stdout)}


def test_apply_is_idempotent_and_status_suspend_resume_reset_follow(stack):
    env = private_env()
    cfg = load(env)
    ids = [cfg.druid_clicks_datasource, cfg.druid_sessions_datasource]

    before = _status(env)
    assert {i: before[i]["state"] for i in ids} == dict.fromkeys(ids, "NOT APPLIED")
    with private_druid(cfg) as client:
        first = run_cli(env, "druid", "apply")
        assert first.returncode == 0, first.stderr
        assert [line.split() for line in first.stdout.splitlines()[1:]] == [[i, "created"] for i in ids]

        again = run_cli(env, "druid", "apply")
        assert again.returncode == 0, again.stderr
        assert [line.split() for line in again.stdout.splitlines()[1:]] == [[i, "unchanged"] for i in ids]
        assert [len(client.supervisor_history(i)) for i in ids] == [1, 1]

        changed = run_cli({**env, "CLICKPIPE_DRUID_TASK_DURATION": "PT11M"}, "druid", "apply")
        assert changed.returncode == 0, changed.stderr
        assert [line.split() for line in changed.stdout.splitlines()[1:]] == [[i, "updated"] for i in ids]
        assert [len(client.supervisor_history(i)) for i in ids] == [2, 2]

        running = wait_for(lambda: _status(env), lambda s: all(s[i]["state"] == "RUNNING" for i in ids), 60)
        assert all(running[i]["state"] == "RUNNING" and running[i]["last_error"] is None for i in ids)
        assert all(isinstance(running[i]["lag"], int) for i in ids)
        table = run_cli(env, "druid", "status")
        assert table.returncode == 0 and table.stdout.split("\n")[0].split() == [
            "SUPERVISOR", "TOPIC", "STATE", "LAG", "LAST_ERROR"]

        suspended = run_cli(env, "druid", "suspend", ids[0])
        assert suspended.returncode == 0, suspended.stderr
        states = wait_for(lambda: _status(env), lambda s: s[ids[0]]["state"] == "SUSPENDED", 60)
        assert (states[ids[0]]["state"], states[ids[1]]["state"]) == ("SUSPENDED", "RUNNING")
        assert run_cli(env, "druid", "status").returncode == 3

        resumed = run_cli(env, "druid", "resume")
        assert resumed.returncode == 0, resumed.stderr
        assert [line.split(None, 2) for line in resumed.stdout.splitlines()[1:]] == [
            [ids[0], "resume", "done"], [ids[1], "resume", "already running"]]
        states = wait_for(lambda: _status(env), lambda s: all(s[i]["state"] == "RUNNING" for i in ids), 60)
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
