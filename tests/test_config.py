"""clickpipe.config: defaults, overrides, and errors that name the variable."""

import re
from pathlib import Path

import pytest

from clickpipe.config import SETTINGS, ConfigError, load, reference


def test_defaults_work_on_one_machine():
    s = load({})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert (s.topic_raw, s.partitions) == ("clicks.raw", 4)
    assert s.collector_host == "127.0.0.1" and s.collector_url == "http://127.0.0.1:8090"


def test_overrides_and_derived_values():
    s = load({"CLICKPIPE_KAFKA_HOST": "10.0.0.5", "CLICKPIPE_KAFKA_PORT": "19092", "CLICKPIPE_PARTITIONS": "12"})
    assert s.kafka_bootstrap == "10.0.0.5:19092" and s.partitions == 12
    assert load({"CLICKPIPE_KAFKA_BOOTSTRAP": "a:1,b:2"}).kafka_bootstrap == "a:1,b:2"


@pytest.mark.parametrize("host, url", [("0.0.0.0", "http://127.0.0.1:9000"), ("::", "http://[::1]:9000"),
                                       ("collector.internal", "http://collector.internal:9000")])
def test_collector_url_reaches_a_wildcard_bind_on_loopback(host, url):
    assert load({"CLICKPIPE_COLLECTOR_HOST": host, "CLICKPIPE_COLLECTOR_PORT": "9000"}).collector_url == url


@pytest.mark.parametrize("name, value, message", [
    ("PARTITIONS", "four", "is not an integer"),
    ("PARTITIONS", "0", "must be >= 1"),
    ("COLLECTOR_BATCH_MAX_BYTES", "1000000", "must be <= 900000"),
    ("KAFKA_PORT", "", "is not an integer"),
    ("COLLECTOR_ANONYMIZE_IP", "maybe", "is not a boolean"),
])
def test_unusable_values_name_the_variable(name, value, message):
    with pytest.raises(ConfigError, match=f"CLICKPIPE_{name}.*{message}"):
        load({f"CLICKPIPE_{name}": value})


ROOT = Path(__file__).resolve().parent.parent


def test_settings_reference_is_generated_from_the_declarations():
    committed = (ROOT / "docs" / "settings.md").read_text()
    assert committed == reference(), "docs/settings.md is stale: python -m clickpipe.config > docs/settings.md"


# A quantity's unit is part of its attribute's name, so code never multiplies a bare number by
# the wrong factor; counted things (events, entries) are named by the setting itself.
NAME_SUFFIX_OF_UNIT = {"seconds": "_seconds", "ms": "_ms", "bytes": "_bytes", "MiB": "_mb", "days": "_days"}


@pytest.mark.parametrize("s", SETTINGS, ids=lambda s: s.name)
def test_the_attribute_is_the_variable_with_its_unit(s):
    assert s.variable.startswith("CLICKPIPE_")
    plain = s.variable.removeprefix("CLICKPIPE_").lower()
    suffix = NAME_SUFFIX_OF_UNIT.get(s.unit, "")
    assert s.name.endswith(suffix) and s.name in (plain, plain + suffix)


# How README.md and docs/*.md state a setting's default, the variable with or without its
# prefix: "`SESSION_GAP_SECONDS` (default 1800", "`COLLECTOR_MAX_BODY` bytes (262144",
# "`COLLECTOR_HONOR_DNT`, default off", "9092 (`CLICKPIPE_KAFKA_PORT`)", "`_cpp` (`COLLECTOR_PARTY_COOKIE`)".
_VARIABLE = r"`(?:CLICKPIPE_)?(?P<variable>[A-Z][A-Z0-9_]+)`"
_NUMBER = r"(?P<number>-?\d+)"
STATED_DEFAULTS = [
    re.compile(_VARIABLE + r"(?: [a-z]+)? \((?:default (?P<word>`[^`]*`|[^\s`,;)]+)|" + _NUMBER + r"\b)"),
    re.compile(_VARIABLE + r",? default (?P<word>`[^`]*`|[^\s`,;)]+)"),
    re.compile(r"(?:" + _NUMBER + r"(?: [a-z]+)?|(?P<word>`[^`]*`)) \(" + _VARIABLE + r"[,)]"),
]
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "settings.md")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_defaults_stated_in_the_docs_are_the_declared_ones(doc):
    declared = {s.variable.removeprefix("CLICKPIPE_"): s for s in SETTINGS}
    defaults = load({})
    text = " ".join(doc.read_text().split())
    wrong = []
    for pattern in STATED_DEFAULTS:
        for m in pattern.finditer(text):
            s = declared.get(m["variable"])
            if s is None:
                continue
            stated = m.groupdict().get("number") or m["word"].strip("`")
            try:
                right = s.read(stated) == getattr(defaults, s.name)
            except ConfigError:
                right = False
            if not right:
                wrong.append(f"{m[0]!r}: the default of {s.variable} is {s.default!r} (docs/settings.md)")
    assert not wrong, "\n".join(wrong)
