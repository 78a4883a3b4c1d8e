"""The worked example of docs/pipeline.md (an extra agent reading the enriched topic) runs.

The example's code is taken from the document itself, wired into the pipeline app as the
document says, and run in a real worker against the broker.
"""

from __future__ import annotations

import re
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from clickpipe.topics import delete_topics, ensure_topics
from tests.support import ROOT
from tests.support.pipeline import Run, decode_all

APP_MODULE = '''
import os

import purchases
from app.factory import create_app
from app.metrics import Metrics
from clickpipe.config import settings

app = create_app(settings)
purchases.register(app, settings, Metrics(), topic_name=os.environ["PURCHASES_TOPIC"])
'''


@pytest.fixture
def run(stack, tmp_path):
    doc = (ROOT / "docs" / "pipeline.md").read_text()
    example = re.search(r"```python\n# agents/purchases.py\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "purchases.py").write_text(example)
    (tmp_path / "purchases_app.py").write_text(APP_MODULE)
    r = Run(stack.kafka_bootstrap, tmp_path, partitions=stack.partitions)
    r.env.update({"PYTHONPATH": str(tmp_path), "PURCHASES_TOPIC": f"test.{r.tag}.purchases"})
    with r:
        ensure_topics(stack.kafka_bootstrap, [r.env["PURCHASES_TOPIC"]], stack.partitions)
        yield r
    delete_topics(stack.kafka_bootstrap, [r.env["PURCHASES_TOPIC"]])


def test_documented_purchases_agent_forwards_human_purchases(run, raw_click):
    worker = run.start_worker(app_module="purchases_app")
    run.wait_ready(worker)
    now = int(time.time() * 1000)
    clicks = [raw_click(party_id=f"p{i % 10}", event_id=f"e{i}", server_time=now + i,
                        event_type="purchase" if i % 5 == 0 else "pageView") for i in range(100)]
    clicks.append(raw_click(party_id="bot", event_id="b1", event_type="purchase", user_agent="curl/8.4.0"))
    run.produce(clicks)
    assert len(decode_all(run.consume("enriched", len(clicks), timeout=90))) == len(clicks)

    consumer = Consumer({"bootstrap.servers": run.bootstrap, "group.id": f"reader-{run.tag}",
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(run.env["PURCHASES_TOPIC"], p, 0) for p in range(run.partitions)])
    got: list = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(decode_all(got)) < 20:
        got += [m for m in consumer.consume(100, 0.5) if m.error() is None]
    time.sleep(2)
    got += [m for m in consumer.consume(100, 0.5) if m.error() is None]
    consumer.close()
    purchases = decode_all(got)
    assert sorted(p["event_id"] for p in purchases) == sorted(c["event_id"] for c in clicks[:100:5])
    assert all(not p["is_bot"] for p in purchases)
