import pytest

from steps import Context
from steps.bots import build

HUMAN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36")


@pytest.fixture
def bots(make_settings):
    return build(make_settings(BOT_MAX_PARTY_EVENTS=5, BOT_MAX_IP_EVENTS=8, BOT_RATE_WINDOW_SECONDS=10,
                               BOT_PIXEL_ONLY_EVENTS=3))


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({}, None),
        ({"user_agent": None}, "empty-ua"),
        ({"user_agent": "  "}, "empty-ua"),
        ({"webdriver": True}, "webdriver"),
        ({"user_agent": HUMAN.replace("Chrome/", "HeadlessChrome/")}, "headless"),
        ({"user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}, "ua-spider"),
        ({"user_agent": "python-requests/2.31.0"}, "crawler-pattern"),
        ({"user_agent": "curl/8.4.0"}, "crawler-pattern"),
        ({"ip": "1.0.0.1"}, "datacenter"),  # AS15169 (Google) in the ASN test database
        ({"ip": "89.160.20.112"}, None),  # AS29518, a consumer ISP
        ({"ip": "not an ip"}, None),
        ({"user_agent": HUMAN + "x" * 100_000}, None),
    ],
)
def test_single_event_rules(bots, decoded, fields, reason):
    record = bots(decoded(**fields), Context())
    assert record["bot_reason"] == reason
    assert record["is_bot"] is (reason is not None)


def test_datacenter_list_is_configurable(make_settings, decoded):
    bots = build(make_settings(DATACENTER_ASNS="AS29518"))
    assert bots(decoded(ip="89.160.20.112"), Context())["bot_reason"] == "datacenter"
    assert bots(decoded(ip="1.0.0.1"), Context())["bot_reason"] is None


def test_party_rate_above_the_limit_in_one_window(bots, decoded):
    ctx = Context()
    reasons = [bots(decoded(server_time=100_000 + i, ip=None), ctx)["bot_reason"] for i in range(7)]
    assert reasons == [None] * 5 + ["rate-party"] * 2
    # next window: counting starts again
    assert bots(decoded(server_time=110_000, ip=None), ctx)["bot_reason"] is None


def test_ip_rate_counts_across_parties_of_the_partition(bots, decoded):
    ips: dict = {}
    reasons = [
        bots(decoded(party_id=f"p{i}", server_time=100_000 + i, ip="81.2.69.142"), Context(ips=ips))["bot_reason"]
        for i in range(10)
    ]
    assert reasons == [None] * 8 + ["rate-ip"] * 2
    assert ips["81.2.69.142"][:2] == [10, 10]


def test_pixel_only_party_is_flagged_from_the_nth_hit(bots, decoded):
    ctx = Context()
    pixel = dict(no_js=True, source="pixel", user_agent=HUMAN, screen_width=None)
    reasons = [bots(decoded(server_time=100_000 + i * 20_000, **pixel), ctx)["bot_reason"] for i in range(4)]
    assert reasons == [None, None, "pixel-only", "pixel-only"]


def test_pixel_hits_from_a_party_seen_with_the_tag_are_fine(bots, decoded):
    ctx = Context()
    bots(decoded(server_time=100_000), ctx)
    reasons = [bots(decoded(server_time=120_000 + i * 20_000, no_js=True), ctx)["bot_reason"] for i in range(4)]
    assert reasons == [None] * 4


def test_sweep_forgets_stale_counters(bots, decoded):
    ctx = Context()
    bots(decoded(server_time=100_000), ctx)
    counter = ctx.ips["81.2.69.142"]
    assert counter == [10, 1]  # window 10 (of 10 s), one event
    assert 105_000 < bots.ip_due_at(counter) <= 111_000
    bots.sweep(ctx, 105_000)
    assert "bots" in ctx.party
    bots.sweep(ctx, 111_000)
    assert "bots" not in ctx.party
