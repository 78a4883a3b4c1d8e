"""Decode Divolte's "mincode": the compact, URL-safe JSON encoding its tag uses for the
custom event parameters of ``/csc-event`` (query parameter ``u``).

A value is a one-character type followed by its payload; text payloads end with ``!`` and
``~`` escapes the next character:

- ``s<text>!`` string, ``d<base 36>!`` integer, ``j<JSON number>!`` number,
  ``t`` true, ``f`` false, ``n`` null;
- ``a`` array: values until ``.``;
- ``(`` object: members until ``)``, each member a value whose type character is followed by
  the member's name and ``!``, then its payload (``s`` + ``name!`` + ``text!``);
  ``o`` is an empty object.

:func:`decode` returns the JSON-like Python value or raises :class:`MincodeError`.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32  # a hostile query must not exhaust the stack


class MincodeError(ValueError):
    pass


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def char(self) -> str:
        if self.pos >= len(self.text):
            raise MincodeError(f"unexpected end at {self.pos}")
        c = self.text[self.pos]
        self.pos += 1
        return c

    def string(self) -> str:
        out: list[str] = []
        while True:
            c = self.char()
            if c == "!":
                return "".join(out)
            out.append(self.char() if c == "~" else c)

    def value(self, kind: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise MincodeError("nested too deeply")
        if kind == "s":
            return self.string()
        if kind in "tfn":
            return {"t": True, "f": False, "n": None}[kind]
        if kind == "d":
            digits = self.string()
            try:
                return int(digits, 36)
            except ValueError:
                raise MincodeError(f"bad base-36 integer {digits!r}") from None
        if kind == "j":
            number = self.string()
            try:
                value = json.loads(number)
            except ValueError:
                value = None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise MincodeError(f"bad number {number!r}")
            return value
        if kind == "a":
            items = []
            while (c := self.char()) != ".":
                items.append(self.value(c, depth + 1))
            return items
        if kind == "o":
            return {}
        if kind == "(":
            members = {}
            while (c := self.char()) != ")":
                name = self.string()
                members[name] = self.value(c, depth + 1)
            return members
        raise MincodeError(f"unknown type {kind!r} at {self.pos - 1}")


def decode(text: str) -> Any:
    """The value ``text`` encodes; the whole text must be one value."""
    reader = _Reader(text)
    value = reader.value(reader.char(), 0)
    if reader.pos != len(text):
        raise MincodeError(f"trailing data at {reader.pos}")
    return value
