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

from typing import TYPE_CHECKING, Any

from .bridge import show_schedule
from .jobs import HistoryQuery
from .shapes import attempt_data, history_cursor, row_after, schedule_data
from .store import Database, PostgresDatabase, SqliteFile, StoreError
from .store.history import FileHistory
from .store.location import is_postgres, store_path
from .store.schedules import _load

if TYPE_CHECKING:
    from pathlib import Path

    from .jobs import Attempt


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
        "rows": [attempt_data(row) for row in page],
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
    return [schedule_data(schedule) for schedule in shown]
