"""The ``sz`` command line."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import math
import os
import signal
import sys
import threading
import time
from functools import partial
from importlib import metadata
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import attrs

from transport import KeyFileError, generate_keys

from .commands import REMOTE_COMMANDS, add_remote_commands, run_remote
from .config import MAX_DRAIN_SECONDS, ConfigError, StoreConfig
from .errors import SzError, refusal_in
from .logs import LOG_FORMATS, LOG_LEVELS, configure_logging
from .remote import ZMQHandler
from .remote.wire import MAX_MESSAGE_BYTES
from .scenarios import (
    ProgressLine,
    ScenarioError,
    format_result,
    library_scenarios,
    load_scenario,
    resolve as resolve_scenario,
    run_scenario,
)
from .scenarios.remote_run import run_on_server
from .scheduler import ScheduleZero, check_startup
from .serve import DEFAULT_STORE, demo_scheduler, serve, settle_heap
from .startup import import_from_working_directory, import_handler_module
from .store.location import store_path

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    from .config import WebConfig
    from .store import StoreError

    #: Serves the gateway beside a running scheduler while its block runs,
    #: yielding its base URL.
    Serving = Callable[[ScheduleZero], AbstractAsyncContextManager[str]]
    #: Checks a ``web`` config section and returns how to serve it.
    Gateway = Callable[[WebConfig], Serving]

__all__ = ["main"]

logger = logging.getLogger("sz")

#: Seconds ``sz serve`` and ``sz worker``, once stopped, wait for the threads of
#: sync handler functions to end before they exit regardless: Python cannot stop
#: a thread, and one that never returns would otherwise keep the process alive.
THREAD_GRACE = 2.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sz",
        description="ScheduleZero: a job scheduler on a supervised actor runtime.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s (ScheduleZero) {metadata.version('schedulezero')}",
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
        type=_store_url,
        metavar="URL",
        help=(
            "where schedules and history live: 'memory', 'sqlite:///path.db' or "
            "'postgresql://user@host:port/database' "
            "(default: the config's store; without -c, "
            f"{DEFAULT_STORE.removeprefix('sqlite:///')} in the working directory)"
        ),
    )
    serve.add_argument(
        "--node",
        type=_node_name,
        metavar="NAME",
        help=(
            "this process's name among the nodes sharing a PostgreSQL store "
            "(default: the config's store.node, else HOST-PID); give a node the "
            "same name across restarts to take up its own jobs at once"
        ),
    )
    serve.add_argument(
        "--drain-timeout",
        type=_drain_seconds,
        metavar="SECONDS",
        help=(
            "on SIGINT or SIGTERM, seconds to let running jobs end before they "
            "are abandoned; a second signal stops at once (default: the config's "
            "scheduler.drain_timeout, 5)"
        ),
    )
    web = serve.add_mutually_exclusive_group()
    web.add_argument(
        "--web",
        type=_web_address,
        metavar="HOST:PORT",
        help="serve the web gateway there (default: the config's web.host and "
        "web.port, 127.0.0.1:8080; port 0 takes a free one)",
    )
    web.add_argument(
        "--no-web",
        action="store_true",
        help="do not serve the web gateway (default: the config's web.enabled, true)",
    )
    _add_log_options(serve)
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
    worker = commands.add_parser(
        "worker",
        help="serve a module's functions to a scheduler over ZeroMQ",
        description=(
            "Connect to the scheduler's broker at ENDPOINT and run jobs with the "
            "public functions of MODULE (those it defines, not imports, whose "
            "names do not start with _) as tasks, or only those --tasks lists. "
            "Several endpoints separated by commas (one broker per node) are all "
            "served at once, sharing --capacity. Runs until SIGINT or SIGTERM, "
            "then finishes or hands back its jobs."
        ),
    )
    worker.add_argument(
        "endpoint",
        type=_endpoints,
        metavar="ENDPOINT[,ENDPOINT...]",
        help="the broker, e.g. tcp://127.0.0.1:5555; or several, separated by "
        "commas, each a node's",
    )
    worker.add_argument("module", metavar="MODULE", help="the dotted module to serve")
    worker.add_argument(
        "--name", help="the worker's name (default: HOST-PID; with CURVE, its key's)"
    )
    worker.add_argument(
        "--capacity",
        type=_positive_int,
        default=1,
        help="jobs run at once, whichever broker sent them (default: %(default)s)",
    )
    worker.add_argument(
        "--tasks",
        "--methods",  # the roadmap's spelling, kept for those who followed it
        type=_names,
        metavar="A,B,...",
        help="serve only these functions of MODULE, as tasks of their names",
    )
    worker.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="the event loop to run on (default: %(default)s)",
    )
    worker.add_argument(
        "--heartbeat",
        type=_positive_float,
        default=1.0,
        help="seconds between heartbeats (default: %(default)s)",
    )
    worker.add_argument(
        "--liveness",
        type=_positive_int,
        default=3,
        help="heartbeats the broker may miss before the worker reconnects "
        "(default: %(default)s)",
    )
    worker.add_argument(
        "--max-message-bytes",
        type=_positive_int,
        default=MAX_MESSAGE_BYTES,
        metavar="N",
        help="the largest message the broker takes, its handlers.zmq."
        "max_message_bytes: a larger result fails its job (default: %(default)s)",
    )
    worker.add_argument(
        "--drain-timeout",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="on SIGINT or SIGTERM, seconds to let running jobs end before they "
        "are handed back to the broker (default: %(default)s)",
    )
    _add_log_options(worker)
    worker.add_argument(
        "--key",
        metavar="FILE",
        help="this worker's secret key file, for CURVE (with --server-key)",
    )
    worker.add_argument(
        "--server-key",
        type=_files,
        metavar="FILE[,FILE...]",
        help="the broker's public key file: one for every broker, or one per "
        "endpoint in their order, separated by commas",
    )
    keys = commands.add_parser(
        "keys",
        help="make CURVE key pairs for the broker and its workers",
        description="Make CURVE key pairs: NAME.key (public) and NAME.key_secret.",
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    generate = key_commands.add_parser(
        "generate",
        help="write NAME.key and NAME.key_secret",
        description=(
            "Write a new key pair: NAME.key (public: list it in the broker's "
            "handlers.zmq.curve.workers, or give it to workers as --server-key) "
            "and NAME.key_secret (private, mode 0600). Never overwrites."
        ),
    )
    generate.add_argument("name", metavar="NAME", help="the worker's name, or 'server'")
    generate.add_argument(
        "--dir",
        default=".",
        help="the directory to write to (default: the working directory)",
    )
    _add_scenario_commands(commands)
    add_remote_commands(commands)
    return parser


def _add_scenario_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    scenario = commands.add_parser(
        "scenario",
        help="run, check and list scenarios: YAML runs that load, break and "
        "check ScheduleZero",
        description="Scenarios are YAML files of steps, faults, metrics and "
        "assertions (docs/guide/scenarios.md).",
    )
    scenario_commands = scenario.add_subparsers(
        dest="scenario_command", required=True, metavar="COMMAND"
    )
    # What check and run both take: the scenario and its parameters.
    scenario_file = argparse.ArgumentParser(add_help=False)
    scenario_file.add_argument(
        "file", metavar="FILE", help="the scenario file, or a shipped scenario's name"
    )
    scenario_file.add_argument(
        "--param",
        action="append",
        type=_parameter,
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter, read as its default's type (repeatable)",
    )
    scenario_commands.add_parser(
        "check",
        parents=[scenario_file],
        help="check a scenario without running it (exit 2 if it is invalid)",
        description="Load FILE as a scenario and check everything that can be "
        "checked without running it; print one line naming the file, the line "
        "and what was expected at the first problem, and exit 2; exit 0 if it "
        "is valid.",
    )
    run = scenario_commands.add_parser(
        "run",
        parents=[scenario_file],
        help="run a scenario in a fresh embedded scheduler, here or inside a "
        "server (--url) (exit 0 if it passed, "
        "1 if not, 2 if it is invalid)",
        description="Run FILE (a path, or a shipped scenario's name) in a fresh "
        "embedded scheduler: a progress line on stderr, then a table of its "
        "metrics, checks and assertions on stdout. Exit 0 when every check, "
        "assertion and steady-state condition held; 1 when one did not, or the "
        "run was aborted; 2 for a file that does not load.",
    )
    run.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="the seed of the run's random choices (default: a random one, "
        "printed with the results)",
    )
    run.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="the event loop to run on (default: %(default)s)",
    )
    run.add_argument(
        "--export",
        metavar="FILE",
        help="also write the result to FILE: JSON (.json) or the metric "
        "samples over time as CSV (.csv)",
    )
    run.add_argument(
        "--url",
        metavar="URL",
        help="run it inside the server whose gateway is at URL (as "
        "/user/scenarios/<run id> there, in a fresh scheduler of the run's "
        "own): FILE is loaded through the API, or names a scenario of the "
        "server's library",
    )
    run.add_argument(
        "--token",
        default=os.environ.get("SZ_TOKEN"),
        help="with --url: the gateway's API token (default: $SZ_TOKEN)",
    )
    run.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="ERROR",
        help="the scheduler's log records shown on stderr (default: %(default)s: "
        "a chaos run's warnings are its purpose)",
    )
    scenario_commands.add_parser(
        "list",
        help="list the shipped scenarios",
        description="List the scenarios shipped with ScheduleZero, each with its "
        "description; 'sz scenario check NAME' checks one.",
    )


def _parameter(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not (equals and name.strip()):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def _scenario(options: argparse.Namespace) -> int:
    if options.scenario_command == "list":
        return _list_scenarios()
    if options.scenario_command == "run":
        return _run_scenario(options)
    try:
        scenario = load_scenario(
            resolve_scenario(options.file), parameters=dict(options.param)
        )
    except ScenarioError as error:  # names the file already
        print(error, file=sys.stderr)
        return 2
    counts = ", ".join(
        _counted(len(items), word)
        for items, word in (
            (scenario.steps, "step"),
            (scenario.checks, "check"),
            (scenario.metrics, "metric"),
            (scenario.assertions, "assertion"),
        )
    )
    print(f"{options.file}: ok ({scenario.name}: {counts})")
    return 0


def _run_scenario(options: argparse.Namespace) -> int:
    export = options.export
    if export is not None and not export.endswith((".json", ".csv")):
        print(
            f"sz scenario run: --export {export}: expected a .json or .csv file",
            file=sys.stderr,
        )
        return 2
    if options.url is not None:
        return run_on_server(
            options.file,
            url=options.url,
            token=options.token,
            params=dict(options.param),
            seed=options.seed,
            export=export,
            out=sys.stdout,
            err=sys.stderr,
        )
    try:
        scenario = load_scenario(
            resolve_scenario(options.file), parameters=dict(options.param)
        )
    except ScenarioError as error:  # names the file already
        print(error, file=sys.stderr)
        return 2
    configure_logging(options.log_level, "text")
    progress = ProgressLine(sys.stderr)
    try:
        result = anyio.run(
            partial(run_scenario, scenario, seed=options.seed, on_progress=progress),
            backend=options.backend,
        )
    finally:
        progress.close()
    units = {entry.name: entry.unit for entry in scenario.metrics if entry.unit}
    print(format_result(result, units), end="")
    if export is not None:
        text = result.dumps() if export.endswith(".json") else result.to_csv()
        with open(export, "w", encoding="utf-8") as out:
            out.write(text)
    return 0 if result.passed else 1


def _counted(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _list_scenarios() -> int:
    shipped = library_scenarios()
    width = max(map(len, shipped), default=0)
    for name, path in shipped.items():
        try:
            about = load_scenario(path).description
        except ScenarioError as error:
            about = f"(invalid: {error})"
        print(f"{name:<{width}}  {about}")
    return 0


def _add_log_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="the least severe records logged (default: %(default)s)",
    )
    command.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text lines, or one JSON object a line with the job's fields "
        "(default: %(default)s)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return value


def _endpoints(text: str) -> list[str]:
    # Checked by ZMQHandler, whose refusal names the bad endpoint in the list.
    return [endpoint.strip() for endpoint in text.split(",")]


def _files(text: str) -> list[str]:
    files = [name.strip() for name in text.split(",")]
    if not all(files):
        raise argparse.ArgumentTypeError(
            f"expected file names separated by commas, got {text!r}"
        )
    return files


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected names separated by commas")
    return names


def public_functions(module: Any, only: Sequence[str] | None = None) -> dict[str, Any]:
    """The functions ``sz worker`` serves from ``module``, by task name.

    Args:
        module: The imported module.
        only: The names of the functions to serve (``--tasks``), in order; None
            (the default) for every function the module defines whose name does
            not start with ``_``.

    Raises:
        SzError: A name in ``only`` is not a function of the module, or the
            module has no public function.
    """
    if only is not None:
        found = {}
        for name in only:
            function = getattr(module, name, None)
            if not inspect.isfunction(function):
                raise SzError(f"{module.__name__}.{name} is not a function")
            found[name] = function
        return found
    found = {
        name: function
        for name, function in vars(module).items()
        if inspect.isfunction(function)
        and not name.startswith("_")
        and function.__module__ == module.__name__
    }
    if not found:
        raise SzError(f"{module.__name__} defines no public function to serve")
    return found


def _worker(options: argparse.Namespace) -> None:
    import_from_working_directory()
    module = import_handler_module(options.module)
    handler = ZMQHandler(
        options.endpoint,
        name=options.name,
        capacity=options.capacity,
        heartbeat=options.heartbeat,
        liveness=options.liveness,
        max_message_bytes=options.max_message_bytes,
        drain_timeout=options.drain_timeout,
        key=options.key,
        # One file: the same key for every broker.
        server_key=(
            options.server_key[0]
            if options.server_key is not None and len(options.server_key) == 1
            else options.server_key
        ),
    )
    for name, function in public_functions(module, options.tasks).items():
        handler.task(function, name=name)
    settle_heap()  # a process of our own, as ``sz serve``: startup is done
    handler.start(backend=options.backend)


def _keys(options: argparse.Namespace) -> None:
    try:
        public, secret = generate_keys(options.dir, options.name)
    except (KeyFileError, OSError) as exc:
        raise SzError(str(exc)) from None
    print(f"public key: {public}\nsecret key: {secret} (keep it private)")


def _check_config(path: str) -> int:
    """What ``sz serve -c`` checks before it starts, minus the store and sockets."""
    import_from_working_directory()
    try:
        sz = _as_served(ScheduleZero.from_config(path))
        check_startup(sz)
    except ConfigError as error:  # names the file already
        print(error, file=sys.stderr)
        return 2
    except SzError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 2
    print(f"{path}: ok (scheduler mode {sz.config.scheduler.mode})")
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _drain_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_DRAIN_SECONDS):
        raise argparse.ArgumentTypeError(
            f"expected seconds from 0 to {MAX_DRAIN_SECONDS:.0f}, got {text!r}"
        )
    return value


def _web_address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not (colon and host and port.isdigit() and int(port) <= 65535):
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT such as 127.0.0.1:8080, got {text!r}"
        )
    return host, int(port)


def _node_name(text: str) -> str:
    try:
        StoreConfig(node=text)
    except SzError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("node: ")) from None
    return text


def _store_url(text: str) -> str:
    try:
        store_path(text)
    except SzError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


async def _serve(
    sz: ScheduleZero,
    demo: bool,
    interval: float,
    drain_timeout: float | None,
    gateway: Serving | None,
    unserved: bool,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if gateway is not None:
            # Listening before the scheduler starts: a port taken refuses at
            # once, before the store is touched. Until the scheduler runs, and
            # once it has stopped, the gateway answers 503.
            url = await stack.enter_async_context(gateway(sz))
            logger.info("dashboard: %s/", url)
        await _run_scheduler(sz, demo, interval, drain_timeout, unserved)


async def _run_scheduler(
    sz: ScheduleZero,
    demo: bool,
    interval: float,
    drain_timeout: float | None,
    unserved: bool,
) -> None:
    stop = anyio.Event()
    async with sz, anyio.create_task_group() as tg:
        # The first signal drains; a second one during the drain stops at once.
        draining = anyio.CancelScope()

        async def wait_for_signal(
            *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
        ) -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if not stop.is_set():
                        logger.info("received %s, shutting down", name)
                        stop.set()
                    else:
                        logger.warning("received %s again: stopping at once", name)
                        draining.cancel()

        # Started, not merely scheduled: the receiver is in place before the
        # "actor tree" line says the scheduler runs, so a SIGTERM sent on
        # seeing it stops the scheduler cleanly rather than killing it.
        lost: list[StoreError] = []

        async def watch_store() -> None:
            # A store file deleted or replaced: stop, and exit 2 saying so,
            # rather than run on with nowhere to keep anything.
            lost.append(await sz.wait_store_lost())
            stop.set()

        await tg.start(wait_for_signal)
        tg.start_soon(watch_store)
        if unserved:
            # Once started: a refusal at start stays the one line it is.
            logger.info(
                "web gateway: not served by python -m sz (the scheduler's own "
                "command line); the sz command serves it"
            )
        await serve(sz, stop, demo=demo, interval=interval)
        if not lost:
            with draining:
                await sz.drain(drain_timeout)
        tg.cancel_scope.cancel()
    if lost:
        raise lost[0]
    logger.info("stopped cleanly")


def main(argv: Sequence[str] | None = None, *, gateway: Gateway | None = None) -> None:
    """Run the ``sz`` command line; exits 2 on bad arguments.

    Args:
        argv: The arguments, ``sys.argv[1:]`` if None.
        gateway: How ``sz serve`` serves the web gateway. The ``sz`` command
            (``web.cli``) gives it; None (``python -m sz``, the scheduler's own
            command line, which may not import ``web``) serves none.
    """
    options = _parser().parse_args(argv)
    if options.command == "check-config":
        sys.exit(_check_config(options.file))
    if options.command == "scenario":
        sys.exit(_scenario(options))
    if options.command in REMOTE_COMMANDS:
        sys.exit(run_remote(options))
    if options.command in {"serve", "worker"}:
        configure_logging(options.log_level, options.log_format)
    run: Callable[[argparse.Namespace], None] = {
        "worker": _worker,
        "keys": _keys,
        "serve": lambda options: _run_serve(options, gateway),
    }[options.command]
    try:
        run(options)
    except (SzError, BaseExceptionGroup) as error:
        # A bad config, handler module, store file or endpoint: one line. What
        # holds anything but refusals is a bug, and keeps its traceback.
        refusal = refusal_in(error)
        if refusal is None:
            raise
        print(f"sz {options.command}: {refusal}", file=sys.stderr)
        sys.exit(2)
    _exit_despite_threads(0)


def _exit_despite_threads(code: int) -> NoReturn:
    """Exit with ``code``, even while a sync handler's thread still runs.

    The event loop has ended and the store is closed by now; the handlers logged
    each job they abandoned. Threads still running after ``THREAD_GRACE`` are
    named in one line, and the process ends without waiting for them.
    """
    deadline = time.monotonic() + THREAD_GRACE
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [
        thread.name
        for thread in threading.enumerate()
        if thread is not threading.current_thread()
        and not thread.daemon
        and thread.is_alive()
    ]
    if not stuck:
        sys.exit(code)
    logger.warning(
        "exiting with %d handler thread(s) still running: %s",
        len(stuck),
        ", ".join(stuck),
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the interpreter's exit would wait for them forever


def _as_served(sz: ScheduleZero) -> ScheduleZero:
    """The scheduler with what ``sz serve`` adds to a config's: ``sz.scenario``.

    Before it starts: the handler of scheduled scenario runs is registered, so
    that runs started through the gateway can be scheduled too, and a config
    schedule of the task ``sz.scenario`` is one ``sz check-config`` accepts as
    ``sz serve`` does.
    """
    sz.scenarios  # noqa: B018
    return sz


def _web_wanted(options: argparse.Namespace, web: WebConfig) -> WebConfig | None:
    """The gateway this ``sz serve`` is asked to serve (options over the config)."""
    if options.no_web:
        return None
    if options.web is not None:
        host, port = options.web
        return attrs.evolve(web, enabled=True, host=host, port=port)
    return web if web.enabled else None


def _run_serve(options: argparse.Namespace, gateway: Gateway | None) -> None:
    import_from_working_directory()  # handlers.builtin, as ``sz worker`` finds MODULE
    if options.config:
        sz = ScheduleZero.from_config(
            options.config, store=options.store, node=options.node
        )
    else:
        sz = demo_scheduler(options.store or DEFAULT_STORE, node=options.node)
    demo = options.config is None
    _as_served(sz)
    web = _web_wanted(options, sz.config.web)
    # The gateway's settings refuse (a host beyond this machine without a
    # token) before anything starts.
    serving = gateway(web) if web is not None and gateway is not None else None
    anyio.run(
        _serve,
        sz,
        demo,
        options.interval,
        options.drain_timeout,
        serving,
        web is not None and gateway is None,
        backend=options.backend,
    )
