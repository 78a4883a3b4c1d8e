"""The "Adding a step" example of docs/pipeline.md runs, and its declared reads order it after urls."""

from __future__ import annotations

import re
import types

import pytest

from steps import Context, Pipeline, PipelineError, check_order
from tests.support import ROOT


@pytest.fixture
def pagetype():
    doc = (ROOT / "docs" / "pipeline.md").read_text()
    source = re.search(r"```python\n# steps/pagetype.py\n(.*?)```", doc, re.S).group(1)
    module = types.ModuleType("pagetype")
    exec(compile(source, "docs/pipeline.md#pagetype", "exec"), module.__dict__)
    return module.build(None)


def test_the_documented_step_classifies_pages(pagetype):
    assert pagetype({"url_path": "/products/42"}, Context())["page_type"] == "product"


def test_the_documented_step_must_come_after_urls(pagetype, make_settings):
    steps = Pipeline(make_settings(PIPELINE_STEPS="urls")).steps
    check_order(steps + [("pagetype", pagetype)])
    with pytest.raises(PipelineError, match="put 'urls' before 'pagetype'"):
        check_order([("pagetype", pagetype)] + steps)
