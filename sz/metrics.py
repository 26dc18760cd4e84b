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
from collections import defaultdict
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
        loop_lag: The event loop's lag at the last look, in seconds.
        loop_lag_max: The largest lag seen since the previous snapshot.
    """

    jobs: dict[tuple[str, str], int]
    attempts: dict[tuple[str, str], int]
    durations: dict[str, Histogram]
    lateness: Histogram
    waited: dict[str, Histogram]
    loop_lag: float
    loop_lag_max: float


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
        """The counts now; the largest loop lag starts over."""
        lag_max, self.lag.max = self.lag.max, self.lag.last
        return Metrics(
            jobs=dict(self.jobs),
            attempts=dict(self.attempts),
            durations={task: h.frozen() for task, h in self.durations.items()},
            lateness=self.lateness.frozen(),
            waited={reason: h.frozen() for reason, h in self.waited.items()},
            loop_lag=self.lag.last,
            loop_lag_max=lag_max,
        )


class LoopLag:
    """How late the event loop wakes a task that asked to sleep ``every`` seconds.

    A loop kept busy (a long synchronous call, a flood of messages) wakes it
    late by as much: the lag every job's start suffers too.
    """

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.last = 0.0
        self.max = 0.0

    async def run(self, scope: anyio.CancelScope) -> None:
        """Measure until ``scope`` is cancelled."""
        with scope:
            while True:
                before = anyio.current_time()
                await anyio.sleep(self.every)
                self.last = max(0.0, anyio.current_time() - before - self.every)
                self.max = max(self.max, self.last)
