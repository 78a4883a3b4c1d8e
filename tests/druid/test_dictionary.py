"""The data dictionary (docs/data-dictionary.md) agrees with the schemas and the declaration."""

from __future__ import annotations

import schemas
from druid import dictionary
from druid.specs import load_declaration
from tests.support import ROOT

FILE = ROOT / "docs" / "data-dictionary.md"


def test_every_druid_column_has_a_meaning():
    assert dictionary.problems() == []


def test_the_file_is_generated_from_the_current_schemas_and_declaration():
    assert FILE.read_text() == dictionary.render(), (
        "docs/data-dictionary.md is stale: run python -m druid.dictionary > docs/data-dictionary.md")


def test_every_column_of_every_datasource_is_listed():
    text = FILE.read_text()
    for ds in load_declaration().values():
        listed = [c["column"] for c in dictionary.columns(ds)]
        assert listed == ["__time", *ds.dimensions, *(ds.map_dimension(f, k) for f, keys in ds.maps.items()
                                                      for k in keys), *(m.name for m in ds.metrics)]
        assert all(f"| `{column}` |" in text for column in listed)


def test_a_column_without_doc_is_a_problem():
    ds = load_declaration()["sessions"]
    source = schemas.current(ds.schema).source
    fields = [dict(f) for f in source["fields"]]
    next(f for f in fields if f["name"] == "close_reason").pop("doc")
    assert dictionary.problems({"sessions": ds}, {ds.schema: [{**source, "fields": fields}]}) == [
        "[sessions] column 'close_reason': its field has no doc in schemas/ (Session)"]
