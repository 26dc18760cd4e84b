"""The run's sampler: every metric sampled over time, every ``SAMPLE_EVERY`` s.

It reads what is cheap to read while jobs flow: the scheduler's counters
(``sz.metrics()``: jobs ended), the actor system's restart count, the run's
own record of its jobs, and the process's resident memory and descriptors
(from ``/proc``, in a thread: reading a file is a blocking call). Per-job
metrics (``job_latency``, ``scheduler_latency``) come from the history at the
end, not from here. ``wait_until`` steps and the steady state are evaluated
on each fresh sample.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from typing import TYPE_CHECKING

import anyio

from actors import lowlevel

from .stalls import cpu_wait

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..scheduler import ScheduleZero
    from .record import RunRecord

__all__ = [
    "RATE_WINDOW",
    "SAMPLE_EVERY",
    "Sampler",
    "process_usage",
    "trailing_rate",
]

#: Seconds between samples.
SAMPLE_EVERY = 0.2

#: Seconds of the trailing window ``jobs_per_sec`` is measured over (at
#: least: see ``trailing_rate``): a rate limiter's burst, or a sample taken
#: late, moves a whole second's figure little where it would double a single
#: 0.2 s interval's.
RATE_WINDOW = 1.0

#: The memory page size, for ``/proc/self/statm``.
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_usage() -> tuple[float, float | None]:
    """This process's resident memory (bytes) and open descriptors (None if unknown).

    Blocking (reads ``/proc``): call it in a thread. Where there is no
    ``/proc``, the peak resident memory stands for the current one.
    """
    try:
        with open("/proc/self/statm", "rb") as statm:
            rss = float(int(statm.read().split()[1]) * _PAGE)
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Kilobytes on Linux, bytes on macOS.
        rss = float(peak if sys.platform == "darwin" else peak * 1024)
    try:
        fds: float | None = float(len(os.listdir("/proc/self/fd")))
    except OSError:
        fds = None
    return rss, fds


def trailing_rate(finished: Sequence[tuple[float, float]]) -> float:
    """Jobs ended a second over the ``RATE_WINDOW`` before the last sample.

    ``finished`` holds ``(offset, jobs ended)`` samples in time order, the run's
    first one taken before any of its jobs could end (its count is the base).
    The window runs back to the latest sample at least ``RATE_WINDOW`` old and
    the count is divided by the time it truly spans (more than a second when
    samples came late: an average over a longer span, never a count of more
    than a second's jobs divided by one second). While the run is younger than
    a window, the window reaches back before its first sample, when none of its
    jobs had ended: the count since then is divided by the whole
    ``RATE_WINDOW``. Dividing it by the shorter time the run had lasted read a
    limiter's burst, which it allows at once, as a rate of several times its
    limit.
    """
    now, value = finished[-1]
    for index in range(len(finished) - 2, -1, -1):  # a few steps back, at most
        at, before = finished[index]
        if now - at >= RATE_WINDOW:
            return (value - before) / (now - at)
    return (value - finished[0][1]) / RATE_WINDOW


class Sampler:
    """Samples a run's metrics over time into its record.

    Args:
        sz: The run's scheduler.
        record: Where samples go.
        live_fires: Returns how many jobs of the run's schedules are live (a
            checkpoint: it may ask the dispatcher).
    """

    def __init__(self, sz: ScheduleZero, record: RunRecord) -> None:
        self.sz = sz
        self.record = record
        self._fresh = anyio.Event()
        self._restarts_at_start: int | None = None
        self._finished_before: float | None = None
        self._last: float | None = None
        #: Jobs ended since the run began (the scheduler's counters).
        self.finished = 0.0
        self.stopped = False
        #: The event loop's thread, whose waits for a CPU are the machine's
        #: stalls of the run (it is made on the loop).
        self._loop_thread = threading.get_native_id()
        #: Samples begun, and samples complete (``wait_fresh_sample``).
        self._begun = 0
        self._taken = 0

    def _jobs_ended(self) -> float:
        # A job the governors refused just after accepting it (a ``rejected``
        # row) is not throughput, as one refused at ``submit`` (Overloaded)
        # is not: counted, a burst of refusals read as a burst of work and
        # broke the rate a limit holds.
        return float(
            sum(
                count
                for (_, outcome), count in self.sz.metrics().jobs.items()
                if outcome != "rejected"
            )
        )

    async def _live_fires(self) -> int:
        if not self.record.schedules:
            return 0
        jobs = await self.sz.jobs()
        return sum(1 for job in jobs if job.schedule_id is not None)

    async def sample(self) -> None:
        """Take one sample of every metric sampled over time. A checkpoint."""
        self._begun += 1
        record, now = self.record, self.record.offset()
        system = self.sz.system
        restarts = lowlevel.recent_restarts(system, max(now, 0.0) + 1.0)
        record.sample("restarts", restarts, now)
        ended = self._jobs_ended()
        if self._finished_before is None:
            self._finished_before = ended
        self.finished = ended - self._finished_before
        record.sample("finished", self.finished, now)
        if self._last is not None:
            rate = trailing_rate(record.samples["finished"])
            record.sample("jobs_per_sec", rate, now)
        self._last = now
        pending = record.pending_submitted() + await self._live_fires()
        record.sample("jobs_pending", pending, now)
        read_from = record.offset()
        rss, fds, waited = await anyio.to_thread.run_sync(self._read_proc)
        if waited is not None:
            record.cpu_waits.append((read_from, record.offset(), waited))
        record.sample("memory_usage", rss, now)
        if fds is not None:
            record.sample("fds", fds, now)
        self._taken += 1
        fresh, self._fresh = self._fresh, anyio.Event()
        fresh.set()

    def _read_proc(self) -> tuple[float, float | None, float | None]:
        rss, fds = process_usage()
        return rss, fds, cpu_wait(self._loop_thread)

    async def wait_sample(self) -> None:
        """Wait for the next sample to be complete. A checkpoint.

        That sample may have begun before the call, so some of its figures
        may have been read before it: to judge what a step just did, use
        ``wait_fresh_sample``.
        """
        await self._fresh.wait()

    async def wait_fresh_sample(self) -> None:
        """Wait for a sample begun after this call to be complete. A checkpoint.

        A sample awaits (the live jobs, ``/proc`` in a thread) between reading
        its figures and being complete, seconds on a loaded machine: the next
        sample to be complete may hold a ``jobs_pending`` read before the
        previous step submitted its jobs, and a ``wait_until jobs_pending ==
        0`` judged on it would pass at once.
        """
        wanted = self._begun + 1
        while self._taken < wanted:
            await self._fresh.wait()

    async def run(self) -> None:
        """Sample every ``SAMPLE_EVERY`` seconds, on a fixed grid, until cancelled."""
        deadline = anyio.current_time()
        while True:
            await self.sample()
            deadline += SAMPLE_EVERY
            now = anyio.current_time()
            if deadline < now:  # fell behind (a blocked loop): skip, never burst
                deadline = now
            await anyio.sleep_until(deadline)
