"""The ``sz`` commands that ask a running server: status, schedules, jobs, ...

Each is one request to the server's gateway (``sz.client``), printed as a table
for people or, with ``--json``, as the server's JSON for scripts. A server that
is not there, or refuses, is one line on stderr and exit code 1.

``sz history`` and ``sz schedules`` (list) also read a store file instead, with
``--store URL`` (``sz.storeview``): opened for reading only, the same tables and
JSON, whether or not a server runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

import anyio

from .client import DEFAULT_URL, GatewayClient, GatewayError
from .errors import StoreError
from .storeview import MAX_PAGE, read_history, read_schedules, row_after, store_file

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["REMOTE_COMMANDS", "add_remote_commands", "run_remote"]

#: The commands this module adds to ``sz``.
REMOTE_COMMANDS = (
    "status",
    "schedules",
    "jobs",
    "history",
    "handlers",
    "actors",
    "kill",
)


def add_remote_commands(commands: Any) -> None:
    """Add the remote commands to ``sz``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        type=_url,
        # Left out unless given, to tell it from --store (and so that a
        # subcommand's default never overwrites the command's).
        default=argparse.SUPPRESS,
        help=f"the server's gateway (default: $SZ_URL, else {DEFAULT_URL})",
    )
    common.add_argument(
        "--token",
        default=os.environ.get("SZ_TOKEN"),
        help="the gateway's API token (default: $SZ_TOKEN)",
    )
    common.add_argument(
        "--json", action="store_true", help="print the server's JSON, for scripts"
    )
    # Read a store file instead of asking a server: history and schedules only.
    readable = argparse.ArgumentParser(add_help=False)
    readable.add_argument(
        "--store",
        type=_store,
        default=argparse.SUPPRESS,
        metavar="URL",
        help="read the store sqlite:///path.db or postgresql://user@host/db "
        "instead of asking a server: for reading only, while servers run on it "
        "or not (not with --url)",
    )
    commands.add_parser("status", parents=[common], help="a running server's summary")
    schedules = commands.add_parser(
        "schedules",
        parents=[common, readable],
        help="list or change a running server's schedules",
    )
    action = schedules.add_subparsers(dest="action", metavar="ACTION")
    action.add_parser(
        "list", parents=[common, readable], help="every schedule (the default)"
    )
    add = action.add_parser(
        "add",
        parents=[common],
        help="add a schedule",
        description=(
            "Add a schedule of TASK: TRIGGER is a crontab line ('*/5 * * * *') or "
            "'cron', 'interval', 'date' with --field NAME=VALUE (interval: "
            "--field minutes=5)."
        ),
    )
    add.add_argument("task", metavar="TASK")
    add.add_argument("trigger", metavar="TRIGGER")
    add.add_argument("--id", help="the schedule's id (default: a new one)")
    add.add_argument(
        "--field",
        action="append",
        default=[],
        type=_field,
        metavar="NAME=VALUE",
        help="a trigger field; VALUE is read as JSON when it can be (minutes=5)",
    )
    add.add_argument(
        "--args", type=_json_value, help="the jobs' arguments, as JSON (a list or map)"
    )
    add.add_argument("--paused", action="store_true", help="add it paused")
    for verb, says in (
        ("pause", "pause a schedule"),
        ("resume", "resume a schedule from now"),
        ("remove", "remove a schedule"),
        ("run", "run a schedule's task now, once"),
    ):
        action.add_parser(verb, parents=[common], help=says).add_argument(
            "id", metavar="ID"
        )
    jobs = commands.add_parser(
        "jobs", parents=[common], help="what a running server holds, waits on and runs"
    )
    jobs.add_argument("--state", choices=["held", "waiting", "running"])
    history = commands.add_parser(
        "history",
        parents=[common, readable],
        help="a running server's history (or a store's), newest first",
    )
    for name in ("task", "handler", "outcome", "schedule-id", "job-id"):
        history.add_argument(f"--{name}")
    history.add_argument(
        "--limit",
        type=_page_size,
        default=20,
        help=f"rows in the page, from 1 to {MAX_PAGE} (default: %(default)s)",
    )
    history.add_argument(
        "--cursor",
        help="the page after the one whose --json answer gave this 'next'",
    )
    commands.add_parser(
        "handlers",
        parents=[common],
        help="a running server's handlers and their health",
    )
    commands.add_parser(
        "actors", parents=[common], help="a running server's actor tree"
    )
    kill = commands.add_parser(
        "kill",
        parents=[common],
        help="kill an actor of a running server (its supervisor restarts it)",
    )
    kill.add_argument("path", metavar="PATH", help="such as /user/handlers/echo")


