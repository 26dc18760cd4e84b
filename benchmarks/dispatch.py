"""Dispatch benchmark: ``python -m benchmarks.dispatch [--quick] [--backend B]``.

Three figures, each beside the primitive underneath doing the same work in the
same run and on the same backend, so a ratio reads off one run:

- ``run_now`` throughput to a local no-op handler from many concurrent callers,
  beside APScheduler's ``add_job`` and a wait for the job's ``JobReleased``.
- The same to a sync no-op handler, whose calls run on ScheduleZero's daemon
  threads (``sz.threads``), beside ``anyio.to_thread.run_sync`` of a no-op
  alone, from as many callers with a limiter of the handler's concurrency; and
  the threads themselves (``DaemonThreads.run_sync``) under that same load.
- Fire lateness of many interval schedules firing every second, their fire times
  aligned on the second (as cron jobs are on the minute) or spread over it: when
  the handler started the job minus when it was due, beside the same schedules in
  APScheduler alone, measured in its job function. CPU is the process's CPU time
  over the window, per second and per fire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from apscheduler import AsyncScheduler, JobReleased
from apscheduler.datastores.memory import MemoryDataStore

from benchmarks.common import (
    CALLERS,
    CONCURRENCY,
    Fires,
    Lateness,
    aps_lateness,
    aps_noop,
    arguments,
    calls_per_second,
    each_backend,
    final_rows,
    first_fire,
    run_now_rate,
    say,
    sz_run_now_rate,
    triggers,
    verdict,
)
from sz import ScheduleZero
from sz.threads import DaemonThreads

if TYPE_CHECKING:
    from uuid import UUID

#: Throughputs are the best of this many runs: this machine is a shared VM whose
#: speed wanders by a third from one second to the next.
REPEAT = 5

TARGETS = {"run_now": 20_000.0}

#: A sync handler's concurrency: its threads at once.
SYNC_CONCURRENCY = 10


# ------------------------------------------------------------------ run_now


async def aps_add_job_rate(n: int, callers: int) -> float:
    """APScheduler alone: ``add_job`` and wait for its ``JobReleased``, ``n`` times.

    One subscription serves every caller (``run_job`` subscribes once per call,
    and each event is then delivered to every caller's listener in a task of its
    own: a fifth of this rate at 100 callers).
    """
    released: dict[UUID, anyio.Event] = {}

    def on_released(event: JobReleased) -> None:
        released.setdefault(event.job_id, anyio.Event()).set()

    async with AsyncScheduler(data_store=MemoryDataStore()) as scheduler:
        await scheduler.configure_task(
            "noop", func=aps_noop, job_executor="async", max_running_jobs=None
        )
        scheduler.subscribe(on_released, JobReleased)
        await scheduler.start_in_background()

        async def run_job() -> None:
            job_id = await scheduler.add_job("noop")
            await released.setdefault(job_id, anyio.Event()).wait()
            del released[job_id]

        rate = await calls_per_second(run_job, n, callers)
        await scheduler.stop()
    return rate


# ------------------------------------------------------------ sync handlers


def sync_noop() -> None:
    return None


async def sz_submit_rate(n: int, callers: int) -> float:
    """``submit`` then ``result`` on its handle, from ``callers`` tasks."""
    sz = ScheduleZero(name="bench")

    @sz.handler(concurrency=CONCURRENCY)
    async def noop() -> None:
        return None

    async def submit_and_wait() -> None:
        handle = await sz.submit("noop")
        await handle.result()

    async with sz:
        return await calls_per_second(submit_and_wait, n, callers)


async def sz_sync_run_now_rate(n: int, callers: int) -> float:
    """``run_now`` to a sync no-op handler until ``n`` jobs have ended."""
    sz = ScheduleZero(name="bench")
    sz.handler(sync_noop, name="noop", concurrency=SYNC_CONCURRENCY)
    async with sz:
        return await run_now_rate(sz, "noop", n, callers)


async def to_thread_rate(n: int, callers: int) -> float:
    """The primitive: ``anyio.to_thread.run_sync`` of a no-op, same limiter."""
    limiter = anyio.CapacityLimiter(SYNC_CONCURRENCY)

    async def call() -> None:
        await anyio.to_thread.run_sync(sync_noop, limiter=limiter)

    return await calls_per_second(call, n, callers)


async def daemon_threads_rate(n: int, callers: int) -> float:
    """ScheduleZero's threads alone: ``DaemonThreads.run_sync`` of a no-op."""
    threads = DaemonThreads(anyio.CapacityLimiter(SYNC_CONCURRENCY))
    try:
        return await calls_per_second(lambda: threads.run_sync(sync_noop), n, callers)
    finally:
        threads.close()


# ----------------------------------------------------------------- lateness


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
        rows = await final_rows(sz, fires.count, limit=fires.expected)
    late = [
        (row.started_at - row.scheduled_at).total_seconds()
        for row in rows
        if row.started_at is not None
    ]
    return Lateness(late, fires.expected, cpu, wall)


# --------------------------------------------------------------------- main


async def run_backend(quick: bool) -> None:
    n_jobs = 2_000 if quick else 20_000
    ours_runs, submit_runs = [], []
    for _ in range(REPEAT):  # interleaved: the machine's speed wanders
        ours_runs.append(await sz_run_now_rate(n_jobs, CALLERS))
        submit_runs.append(await sz_submit_rate(n_jobs, CALLERS))
    ours, submitted = max(ours_runs), max(submit_runs)
    raw = max([await aps_add_job_rate(n_jobs, CALLERS) for _ in range(REPEAT)])
    say(
        f"  run_now, {CALLERS} callers, no-op handler  {ours:>7,.0f} jobs/s"
        f"   APScheduler alone (add_job, wait for release) {raw:>7,.0f} jobs/s"
        f"   ratio {ours / raw:5.2f}   target >= {TARGETS['run_now']:,.0f}"
        f"  {verdict(ours >= TARGETS['run_now'])}"
    )
    say(
        f"  submit + handle.result(), {CALLERS} callers, no-op handler"
        f"  {submitted:>7,.0f} jobs/s   ratio to run_now {submitted / ours:5.2f}"
    )
    n_sync = n_jobs // 4
    ours_sync, raw_sync, threads = [], [], []
    for _ in range(REPEAT):  # interleaved: the machine's speed wanders
        ours_sync.append(await sz_sync_run_now_rate(n_sync, CALLERS))
        raw_sync.append(await to_thread_rate(n_sync, CALLERS))
        threads.append(await daemon_threads_rate(n_sync, CALLERS))
    raw_best = max(raw_sync)
    say(
        f"  run_now, {CALLERS} callers, sync no-op handler "
        f"(concurrency {SYNC_CONCURRENCY})  {max(ours_sync):>7,.0f} jobs/s"
        f"   anyio.to_thread.run_sync alone {raw_best:>7,.0f} calls/s"
        f"   ratio {max(ours_sync) / raw_best:5.2f}"
    )
    say(
        f"  sz.threads.DaemonThreads.run_sync alone, same load  "
        f"{max(threads):>7,.0f} calls/s"
        f"   anyio.to_thread.run_sync alone {raw_best:>7,.0f} calls/s"
        f"   ratio {max(threads) / raw_best:5.2f}"
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
    parser = arguments(__doc__, "a tenth of the jobs; 200 schedules for 3 s")
    options = parser.parse_args()
    each_backend(options, lambda _: run_backend(options.quick))


if __name__ == "__main__":
    main()
