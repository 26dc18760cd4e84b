"""Dispatch benchmark: ``python -m benchmarks.dispatch [--quick] [--backend B]``.

Two figures, each beside APScheduler 4 alone doing the same work in the same run
and on the same backend, so a ratio reads off one run:

- ``run_now`` throughput to a local no-op handler from many concurrent callers,
  beside APScheduler's ``add_job`` and a wait for the job's ``JobReleased``.
- Fire lateness of many interval schedules firing every second, their fire times
  aligned on the second (as cron jobs are on the minute) or spread over it: when
  the handler started the job minus when it was due, beside the same schedules in
  APScheduler alone, measured in its job function. CPU is the process's CPU time
  over the window, per second and per fire.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import attrs
from apscheduler import AsyncScheduler, JobReleased, current_job
from apscheduler.datastores.memory import MemoryDataStore
from apscheduler.triggers.interval import IntervalTrigger

from benchmarks.actors import percentile, verdict
from sz import Config, ScheduleZero

if TYPE_CHECKING:
    from uuid import UUID

#: Throughputs are the best of this many runs: this machine is a shared VM whose
#: speed wanders by a third from one second to the next.
REPEAT = 5

#: Concurrent callers of ``run_now`` (and of ``add_job`` for APScheduler alone).
CALLERS = 100

#: Jobs a handler (or an APScheduler task) may run at once.
CONCURRENCY = 1000

TARGETS = {"run_now": 20_000.0}

#: After the window, stop waiting for fires when none came for this many seconds
#: (APScheduler coalesces fires that fall a whole interval behind), or at the
#: latest this many seconds after the window.
QUIET, LIMIT = 3.0, 60.0


# ------------------------------------------------------------------ run_now


async def run_now_rate(sz: ScheduleZero, task: str, n: int, callers: int) -> float:
    """Jobs per second: ``run_now(task)`` from ``callers`` tasks of the started
    ``sz`` until ``n`` jobs have ended."""
    remaining = n

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await sz.run_now(task)

    gc.collect()
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(callers):
            tg.start_soon(caller)
    return n / (time.perf_counter() - start)


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


async def aps_add_job_rate(n: int, callers: int) -> float:
    """APScheduler alone: ``add_job`` and wait for its ``JobReleased``, ``n`` times.

    One subscription serves every caller (``run_job`` subscribes once per call,
    and each event is then delivered to every caller's listener in a task of its
    own: a fifth of this rate at 100 callers).
    """
    released: dict[UUID, anyio.Event] = {}

    def on_released(event: JobReleased) -> None:
        released.setdefault(event.job_id, anyio.Event()).set()

    remaining = n

    async with AsyncScheduler(data_store=MemoryDataStore()) as scheduler:
        await scheduler.configure_task(
            "noop", func=aps_noop, job_executor="async", max_running_jobs=None
        )
        scheduler.subscribe(on_released, JobReleased)
        await scheduler.start_in_background()

        async def caller() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                job_id = await scheduler.add_job("noop")
                await released.setdefault(job_id, anyio.Event()).wait()
                del released[job_id]

        gc.collect()
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller)
        elapsed = time.perf_counter() - start
        await scheduler.stop()
    return n / elapsed


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


async def sz_lateness(n: int, seconds: int, spread: bool) -> Lateness:
    """ScheduleZero: the handler's ``started_at`` minus the job's ``scheduled_at``."""
    sz = ScheduleZero(name="bench")
    fires = Fires(n * seconds)

    @sz.handler(concurrency=CONCURRENCY)
    async def noop() -> None:
        fires.fired()

    async with sz:
        start = first_fire(n)
        for i, trigger in enumerate(triggers(n, seconds, spread, start)):
            await sz.schedule("noop", trigger, id=f"s{i}")
        cpu, wall = await fires.measure(start, seconds)
        rows = []
        with anyio.move_on_after(10):
            while True:
                rows = await sz.history(task="noop", limit=fires.expected, final=True)
                if len(rows) >= fires.count:
                    break
                await anyio.sleep(0.05)
    late = [
        (row.started_at - row.scheduled_at).total_seconds()
        for row in rows
        if row.started_at is not None
    ]
    return Lateness(late, fires.expected, cpu, wall)


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


# --------------------------------------------------------------------- main


def say(line: str) -> None:
    print(line, flush=True)


async def run_backend(quick: bool) -> None:
    n_jobs = 2_000 if quick else 20_000
    ours = max([await sz_run_now_rate(n_jobs, CALLERS) for _ in range(REPEAT)])
    raw = max([await aps_add_job_rate(n_jobs, CALLERS) for _ in range(REPEAT)])
    say(
        f"  run_now, {CALLERS} callers, no-op handler  {ours:>7,.0f} jobs/s"
        f"   APScheduler alone (add_job, wait for release) {raw:>7,.0f} jobs/s"
        f"   ratio {ours / raw:5.2f}   target >= {TARGETS['run_now']:,.0f}"
        f"  {verdict(ours >= TARGETS['run_now'])}"
    )
    n, seconds = (200, 3) if quick else (1_000, 10)
    for spread in (False, True):
        how = "spread over the second" if spread else "aligned on the second"
        say(f"  fire lateness, {n:,} schedules every 1 s for {seconds} s, {how}:")
        ours_late = await sz_lateness(n, seconds, spread)
        alone = await aps_lateness(n, seconds, spread, None)
        ok = ours_late.p99 <= alone.p99
        say(
            f"    {'ScheduleZero':<41} {ours_late.line()}"
            f"   target p99 <= APScheduler alone's (None)  {verdict(ok)}"
        )
        say(f"    {'APScheduler alone, max_running_jobs=None':<41} {alone.line()}")
        if not spread:
            default = await aps_lateness(n, seconds, spread, 1)
            label = "APScheduler alone, max_running_jobs=1"
            say(f"    {label:<41} {default.line()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of the jobs; 200 schedules for 3 s",
    )
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], action="append", help="default: both"
    )
    options = parser.parse_args()
    for backend in options.backend or ["asyncio", "trio"]:
        say(f"{backend}:")
        anyio.run(run_backend, options.quick, backend=backend)


if __name__ == "__main__":
    main()
