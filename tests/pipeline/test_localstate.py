"""app.localstate: local tables are discarded after an unclean stop, kept after a clean one."""

import os

from app import localstate


def _tables(tmp_path):
    tabledir = tmp_path / "v1" / "tables"
    tabledir.mkdir(parents=True)
    (tabledir / "parties.db").write_text("state")
    return tabledir


def test_clean_stop_keeps_tables_and_a_second_claim_by_the_same_process_is_harmless(tmp_path):
    tabledir = _tables(tmp_path)
    assert localstate.claim(tmp_path, tabledir) is False
    assert localstate.claim(tmp_path, tabledir) is False  # Faust may initialise twice
    localstate.release(tmp_path)
    assert localstate.claim(tmp_path, tabledir) is False and tabledir.exists()


def test_a_marker_left_by_a_crashed_worker_with_the_same_pid_still_wipes(tmp_path):
    # in a container every start is pid 1: the pid alone must not pass for this process's claim
    tabledir = _tables(tmp_path)
    (tmp_path / localstate.MARKER).write_text(f"{os.getpid()}:an-earlier-start")
    assert localstate.claim(tmp_path, tabledir) is True
    assert not tabledir.exists()
