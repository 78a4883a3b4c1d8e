"""The ``clickpipe`` command: one entry point for everything the project runs."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import NoReturn

from clickpipe.config import ConfigError


def _stack(args: argparse.Namespace) -> int:
    from clickpipe.config import settings
    from stack.manager import StackError, StackManager

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
        elif args.action == "topics":
            manager.create_topics()
        elif args.action == "status":
            rows = manager.status()
            widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in ("service", "pid", "address", "state")}
            print("  ".join(k.upper().ljust(w) for k, w in widths.items()))
            for r in rows:
                print("  ".join(str(r[k] if r[k] is not None else "-").ljust(w) for k, w in widths.items()))
            return 0 if all(r["state"] == "healthy" for r in rows) else 3
        elif args.action == "logs":
            svc = manager.service(args.service)
            tail = ["tail", "-n", str(args.lines)] + (["-F"] if args.follow else []) + [str(svc.process.log_file)]
            return subprocess.call(tail)
    except StackError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 1
    return 0



def _worker(args: argparse.Namespace) -> NoReturn:
    """Become a Faust worker of the pipeline app (settings come from CLICKPIPE_* as usual)."""
    import os

    os.execv(sys.executable, [sys.executable, "-m", "faust", "-A", "app.main", "worker", "-l", args.loglevel])

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clickpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="run the local Kafka + Druid stack")
    stack_sub = stack.add_subparsers(dest="action", required=True)
    stack_sub.add_parser("up", help="start every service (idempotent), wait for readiness, create topics")
    stack_sub.add_parser("down", help="stop every service the stack started; keep data")
    stack_sub.add_parser("status", help="each service's pid, address and health (exit 3 if any is not healthy)")
    stack_sub.add_parser("reset", help="stop everything and wipe the state directory")
    stack_sub.add_parser("topics", help="create the pipeline topics if missing")
    logs = stack_sub.add_parser("logs", help="show a service's log")
    logs.add_argument("service", help="kafka, zookeeper, druid-coordinator, druid-broker, ...")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")
    stack.set_defaults(func=_stack)

    worker = sub.add_parser("worker", help="run a stream-processing worker (same as: faust -A app.main worker)")
    worker.add_argument("-l", "--loglevel", default="info")
    worker.set_defaults(func=_worker)
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
