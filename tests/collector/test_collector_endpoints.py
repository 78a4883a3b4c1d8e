"""HTTP behaviour of every endpoint, through Falcon's test client (ASGI)."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import pytest
from collector_support import make_client

from clickpipe.topics import partition_for
from collector.intake import GIF
from tests.support import asgi

JSON = {"Content-Type": "application/json"}


def post(client, events, headers=None, query=None):
    body = events if isinstance(events, (bytes, str)) else json.dumps(events)
    return client.simulate_post("/events", body=body, headers={**JSON, **(headers or {})}, query_string=query)


def test_batch_accepts_valid_and_reports_invalid_neighbours(collector):
    client, producer = collector
    events = [{"event_id": "evt-000001"}, {"event_id": "bad"}, {"event_type": "click", "nope": 1}, {}]
    r = post(client, events)
    assert r.status_code == 200
    assert r.json == {
        "accepted": 2,
        "rejected": [{"index": 1, "reason": "invalid_event_id"}, {"index": 2, "reason": "unknown_field"}],
    }
    records = producer.records()
    assert [rec["source"] for rec in records] == ["batch", "batch"]
    assert records[0]["event_id"] == "evt-000001"
    # both got the party issued for this request, which the cookie carries
    party = r.cookies["_cpp"].value
    assert {rec["party_id"] for rec in records} == {party}
    assert [(m.key, m.partition) for m in producer.messages] == [(None, partition_for(party.encode(), 4))]


def test_client_hints_are_recorded_bounded(collector):
    client, producer = collector
    hints = {"Sec-CH-UA": '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
             "Sec-CH-UA-Mobile": "?1", "Sec-CH-UA-Platform": '"Android"'}
    assert post(client, [{}], headers=hints).status_code == 200
    assert post(client, [{}], headers={"Sec-CH-UA": "x" * 257}).status_code == 200
    with_hints, oversized = producer.records()
    assert (with_hints["ch_ua"], with_hints["ch_ua_mobile"], with_hints["ch_ua_platform"]) == tuple(hints.values())
    assert oversized["ch_ua"] is None and oversized["ch_ua_mobile"] is None


def test_party_cookie_flags_and_reuse(collector):
    client, producer = collector
    r = post(client, [{}])
    cookie = r.cookies["_cpp"]
    assert cookie.http_only and cookie.same_site == "Lax" and cookie.path == "/"
    assert cookie.max_age == 365 * 86400 and not cookie.secure  # plain http here
    assert producer.records()[0]["new_party"] is True
    r2 = post(client, [{}], headers={"Cookie": f"_cpp={cookie.value}"})
    assert r2.cookies["_cpp"].value == cookie.value
    assert producer.records()[1]["party_id"] == cookie.value and producer.records()[1]["new_party"] is False


def test_cookie_is_secure_over_https_and_domain_applied_only_inside_it():
    client, _, sink = make_client({"CLICKPIPE_COLLECTOR_COOKIE_DOMAIN": "shop.example"})
    r = client.simulate_post(
        "/events", body="[{}]", headers=JSON, host="c.shop.example", protocol="https"
    )
    assert r.cookies["_cpp"].secure and r.cookies["_cpp"].domain in ("shop.example", ".shop.example")
    r = client.simulate_post("/events", body="[{}]", headers=JSON, host="other.example")
    assert r.cookies["_cpp"].domain in (None, "")
    sink.close(0)


def test_server_batch_with_party_ids_sets_no_cookie(collector):
    client, producer = collector
    r = post(client, [{"party_id": "server-party-1"}])
    assert r.status_code == 200 and "_cpp" not in r.cookies
    assert producer.records()[0]["party_id"] == "server-party-1"


@pytest.mark.parametrize(
    "body,headers,status,error",
    [
        (b"[{}]", {"Content-Type": "text/plain"}, 415, "content_type"),
        (b"[{}]", {"Content-Type": ""}, 415, "content_type"),
        (b"[{", JSON, 400, "invalid_json"),
        (b"\xff\xfe", JSON, 400, "invalid_json"),
        (b"[" * 50_000 + b"]" * 50_000, JSON, 400, "invalid_json"),
        (b"{}", JSON, 400, "not_a_batch"),
        (b"[]", JSON, 400, "not_a_batch"),
        (b"[" + b"{}," * 100 + b"{}]", JSON, 413, "too_many_events"),
        (b'["' + b"x" * 262_144 + b'"]', JSON, 413, "too_large"),
    ],
)
def test_unreadable_batches_get_a_clear_4xx(collector, body, headers, status, error):
    client, producer = collector
    r = client.simulate_post("/events", body=body, headers=headers)
    assert r.status_code == status and r.json["error"] == error and r.json["detail"]
    assert producer.messages == []


def test_oversized_body_without_content_length_is_413(collector):
    client, _ = collector
    request = asgi.scope("POST", "/events", headers={**JSON, "Transfer-Encoding": "chunked"})
    body = b'["' + b"x" * 300_000 + b'"]'
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    status, _, answer = asyncio.run(asgi.call(client.app, request, chunks))
    assert status == 413 and json.loads(answer)["error"] == "too_large"


def test_a_body_slower_than_the_body_timeout_is_408_and_the_connection_closed():
    client, producer, sink = make_client({"CLICKPIPE_COLLECTOR_BODY_TIMEOUT_MS": "200"})

    async def trickle():
        messages = [{"type": "http.request", "body": b'[{"event_type": "click"}', "more_body": True}]
        sent = []

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)  # the rest of the body never comes

        async def send(message):
            sent.append(message)

        await client.app(asgi.scope("POST", "/events", headers=JSON), receive, send)
        return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]

    status, headers, answer = asyncio.run(asyncio.wait_for(trickle(), 5))
    assert status == 408 and json.loads(answer)["error"] == "body_timeout"
    assert headers[b"connection"] == b"close" and producer.records() == []
    sink.close(0)


def test_all_invalid_is_400_with_reasons(collector):
    client, producer = collector
    r = post(client, [{"client_time": "yesterday"}])
    assert r.status_code == 400 and r.json["rejected"] == [{"index": 0, "reason": "invalid_client_time"}]
    assert producer.messages == []


def test_queue_full_is_503_with_retry_after_and_nothing_remembered():
    client, producer, sink = make_client({"CLICKPIPE_COLLECTOR_QUEUE_MAX": "100"}, deliver=False)
    for _ in range(5):
        assert post(client, [{} for _ in range(20)]).status_code == 200
    r = post(client, [{"event_id": "retried-event-1"}])
    assert r.status_code == 503 and r.headers["Retry-After"] == "1" and r.json["error"] == "queue_full"
    assert client.simulate_get("/readyz").json == {"ready": False, "detail": "queue full", "queue_depth": 100}
    producer.deliver = True
    wait_until(lambda: sink.depth() == 0)
    producer.messages.clear()
    r = post(client, [{"event_id": "retried-event-1"}], headers={"Cookie": "_cpp=party-000001"})
    assert r.status_code == 200 and producer.records()[0]["duplicate"] is False
    sink.close(0)


def test_a_batch_larger_than_the_room_left_is_accepted_in_part():
    client, producer, sink = make_client({"CLICKPIPE_COLLECTOR_QUEUE_MAX": "100"}, deliver=False)
    assert post(client, [{} for _ in range(98)]).json["accepted"] == 98
    r = post(client, [{}, {}, {}])
    assert r.status_code == 200 and r.json["accepted"] == 2
    assert r.json["rejected"] == [{"index": 2, "reason": "queue_full"}]
    assert len(producer.records()) == 100
    sink.close(0)


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


ACK_WAIT = {"CLICKPIPE_COLLECTOR_ACK_WAIT_MS": "300"}


def test_with_an_ack_wait_a_batch_is_answered_once_kafka_acknowledged_it():
    client, producer, sink = make_client(ACK_WAIT)
    r = post(client, [{}, {}, {"event_id": "bad"}])
    assert r.status_code == 200 and r.json["accepted"] == 2 and len(producer.records()) == 2
    assert producer._reports == []  # the delivery reports came in before the answer
    assert client.simulate_get("/p.gif").status_code == 200
    sink.close(0)


@pytest.mark.parametrize("options, detail", [({"error": "Broker: Not enough replicas"}, "refused 2 event"),
                                             ({"deliver": False}, "did not acknowledge within 0.3 s")])
def test_with_an_ack_wait_a_failed_or_late_delivery_is_503_and_not_remembered(options, detail):
    client, producer, sink = make_client(ACK_WAIT, **options)
    r = post(client, [{"event_id": "event-0001"}, {"event_id": "event-0002"}], headers={"Cookie": "_cpp=party-000001"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json["error"] == "not_delivered" and detail in r.json["detail"]
    assert client.simulate_get("/p.gif").status_code == 503
    producer.deliver, producer.error = True, None
    r = post(client, [{"event_id": "event-0001"}], headers={"Cookie": "_cpp=party-000001"})
    assert r.status_code == 200
    assert producer.records()[-1]["duplicate"] is False  # the refused attempt does not count as seen
    metrics = client.simulate_get("/metrics").text
    assert 'clickpipe_collector_rejected_events_total{reason="not_delivered"}' in metrics
    sink.close(0)


def test_resent_event_is_flagged_duplicate(collector):
    client, producer = collector
    headers = {"Cookie": "_cpp=party-000001"}
    post(client, [{"event_id": "evt-000001"}], headers=headers)
    post(client, [{"event_id": "evt-000001"}], headers=headers)
    assert [r["duplicate"] for r in producer.records()] == [False, True]
    assert "clickpipe_collector_duplicate_events_total" in client.simulate_get("/metrics").text


@pytest.mark.parametrize(
    "headers,env,reason",
    [
        ({"Cookie": "_cpo=1"}, {}, "opted_out"),
        ({"Sec-GPC": "1"}, {}, "gpc"),
        ({"DNT": "1"}, {"CLICKPIPE_COLLECTOR_HONOR_DNT": "true"}, "dnt"),
    ],
)
def test_privacy_signals_drop_events(headers, env, reason):
    client, producer, sink = make_client(env)
    r = post(client, [{}], headers=headers)
    assert r.status_code == 200 and r.json["dropped"] == reason and producer.messages == []
    assert client.simulate_get("/p.gif", headers=headers).headers["X-Clickpipe-Rejected"] == reason
    sink.close(0)


def test_dnt_ignored_unless_configured(collector):
    client, producer = collector
    assert post(client, [{}], headers={"DNT": "1"}).json["accepted"] == 1


def test_pixel_always_answers_the_gif(collector):
    client, producer = collector
    r = client.simulate_get("/p.gif", query_string="event_type=open&params.campaign=spring&screen_width=320")
    assert r.status_code == 200 and r.content == GIF and r.headers["Content-Type"] == "image/gif"
    assert "no-store" in r.headers["Cache-Control"]
    record = producer.records()[0]
    assert record["source"] == "pixel" and record["no_js"] is True and record["params"] == {"campaign": "spring"}
    assert record["party_id"] == r.cookies["_cpp"].value
    bad = client.simulate_get("/p.gif", query_string="event_id=%3Cscript%3E")
    assert bad.status_code == 200 and bad.content == GIF
    assert bad.headers["X-Clickpipe-Rejected"] == "invalid_event_id" and len(producer.records()) == 1
    many = client.simulate_get("/p.gif", query_string="&".join(f"a{i}=1" for i in range(300)))
    assert many.content == GIF and many.headers["X-Clickpipe-Rejected"] == "too_many_fields"


def test_pixel_via_tag_is_not_no_js(collector):
    client, producer = collector
    client.simulate_get("/p.gif", query_string="via=tag&event_type=pageView")
    assert producer.records()[0]["source"] == "tag" and producer.records()[0]["no_js"] is False


def test_pixel_backpressure_is_503_with_the_gif():
    client, producer, sink = make_client({"CLICKPIPE_COLLECTOR_QUEUE_MAX": "100"}, deliver=False)
    assert post(client, [{} for _ in range(100)]).json["accepted"] == 100
    r = client.simulate_get("/p.gif")
    assert r.status_code == 503 and r.content == GIF and r.headers["Retry-After"]
    sink.close(0)


def test_divolte_endpoint_flags_corruption_and_partitions_by_party(collector):
    client, producer = collector
    r = client.simulate_get("/csc-event", query_string="p=0:k0:party0000&s=0:k0:sess00000&e=ev000001&c=zz&x=1")
    assert r.status_code == 200 and r.content == GIF and r.headers["X-Clickpipe-Corrupted"] == "true"
    assert producer.records()[0]["corrupted"] is True
    assert producer.messages[0].partition == partition_for(b"0:k0:party0000", 4)
    assert "_cpp" not in r.cookies  # Divolte's tag keeps its own party id
    r = client.simulate_get("/csc-event", query_string="s=0:k0:sess00000")
    assert r.content == GIF and r.headers["X-Clickpipe-Rejected"] == "invalid_party_id"


def test_client_ip_and_anonymisation():
    client, producer, sink = make_client(
        {"CLICKPIPE_COLLECTOR_TRUSTED_HOPS": "1", "CLICKPIPE_COLLECTOR_ANONYMIZE_IP": "true"}
    )
    post(client, [{}], headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.77"})
    assert producer.records()[0]["ip"] == "203.0.113.0"
    sink.close(0)


def test_tag_gzip_etag_and_config():
    client, _, sink = make_client({"CLICKPIPE_COLLECTOR_SESSION_TIMEOUT": "600"})
    r = client.simulate_get("/tag.js", headers={"Accept-Encoding": "gzip, br"})
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    source = gzip.decompress(r.content).decode()
    assert '"sessionTimeout":600' in source and "__CONFIG__" not in source
    assert len(r.content) <= 4096
    assert client.simulate_get("/tag.js", headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    plain = client.simulate_get("/tag.js")
    assert plain.text == source and plain.headers["ETag"] == r.headers["ETag"]
    sink.close(0)


def test_cors_allowlist(collector):
    client, _ = collector
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = client.simulate_options("/events", headers={"Origin": "https://shop.example", **pre})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    evil = client.simulate_options("/events", headers={"Origin": "https://evil.example", **pre})
    assert "Access-Control-Allow-Origin" not in evil.headers
    r = post(client, [{}], headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = post(client, [{}], headers={"Origin": "https://shop.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert r.headers["Access-Control-Expose-Headers"] == "Retry-After"


def test_no_cors_headers_without_allowlist():
    client, _, sink = make_client()
    r = post(client, [{}], headers={"Origin": "https://shop.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    sink.close(0)


def test_service_endpoints(collector):
    client, _ = collector
    assert client.simulate_get("/healthz").json == {"status": "ok"}
    assert client.simulate_get("/robots.txt").text == "User-agent: *\nDisallow: /\n"
    assert client.simulate_get("/nope").status_code == 404
    assert client.simulate_get("/events").status_code == 405
    assert client.simulate_get("//evil.example/").status_code == 404  # nothing redirects


def test_metrics_count_accepted_and_rejected_by_reason(collector):
    client, _ = collector
    before = _metric(client, 'clickpipe_collector_rejected_events_total{reason="invalid_event_id"}')
    accepted = _metric(client, 'clickpipe_collector_accepted_events_total{source="batch"}')
    post(client, [{"event_id": "bad"}, {}])
    assert _metric(client, 'clickpipe_collector_rejected_events_total{reason="invalid_event_id"}') == before + 1
    assert _metric(client, 'clickpipe_collector_accepted_events_total{source="batch"}') == accepted + 1
    assert "clickpipe_collector_queue_depth" in client.simulate_get("/metrics").text


def _metric(client, name: str) -> float:
    for line in client.simulate_get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0
