"""Chaos aimed at the scheduler's own tree: 10 kills a second for a minute, under load.

Callers keep submitting jobs (and waiting for them) while an interval schedule
fires; a seeded random actor under ``/user`` (supervisors included) is killed ten
times a second. Printed: kills done, jobs submitted, lost (no final row),
doubled (two final rows, or run to completion twice), abandoned (lost with
their handler past the retries), throughput during the storm beside the same
load's just before it, and whether the scheduler still runs a job after it.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
from collections import Counter
from typing import TYPE_CHECKING

import anyio

from actors.testing import wait_until
from sz import JobFailed, ScheduleZero

from .common import arguments, each_backend, say, verdict

if TYPE_CHECKING:
    from actors import ActorSnapshot
    from sz.jobs import Attempt

#: Kills a second, and callers submitting and waiting for jobs.
RATE, CALLERS = 10.0, 20


def under_user(snapshot: ActorSnapshot) -> list[str]:
    paths: list[str] = []
    for child in snapshot.children:
        paths.append(child.path)
        paths.extend(under_user(child))
    return paths


async def storm(before: float, seconds: float, seed: int) -> None:
    # SQLite: it keeps every row, and counting needs them all (the memory
    # store keeps the latest 100,000).
    with tempfile.TemporaryDirectory() as folder:
        await storm_on(f"sqlite:///{folder}/chaos.db", before, seconds, seed)


async def storm_on(store: str, before: float, seconds: float, seed: int) -> None:
    sz = ScheduleZero(store=store)
    completed: Counter[int] = Counter()
    ticks = [0]

    async def work(key: int) -> int:
        await anyio.sleep(0.001)
        completed[key] += 1
        return key

    sz.handler(name="work", concurrency=8)(work)
    sz.handler(name="work", concurrency=8)(work)

    @sz.handler
    async def tick() -> None:
        ticks[0] += 1

    rng = random.Random(seed)
    submitted: dict[int, str] = {}
    done_at: list[float] = []
    keys = iter(range(10**9))
    kills = 0
    async with sz:
        await sz.schedule("tick", "interval", seconds=0.1, id="tick")

        async def caller(stop: anyio.Event) -> None:
            while not stop.is_set():
                key = next(keys)
                handle = await sz.submit("work", args={"key": key})
                submitted[key] = handle.id
                with contextlib.suppress(JobFailed):
                    await handle.result(timeout=120)
                done_at.append(time.perf_counter())

        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            for _ in range(CALLERS):
                tg.start_soon(caller, stop)
            start = time.perf_counter()
            await anyio.sleep(before)
            storm_start = time.perf_counter()
            while time.perf_counter() - storm_start < seconds:
                path = rng.choice(under_user(sz.system.snapshot()))
                ref = sz.system.lookup(path)
                if ref is not None:
                    await ref.kill("chaos")
                    kills += 1
                await anyio.sleep(1 / RATE)
            storm_end = time.perf_counter()
            stop.set()
        await sz.pause("tick")
        await wait_until(lambda: no_live_jobs(sz), timeout=120)
        try:
            with anyio.fail_after(30):
                alive = await sz.run_now("work", args={"key": -1}) == -1
        except Exception:
            alive = False
        rows = await every_row(sz)
        restarts = sum(
            node.restarts for node in walk(sz.system.snapshot()) if node.path != "/user"
        )

    stormy = storm_end - storm_start
    finals = Counter(row.job_id for row in rows if row.final)
    outcomes = Counter(row.outcome for row in rows if row.final)
    lost = sum(1 for job_id in submitted.values() if job_id not in finals)
    doubled_rows = sum(1 for count in finals.values() if count > 1)
    doubled_runs = sum(1 for key, n in completed.items() if n > 1 and key >= 0)
    ticks_ok = sum(
        1
        for r in rows
        if r.schedule_id == "tick" and r.final and r.outcome == "success"
    )
    before_rate = sum(1 for t in done_at if start <= t < storm_start) / before
    during_rate = sum(1 for t in done_at if storm_start <= t < storm_end) / (
        storm_end - storm_start
    )
    say(f"  store                {store.split(':')[0]:>8}")
    say(
        f"  kills done           {kills:>8,}   ({kills / stormy:.1f}/s over "
        f"{stormy:.1f} s; actor restarts {restarts:,})"
    )
    say(
        f"  jobs submitted       {len(submitted):>8,}   final outcomes: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()))
    )
    say(f"  lost                 {lost:>8,}   target 0  {verdict(lost == 0)}")
    say(
        f"  doubled              {doubled_rows + doubled_runs:>8,}   "
        f"(two final rows {doubled_rows}, run twice {doubled_runs})   target 0  "
        f"{verdict(doubled_rows + doubled_runs == 0)}"
    )
    say(
        f"  schedule fires       {ticks[0]:>8,}   run; success rows {ticks_ok:,}  "
        f"{verdict(ticks[0] == ticks_ok)}"
    )
    say(
        f"  throughput before    {before_rate:>8,.0f} jobs/s   ({CALLERS} callers, "
        f"submit + result)"
    )
    say(
        f"  throughput during    {during_rate:>8,.0f} jobs/s   ratio to before "
        f"{during_rate / before_rate:5.2f}"
    )
    say(
        f"  scheduler alive      {'yes' if alive else 'NO':>8}   a new job after "
        f"the storm {'succeeded' if alive else 'failed'}  {verdict(alive)}"
    )


async def every_row(sz: ScheduleZero) -> list[Attempt]:
    rows: list[Attempt] = []
    last: Attempt | None = None
    while True:
        page = await sz.history(limit=100_000, before=last)
        rows += page
        if len(page) < 100_000:
            return rows
        last = page[-1]


async def no_live_jobs(sz: ScheduleZero) -> bool:
    return not await sz.jobs()


def walk(snapshot: ActorSnapshot) -> list[ActorSnapshot]:
    nodes = [snapshot]
    for child in snapshot.children:
        nodes.extend(walk(child))
    return nodes


def main() -> None:
    parser = arguments(__doc__, "10 s of kills instead of 60")
    parser.add_argument("--seed", type=int, default=18, help="default: 18")
    options = parser.parse_args()
    before, seconds = (3.0, 10.0) if options.quick else (10.0, 60.0)
    each_backend(options, lambda _: storm(before, seconds, options.seed))


if __name__ == "__main__":
    main()
