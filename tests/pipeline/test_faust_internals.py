"""The start-up check of the Faust hooks the pipeline relies on (no broker needed)."""

from __future__ import annotations

import pytest

from app import faust_internals
from app.faust_internals import FaustIncompatible, check


def test_the_installed_faust_has_every_hook():
    check()


class _Old:
    def _attach(self, channel, key, value):  # a release that dropped parameters
        pass


def test_a_missing_hook_is_named():
    with pytest.raises(FaustIncompatible, match=r"_Old\._highwaters is missing"):
        check([(_Old, "_highwaters", ("self", "partitions"))])


def test_a_changed_signature_is_named_with_what_was_found():
    with pytest.raises(FaustIncompatible, match=r"_Old\._attach takes \('self', 'channel', 'key', 'value'\)"):
        check([(_Old, "_attach", ("self", "channel", "key", "value", "partition"))])


def test_the_app_factory_runs_the_check(monkeypatch, make_settings):
    from app.factory import base_app
    from app.metrics import Metrics

    monkeypatch.setattr(faust_internals, "HOOKS", [(_Old, "_gone", None)])
    with pytest.raises(FaustIncompatible, match="_gone is missing"):
        base_app(make_settings(), Metrics())
