"""What the benchmarks share: options, output, statistics, and scheduler runs.

Each benchmark imports this module and no other benchmark. The scheduler runs here
(``run_now`` throughput, fire lateness) are the ones more than one benchmark
measures, so that their figures are taken the same way everywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import attrs
from apscheduler import AsyncScheduler, current_job
from apscheduler.datastores.memory import MemoryDataStore
from apscheduler.triggers.interval import IntervalTrigger

from sz import Config, ScheduleZero, settle_heap

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from sz.jobs import Attempt

BACKENDS = ["asyncio", "trio"]

#: Concurrent callers of ``run_now`` (and of ``add_job`` for APScheduler alone).
CALLERS = 100

#: Jobs a handler (or an APScheduler task) may run at once.
CONCURRENCY = 1000

#: After the window, stop waiting for fires when none came for this many seconds
#: (APScheduler coalesces fires that fall a whole interval behind), or at the
#: latest this many seconds after the window.
QUIET, LIMIT = 3.0, 60.0


# ------------------------------------------------------------ options, output


def arguments(description: str | None, quick: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick`` (helped by ``quick``) and
    ``--backend``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument(
        "--backend", choices=BACKENDS, action="append", help="default: both"
    )
    return parser


def backends(options: argparse.Namespace) -> list[str]:
    """The backends asked for, or both."""
    chosen: list[str] = options.backend or BACKENDS
    return chosen


def each_backend(
    options: argparse.Namespace, run: Callable[[str], Awaitable[object]]
) -> None:
    """``run(backend)`` on each backend asked for, under a line naming it."""
    for backend in backends(options):
        say(f"{backend}:")
        anyio.run(run, backend, backend=backend)


def say(line: str) -> None:
    print(line, flush=True)


def verdict(ok: bool) -> str:
    return "ok" if ok else "BELOW TARGET"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)
    return ordered[max(0, index)]


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """The heap as ``sz serve`` and ``sz worker`` run on it (``sz.settle_heap``),
    thawed after: a benchmark's process starts many schedulers, which must not
    stay frozen once stopped."""
    settle_heap()
    try:
        yield
    finally:
        gc.unfreeze()


def resident_bytes() -> int:
    pages = Path("/proc/self/statm").read_text().split()[1]
    return int(pages) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------ run_now


async def calls_per_second(
    call: Callable[[], Awaitable[object]], n: int, callers: int
) -> float:
    """``call()`` from ``callers`` tasks at once until ``n`` calls have returned:
    calls per second."""
    remaining = n

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    gc.collect()
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(callers):
            tg.start_soon(caller)
    return n / (time.perf_counter() - start)


async def run_now_rate(sz: ScheduleZero, task: str, n: int, callers: int) -> float:
    """Jobs per second: ``run_now(task)`` from ``callers`` tasks of the started
    ``sz`` until ``n`` jobs have ended."""
    return await calls_per_second(partial(sz.run_now, task), n, callers)


async def sz_run_now_rate(n: int, callers: int, config: Config | None = None) -> float:
    """``run_now`` from ``callers`` tasks until ``n`` jobs have ended."""
    sz = ScheduleZero(name="bench", config=config)

    @sz.handler(concurrency=CONCURRENCY)
    async def noop() -> None:
        return None

    async with sz:
        return await run_now_rate(sz, "noop", n, callers)


async def aps_noop() -> None:
    return None


# ----------------------------------------------------------------- lateness


@attrs.frozen
class Lateness:
    """Lateness (seconds) of every fire seen, and the CPU spent on them."""

    late: list[float]
    expected: int
    cpu: float
    wall: float

    def line(self) -> str:
        ms = [value * 1000 for value in self.late] or [math.nan]
        fires = len(self.late)
        missing = (
            f"   {self.expected - fires:,} of {self.expected:,} fires never ran"
            if fires < self.expected
            else ""
        )
        return (
            f"p50 {statistics.median(ms):6.1f} ms  p99 {percentile(ms, 99):6.1f} ms"
            f"  max {max(ms):6.1f} ms   CPU {self.cpu / self.wall:4.2f} s/s"
            f" {self.cpu / max(fires, 1) * 1e6:6,.0f} us/fire{missing}"
        )

    @property
    def p99(self) -> float:
        return percentile(self.late, 99) if self.late else math.inf


def first_fire(n: int) -> datetime:
    """A whole second far enough ahead to add ``n`` schedules before it."""
    now = datetime.now(UTC)
    ahead = now + timedelta(seconds=1.0 + n / 1000)
    return ahead.replace(microsecond=0) + timedelta(seconds=1)


def triggers(
    n: int, seconds: int, spread: bool, start: datetime
) -> list[IntervalTrigger]:
    """``n`` triggers firing every second, ``seconds`` times each."""
    result = []
    for i in range(n):
        first = start + timedelta(seconds=i / n if spread else 0.0)
        last = first + timedelta(seconds=seconds - 0.5)
        result.append(IntervalTrigger(seconds=1, start_time=first, end_time=last))
    return result


async def sleep_until(moment: datetime) -> None:
    delay = (moment - datetime.now(UTC)).total_seconds()
    if delay < 0:
        print(f"  (setup overran the first fire by {-delay:.2f} s)", file=sys.stderr)
    await anyio.sleep(max(0.0, delay))


class Fires:
    """Counts the fires handled, and the CPU and wall clocks at the latest one."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done = anyio.Event()
        self.cpu = self.wall = 0.0

    def fired(self) -> None:
        self.count += 1
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        if self.count == self.expected:
            self.done.set()

    async def measure(self, start: datetime, seconds: int) -> tuple[float, float]:
        """CPU and wall seconds from just before ``start`` until the last fire.

        Waits until every expected fire is handled, or none came for
        ``QUIET`` seconds after the window (fires APScheduler coalesced never come).
        """
        await sleep_until(start - timedelta(seconds=0.1))
        gc.collect()
        cpu0 = self.cpu = time.process_time()
        wall0 = self.wall = time.perf_counter()
        end = wall0 + 0.1 + seconds
        with anyio.move_on_after(seconds + LIMIT):
            while not self.done.is_set():
                with anyio.move_on_after(0.25):
                    await self.done.wait()
                now = time.perf_counter()
                if now > end and now - self.wall > QUIET:
                    break
        return self.cpu - cpu0, self.wall - wall0


