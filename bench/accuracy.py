"""Accuracy of session bot verdicts and sessionization on simulated traffic, end to end.

    .venv/bin/python -m bench.accuracy [--duration 600] [--rate 50] [--gap 30] [--sweep 5] [--seed 1]
                                       [--bot-share 0.2]

Starts a private deployment on the running stack (``clickpipe stack up``): its own topics and
Druid datasources, one Faust worker with a session gap of ``--gap`` seconds and an idle sweep
every ``--sweep`` seconds, and one collector (gunicorn, repository config) trusting one
X-Forwarded-For hop; geo and ASN lookups use MaxMind's test databases. Then runs ``clickpipe simulate`` for
``--duration`` seconds with a ground-truth file, and ``clickpipe evaluate`` on it. Prints the
evaluation table and a Markdown section for docs/benchmarks.md. Topics are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from app.geodata import test_database_env
from clickpipe.config import settings
from tests.support.simulation import deployment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=600)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--gap", type=int, default=30)
    parser.add_argument("--sweep", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--bot-share", type=float, default=0.2)
    args = parser.parse_args()
    geo = test_database_env(settings.cache_dir)
    with tempfile.TemporaryDirectory(prefix="accuracy-") as tmp:
        workdir = Path(tmp)
        truth = workdir / "truth.jsonl"
        with deployment(settings.kafka_bootstrap, workdir, geo, args.gap, args.sweep, settings.partitions,
                        druid=True) as d:
            sim = d.clickpipe("simulate", "--url", d.url, "--rate", str(args.rate), "--duration", str(args.duration),
                              "--seed", str(args.seed), "--concurrency", str(args.concurrency), "--truth", str(truth),
                              "--bot-share", str(args.bot_share), timeout=args.duration + 300)
            if sim.returncode != 0:
                print(sim.stderr, file=sys.stderr)
                return 1
            sent = json.loads(sim.stdout)
            timeout = 4 * (args.gap + args.sweep) + 120
            ev = d.clickpipe("evaluate", str(truth), "--json", "--timeout", str(timeout), timeout=timeout + 60)
            if ev.returncode != 0:
                print(ev.stderr, file=sys.stderr)
                return 1
            table = d.clickpipe("evaluate", str(truth), "--timeout", "30", timeout=120).stdout
        report = json.loads(ev.stdout)
    print(table)
    print(json.dumps(sent))
    print(markdown(args, sent, report))
    return 0


def markdown(args, sent: dict, r: dict) -> str:
    j, p, e, s, dl = r["sessions_judged"], r["parties"], r["events"], r["sessions"], r["delivery"]

    def f(x) -> str:
        return "-" if x is None else f"{x:.4f}"

    kinds = "\n".join(
        f"| {k} | {'bot' if v['bot'] else 'human'} | {v['sessions']} | {v['judged_bot']} | "
        f"{f(v['recall'] if v['bot'] else v['judged_bot_share'])} | "
        f"{', '.join(f'{n} {c}' for n, c in sorted(v['reasons'].items()))} |"
        for k, v in sorted(r["by_kind"].items(), key=lambda kv: (kv[1]["bot"], kv[0])))
    return f"""
## Accuracy

`.venv/bin/python -m bench.accuracy --duration {args.duration} --rate {args.rate:g} \
--gap {args.gap} --sweep {args.sweep} --seed {args.seed} --bot-share {args.bot_share:g}`
— `clickpipe simulate` against a real collector, worker and Druid (session gap {args.gap} s,
idle sweep {args.sweep} s, MaxMind test databases), then `clickpipe evaluate` on the ground
truth, with session verdicts as Druid's human reports apply them. Measured {time.strftime('%Y-%m-%d')}:

| what | figure |
|---|---|
| run length | {sent['elapsed_s']} s |
| events/s achieved (accepted incl. resends) | {sent['events_per_s']} |
| parties / requests / events accepted / resent duplicates | {sent['parties']} / \
{sent['requests']} / {sent['accepted']} / {sent['resent']} |
| events not accepted / 503 retries | {sent['failed']} / {sent['retries']} |
| session precision (goal ≥ 0.99) | {f(j['precision'])} ({j['tp']} tp, {j['fp']} fp) |
| session recall (goal ≥ 0.95) / mean over bot kinds | {f(j['recall'])} ({j['fn']} fn) / {f(j['kind_recall'])} |
| human sessions judged bot (goal ≤ 0.5 %) | {f(j['human_flagged'])} ({j['fp']} of {j['fp'] + j['tn']}) |
| human sessions partly dropped from human reports | {j['partial']} |
| precision / recall, parties | {f(p['precision'])} / {f(p['recall'])} |
| precision / recall, events | {f(e['precision'])} / {f(e['recall'])} |
| sessions expected / observed (goal: within 1 %) | {s['expected']} / {s['observed']} ({s['error']:+.2%}) |
| events lost / duplicated / wrong IP | {dl['lost']} / {dl['duplicated']} / {dl['ip_mismatches']} |

| kind | verdict | sessions | judged bot | recall (bots) / judged-bot share (people) | reasons |
|---|---|---|---|---|---|
{kinds}
"""


if __name__ == "__main__":
    sys.exit(main())
