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
from sz.scheduler import ScheduleZero

if TYPE_CHECKING:
    from uuid import UUID

#: Throughputs are the best of this many runs: this machine is a shared VM whose
#: speed wanders by a third from one second to the next.
REPEAT = 3

#: Concurrent callers of ``run_now`` (and of ``add_job`` for APScheduler alone).
CALLERS = 100

#: Jobs a handler (or an APScheduler task) may run at once.
CONCURRENCY = 1000

TARGETS = {"run_now": 20_000.0}


# ------------------------------------------------------------------ run_now


async def sz_run_now_rate(n: int, callers: int) -> float:
    """``run_now`` from ``callers`` tasks until ``n`` jobs have ended."""
    sz = ScheduleZero(name="bench")

    @sz.handler(concurrency=CONCURRENCY)
    async def noop() -> None:
        return None

    remaining = n

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await sz.run_now("noop")

    async with sz:
        gc.collect()
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller)
        elapsed = time.perf_counter() - start
    return n / elapsed


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
            f"   {self.expected - fires:,} of {self.expected:,} fires MISSING"
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


async def measure_window(
    start: datetime, seconds: int, done: anyio.Event
) -> tuple[float, float]:
    """CPU and wall seconds from just before ``start`` until ``done`` (or a limit)."""
    await sleep_until(start - timedelta(seconds=0.1))
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with anyio.move_on_after(seconds + 30):
        await done.wait()
    return time.process_time() - cpu0, time.perf_counter() - wall0


async def sz_lateness(n: int, seconds: int, spread: bool) -> Lateness:
    """ScheduleZero: the handler's ``started_at`` minus the job's ``scheduled_at``."""
    sz = ScheduleZero(name="bench")
    expected = n * seconds
    done = anyio.Event()
    count = 0

    @sz.handler(concurrency=CONCURRENCY)
    async def noop() -> None:
        nonlocal count
        count += 1
        if count == expected:
            done.set()

    async with sz:
        start = first_fire(n)
        for i, trigger in enumerate(triggers(n, seconds, spread, start)):
            await sz.schedule("noop", trigger, id=f"s{i}")
        cpu, wall = await measure_window(start, seconds, done)
        rows = []
        with anyio.move_on_after(10):
            while True:
                rows = await sz.history(task="noop", limit=expected, final=True)
                if len(rows) >= count:
                    break
                await anyio.sleep(0.05)
    late = [
        (row.started_at - row.scheduled_at).total_seconds()
        for row in rows
        if row.started_at is not None
    ]
    return Lateness(late, expected, cpu, wall)


async def aps_lateness(
    n: int, seconds: int, spread: bool, max_running_jobs: int | None
) -> Lateness:
    """APScheduler alone: lateness measured in the job function itself."""
    expected = n * seconds
    done = anyio.Event()
    late: list[float] = []

    async def job() -> None:
        fire_time = current_job.get().scheduled_fire_time
        assert fire_time is not None
        late.append((datetime.now(UTC) - fire_time).total_seconds())
        if len(late) == expected:
            done.set()

    async with AsyncScheduler(data_store=MemoryDataStore()) as scheduler:
        await scheduler.configure_task(
            "noop", func=job, job_executor="async", max_running_jobs=max_running_jobs
        )
        await scheduler.start_in_background()
        start = first_fire(n)
        for i, trigger in enumerate(triggers(n, seconds, spread, start)):
            await scheduler.add_schedule("noop", trigger, id=f"s{i}")
        cpu, wall = await measure_window(start, seconds, done)
        await scheduler.stop()
    return Lateness(list(late), expected, cpu, wall)


# --------------------------------------------------------------------- main


async def run_backend(quick: bool) -> list[str]:
    lines = []
    n_jobs = 2_000 if quick else 20_000
    ours = max([await sz_run_now_rate(n_jobs, CALLERS) for _ in range(REPEAT)])
    raw = max([await aps_add_job_rate(n_jobs, CALLERS) for _ in range(REPEAT)])
    lines.append(
        f"  run_now, {CALLERS} callers   {ours:>9,.0f} jobs/s   APScheduler alone"
        f" (add_job, wait for release) {raw:>7,.0f} jobs/s   ratio {ours / raw:5.2f}"
        f"   target >= {TARGETS['run_now']:,.0f}"
        f"  {verdict(ours >= TARGETS['run_now'])}"
    )
    n, seconds = (200, 3) if quick else (1_000, 10)
    for spread in (False, True):
        how = "spread over the second" if spread else "aligned on the second"
        lines.append(
            f"  fire lateness, {n:,} schedules every 1 s for {seconds} s, {how}:"
        )
        ours_late = await sz_lateness(n, seconds, spread)
        alone = await aps_lateness(n, seconds, spread, None)
        ok = ours_late.p99 <= alone.p99
        lines.append(
            f"    ScheduleZero                          {ours_late.line()}"
            f"   target p99 <= APScheduler alone's  {verdict(ok)}"
        )
        lines.append(f"    APScheduler alone, max_running_jobs=None {alone.line()}")
        if not spread:
            default = await aps_lateness(n, seconds, spread, 1)
            label = "APScheduler alone, max_running_jobs=1   "
            lines.append(f"    {label} {default.line()}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], action="append", help="default: both"
    )
    options = parser.parse_args()
    for backend in options.backend or ["asyncio", "trio"]:
        print(f"{backend}:", flush=True)
        for line in anyio.run(run_backend, options.quick, backend=backend):
            print(line)


if __name__ == "__main__":
    main()