async def final_rows(sz: ScheduleZero, count: int, *, limit: int) -> list[Attempt]:
    """The final history rows of ``noop`` (``limit`` at most), once ``count`` are
    there (or 10 s on)."""
    rows: list[Attempt] = []
    with anyio.move_on_after(10):
        while True:
            rows = await sz.history(task="noop", limit=limit, final=True)
            if len(rows) >= count:
                break
            await anyio.sleep(0.05)
    return rows


async def aps_lateness(
    n: int, seconds: int, spread: bool, max_running_jobs: int | None
) -> Lateness:
    """APScheduler alone: lateness measured in the job function itself."""
    fires = Fires(n * seconds)
    late: list[float] = []

    async def job() -> None:
        fire_time = current_job.get().scheduled_fire_time
        assert fire_time is not None
        late.append((datetime.now(UTC) - fire_time).total_seconds())
        fires.fired()

    async with AsyncScheduler(data_store=MemoryDataStore()) as scheduler:
        await scheduler.configure_task(
            "noop", func=job, job_executor="async", max_running_jobs=max_running_jobs
        )
        await scheduler.start_in_background()
        start = first_fire(n)
        for i, trigger in enumerate(triggers(n, seconds, spread, start)):
            await scheduler.add_schedule("noop", trigger, id=f"s{i}")
        cpu, wall = await fires.measure(start, seconds)
        await scheduler.stop()
    return Lateness(list(late), fires.expected, cpu, wall)