def run_remote(options: argparse.Namespace, out: Any = None) -> int:
    """Run one remote command; its exit code (0, or 1 when the server fails us).

    With ``--store``, read that store file instead (1 when it cannot be read;
    2 for a command that would change it, or ``--url`` beside it).
    """
    out = out if out is not None else sys.stdout
    store = getattr(options, "store", None)
    if store is not None:
        return _run_on_store(options, store, out)
    url = getattr(options, "url", None) or os.environ.get("SZ_URL", DEFAULT_URL)
    try:
        client = GatewayClient(url, options.token)
    except GatewayError as error:  # $SZ_URL: --url's own is checked as parsed
        print(f"sz {options.command}: {error}", file=sys.stderr)
        return 2
    try:
        answer, show = _ask(client, options)
    except GatewayError as error:
        print(f"sz {options.command}: {error}", file=sys.stderr)
        return 1
    if options.json:
        print(json.dumps(answer, indent=2, sort_keys=True), file=out)
    else:
        print(show(answer), file=out)
    return 0


def _run_on_store(options: argparse.Namespace, store: str, out: Any) -> int:
    """``sz history --store`` and ``sz schedules --store``: read the file only."""
    command = options.command
    refusal = None
    if getattr(options, "url", None) is not None:
        refusal = (
            "--store reads a store file, --url asks a running server: give one of them"
        )
    elif command == "schedules" and (options.action or "list") != "list":
        refusal = f"--store only reads: 'sz schedules {options.action}' needs --url"
    if refusal is not None:
        print(f"sz {command}: {refusal}", file=sys.stderr)
        return 2
    try:
        if command == "history":
            cursor = options.cursor
            answer: Any = anyio.run(
                _read_history,
                store,
                options,
                row_after(cursor) if cursor is not None else None,
            )
            show: Callable[[Any], str] = _history_table
        else:
            answer, show = anyio.run(read_schedules, store), _schedules_table
    except ValueError as error:  # the cursor
        print(f"sz {command}: --cursor: {error}", file=sys.stderr)
        return 2
    except StoreError as error:
        print(f"sz {command}: {error}", file=sys.stderr)
        return 1
    if options.json:
        print(json.dumps(answer, indent=2, sort_keys=True), file=out)
    else:
        print(show(answer), file=out)
    return 0


async def _read_history(
    store: str, options: argparse.Namespace, before: Any
) -> dict[str, Any]:
    return await read_history(
        store,
        task=options.task,
        handler=options.handler,
        outcome=options.outcome,
        schedule_id=options.schedule_id,
        job_id=options.job_id,
        before=before,
        limit=options.limit,
    )


def _ask(
    client: GatewayClient, options: argparse.Namespace
) -> tuple[Any, Callable[[Any], str]]:
    """The request a command makes, and how its answer is shown."""
    command = options.command
    if command == "status":
        return client.get("summary"), _pairs
    if command == "schedules":
        return _schedules(client, options)
    if command == "jobs":
        return client.get("jobs", state=options.state), _jobs_table
    if command == "history":
        answer = client.get(
            "history",
            task=options.task,
            handler=options.handler,
            outcome=options.outcome,
            schedule_id=options.schedule_id,
            job_id=options.job_id,
            limit=options.limit,
            cursor=options.cursor,
        )
        return answer, _history_table
    if command == "handlers":
        return client.get("handlers"), _handlers_table
    if command == "actors":
        return client.get("actors"), _tree
    assert command == "kill"
    path = options.path.strip("/")
    return client.post(f"actors/{path}/kill"), lambda _: f"killed /{path}"


