"""The ``sz`` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import TYPE_CHECKING

import anyio

from .config import ConfigError, load_config
from .errors import SzError
from .scheduler import ScheduleZero
from .serve import DEFAULT_STORE, demo_scheduler, serve

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

logger = logging.getLogger("sz")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sz",
        description="ScheduleZero: a job scheduler on a supervised actor runtime.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the main job until SIGINT or SIGTERM",
        description=(
            "Run ScheduleZero in the foreground until SIGINT or SIGTERM, logging "
            "every job's outcome. With -c, handlers come from config.yaml; without, "
            "the built-in handlers run a few demo schedules."
        ),
    )
    serve.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="the event loop to run on (default: %(default)s)",
    )
    serve.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="config.yaml to run (default: built-in handlers and demo schedules)",
    )
    serve.add_argument(
        "--store",
        metavar="URL",
        help=(
            "where schedules and history live: 'memory' or 'sqlite:///path.db' "
            "(default: the config's store; without -c, "
            f"{DEFAULT_STORE.removeprefix('sqlite:///')} in the working directory)"
        ),
    )
    serve.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        help="seconds between demo echo jobs (default: %(default)s)",
    )
    check = commands.add_parser(
        "check-config",
        help="check a config file and exit (2 if it is invalid)",
        description="Load FILE as ScheduleZero's config.yaml and report the first "
        "problems, naming each key path; exit 0 if it is valid, 2 if not.",
    )
    check.add_argument("file", metavar="FILE", help="the config file to check")
    return parser


def _check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"{path}: ok (scheduler mode {config.scheduler.mode})")
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


async def _serve(sz: ScheduleZero, demo: bool, interval: float) -> None:
    stop = anyio.Event()
    async with sz, anyio.create_task_group() as tg:

        async def wait_for_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    logger.info(
                        "received %s, shutting down", signal.Signals(signum).name
                    )
                    stop.set()
                    return

        tg.start_soon(wait_for_signal)
        await serve(sz, stop, demo=demo, interval=interval)
        tg.cancel_scope.cancel()
    logger.info("stopped cleanly")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``sz`` command line; exits 2 on bad arguments."""
    options = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    # APScheduler only hands fires over; our history logs what became of them.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if options.command == "check-config":
        sys.exit(_check_config(options.file))
    if options.command == "serve":
        try:
            if options.config:
                sz = ScheduleZero.from_config(options.config, store=options.store)
            else:
                sz = demo_scheduler(options.store or DEFAULT_STORE)
            demo = options.config is None
            anyio.run(_serve, sz, demo, options.interval, backend=options.backend)
        except SzError as error:  # a bad config, handler module or store file
            print(f"sz serve: {error}", file=sys.stderr)
            sys.exit(2)
    sys.exit(0)
