"""Divolte's mincode decoder (collector.mincode), on values its tag encodes."""

import pytest

from collector.mincode import MAX_DEPTH, MincodeError, decode


@pytest.mark.parametrize("text, value", [
    ("sabc!", "abc"),
    ("s!", ""),
    ("sa~!b~~c!", "a!b~c"),  # ~ escapes the next character
    ("t", True), ("f", False), ("n", None),
    ("dz!", 35), ("d-a!", -10), ("d0!", 0),
    ("j1.5e-7!", 1.5e-7), ("j0.25!", 0.25),
    ("a.", []),
    ("asx!d1!a..", ["x", 1, []]),
    ("o", {}),
    ("()", {}),
    ("(sa!x!ob!(nested!sc!y!)aarr!(sk!v!)t.)", {"a": "x", "b": {}, "nested": {"c": "y"}, "arr": [{"k": "v"}, True]}),
])
def test_values(text, value):
    assert decode(text) == value


@pytest.mark.parametrize("text", [
    "", "x", "sno end", "d!", "dzz zz!", "jabc!", "jtrue!", "a", "(sa!x!", "(sa!x!))", "s!trailing",
    "(sname", ")",
])
def test_malformed_input_is_an_error(text):
    with pytest.raises(MincodeError):
        decode(text)


def test_deep_nesting_is_refused_not_a_crash():
    with pytest.raises(MincodeError, match="deeply"):
        decode("a" * (MAX_DEPTH + 5) + "." * (MAX_DEPTH + 5))
    nested: list = []
    for _ in range(9):
        nested = [nested]
    assert decode("a" * 10 + "." * 10) == nested
