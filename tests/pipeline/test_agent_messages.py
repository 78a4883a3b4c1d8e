"""The enrich agent's decisions for one message, without Kafka or Faust (tables are dicts)."""

from __future__ import annotations

import orjson
import pytest

import schemas
from agents.messages import (
    CONTROL_HEADER,
    SWEEP_PARTY,
    CachedIps,
    Erasure,
    EventProcessor,
    control_kind,
    parse_erasure,
    parse_sweep,
    read_events,
    sweep_clock,
)
from clickpipe.party import digest, party_key
from steps import Drop, Pipeline

RAW = schemas.current("RawClick")


class CountingDict(dict):
    def __init__(self, *args):
        super().__init__(*args)
        self.gets: list = []

    def get(self, key, default=None):
        self.gets.append(key)
        return super().get(key, default)


@pytest.fixture
def processor(make_settings):
    return EventProcessor(Pipeline(make_settings(SESSION_GAP_SECONDS=60)), keep_duplicates=False)


def events(*records):
    return [(schemas.encode(RAW, r), RAW.headers) for r in records]


def test_a_message_reads_each_party_once_and_leaves_every_write_in_the_outcome(processor, raw_click):
    parties, ips = CountingDict(), CountingDict()
    batch = events(raw_click(party_id="a", event_id="1", new_party=True),
                   raw_click(party_id="b", event_id="1", new_party=True), raw_click(party_id="a", event_id="2"))
    out = processor.process(batch, parties, ips)
    # one churn counter per address and one per address + user agent, each read once
    assert sorted(parties.gets) == ["a", "b"] and len(ips.gets) == len(set(ips.gets)) == 2
    assert "81.2.69.142" in ips.gets
    assert parties == {} and ips == {}  # nothing written: the agent carries the outcome out
    assert sorted(out.parties) == ["a", "b"] and sorted(out.ips) == sorted(ips.gets)
    assert [e[1] for e in out.ips["81.2.69.142"]["e"]] == ["b"]  # two new parties, "a" came back
    rows = [orjson.loads(r) for r in out.enriched]
    assert [(r["party_id"], r["session_seq"]) for r in rows] == [("a", 1), ("b", 1), ("a", 2)]
    assert out.latest_time == max(r["server_time"] for r in rows)


def test_bad_events_are_set_aside_one_by_one_with_their_own_bytes(processor, raw_click):
    good = raw_click(party_id="a", event_id="1")
    invalid = schemas.encode(RAW, raw_click(party_id="a", event_id=""))
    batch = events(good) + [(b"\x01junk", RAW.headers), (invalid, RAW.headers)] + events(good)
    out = processor.process(batch, {}, {}, fallback_key=b"msg-key")
    assert len(out.enriched) == 1
    assert [(d.reason, d.key, d.value) for d in out.dead] == [
        ("undecodable", b"msg-key", b"\x01junk"), ("invalid", b"msg-key", invalid)]
    assert out.dropped == {"undecodable": 1, "invalid": 1, "duplicate": 1}  # the duplicate is dropped, not kept


def test_kept_duplicates_become_dead_letters_keyed_by_party(make_settings, raw_click):
    processor = EventProcessor(Pipeline(make_settings()), keep_duplicates=True)
    out = processor.process(events(raw_click(party_id="p", event_id="x"), raw_click(party_id="p", event_id="x")),
                            {}, {})
    [dup] = out.dead
    assert (dup.reason, dup.key) == ("duplicate", b"p")
    assert dict(dup.headers_with_reason("raw/3/7"))["dead-letter-source"] == b"raw/3/7"


def test_a_failing_step_sets_the_event_aside_as_error(processor, raw_click, monkeypatch):
    def boom(record, ctx, timings=None):
        raise ZeroDivisionError("step bug")

    monkeypatch.setattr(processor.pipeline, "process", boom)
    [letter] = processor.process(events(raw_click(party_id="p")), {}, {}).dead
    assert letter.reason == "error" and "ZeroDivisionError: step bug" in letter.detail


def test_sweeps_close_idle_sessions_delete_empty_state_and_leave_the_rest(processor, raw_click):
    t0 = 1_700_000_000_000
    first = processor.process(events(raw_click(party_id="idle", event_id="1", server_time=t0, new_party=True)),
                              {}, {})
    parties = dict(first.parties)
    out = processor.sweep_parties(["idle", "gone"], t0 + 61_000, parties, {})
    assert [orjson.loads(s)["close_reason"] for s in out.sessions] == ["idle"]
    assert "session" not in out.parties["idle"]  # dedup memory remains for the hour
    assert out.parties_gone == ["gone"]
    ips = dict(first.ips)
    assert processor.sweep_ips(["81.2.69.142"], t0 + 5_000, ips).ips_unchanged == {
        "81.2.69.142": processor.pipeline.ip_due_at(ips["81.2.69.142"])}
    window = processor.pipeline.ip_due_at(ips["81.2.69.142"])
    assert processor.sweep_ips(["81.2.69.142"], window, ips).ips == {"81.2.69.142": None}


