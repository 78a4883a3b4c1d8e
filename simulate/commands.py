"""The ``clickpipe simulate`` and ``clickpipe evaluate`` subcommands (parsers and handlers)."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path


def add_parsers(sub, settings_defaults) -> None:
    """Register both subcommands on ``sub`` (argparse subparsers); defaults from Settings."""
    s = settings_defaults
    sim = sub.add_parser(
        "simulate", help="send synthetic visitors and bots to a collector; optionally write the ground truth",
        description="Synthetic traffic against a running collector. Client IPs are sent in X-Forwarded-For: "
                    "run the collector with CLICKPIPE_COLLECTOR_TRUSTED_HOPS=1. Session boundaries follow "
                    "CLICKPIPE_SESSION_GAP_SECONDS / CLICKPIPE_SESSION_SWEEP_SECONDS (use the worker's values). "
                    "See docs/simulate.md.")
    sim.add_argument("--url", default=s.collector_url, help="collector base URL")
    sim.add_argument("--rate", type=float, default=20.0, help="planned events per second (default 20)")
    sim.add_argument("--duration", type=float, default=60.0, help="seconds to send (default 60)")
    sim.add_argument("--seed", type=int, default=None, help="plan seed (default: random, printed)")
    sim.add_argument("--truth", type=Path, default=None, help="write the ground truth (JSON lines) here")
    sim.add_argument("--bot-share", type=float, default=0.2, help="share of parties that are bots (default 0.2)")
    sim.add_argument("--concurrency", type=int, default=64, help="most requests in flight (default 64)")
    sim.set_defaults(func=simulate)

    ev = sub.add_parser(
        "evaluate", help="score session bot verdicts and sessionization against a simulation's ground truth",
        description="Reads the enriched and sessions topics (read_committed) from the run's start, and the "
                    "session verdicts as Druid's human-traffic reports see them (datasources "
                    "CLICKPIPE_DRUID_*_DATASOURCE), and compares them with the ground truth written by "
                    "`clickpipe simulate --truth`: session-level precision and recall per kind and overall.")
    ev.add_argument("truth", type=Path, help="ground-truth file of the run")
    ev.add_argument("--enriched-topic", default=s.topic_enriched)
    ev.add_argument("--sessions-topic", default=s.topic_sessions)
    ev.add_argument("--verdicts-topic", default=s.topic_verdicts,
                    help="session verdicts the worker published after a session's first events (with --verdicts "
                         "druid: the verdicts Druid must hold before it is read)")
    ev.add_argument("--bootstrap", default=s.kafka_bootstrap)
    ev.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to wait for every event and every closed session (default 120)")
    ev.add_argument("--no-sessions-topic", action="store_true",
                    help="count sessions from the enriched clicks only; do not wait for closed sessions")
    ev.add_argument("--verdicts", choices=("druid", "topics"), default="druid",
                    help="where session verdicts are read: druid (what human reports exclude; default) or topics "
                         "(the worker's own outputs, no Druid needed)")
    ev.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    ev.set_defaults(func=evaluate)


def simulate(args: argparse.Namespace) -> int:
    from clickpipe.config import settings
    from simulate import traffic
    from simulate.plan import Mix, Planner, Timing
    from simulate.truth import TruthWriter

    if args.rate <= 0 or args.duration <= 0 or args.concurrency < 1:
        print("[simulate] --rate, --duration and --concurrency must be positive", file=sys.stderr)
        return 2
    try:
        mix = Mix(bot_share=args.bot_share)
    except ValueError as exc:
        print(f"[simulate] {exc}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    run_id = f"sim-{secrets.token_hex(4)}"
    timing = Timing(gap_s=settings.session_gap_seconds, sweep_s=settings.session_sweep_seconds)
    planner = Planner(seed, run_id, timing, mix)
    truth = None
    if args.truth is not None:
        try:
            truth = TruthWriter(args.truth)
        except OSError as exc:
            print(f"[simulate] cannot write {args.truth}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        truth.run({"run_id": run_id, "seed": seed, "rate": args.rate, "duration_s": args.duration,
                   "bot_share": args.bot_share, "session_gap_s": timing.gap_s, "session_sweep_s": timing.sweep_s,
                   "started_ms": int(time.time() * 1000), "collector": args.url,
                   "party_cookie": settings.collector_party_cookie})
    print(f"[simulate] run {run_id}, seed {seed}: {args.rate:g} events/s for {args.duration:g}s to {args.url} "
          f"(session gap {timing.gap_s}s)", file=sys.stderr)
    try:
        stats = traffic.run(planner.parties(args.rate), args.url, args.duration, args.concurrency,
                            settings.collector_party_cookie, truth)
        summary = {"run_id": run_id, "seed": seed, **stats.as_dict()}
        if truth is not None:
            truth.summary(summary)
    finally:
        if truth is not None:
            truth.close()
    print(json.dumps(summary))
    if not stats.parties:
        print(f"[simulate] no party fits in {args.duration:g}s with a session gap of {timing.gap_s}s: "
              "lengthen --duration or shorten CLICKPIPE_SESSION_GAP_SECONDS", file=sys.stderr)
    return 0 if stats.accepted else 1


def evaluate(args: argparse.Namespace) -> int:
    from simulate import evaluate as evaluation
    from simulate.truth import TruthError, read

    try:
        truth = read(args.truth)
    except TruthError as exc:
        print(f"[evaluate] {exc}", file=sys.stderr)
        return 2
    try:
        outputs = evaluation.read_outputs(truth, args.bootstrap, args.enriched_topic,
                                          None if args.no_sessions_topic else args.sessions_topic, args.timeout,
                                          args.verdicts_topic)
    except evaluation.TopicError as exc:
        print(f"[evaluate] {exc}", file=sys.stderr)
        return 1
    if not outputs.complete:
        print(f"[evaluate] not everything arrived within {args.timeout:g}s (the figures below count what did; "
              f"closing the last sessions takes the worker's session gap plus its sweep interval)", file=sys.stderr)
    if outputs.undecodable:
        print(f"[evaluate] {outputs.undecodable} records could not be decoded", file=sys.stderr)
    sessions = outputs.sessions if not args.no_sessions_topic else None
    verdicts = None
    if args.verdicts == "druid":
        from clickpipe.config import settings
        from druid.client import DruidError

        try:
            verdicts = evaluation.verdicts_from_druid(settings, outputs.clicks,
                                                      int(truth.run["started_ms"]) - evaluation.START_MARGIN_MS,
                                                      args.timeout, outputs.late)
        except DruidError as exc:
            print(f"[evaluate] {exc}", file=sys.stderr)
            return 1
    report = evaluation.score(truth, outputs.clicks, sessions, verdicts, args.verdicts, outputs.late)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.table())
    return 0
