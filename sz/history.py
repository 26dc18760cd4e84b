"""Execution history: one row per attempt, kept by an actor, queried in pages."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from actors import Actor, ActorStopped

from .jobs import Attempt, HistoryQuery, LastRunsQuery

if TYPE_CHECKING:
    from actors import ActorRef

    from .store.history import HistoryBackend

__all__ = ["HistoryActor", "WithResult", "log_attempt", "query_history"]

logger = logging.getLogger("sz.history")


#: Outcomes logged at WARNING: the job did not do its work (or not yet).
TROUBLE: frozenset[str] = frozenset(
    {"failure", "timeout", "abandoned", "no_healthy_handler", "rejected"}
)


_LINE = "job %s %s attempt %d on %s: %s%s%s%s"


def log_attempt(row: Attempt) -> None:
    """Log one row (``sz.history``), as ``sz serve`` shows outcomes.

    At INFO; a failure, timeout, abandoned, rejected or unserved attempt at
    WARNING. The job id is whole, as ``history(job_id=...)`` takes it; the
    row's fields go with the record (``job_id``, ``task``, ...) for JSON logs.
    """
    level = logging.WARNING if row.outcome in TROUBLE else logging.INFO
    if not logger.isEnabledFor(level):
        return
    took = f" in {row.duration * 1000:.1f} ms" if row.duration is not None else ""
    then = f", {row.reason}" if row.reason else ""
    args = (
        row.job_id,
        row.task,
        row.attempt,
        row.handler or "-",
        row.outcome,
        f" ({row.error})" if row.error else "",
        took,
        then,
    )
    extra = {
        "job_id": row.job_id,
        "task": row.task,
        "attempt": row.attempt,
        "handler": row.handler,
        "outcome": row.outcome,
        "final": row.final,
        "schedule_id": row.schedule_id,
        "reason": row.reason,
        "error": row.error,
        "arguments": row.arguments,
        "duration_ms": None if row.duration is None else round(row.duration * 1e3, 3),
    }
    if not row.traceback:
        logger.log(level, _LINE, *args, extra=extra)
        return
    # The traceback once, after the failure's line, as a logged exception's
    # is: text formatters print it below, JSON ones put it in ``exc_info``.
    record = logger.makeRecord(
        logger.name, level, __file__, 0, _LINE, args, None, "log_attempt", extra
    )
    record.exc_text = row.traceback.rstrip()
    logger.handle(record)


# Once per job on a durable store's hot path: slotted and positional (STYLE
# rule 4's exception); internal to sz.
@attrs.define
class WithResult:
    """A final success row, and the result its job returned, for the store to keep."""

    row: Attempt
    value: Any


#: How many times a query is asked of a history actor killed while it answered.
QUERY_TRIES = 5


async def query_history(history: ActorRef, query: HistoryQuery | LastRunsQuery) -> Any:
    """Ask the history actor for the rows ``query`` matches.

    A list of rows for a ``HistoryQuery``; for a ``LastRunsQuery``, a dict of
    the last final row by schedule id.

    A query is only a read: if the actor was killed while it answered (it is
    restarted, its rows kept), the query is asked again, up to ``QUERY_TRIES``
    times in all. A checkpoint.

    Raises:
        ActorStopped: The history actor stopped for good, or was killed on
            every try.
        AskTimeout: It did not answer within the ask's 5 s.
    """
    for _ in range(QUERY_TRIES - 1):
        try:
            return await history.ask(query)
        except ActorStopped:
            if not history.is_alive:
                raise
    return await history.ask(query)


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
        # The backend is owned by the scheduler, so a restart of this actor
        # keeps every row already handed to it.
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
        if isinstance(message, WithResult):
            self.backend.add(message.row, message.value)
            log_attempt(message.row)
            return None
        if isinstance(message, HistoryQuery):
            return await self.backend.query(message)
        if isinstance(message, LastRunsQuery):
            return await self.backend.last_runs(message.schedule_ids)
        if message is _PRUNE:
            self._prune()
            return None
        return await super().receive(message)
