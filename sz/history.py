"""Execution history: one row per attempt, kept by an actor, queried in pages."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from actors import Actor

from .jobs import Attempt, HistoryQuery

if TYPE_CHECKING:
    from .store.history import HistoryBackend

__all__ = ["HistoryActor", "log_attempt"]

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