def test_control_messages_and_sweep_bodies():
    assert control_kind([("schema", b"x"), (CONTROL_HEADER, SWEEP_PARTY)]) == SWEEP_PARTY
    assert control_kind(RAW.headers) is None
    sweep = parse_sweep(None, b'{"now": 5, "keys": ["a", "b"], "id": "w-1"}')
    assert (sweep.now, sweep.keys, sweep.id) == (5, ["a", "b"], "w-1")
    assert parse_sweep(b"party-9", b'{"now": 5}').keys == ["party-9"]  # as older workers sent them
    for bad in (b"not json", b'{"keys": []}', b'{"now": "x", "keys": []}'):
        with pytest.raises(Drop, match="bad-control"):
            parse_sweep(None, bad)


def test_a_batch_envelope_that_cannot_be_read_is_one_dead_letter():
    letter = read_events(b"k", b"\x05broken", schemas.current("RawBatch").headers)
    assert (letter.reason, letter.value, letter.key) == ("undecodable", b"\x05broken", b"k")


def test_sweep_clock_uses_the_wall_clock_only_without_backlog():
    assert sweep_clock(1000, 0, 400) == 1000
    assert sweep_clock(1000, 25, 400) == 400
    assert sweep_clock(1000, None, 0) == 0  # lag unknown, nothing processed yet: no sweep


def test_cached_ips_reads_once_and_keeps_writes_until_asked():
    table = CountingDict({"1.2.3.4": [1, 2]})
    ips = CachedIps(table)
    assert ips.get("1.2.3.4") == [1, 2] and ips.get("1.2.3.4") == [1, 2] and ips.get("5.6.7.8") is None
    ips["5.6.7.8"] = [1, 1]
    assert table.gets == ["1.2.3.4", "5.6.7.8"] and "5.6.7.8" not in table
    assert ips.written() == {"5.6.7.8": [1, 1]} and len(ips) == 2


def test_rows_carry_the_party_as_druid_stores_it(make_settings, raw_click):
    salted = EventProcessor(Pipeline(make_settings(SESSION_GAP_SECONDS=1)), keep_duplicates=False,
                            party_key=lambda party_id: f"key-of-{party_id}")
    first = raw_click(party_id="a", event_id="1", server_time=1_000)
    out = salted.process(events(first, raw_click(party_id="a", event_id="2", server_time=10_000)), {}, {})
    assert [orjson.loads(r)["party"] for r in out.enriched] == ["key-of-a", "key-of-a"]
    [closed] = [orjson.loads(s) for s in out.sessions]  # the gap closed the first session
    assert (closed["party_id"], closed["party"]) == ("a", "key-of-a")
    assert party_key("a", "") == "a" and party_key("a", "salt") == party_key("a", "salt") != party_key("a", "other")
    assert len(party_key("a", "salt")) == 64


def test_events_of_an_erased_party_up_to_its_erasure_are_dropped_without_a_trace(make_settings, raw_click):
    erased: dict[str, int] = {}
    processor = EventProcessor(Pipeline(make_settings()), keep_duplicates=False, erased=erased)
    batch = events(raw_click(party_id="gone", event_id="1", server_time=1_000),
                   raw_click(party_id="kept", event_id="1", server_time=1_000),
                   raw_click(party_id="gone", event_id="2", server_time=3_000))
    erased[digest("gone")] = 2_000  # the list is read on every event: an update takes effect at once
    out = processor.process(batch, {}, {})
    assert [(r["party_id"], r["event_id"]) for r in map(orjson.loads, out.enriched)] == [("kept", "1"), ("gone", "2")]
    assert out.dropped == {"erased": 1} and out.dead == []  # a dead letter would keep the event
    assert "gone" in out.parties  # the later event is a new visit: state again


def test_an_erase_message_deletes_the_party_state(processor):
    erasure = Erasure("p-1", 5_000)
    assert parse_erasure(erasure.encode()) == erasure
    out = processor.erase(erasure)
    assert out.parties == {"p-1": None} and out.enriched == out.sessions == []
    for bad in (None, b"{}", b'{"party_id": "", "erased_at": 1}', b'{"party_id": "p", "erased_at": "x"}'):
        with pytest.raises(Drop) as info:
            parse_erasure(bad)
        assert info.value.reason == "bad-control"
