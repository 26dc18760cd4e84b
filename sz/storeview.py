"""A store read without a scheduler, for ``sz history`` and ``sz schedules``.

A SQLite file or a PostgreSQL database, opened for reading only
(``SqliteFile(read_only=True)``, ``PostgresDatabase(read_only=True)``: every
transaction read-only): nothing is created, locked, migrated, taken up or
recorded, no node row is made, so it may be read while ``sz serve`` runs on it
(or several nodes do), and a store of another layout is refused rather than
migrated. What is read is shaped as the gateway's API answers it
(``/api/history``, ``/api/schedules``), so that the commands print the same
tables and the same ``--json`` either way; a test holds the two together.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .bridge import show_schedule
from .jobs import Attempt, HistoryQuery, bounded_repr
from .store import Database, PostgresDatabase, SqliteFile, StoreError
from .store.history import FileHistory
from .store.location import is_postgres, store_path
from .store.schedules import _load

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from .bridge import Schedule

__all__ = [
    "MAX_PAGE",
    "history_cursor",
    "read_history",
    "read_schedules",
    "row_after",
    "store_file",
]

#: The most rows one page holds, as the gateway's ``/api/history``.
MAX_PAGE = 1000

#: The longest JSON text of one value from users' code, as the gateway's.
_MAX_VALUE_TEXT = 64 * 1024

#: The longest ``repr`` shown in place of a value JSON cannot hold.
_MAX_REPR = 1000


def store_file(url: str) -> Path | None:
    """The file of a store URL that can be read (``sqlite:///path.db``).

    None for a PostgreSQL store (its URL is read as it is).

    Raises:
        StoreError: Not a store URL, or ``memory`` (nothing outlives its
            process).
    """
    path = store_path(url)
    if is_postgres(url):
        return None
    if path is None:
        raise StoreError(
            "store url 'memory': a memory store lives in its process and "
            "cannot be read from another; give sqlite:///path/to/file.db"
        )
    return path


def _for_reading(url: str) -> Database:
    """The store of ``url``, to be opened for reading only.

    Raises:
        StoreError: Not a store URL, or ``memory``.
    """
    path = store_file(url)
    if path is None:
        return PostgresDatabase(url, read_only=True)
    return SqliteFile(path, read_only=True)


async def read_history(
    url: str,
    *,
    task: str | None = None,
    handler: str | None = None,
    outcome: str | None = None,
    schedule_id: str | None = None,
    job_id: str | None = None,
    before: Attempt | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """A page of the history, newest first, as ``/api/history`` answers it.

    A checkpoint. ``{"rows": [...], "next": cursor or None}``; pass ``next``
    (through ``row_after``) as ``before`` for the page after.

    Raises:
        StoreError: No such file, not a store, a store of another layout, or
            it cannot be read.
    """
    file = _for_reading(url)
    await file.open()
    try:
        query = HistoryQuery(
            task=task,
            handler=handler,
            outcome=outcome,
            schedule_id=schedule_id,
            job_id=job_id,
            before=before,
            limit=limit + 1,  # one more: whether a next page exists
        )
        rows = await FileHistory(file).query(query)
    finally:
        await file.close()
    page = rows[:limit]
    more = len(rows) > limit and bool(page)
    return {
        "rows": [_attempt_data(row) for row in page],
        "next": history_cursor(page[-1]) if more else None,
    }


async def read_schedules(url: str) -> list[dict[str, Any]]:
    """Every schedule in the store, as ``/api/schedules`` answers them.

    A checkpoint.

    Raises:
        StoreError: No such file, not a store, a store of another layout, or
            it (a schedule in it) cannot be read.
    """
    file = _for_reading(url)
    await file.open()
    try:
        moment = file.moment
        _, schedules, _ = await file.read(lambda c: _load(c, moment))
    finally:
        await file.close()
    shown = sorted((show_schedule(s) for s in schedules), key=lambda s: s.id)
    return [_schedule_data(schedule) for schedule in shown]


# ------------------------------------------------------------------- paging


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


# ------------------------------------------------------------------ shaping
# The gateway's shapes (web.json), which sz may not import: each value as JSON
# holds it, else its bounded repr; times ISO 8601 in UTC; inf and nan as None.


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return (
            value if len(value) <= _MAX_VALUE_TEXT else bounded_repr(value, _MAX_REPR)
        )
    if isinstance(value, int):
        return value if abs(value) < 2**63 else bounded_repr(value, _MAX_REPR)
    if isinstance(value, float):
        return value if math.isfinite(value) else bounded_repr(value, _MAX_REPR)
    try:
        text = json.dumps(value, allow_nan=False, default=_refuse)
    except (TypeError, ValueError, RecursionError, OverflowError):
        return bounded_repr(value, _MAX_REPR)
    if len(text) > _MAX_VALUE_TEXT or not _string_keyed(value):
        return bounded_repr(value, _MAX_REPR)
    return json.loads(text)


def _refuse(value: Any) -> Any:
    raise TypeError(f"not JSON: {type(value).__qualname__}")


def _string_keyed(value: Any, depth: int = 0) -> bool:
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


def _schedule_data(schedule: Schedule) -> dict[str, Any]:
    kwargs: Mapping[str, Any] = schedule.kwargs
    return {
        "id": schedule.id,
        "task": schedule.task,
        "trigger": schedule.trigger,
        "args": [_value(arg) for arg in schedule.args],
        "kwargs": {str(key): _value(item) for key, item in kwargs.items()},
        "paused": schedule.paused,
        "paused_reason": schedule.paused_reason,
        "next_fire_time": _iso(schedule.next_fire_time),
        "affinity": schedule.affinity,
        "coalesce": schedule.coalesce,
    }


def _attempt_data(row: Attempt) -> dict[str, Any]:
    return {
        "job_id": row.job_id,
        "schedule_id": row.schedule_id,
        "task": row.task,
        "handler": row.handler,
        "scheduled_at": _iso(row.scheduled_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "duration": _number(row.duration),
        "outcome": row.outcome,
        "error": row.error,
        "attempt": row.attempt,
        "final": row.final,
        "reason": row.reason,
        "waited": _number(row.waited),
        "arguments": row.arguments,
        "note": row.note,
        "traceback": row.traceback,
    }
