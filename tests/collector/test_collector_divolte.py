"""Divolte compatibility: base 36, murmur3 checksum, parameter mapping."""

from __future__ import annotations

import pytest
from collector_support import divolte_signed

from collector.divolte import canonical, checksum_ok, murmur3_32, parse_base36, to_record
from collector.mapping import Context, Invalid, Rejection

CTX = Context(server_time=1_700_000_000_000, source="divolte", ip="192.0.2.1", user_agent="UA", party_id=None)


@pytest.mark.parametrize(
    "data,expected",
    # Published MurmurHash3_x86_32 (seed 0) test vectors.
    [(b"", 0), (b"hello", 0x248BFA47), (b"The quick brown fox jumps over the lazy dog", 0x2E4FF723)],
)
def test_murmur3_vectors(data, expected):
    assert murmur3_32(data) & 0xFFFFFFFF == expected


def test_murmur3_is_signed_like_java():
    assert murmur3_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723
    assert -(2**31) <= murmur3_32(b"abc") < 0  # 0xb3dd93fa has the sign bit set


@pytest.mark.parametrize("text,value", [("0", 0), ("z", 35), ("ZZ", 1295), ("-10", -36), ("+a", 10)])
def test_base36_like_java(text, value):
    assert parse_base36(text) == value


@pytest.mark.parametrize("text", ["", " 1", "1_0", "1.5", "é", "-", "zzzzzzzzzzzzzz", "1z141z4"])
def test_bad_base36(text):
    with pytest.raises(Invalid):
        parse_base36(text, bound=2**31) if text == "1z141z4" else parse_base36(text)


def test_canonical_string_sorts_keeps_repeats_and_drops_checksum():
    pairs = [("p", "a"), ("e", "1"), ("x", "zz"), ("e", "2"), ("b", "")]
    assert canonical(pairs) == "b=,;e=1,2,;p=a,;"


def divolte_query(**overrides) -> list[tuple[str, str]]:
    base = {
        "p": "0:lz3k8a1c:AbCdEfGhIjKlMnOpQrStUvWx",
        "s": "0:lz3k8a1d:ZyXwVuTsRqPoNmLkJiHgFeDc",
        "v": "0:pageviewid00",
        "e": "0:pageviewid00:0",
        "c": "lz3k8a1e",
        "n": "t",
        "f": "t",
        "l": "https://shop.example/é?a=1",
        "r": "",
        "i": "1hc",
        "j": "u0",
        "w": "xc",
        "h": "m8",
        "k": "2",
        "t": "pageView",
    }
    base.update(overrides)
    return [(k, v) for k, v in base.items() if v is not None]


def test_valid_request_maps_all_fields_and_is_not_corrupted():
    pairs = divolte_signed(divolte_query())
    assert checksum_ok(pairs)
    record = to_record(pairs, CTX, 50)
    assert record["corrupted"] is False
    assert record["party_id"] == "0:lz3k8a1c:AbCdEfGhIjKlMnOpQrStUvWx"
    assert record["client_time"] == int("lz3k8a1e", 36)
    assert (record["screen_width"], record["screen_height"]) == (int("1hc", 36), int("u0", 36))
    assert (record["viewport_width"], record["viewport_height"]) == (int("xc", 36), int("m8", 36))
    assert record["device_pixel_ratio"] == 2.0 and record["new_party"] is True
    assert record["location"] == "https://shop.example/é?a=1" and record["source"] == "divolte"


def test_tampered_value_is_flagged_corrupted_not_dropped():
    pairs = [(k, "https://evil.example/" if k == "l" else v) for k, v in divolte_signed(divolte_query())]
    record = to_record(pairs, CTX, 50)
    assert record["corrupted"] is True and record["location"] == "https://evil.example/"


def test_missing_or_bad_checksum_is_corrupted():
    assert to_record(divolte_query(), CTX, 50)["corrupted"] is True
    assert to_record(divolte_query() + [("x", "not base36!")], CTX, 50)["corrupted"] is True


def test_bad_base36_field_is_null_and_corrupted():
    record = to_record(divolte_signed(divolte_query(w="??")), CTX, 50)
    assert record["viewport_width"] is None and record["corrupted"] is True


def test_missing_or_invalid_party_is_rejected():
    assert to_record(divolte_signed(divolte_query(p=None)), CTX, 50) == Rejection("invalid_party_id")
    assert to_record(divolte_signed(divolte_query(p="bad party")), CTX, 50) == Rejection("invalid_party_id")


def test_custom_params_are_decoded_into_params():
    # what Divolte's tag sends for signal("buy", {sku: "A-1", qty: 36, price: 9.5, gift: true,
    #                                               tags: ["x"], note: null})
    u = "(ssku!A-1!dqty!10!jprice!9.5!tgift!atags!sx!.nnote!)"
    record = to_record(divolte_signed(divolte_query(u=u)), CTX, 50)
    assert record["params"] == {"sku": "A-1", "qty": "36", "price": "9.5", "gift": "true",
                                "tags": '["x"]', "note": "null"}
    assert record["corrupted"] is False


@pytest.mark.parametrize("u", ["(a'b)", "sjust a string!", "(sbad name!x!)", "(ssku!unterminated"])
def test_undecodable_custom_params_are_kept_raw_and_flagged(u):
    record = to_record(divolte_signed(divolte_query(u=u)), CTX, 50)
    assert record["params"] == {"divolte_u": u}
    assert record["corrupted"] is True


def test_too_many_custom_params_are_kept_raw_and_flagged():
    u = "(" + "".join(f"dk{i}!{i}!" for i in range(3)) + ")"
    assert to_record(divolte_signed(divolte_query(u=u)), CTX, 3)["params"] == {"k0": "0", "k1": "1", "k2": "2"}
    record = to_record(divolte_signed(divolte_query(u=u)), CTX, 2)
    assert record["params"] == {"divolte_u": u} and record["corrupted"] is True
