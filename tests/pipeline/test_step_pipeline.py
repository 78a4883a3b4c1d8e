"""The configured chain of steps on plain records, and its output against the Avro schemas."""

import pytest

import schemas
from steps import Context, Drop, Pipeline, PipelineError, check_order
from steps.decode import decode

RAW = schemas.current("RawClick")
ENRICHED = schemas.current("EnrichedClick")
SESSION = schemas.current("Session")


def test_steps_come_from_the_configured_ordered_list(make_settings):
    p = Pipeline(make_settings(PIPELINE_STEPS="urls, referrer"))
    assert [name for name, _ in p.steps] == ["urls", "referrer"]
    assert Pipeline(make_settings()).names == ("dedup", "geo", "network", "useragent", "urls", "referrer", "sessions",
                                               "bots")


def test_unknown_step_name_fails_at_start(make_settings):
    with pytest.raises(ModuleNotFoundError):
        Pipeline(make_settings(PIPELINE_STEPS="dedup,nosuchstep"))


def test_full_chain_output_fits_the_enriched_schema(make_settings, raw_click):
    p = Pipeline(make_settings())
    ctx = Context()
    raw = raw_click(location="https://shop.example.com/p?utm_source=news&utm_campaign=may",
                    referrer="https://www.google.com/search?q=shoes", ip="2001:218::1")
    record = p.process(decode(schemas.encode(RAW, raw), RAW.headers), ctx)
    out = schemas.decode(schemas.encode(ENRICHED, record), ENRICHED)
    assert out["geo_country"] == "JP"
    assert out["ua_family"] == "Chrome" and out["device_class"] == "desktop"
    assert out["utm_campaign"] == "may" and out["referrer_class"] == "campaign"
    assert out["first_in_session"] and out["session_seq"] == 1 and out["is_bot"] is False
    with pytest.raises(Drop):
        p.process(decode(schemas.encode(RAW, raw), RAW.headers), ctx)


def test_sweep_emits_sessions_that_fit_the_schema_and_empties_state(make_settings, decoded):
    p = Pipeline(make_settings(SESSION_GAP_SECONDS=60, DEDUP_MEMORY_SECONDS=120))
    ctx = Context()
    record = p.process(decoded(server_time=1_000_000), ctx)
    assert p.due(ctx.party, 1_030_000) is False
    assert p.due(ctx.party, 1_061_000) is True
    assert p.sweep(ctx, 1_061_000) is False  # dedup memory still holds the event id
    [session] = ctx.sessions
    assert schemas.decode(schemas.encode(SESSION, session), SESSION)["session_id"] == record["session_id"]
    assert p.due(ctx.party, 1_121_001) is True
    assert p.sweep(ctx, 1_121_001) is True
    assert len(ctx.sessions) == 1


def test_timings_callback_sees_every_step(make_settings, decoded):
    p = Pipeline(make_settings())
    seen = []
    p.process(decoded(), Context(), timings=lambda name, s: seen.append(name))
    assert seen == list(p.names)


def test_an_order_where_a_step_reads_what_a_later_step_writes_is_refused(make_settings):
    with pytest.raises(PipelineError, match="'referrer' reads 'url_host', which step 'urls' writes after it"):
        Pipeline(make_settings(PIPELINE_STEPS="referrer,urls"))
    with pytest.raises(PipelineError, match="'sessions' reads .*which step 'geo' writes after it"):
        Pipeline(make_settings(PIPELINE_STEPS="sessions,geo"))


def test_optional_reads_may_be_missing_but_required_ones_may_not(make_settings):
    assert Pipeline(make_settings(PIPELINE_STEPS="referrer,sessions")).names == ("referrer", "sessions")
    with pytest.raises(PipelineError, match="'late' reads 'page_type', which neither decode nor any"):
        check_order([("late", _Declared(reads={"page_type"}))])
    with pytest.raises(PipelineError, match="'bare' does not declare reads"):
        check_order([("bare", lambda record, ctx: record)])


class _Declared:
    def __init__(self, reads=(), writes=()):
        self.reads, self.reads_if_present, self.writes = frozenset(reads), frozenset(), frozenset(writes)

    def __call__(self, record, ctx):
        return record


def test_ip_state_is_due_when_every_step_keeping_it_is_done_with_it(make_settings, decoded):
    p = Pipeline(make_settings())
    ctx = Context()
    p.process(decoded(server_time=100_000, new_party=True), ctx)
    value = ctx.ips["81.2.69.142"]
    assert p.ip_due_at(value) == 100_000 + 120_000  # the churn window
