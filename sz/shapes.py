"""Objects of the scheduler as JSON data: the shapes the gateway's API answers.

Shared by the gateway (``web.json``, ``web.api``) and by the commands that read
a store without a server (``sz.storeview``), so that both print the same JSON;
``sz`` may not import ``web``, hence here. Times are ISO 8601 strings in UTC; a
float that JSON cannot hold (``inf``, ``nan``) is None; values from users' code
are shown as they are when JSON can hold them, else as their bounded ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .jobs import Attempt, bounded_repr

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .bridge import Schedule

__all__ = [
    "MAX_REPR",
    "MAX_VALUE_TEXT",
    "attempt_data",
    "history_cursor",
    "iso",
    "number",
    "row_after",
    "schedule_data",
    "value_data",
]

#: The longest JSON text of one value from users' code (an argument, a
#: result), in characters; a longer one is shown as its bounded ``repr``.
MAX_VALUE_TEXT = 64 * 1024

#: The longest ``repr`` shown in place of a value JSON cannot hold.
MAX_REPR = 1000


def iso(moment: datetime | None) -> str | None:
    """``moment`` as ISO 8601 in UTC (``2030-01-02T09:30:00+00:00``); None stays.

    A naive datetime is taken as UTC already.
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def number(value: float | None) -> float | None:
    """A float JSON can hold: None for None, ``inf`` and ``nan``."""
    if value is None or not math.isfinite(value):
        return None
    return value


def _repr(value: Any) -> str:
    return bounded_repr(value, MAX_REPR)


def value_data(value: Any) -> Any:
    """A value from users' code as JSON data: itself if JSON holds it, else its repr.

    Held as it is: None, booleans, integers, finite floats, strings, and lists,
    tuples and string-keyed dicts of those, within ``MAX_VALUE_TEXT`` characters
    of JSON. Anything else (a set, an object, ``nan``, a huge list) is its
    ``repr``, bounded to ``MAX_REPR`` characters. Never raises.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_TEXT else _repr(value)
    if isinstance(value, int):
        return value if abs(value) < 2**63 else _repr(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else _repr(value)
    try:
        text = json.dumps(value, allow_nan=False, default=_refuse)
    except (TypeError, ValueError, RecursionError, OverflowError):
        return _repr(value)
    # Acyclic and small now (dumps refuses cycles): safe to walk.
    if len(text) > MAX_VALUE_TEXT or not _string_keyed(value):
        return _repr(value)
    return json.loads(text)


def _refuse(value: Any) -> Any:
    raise TypeError(f"not JSON: {type(value).__qualname__}")


def _string_keyed(value: Any, depth: int = 0) -> bool:
    """Whether every dict within ``value`` has string keys (json turns 1 into "1")."""
    if depth > 100:
        return False
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and _string_keyed(item, depth + 1)
            for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_string_keyed(item, depth + 1) for item in value)
    return True


def _arguments(
    args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    return [value_data(arg) for arg in args], {
        str(key): value_data(item) for key, item in kwargs.items()
    }


def schedule_data(schedule: Schedule) -> dict[str, Any]:
    """A ``Schedule``: its id, task, trigger, arguments, state and next fire."""
    args, kwargs = _arguments(schedule.args, schedule.kwargs)
    return {
        "id": schedule.id,
        "task": schedule.task,
        "trigger": schedule.trigger,
        "args": args,
        "kwargs": kwargs,
        "paused": schedule.paused,
        "paused_reason": schedule.paused_reason,
        "next_fire_time": iso(schedule.next_fire_time),
        "affinity": schedule.affinity,
        "coalesce": schedule.coalesce,
    }


def attempt_data(row: Attempt) -> dict[str, Any]:
    """A history row (``Attempt``), with its arguments, note and traceback."""
    return {
        "job_id": row.job_id,
        "schedule_id": row.schedule_id,
        "task": row.task,
        "handler": row.handler,
        "scheduled_at": iso(row.scheduled_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "duration": number(row.duration),
        "outcome": row.outcome,
        "error": row.error,
        "attempt": row.attempt,
        "final": row.final,
        "reason": row.reason,
        "waited": number(row.waited),
        "arguments": row.arguments,
        "note": row.note,
        "traceback": row.traceback,
    }


# ------------------------------------------------------------------ paging


def history_cursor(row: Attempt) -> str:
    """An opaque cursor, the gateway's: where ``row`` stands in the history."""
    where = [row.finished_at.astimezone(UTC).isoformat(), row.job_id, row.attempt]
    return base64.urlsafe_b64encode(json.dumps(where).encode()).decode().rstrip("=")


def row_after(cursor: str) -> Attempt:
    """The stand-in row a cursor names (its place in the order, nothing more).

    Raises:
        ValueError: Not a cursor ``history_cursor`` (or the gateway) gave.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        finished, job_id, attempt = json.loads(raw)
        moment = datetime.fromisoformat(finished)
    except (ValueError, TypeError, binascii.Error, RecursionError):
        raise ValueError(f"not a history cursor: {cursor!r}") from None
    if (
        not isinstance(job_id, str)
        or isinstance(attempt, bool)
        or not isinstance(attempt, int)
        or moment.tzinfo is None
    ):
        raise ValueError(f"not a history cursor: {cursor!r}")
    return Attempt(
        job_id=job_id,
        schedule_id=None,
        task="",
        handler=None,
        scheduled_at=moment,
        started_at=None,
        finished_at=moment,
        duration=None,
        outcome="success",
        error=None,
        attempt=attempt,
        final=True,
    )
