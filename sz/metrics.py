"""Counters and histograms of what the scheduler did, for ``/metrics`` and tests.

Every history row that is kept passes through ``JobMetrics.record`` (the store
backends call it): jobs by task and outcome, attempts, how long attempts ran,
how late fires started, how long governors held attempts back. The event loop's
lag is measured beside them (``LoopLag``). ``ScheduleZero.metrics()`` returns a
``Metrics`` snapshot: plain numbers, no dependency on any exporter; the gateway
turns it into Prometheus' text format.
"""

from __future__ import annotations

import bisect
from collections import defaultdict, deque
from typing import TYPE_CHECKING

import anyio
import attrs

if TYPE_CHECKING:
    from .jobs import Attempt

__all__ = ["BUCKETS", "Histogram", "JobMetrics", "LoopLag", "Metrics"]

#: Upper bounds (seconds) of the histograms' buckets, as Prometheus counts
#: them: each bucket counts the observations at or below its bound.
BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


@attrs.frozen
class Histogram:
    """Observations counted in ``BUCKETS``, their number and their sum.

    ``counts[i]`` counts the observations at or below ``BUCKETS[i]`` and above
    the bound before it (not cumulated); the last count, those past every bound.
    """

    counts: tuple[int, ...]
    total: int
    sum: float


class _Histogram:
    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.total = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.sum += value
        self.total += 1

    def frozen(self) -> Histogram:
        return Histogram(tuple(self.counts), self.total, self.sum)


@attrs.frozen(kw_only=True)
class Metrics:
    """What the scheduler did since it started (counters only grow).

    Attributes:
        jobs: Jobs ended, by ``(task, outcome)`` of their final row.
        attempts: Attempts ended, by ``(task, outcome)``.
        durations: How long attempts ran, by task.
        lateness: How late fires' first attempts started (start minus due).
        waited: How long governors held attempts back, by reason.
        loop_lag: The event loop's lag at the last look, in seconds (None
            before the first).
        loop_lag_worst: The largest lag of the last minute (None before the
            first look).
    """

    jobs: dict[tuple[str, str], int]
    attempts: dict[tuple[str, str], int]
    durations: dict[str, Histogram]
    lateness: Histogram
    waited: dict[str, Histogram]
    loop_lag: float | None
    loop_lag_worst: float | None


class JobMetrics:
    """Counts every row kept; owned by the scheduler, so it outlives actors."""

    def __init__(self) -> None:
        self.jobs: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.attempts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.durations: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self.lateness = _Histogram()
        self.waited: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self.lag = LoopLag()

    def record(self, row: Attempt) -> None:
        """Count one row (a store backend calls this for every row it keeps)."""
        key = (row.task, row.outcome)
        self.attempts[key] += 1
        if row.final:
            self.jobs[key] += 1
        if row.duration is not None and row.started_at is not None:
            self.durations[row.task].observe(row.duration)
            if row.schedule_id is not None and row.attempt == 1:
                late = (row.started_at - row.scheduled_at).total_seconds()
                self.lateness.observe(max(0.0, late))
        if row.waited is not None:
            self.waited[row.reason or "limited"].observe(row.waited)

    def snapshot(self) -> Metrics:
        """The counts now."""
        return Metrics(
            jobs=dict(self.jobs),
            attempts=dict(self.attempts),
            durations={task: h.frozen() for task, h in self.durations.items()},
            lateness=self.lateness.frozen(),
            waited={reason: h.frozen() for reason, h in self.waited.items()},
            loop_lag=self.lag.latest,
            loop_lag_worst=self.lag.worst,
        )


class LoopLag:
    """How late the event loop wakes a task that sleeps ``every`` seconds.

    What ran on the loop meanwhile (a long synchronous call, a garbage
    collection, a flood of ready tasks) made it late by as much: the lag every
    timer and every job's start suffers at that moment. The samples of the last
    ``window`` seconds are kept.
    """

    def __init__(self, every: float = 0.5, window: float = 60.0) -> None:
        self.every = every
        self._samples: deque[float] = deque(maxlen=max(1, round(window / every)))

    @property
    def latest(self) -> float | None:
        """The last sample, in seconds; None before the first."""
        return self._samples[-1] if self._samples else None

    @property
    def worst(self) -> float | None:
        """The largest sample of the window, in seconds; None before the first."""
        return max(self._samples) if self._samples else None

    async def run(self, scope: anyio.CancelScope) -> None:
        """Sample until ``scope`` is cancelled; run it in the loop to measure."""
        with scope:
            while True:
                before = anyio.current_time()
                await anyio.sleep(self.every)
                late = anyio.current_time() - before - self.every
                self._samples.append(max(0.0, late))
