"""The data store ScheduleZero gives APScheduler (memory now; durable later).

APScheduler 4.0.0a6 assumes that a schedule it holds (acquired, fire times being
computed) is never removed meanwhile: its memory store's ``release_schedules``
then raises ``KeyError`` and takes the whole scheduler down. Removing a schedule
is an everyday operation for us, so the release skips schedules that are gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apscheduler.datastores.memory import MemoryDataStore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from apscheduler import ScheduleResult

__all__ = ["MemoryStore"]


class MemoryStore(MemoryDataStore):
    """APScheduler's memory store, safe against removing a schedule mid-fire."""

    async def release_schedules(
        self, scheduler_id: str, results: Sequence[ScheduleResult]
    ) -> None:
        """Release the schedules still there; forget those removed meanwhile."""
        present = [r for r in results if r.schedule_id in self._schedules_by_id]
        await super().release_schedules(scheduler_id, present)
