"""Slow and hostile clients: 500 slow-loris connections and bodies trickled at one byte per
second must not stop normal clients from being served.

A real collector (gunicorn, the ASGI worker class) on the real broker; while the attack
holds its connections, a normal client sends pixels and batches. Every normal request must
be answered 200 and every event it carried must reach Kafka; the hostile connections must
have been cut by the server (head deadline, body timeout 408) and reopened, so the attack
was sustained. Timings are the benchmark's business (bench/collector_bench.py --slow-clients).
"""

from __future__ import annotations

import time

import requests
from collector_support import Topic

from tests.support.collector import CollectorProcess
from tests.support.slow_clients import SlowClients

NORMAL_REQUESTS = 200


def test_normal_clients_are_served_through_slow_loris_and_trickled_bodies(stack):
    topic = Topic(stack.kafka_bootstrap)
    server = CollectorProcess({
        "CLICKPIPE_TOPIC_RAW": topic.name,
        "CLICKPIPE_COLLECTOR_HEADER_TIMEOUT_MS": "2000",
        "CLICKPIPE_COLLECTOR_BODY_TIMEOUT_MS": "2000",
    })
    attack = None
    try:
        server.wait_ready()
        attack = SlowClients("127.0.0.1", server.port, loris=500, trickle=50, interval=1.0).start()
        deadline = time.monotonic() + 30
        while attack.connected() < 500 and time.monotonic() < deadline:
            time.sleep(0.1)
        held = attack.connected()
        session = requests.Session()
        statuses: list[int] = []
        event_ids: list[str] = []
        for n in range(NORMAL_REQUESTS):
            if n % 2:
                ids = [f"slow-{n:04d}-{i}" for i in range(5)]
                r = session.post(server.url + "/events", timeout=30,
                                 json=[{"party_id": "normal-party-1", "event_id": e} for e in ids])
            else:
                ids = [f"slow-{n:04d}-0"]
                r = session.get(server.url + "/p.gif", timeout=30,
                                params={"party_id": "normal-party-2", "event_id": ids[0]})
            statuses.append(r.status_code)
            if r.status_code == 200:
                event_ids += ids
            time.sleep(0.02)  # spread over several head and body deadlines
        counts = attack.stop()
        attack = None
        consumed = [r["event_id"] for r in topic.records(len(event_ids), timeout=60)]
        print(f"\nslow clients: {held} hostile connections held when normal requests began; {counts}; "
              f"normal requests: {statuses.count(200)} of {len(statuses)} answered 200, "
              f"{len(event_ids)} events sent, {len(consumed)} in Kafka")
        assert held >= 500
        assert statuses == [200] * NORMAL_REQUESTS
        assert sorted(consumed) == sorted(event_ids)
        assert counts["answered 408"] > 0, "trickled bodies should have been cut by the body timeout"
        assert counts["closed"] >= 500, "slow-loris heads should have been cut by the head deadline"
    finally:
        if attack is not None:
            attack.stop()
        server.stop()
        topic.delete()
