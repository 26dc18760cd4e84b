"""What every ``/api`` route does with its request: check it, reach the scheduler.

The helpers the route modules share (``web.api``, ``web.tests``): reading and
checking query parameters, path parts and JSON bodies (a value that is wrong is
a 422 naming the field), refusing mutations when they are off, and calling the
scheduler through the application's ``SchedulerAccess`` with its errors turned
into JSON answers. Public names, so that no route module reaches into
another's private ones.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .access import ACCESS
from .errors import error_for, json_error

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "MAX_ID",
    "MUTATIONS",
    "arguments",
    "call_scheduler",
    "check_keys",
    "check_mutations",
    "invalid",
    "json_answer",
    "number",
    "optional_text",
    "parse_time",
    "path_id",
    "query_bool",
    "query_int",
    "query_seconds",
    "query_text",
    "query_time",
    "read_body",
    "required_text",
    "schedule_request",
]

#: Whether the API may kill and restart actors and delete schedules: True
#: when the application does not set it. The application sets it from its
#: settings (``web.mutations``).
MUTATIONS: web.AppKey[bool] = web.AppKey("mutations", bool)

#: The longest schedule or job id in a path, in characters.
MAX_ID = 200

_COALESCE = ("latest", "earliest", "all")

#: Keywords of ``ScheduleZero.schedule`` itself: never trigger fields.
_SCHEDULE_KEYWORDS = frozenset(
    {
        "task_id",
        "trigger",
        "args",
        "kwargs",
        "id",
        "paused",
        "misfire_grace_time",
        "affinity",
        "coalesce",
    }
)


async def call_scheduler(
    request: web.Request, func: Callable[..., Any], *args: Any
) -> Any:
    """``func(*args)`` in the scheduler's loop; its errors answered as JSON.

    An error ``error_for`` knows becomes its JSON answer; any other goes on to
    the application's middleware (a 500).
    """
    try:
        return await request.app[ACCESS].call(func, *args)
    except Exception as exc:
        answer = error_for(exc)
        if answer is None:
            raise
        raise answer from exc


def json_answer(data: Any, status: int = 200) -> web.Response:
    """``data`` as a JSON answer of ``status`` (200 by default)."""
    return web.json_response(data, status=status)


def invalid(field: str, problem: str) -> web.HTTPException:
    """A 422 answer naming what was wrong: ``field: problem``."""
    return json_error(422, f"{field}: {problem}")


def check_mutations(request: web.Request) -> None:
    """Refuse (403) a kill, restart or delete when mutations are off.

    Raises:
        HTTPException: 403 if ``app[MUTATIONS]`` is False.
    """
    if not request.app.get(MUTATIONS, True):
        raise json_error(
            403, "mutations (kill, restart, delete) are turned off on this server"
        )


def path_id(request: web.Request, name: str = "id") -> str:
    """The path's ``name`` part (a schedule or job id), checked.

    Raises:
        HTTPException: 422 if it is empty or longer than ``MAX_ID``.
    """
    value = request.match_info[name]
    if not 0 < len(value) <= MAX_ID:
        raise invalid(name, f"must be 1 to {MAX_ID} characters long")
    return value


def query_int(request: web.Request, name: str, default: int, top: int) -> int:
    """Query parameter ``name`` as an integer from 1 to ``top``; ``default`` if absent.

    Raises:
        HTTPException: 422 if it is not such an integer.
    """
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= top or not raw.strip().isdigit():
        raise invalid(
            f"query parameter {name!r}", f"must be an integer from 1 to {top:,}"
        )
    return value


def query_seconds(request: web.Request, name: str, default: float, top: float) -> float:
    """Query parameter ``name`` as seconds from 0 to ``top``; ``default`` if absent.

    Raises:
        HTTPException: 422 if it is not such a number.
    """
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= top):
        raise invalid(
            f"query parameter {name!r}",
            f"must be a number of seconds from 0 to {top:g}",
        )
    return value


def query_bool(request: web.Request, name: str) -> bool | None:
    """Query parameter ``name`` as true (``true``, ``1``) or false; None if absent.

    Raises:
        HTTPException: 422 if it is neither.
    """
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise invalid(f"query parameter {name!r}", "must be true or false")


def query_text(request: web.Request, name: str) -> str | None:
    """Query parameter ``name``, 1 to ``MAX_ID`` characters; None if absent.

    Raises:
        HTTPException: 422 if it is empty or too long.
    """
    raw = request.query.get(name)
    if raw is not None and not 0 < len(raw) <= MAX_ID:
        raise invalid(
            f"query parameter {name!r}", f"must be 1 to {MAX_ID} characters long"
        )
    return raw


def parse_time(raw: str) -> datetime | None:
    """An ISO 8601 date and time (UTC if it has no offset); None if it is not one."""
    text = raw[:-1] + "+00:00" if raw.upper().endswith("Z") else raw
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def query_time(request: web.Request, name: str) -> datetime | None:
    """Query parameter ``name`` as a date and time; None if absent.

    Raises:
        HTTPException: 422 if it is not ISO 8601.
    """
    raw = request.query.get(name)
    if raw is None:
        return None
    moment = parse_time(raw)
    if moment is None:
        raise invalid(
            f"query parameter {name!r}",
            "must be an ISO 8601 date and time (UTC if no offset is given)",
        )
    return moment


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object.

    Raises:
        HTTPException: 422 if it is not a JSON object.
    """
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        raise invalid("body", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    return body


def check_keys(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """Refuse a body with a field ``allowed`` does not name.

    Raises:
        HTTPException: 422 naming the first unknown field.
    """
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(f"body.{unknown[0]}", "is not a field of this request")


def optional_text(body: Mapping[str, Any], name: str) -> str | None:
    """Body field ``name``: a string of 1 to ``MAX_ID`` characters, or None.

    Raises:
        HTTPException: 422 if it is something else.
    """
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
        raise invalid(
            f"body.{name}", f"must be a string of 1 to {MAX_ID} characters or null"
        )
    return value


def required_text(body: Mapping[str, Any], name: str) -> str:
    """Body field ``name``: a string of 1 to ``MAX_ID`` characters.

    Raises:
        HTTPException: 422 if it is absent or something else.
    """
    value = optional_text(body, name)
    if value is None:
        raise invalid(f"body.{name}", "is required")
    return value


def arguments(
    body: Mapping[str, Any],
) -> tuple[list[Any] | dict[str, Any] | None, dict[str, Any] | None]:
    """The body's ``args`` (an array or an object) and ``kwargs`` (an object).

    Raises:
        HTTPException: 422 if either is of another type.
    """
    args = body.get("args")
    if args is not None and not isinstance(args, list | dict):
        raise invalid("body.args", "must be an array (positional) or an object")
    kwargs = body.get("kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise invalid("body.kwargs", "must be an object")
    return args, kwargs


def number(
    body: Mapping[str, Any], name: str, top: float, *, above_zero: bool = False
) -> float | None:
    """Body field ``name``: a finite number up to ``top`` (above 0 if asked), or None.

    Raises:
        HTTPException: 422 if it is something else.
    """
    value = body.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not (value > 0 if above_zero else value >= 0)
        or value > top
    ):
        low = "above 0" if above_zero else "from 0"
        raise invalid(f"body.{name}", f"must be a number {low} to {top:,.0f} or null")
    return float(value)


_SCHEDULE_FIELDS = frozenset(
    {
        "task",
        "trigger",
        "fields",
        "args",
        "kwargs",
        "id",
        "paused",
        "misfire_grace_time",
        "coalesce",
        "affinity",
    }
)


def schedule_request(body: Mapping[str, Any], id: str | None) -> dict[str, Any]:
    """``ScheduleZero.schedule``'s keywords from a request body, checked.

    Raises:
        HTTPException: 422 naming the first field that is wrong.
    """
    check_keys(body, _SCHEDULE_FIELDS)
    task = required_text(body, "task")
    trigger = body.get("trigger", "cron")
    if not isinstance(trigger, str) or not 0 < len(trigger) <= MAX_ID:
        raise invalid(
            "body.trigger",
            "must be cron, interval, date, calendarinterval or a crontab string",
        )
    fields = body.get("fields")
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise invalid("body.fields", "must be an object of the trigger's fields")
    for name, value in fields.items():
        if name in _SCHEDULE_KEYWORDS or not name.isidentifier():
            raise invalid(f"body.fields.{name}", "is not a trigger field")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise invalid(f"body.fields.{name}", "must be a string or a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise invalid(f"body.fields.{name}", "must be a finite number")
    args, kwargs = arguments(body)
    given_id = optional_text(body, "id")
    if id is not None and given_id is not None and given_id != id:
        raise invalid("body.id", f"must be the id of the path ({id!r}) or absent")
    paused = body.get("paused", False)
    if not isinstance(paused, bool):
        raise invalid("body.paused", "must be true or false")
    coalesce = body.get("coalesce", "latest")
    if coalesce not in _COALESCE:
        raise invalid("body.coalesce", f"must be one of {', '.join(_COALESCE)}")
    return {
        "task_id": task,
        "trigger": trigger,
        "fields": dict(fields),
        "args": args,
        "kwargs": kwargs,
        "id": id if id is not None else given_id,
        "paused": paused,
        "misfire_grace_time": number(body, "misfire_grace_time", 366 * 86_400.0),
        "coalesce": coalesce,
        "affinity": optional_text(body, "affinity"),
    }
