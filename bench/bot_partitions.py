"""Per-address rules against the partition count: the same traffic through 1 to 16 partitions.

The raw topic is keyed by party and each partition keeps its own per-address state; the
collector issues an address's new party ids on that address's partition. This runs the bots
step offline (the steps alone, no Kafka) over the same generated traffic, its party ids issued
and routed as the collector does (``collector.ids.new_party_id``, ``partition_for``), one IP
state per partition, and counts the events judged bot (immediately or through a verdict):

- cookie-dropper-v4: a new party on every request, 2 requests/s from one IPv4 address, 5 min;
- short-dropper: the same for 10 s only (20 requests);
- cookie-dropper-v6: 5 requests/s spread over one IPv6 /64, rotating user agents, 2 min;
- office: 300 people behind one IPv4 address (30 events/s), one browser build, 10 min;
  20 new visitors who come back;
- carrier-nat: 3,000 phones behind one IPv4 address (60 events/s), 10 min, all with one
  browser build (the worst case for the per-UA limit); 150 new visitors, a third of whom leave
  after a single page view (bounce), the others' next event coming a minute later on average;
- carrier-nat-cellular: the same, where the IP data says the address is cellular.

    .venv/bin/python -m bench.bot_partitions [--partitions 1 2 4 8 16]

Prints, per scenario and partition count, the share of events judged bot.
"""

from __future__ import annotations

import argparse
import random
from typing import Any, Iterator

from app.geodata import test_database_env
from clickpipe.config import load
from clickpipe.config import settings as default_settings
from clickpipe.topics import partition_for
from collector.ids import new_party_id
from steps import Context
from steps.bots import build
from steps.signals import address_key

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
T0 = 1_700_000_000_000


def _event(party: str, t: int, ip: str, ua: str, new: bool, n: int, network: str | None = None) -> dict[str, Any]:
    return {"server_time": T0 + t, "party_id": party, "session_id": f"s-{party}", "event_type": "pageView",
            "page_view_id": f"pv-{n}", "ip": ip, "no_js": False, "user_agent": ua, "webdriver": None,
            "new_party": new, "network_type": network, "interaction": None}


def dropper_v4() -> Iterator[dict[str, Any]]:
    for i in range(600):
        yield _event(f"d4-{i}", i * 500, "203.0.113.9", CHROME, True, i)


def dropper_v6() -> Iterator[dict[str, Any]]:
    for i in range(600):
        ua = CHROME.replace("120.0", f"12{i % 5}.0")
        yield _event(f"d6-{i}", i * 200, f"2001:db8:7:9:{i:x}::{i % 7 + 1:x}", ua, True, i)


def crowd(prefix: str, people: int, per_s: int, new: int, bounce: float, seed: int,
          network: str | None = None) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    minutes = 10
    arrivals = {p: rng.randrange(minutes * 60_000) for p in range(new)}
    bounced = {p for p in arrivals if rng.random() < bounce}
    seen: set[int] = set()
    for n in range(minutes * 60 * per_s):
        t = n * 1000 // per_s
        person = rng.randrange(people)
        if person in arrivals and (t < arrivals[person] or (person in bounced and person in seen)):
            person = rng.randrange(new, people)
        first = person not in seen
        seen.add(person)
        yield _event(f"{prefix}-{person}", t, "198.51.100.7", CHROME, first and person in arrivals, n, network)


SCENARIOS = {
    "cookie-dropper-v4": dropper_v4,
    "short-dropper": lambda: (e for e in dropper_v4() if e["server_time"] < T0 + 10_000),
    "cookie-dropper-v6": dropper_v6,
    "office": lambda: crowd("office", 300, 30, 20, 0.0, 1),
    "carrier-nat": lambda: crowd("nat", 3000, 60, 150, 1 / 3, 2),
    "carrier-nat-cellular": lambda: crowd("nat", 3000, 60, 150, 1 / 3, 2, "cellular"),
}


def judged(scenario: str, partitions: int) -> float:
    settings = load({**test_database_env(default_settings.cache_dir), "CLICKPIPE_PARTITIONS": str(partitions)})
    step = build(settings)
    ips: list[dict] = [{} for _ in range(partitions)]
    parties: dict[str, dict] = {}
    ids: dict[str, str] = {}  # simulated party -> the id the collector issued (on its address's partition)
    outcomes: list[tuple[str, bool]] = []  # (session, flagged) per event
    decided: set[str] = set()
    for record in SCENARIOS[scenario]():
        party = ids.setdefault(record["party_id"], new_party_id(address_key(record["ip"]), partitions))
        record = {**record, "party_id": party, "session_id": f"s-{party}"}
        ctx = Context(party=parties.setdefault(party, {}), ips=ips[partition_for(party.encode(), partitions)])
        outcomes.append((record["session_id"], bool(step(record, ctx)["is_bot"])))
        decided.update(v["session_id"] for v in ctx.verdicts)
    # an event is judged when it was flagged or its session was named by a verdict later
    return sum(flagged or session in decided for session, flagged in outcomes) / len(outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    args = parser.parse_args()
    print("share of events judged bot, by partition count")
    print(f"{'scenario':20}" + "".join(f"{p:>8}" for p in args.partitions))
    for scenario in SCENARIOS:
        print(f"{scenario:20}" + "".join(f"{judged(scenario, p):8.3f}" for p in args.partitions))


if __name__ == "__main__":
    main()
