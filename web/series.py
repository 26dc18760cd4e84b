"""``GET /api/series``: the last minutes of throughput and fire lateness, per second.

A dashboard that opens draws its charts from the past at once, not from the
moment it opened. The application keeps one ``Series``: while it runs, a
sampler in the gateway's loop reads the scheduler's counters every
``SERIES_INTERVAL`` (1 s) in one crossing (``sz.metrics()``: counters the
store backends already keep for ``/metrics``, so nothing is added to a job's
path) and keeps what changed since the second before, in a ring of the latest
``SERIES_KEPT`` (900: fifteen minutes). A sample is O(1) in the jobs it
covers: jobs ended and failed are differences of two counters, and the
lateness percentiles are read from the difference of two histograms of fixed
buckets (``sz.metrics.BUCKETS``), interpolated within the bucket they fall in.

The event stream (``web.events``) sends the samples taken since a client's
last events as ``series`` events, so a chart that began from this route goes
on live.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sz import SzError
from sz.metrics import BUCKETS

from .access import ACCESS
from .requests import json_answer, query_time
from .summary import FAILED

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from sz import ScheduleZero

__all__ = [
    "SERIES",
    "SERIES_INTERVAL",
    "SERIES_KEPT",
    "Series",
    "add_series_routes",
    "percentile",
]

logger = logging.getLogger("web")

#: Seconds between two samples.
SERIES_INTERVAL = 1.0

#: Samples kept: fifteen minutes of one a second.
SERIES_KEPT = 900

#: The counters a sample is the difference of: jobs ended, jobs failed, and
#: fire lateness's histogram (counts by bucket, observations, their sum).
_Counters = tuple[int, int, tuple[int, ...], int, float]


def _counters(sz: ScheduleZero) -> _Counters:
    """The scheduler's counters now; run in its loop."""
    metrics = sz.metrics()
    ended = failed = 0
    for (_task, outcome), count in metrics.jobs.items():
        ended += count
        if outcome in FAILED:
            failed += count
    late = metrics.lateness
    return ended, failed, late.counts, late.total, late.sum


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0 to 1) of observations counted in ``BUCKETS``.

    Interpolated linearly within the bucket it falls in (from the bound
    below, 0 for the first); one past the last bound reads as that bound.
    None when nothing was counted.
    """
    total = sum(counts)
    if total == 0:
        return None
    target = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= target:
            if index >= len(BUCKETS):
                return BUCKETS[-1]
            low = BUCKETS[index - 1] if index else 0.0
            return low + (BUCKETS[index] - low) * (target - seen) / count
        seen += count
    return BUCKETS[-1]


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


class Series:
    """The latest samples, oldest first, and the sampler that takes them.

    Args:
        kept: How many samples are kept, ``SERIES_KEPT`` (900) by default.
    """

    def __init__(self, kept: int = SERIES_KEPT) -> None:
        #: Each sample: when it was taken, and as JSON-ready data, with its
        #: number (``seq``).
        self._samples: deque[tuple[datetime, dict[str, Any]]] = deque(maxlen=kept)
        self._seq = itertools.count(1)
        self._taken = 0
        self._before: _Counters | None = None

    @property
    def taken(self) -> int:
        """How many samples were taken: the ``seq`` of the latest (0: none)."""
        return self._taken

    def add(self, at: float, now: _Counters) -> None:
        """Keep the sample of what changed from the counters read last to ``now``.

        The first reading (and the first after the scheduler was away) only
        sets where the next sample counts from.
        """
        before, self._before = self._before, now
        if before is None:
            return
        ended, failed, counts, fires, late = now
        fires_delta = fires - before[3]
        deltas = [a - b for a, b in zip(counts, before[2], strict=True)]
        seq = next(self._seq)
        self._taken = seq
        # The time as the answer writes it, so that ``since`` of a sample's
        # own time leaves that sample out.
        moment = datetime.fromtimestamp(at, UTC)
        self._samples.append(
            (
                moment,
                {
                    "seq": seq,
                    "time": moment.isoformat(),
                    "finished": ended - before[0],
                    "failed": failed - before[1],
                    "fires": fires_delta,
                    "lateness_mean": _seconds(
                        (late - before[4]) / fires_delta if fires_delta > 0 else None
                    ),
                    "lateness_p50": _seconds(percentile(deltas, 0.5)),
                    "lateness_p99": _seconds(percentile(deltas, 0.99)),
                },
            )
        )

    def lost(self) -> None:
        """The scheduler is away: the next reading starts over."""
        self._before = None

    def after(self, seq: int, upto: int | None = None) -> list[dict[str, Any]]:
        """The samples kept numbered above ``seq`` (and at most ``upto``)."""
        samples = self._samples
        if not samples:
            return []
        first = samples[0][1]["seq"]
        newest = samples[-1][1]["seq"]
        last = newest if upto is None else min(upto, newest)
        start = max(seq + 1, first)
        # Numbers are consecutive: a sample's place is its number less the first's.
        return [samples[n - first][1] for n in range(start, last + 1)]

    def since(self, moment: datetime | None) -> list[dict[str, Any]]:
        """The samples kept taken after ``moment`` (all of them if None)."""
        if moment is None:
            return [data for _, data in self._samples]
        return [data for at, data in self._samples if at > moment]

    async def run(self, app: web.Application) -> None:
        """Sample every ``SERIES_INTERVAL`` until cancelled."""
        loop = asyncio.get_running_loop()
        access = app[ACCESS]
        warned = False
        due = loop.time()
        while True:
            due += SERIES_INTERVAL
            # On a fixed beat: a slow reading does not shift the next ones.
            await asyncio.sleep(max(0.0, due - loop.time()))
            if loop.time() - due > SERIES_INTERVAL:
                due = loop.time()
            try:
                counters: _Counters = await access.call(_counters, access.scheduler)
            except SzError:  # not running: starting, or stopped
                self.lost()
                continue
            except Exception:
                # A bug: said once, and the series goes on without the sample.
                if not warned:
                    logger.exception("the gateway's series could not read a sample")
                    warned = True
                self.lost()
                continue
            self.add(time.time(), counters)


#: The application's ``Series``.
SERIES: web.AppKey[Series] = web.AppKey("series", Series)


async def _series(request: web.Request) -> web.Response:
    since = query_time(request, "since")
    series = request.app[SERIES]
    return json_answer(
        {
            "interval": SERIES_INTERVAL,
            "kept": SERIES_KEPT,
            "samples": series.since(since),
        }
    )


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SERIES].run(app), name="sz-gateway-series")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_series_routes(app: web.Application) -> None:
    """Mount ``GET /api/series``; sample while the application runs."""
    app[SERIES] = Series()
    app.cleanup_ctx.append(_sampling)
    app.router.add_get("/api/series", _series)