def _schedules(
    client: GatewayClient, options: argparse.Namespace
) -> tuple[Any, Callable[[Any], str]]:
    action = options.action or "list"
    if action == "list":
        return client.get("schedules"), _schedules_table
    if action == "add":
        body: dict[str, Any] = {
            "task": options.task,
            "trigger": options.trigger,
            "fields": dict(options.field),
            "paused": options.paused,
        }
        if options.id is not None:
            body["id"] = options.id
        if options.args is not None:
            body["args"] = options.args
        return client.post("schedules", body), lambda s: f"added {s.get('id')}"
    schedule = f"schedules/{options.id}"
    if action == "remove":
        return client.delete(schedule), lambda _: f"removed {options.id}"
    if action == "run":
        answer = client.post(f"{schedule}/run")
        return answer, lambda a: f"job {a.get('job_id')} submitted"
    return client.post(f"{schedule}/{action}"), lambda _: f"{action}d {options.id}"


# ------------------------------------------------------------------ showing


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Rows under a header, in columns as wide as their widest cell."""
    cells = [[str(x) for x in header]] + [
        ["-" if x is None else str(x) for x in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def _pairs(answer: Any) -> str:
    if not isinstance(answer, dict):
        return json.dumps(answer)
    width = max((len(str(k)) for k in answer), default=0)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in answer.items())


def _items(answer: Any, key: str) -> list[dict[str, Any]]:
    """The list an answer holds: itself, or its ``key`` entry."""
    if isinstance(answer, dict):
        answer = answer.get(key, [])
    return [item for item in answer or [] if isinstance(item, dict)]


def _schedules_table(answer: Any) -> str:
    rows = [
        (
            s.get("id"),
            s.get("task"),
            s.get("trigger"),
            s.get("next_fire_time"),
            "paused" if s.get("paused") else "",
        )
        for s in _items(answer, "schedules")
    ]
    return table(rows, ("ID", "TASK", "TRIGGER", "NEXT FIRE", "PAUSED"))


def _jobs_table(answer: Any) -> str:
    rows = [
        (
            j.get("id"),
            j.get("task"),
            j.get("state"),
            j.get("attempt"),
            j.get("handler"),
            j.get("why"),
            j.get("since"),
        )
        for j in _items(answer, "jobs")
    ]
    return table(rows, ("JOB", "TASK", "STATE", "ATTEMPT", "HANDLER", "WHY", "SINCE"))


def _history_table(answer: Any) -> str:
    rows = [
        (
            r.get("finished_at"),
            r.get("job_id"),
            r.get("task"),
            r.get("attempt"),
            r.get("handler"),
            r.get("outcome"),
            r.get("reason"),
            r.get("error"),
        )
        for r in _items(answer, "rows")
    ]
    return table(
        rows,
        ("FINISHED", "JOB", "TASK", "ATTEMPT", "HANDLER", "OUTCOME", "REASON", "ERROR"),
    )


def _handlers_table(answer: Any) -> str:
    rows = []
    for h in _items(answer, "handlers"):
        given = h.get("health")
        health: dict[str, Any] = given if isinstance(given, dict) else {}
        rows.append(
            (
                h.get("name"),
                h.get("kind"),
                ",".join(h.get("tasks") or []),
                health.get("state"),
                h.get("concurrency"),
                h.get("busy"),
                h.get("rate"),
            )
        )
    return table(
        rows, ("HANDLER", "KIND", "TASKS", "HEALTH", "CAPACITY", "BUSY", "RATE")
    )


def _tree(answer: Any, depth: int = 0) -> str:
    if not isinstance(answer, dict):
        return json.dumps(answer)
    line = (
        f"{'  ' * depth}{answer.get('path')}  {answer.get('state')}"
        f"  restarts {answer.get('restarts')}  mailbox {answer.get('mailbox_depth')}"
    )
    children = [
        _tree(child, depth + 1)
        for child in answer.get("children") or []
        if isinstance(child, dict)
    ]
    return "\n".join([line, *children])


# ---------------------------------------------------------------- arguments


def _url(text: str) -> str:
    try:
        GatewayClient(text)
    except GatewayError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--url: ")) from None
    return text


def _store(text: str) -> str:
    try:
        store_file(text)
    except StoreError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if not 1 <= value <= MAX_PAGE:
        raise argparse.ArgumentTypeError(
            f"expected a number from 1 to {MAX_PAGE}, got {text!r}"
        )
    return value


def _field(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected JSON, got {text!r} ({error})"
        ) from None
