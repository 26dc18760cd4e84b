"""Execution history: one row per attempt, kept by an actor, queried in pages."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from actors import Actor

from .jobs import Attempt

if TYPE_CHECKING:
    from collections import deque

__all__ = ["HistoryActor", "HistoryQuery"]

logger = logging.getLogger("sz.history")


def _log(row: Attempt) -> None:
    took = f" in {row.duration * 1000:.1f} ms" if row.duration is not None else ""
    then = f", {row.reason}" if row.reason else ""
    logger.info(
        "job %s %s attempt %d on %s: %s%s%s%s",
        row.job_id[:8],
        row.task,
        row.attempt,
        row.handler or "-",
        row.outcome,
        f" ({row.error})" if row.error else "",
        took,
        then,
    )


@attrs.frozen(kw_only=True)
class HistoryQuery:
    """Ask the history for rows, newest first.

    Attributes:
        task: Only this task's rows.
        handler: Only this handler's rows.
        outcome: Only rows with this outcome.
        schedule_id: Only this schedule's rows.
        job_id: Only this job's rows.
        since: Only rows that finished at or after this time.
        before: Only rows that finished before this time (the next page).
        limit: At most this many rows, 100 by default.
        final: Only final rows (True), only non-final (False), or both (None).
    """

    task: str | None = None
    handler: str | None = None
    outcome: str | None = None
    schedule_id: str | None = None
    job_id: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    limit: int = 100
    final: bool | None = None

    def matches(self, row: Attempt) -> bool:
        """True if ``row`` passes every filter."""
        return (
            (self.task is None or row.task == self.task)
            and (self.handler is None or row.handler == self.handler)
            and (self.outcome is None or row.outcome == self.outcome)
            and (self.schedule_id is None or row.schedule_id == self.schedule_id)
            and (self.job_id is None or row.job_id == self.job_id)
            and (self.since is None or row.finished_at >= self.since)
            and (self.before is None or row.finished_at < self.before)
            and (self.final is None or row.final == self.final)
        )


class HistoryActor(Actor):
    """Keeps the latest ``capacity`` rows in memory (a durable store comes later).

    Rows arrive by ``tell`` (the hot path never waits); ``ask(HistoryQuery(...))``
    returns matching rows newest first.
    """

    def __init__(self, rows: deque[Attempt]) -> None:
        # The deque is owned by the scheduler, so a restart of this actor keeps it.
        self.rows = rows

    async def receive(self, message: Any) -> Any:
        """Keep an ``Attempt``; answer a ``HistoryQuery``."""
        if isinstance(message, Attempt):
            self.rows.append(message)
            if logger.isEnabledFor(logging.INFO):
                _log(message)
            return None
        if isinstance(message, HistoryQuery):
            found: list[Attempt] = []
            if message.limit < 1:
                return found
            for row in reversed(self.rows):
                if message.matches(row):
                    found.append(row)
                    if len(found) >= message.limit:
                        break
            return found
        return await super().receive(message)
