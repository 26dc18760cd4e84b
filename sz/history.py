"""Execution history: one row per attempt, kept by an actor, queried in pages."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from actors import Actor

from .jobs import Attempt
from .store.history import history_order

if TYPE_CHECKING:
    from .store.history import HistoryBackend

__all__ = ["HistoryActor", "HistoryQuery", "log_attempt"]

logger = logging.getLogger("sz.history")


def log_attempt(row: Attempt) -> None:
    """Log one row at INFO (``sz.history``), as ``sz serve`` shows outcomes."""
    if not logger.isEnabledFor(logging.INFO):
        return
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
        before: Only rows before this one in the history's order (pass the last
            row of a page for the next page), or that finished before this time.
        limit: At most this many rows, 100 by default.
        final: Only final rows (True), only non-final (False), or both (None).
    """

    task: str | None = None
    handler: str | None = None
    outcome: str | None = None
    schedule_id: str | None = None
    job_id: str | None = None
    since: datetime | None = None
    before: datetime | Attempt | None = None
    limit: int = 100
    final: bool | None = None

    @staticmethod
    def _is_before(row: Attempt, before: datetime | Attempt) -> bool:
        if isinstance(before, Attempt):
            return history_order(row) < history_order(before)
        return row.finished_at < before

    def matches(self, row: Attempt) -> bool:
        """True if ``row`` passes every filter."""
        return (
            (self.task is None or row.task == self.task)
            and (self.handler is None or row.handler == self.handler)
            and (self.outcome is None or row.outcome == self.outcome)
            and (self.schedule_id is None or row.schedule_id == self.schedule_id)
            and (self.job_id is None or row.job_id == self.job_id)
            and (self.since is None or row.finished_at >= self.since)
            and (self.before is None or self._is_before(row, self.before))
            and (self.final is None or row.final == self.final)
        )


class _Prune:
    """Time to drop rows past their retention."""


_PRUNE = _Prune()

#: Seconds between prunings.
PRUNE_EVERY = 3600.0


class HistoryActor(Actor):
    """Keeps every attempt's row, in memory or in the store's file.

    Rows arrive by ``tell`` (the hot path never waits) and go straight to the
    backend, which writes them in batches; ``ask(HistoryQuery(...))`` returns
    matching rows newest first. Rows older than ``retention`` days are pruned at
    start and every hour.
    """

    def __init__(self, backend: HistoryBackend, retention: float | None = None) -> None:
        # The backend is owned by the scheduler, so a restart of this actor keeps
        # every row already handed to it.
        self.backend = backend
        self.retention = retention

    async def on_start(self) -> None:
        """Prune now, then every hour."""
        if self.retention is not None:
            self._prune()
            self.every(PRUNE_EVERY, _PRUNE)

    def _prune(self) -> None:
        assert self.retention is not None
        self.backend.prune(datetime.now(UTC) - timedelta(days=self.retention))

    async def receive(self, message: Any) -> Any:
        """Keep an ``Attempt``; answer a ``HistoryQuery``."""
        if isinstance(message, Attempt):
            self.backend.add(message)
            log_attempt(message)
            return None
        if isinstance(message, HistoryQuery):
            return await self.backend.query(message)
        if message is _PRUNE:
            self._prune()
            return None
        return await super().receive(message)
