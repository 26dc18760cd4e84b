"""What a run's steps share: its scheduler, record, sampler, actions and faults."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from random import Random
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ..scheduler import ScheduleZero
from .measures import live_metrics
from .operations import Operations
from .record import RunRecord
from .sampler import Sampler

if TYPE_CHECKING:
    from .evaluation import MetricValue

__all__ = ["Progress", "RunContext"]


@attrs.frozen(kw_only=True)
class Progress:
    """Where a run stands, for a progress display (``on_progress``).

    Attributes:
        scenario: The scenario's name.
        run_id: The run's id.
        why: ``"step"`` (a step started), ``"sample"`` (fresh metrics) or
            ``"end"`` (the steps are over; checks follow).
        step: The step running now (its name, or kind).
        index: The top-level step running now, from 1 (0 before the first).
        total: How many top-level steps there are.
        elapsed: Seconds since the run began.
        metrics: The latest value of each metric sampled over time.
    """

    scenario: str
    run_id: str
    why: str
    step: str
    index: int
    total: int
    elapsed: float
    metrics: dict[str, float]


@attrs.define(kw_only=True)
class RunContext:
    """A run's shared parts; its steps' actors hold it.

    Attributes:
        name: The scenario's name.
        run_id: The run's id.
        sz: The run's scheduler.
        record: What the run did.
        sampler: Its metrics over time.
        operations: Its actions.
        rng: Its seeded random choices (which targets a fault picks).
        fleet: Its worker processes, or None.
        total: How many top-level steps it has.
        on_progress: Told where the run stands, or None.
    """

    name: str
    run_id: str
    sz: ScheduleZero
    record: RunRecord
    sampler: Sampler
    operations: Operations
    rng: Random
    fleet: Any = None
    total: int = 0
    on_progress: Callable[[Progress], None] | None = None
    index: int = 0
    _numbers: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))

    def next_number(self) -> int:
        """A fresh number for a step actor's name."""
        return next(self._numbers)

    def live_metrics(self) -> dict[str, MetricValue]:
        """Every metric's value so far, for ``wait_until`` and the steady state."""
        return live_metrics(self.record)

    def progress(self, why: str) -> None:
        """Tell ``on_progress`` where the run stands (if anyone listens)."""
        if self.on_progress is None:
            return
        latest = {
            name: series[-1][1]
            for name, series in self.record.samples.items()
            if series
        }
        self.on_progress(
            Progress(
                scenario=self.name,
                run_id=self.run_id,
                why=why,
                step=self.record.current_step,
                index=self.index,
                total=self.total,
                elapsed=self.record.offset(),
                metrics=latest,
            )
        )

    async def checkpoint(self) -> None:
        """A checkpoint."""
        await anyio.lowlevel.checkpoint()
