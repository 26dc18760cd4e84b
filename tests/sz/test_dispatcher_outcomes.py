from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import pytest

from sz.dispatcher import LOST_JOB_RETRIES
from sz.errors import JobFailed
from sz.scheduler import ScheduleZero

if TYPE_CHECKING:
    from sz.jobs import Attempt

# ----------------------------------------------------------- crash, timeout


async def test_job_on_a_handler_killed_mid_job_is_retried_and_recorded() -> None:
    sz = ScheduleZero()
    calls = 0
    started = anyio.Event()
    began: list[datetime] = []

    async def work() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            began.append(datetime.now(UTC))
            started.set()
            await anyio.Event().wait()
        return "done"

    sz.handler(work, name="work")
    sz.handler(work, name="work")
    result: list[str] = []
    async with sz:
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                result.append(await sz.run_now("work", timeout=5))

            tg.start_soon(run)
            with anyio.fail_after(5):
                await started.wait()
            busy = [s.name for s in await sz.handlers() if s.health.active]
            assert len(busy) == 1
            ref = sz.system.lookup(f"/user/handlers/{busy[0]}")
            assert ref is not None
            killed = datetime.now(UTC)
            await ref.kill()
        rows = sorted(await sz.history(task="work"), key=lambda row: row.attempt)
    assert result == ["done"]
    # The interrupted attempt says when it really started, and that it ran until
    # the kill: not a 0 ms attempt at the moment the loss was seen.
    lost = rows[0]
    assert lost.started_at is not None
    assert lost.duration is not None
    assert lost.started_at <= began[0] <= killed <= lost.finished_at
    assert lost.duration > 0
    assert lost.duration >= (killed - began[0]).total_seconds()
    assert len({row.job_id for row in rows}) == 1
    assert [(r.attempt, r.outcome, r.final, r.reason) for r in rows] == [
        (1, "abandoned", False, "retry_after_crash"),
        (2, "success", True, None),
    ]
    assert rows[0].handler == busy[0]
    assert rows[1].handler in ("work", "work#2")


async def test_job_whose_handler_is_killed_on_every_attempt_ends_abandoned_once() -> (
    None
):
    sz = ScheduleZero()
    running: list[anyio.Event] = [anyio.Event()]

    async def work() -> None:
        running[-1].set()
        await anyio.Event().wait()

    sz.handler(work, name="work")
    outcome: list[str] = []
    async with sz:
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                with pytest.raises(JobFailed) as caught:
                    await sz.run_now("work", timeout=10)
                outcome.append(caught.value.outcome)

            tg.start_soon(run)
            ref = sz.system.lookup("/user/handlers/work")
            assert ref is not None
            for _ in range(LOST_JOB_RETRIES + 1):
                with anyio.fail_after(5):
                    await running[-1].wait()
                running.append(anyio.Event())
                await ref.kill()
        rows = sorted(await sz.history(task="work"), key=lambda row: row.attempt)
    assert outcome == ["abandoned"]
    assert [(r.attempt, r.outcome, r.final) for r in rows] == [
        *((n, "abandoned", False) for n in range(1, LOST_JOB_RETRIES + 1)),
        (LOST_JOB_RETRIES + 1, "abandoned", True),
    ]


async def test_jobs_in_flight_on_killed_handlers_each_end_once_after_a_retry() -> None:
    jobs, handlers, concurrency = 200, 3, 2
    started = 0
    full, gate = anyio.Event(), anyio.Event()

    async def work(i: int) -> int:
        nonlocal started
        started += 1
        if started == handlers * concurrency:
            full.set()
        await gate.wait()
        return i

    sz = ScheduleZero()
    for _ in range(handlers):
        sz.handler(work, name="work", concurrency=concurrency)
    results: dict[int, int] = {}

    async def run(i: int) -> None:
        results[i] = await sz.run_now("work", args=[i], timeout=10)

    async with sz:
        async with anyio.create_task_group() as tg:
            for i in range(jobs):
                tg.start_soon(run, i)
            with anyio.fail_after(5):
                await full.wait()
            for status in await sz.handlers():
                ref = sz.system.lookup(f"/user/handlers/{status.name}")
                assert ref is not None
                await ref.kill()
            gate.set()
        rows = await sz.history(task="work", limit=10_000)
    assert results == {i: i for i in range(jobs)}
    lost = [row for row in rows if row.outcome == "abandoned"]
    assert len(lost) == handlers * concurrency
    assert all(
        (r.attempt, r.final, r.reason) == (1, False, "retry_after_crash") for r in lost
    )
    finals = [row for row in rows if row.final]
    assert len(finals) == len({row.job_id for row in finals}) == jobs
    assert {row.outcome for row in finals} == {"success"}
    retried = {row.job_id: row.attempt for row in finals if row.attempt > 1}
    assert retried == {row.job_id: 2 for row in lost}


async def test_job_running_past_its_handler_timeout_ends_as_timeout() -> None:
    sz = ScheduleZero()

    @sz.handler(name="work", timeout=0.05)
    async def work() -> None:
        await anyio.Event().wait()

    async with sz:
        with pytest.raises(JobFailed) as caught:
            await sz.run_now("work", timeout=5)
        rows = await sz.history(task="work")
    assert caught.value.outcome == "timeout"
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert [(r.outcome, r.final, r.attempt, r.handler) for r in rows] == [
        ("timeout", True, 1, "work")
    ]


# ------------------------------------------------------ nothing is lost


async def test_every_one_of_thousands_of_jobs_ends_with_exactly_one_final_row() -> None:
    jobs, callers, p_fail = 2000, 100, 0.05
    rng = random.Random(20240601)
    #: Per job: its task, and whether its first and its second attempt fail.
    plan = [
        (rng.choice(["steady", "flaky"]), rng.random() < p_fail, rng.random() < p_fail)
        for _ in range(jobs)
    ]
    attempts: Counter[int] = Counter()

    async def work(i: int) -> int:
        attempts[i] += 1
        await anyio.lowlevel.checkpoint()
        if plan[i][attempts[i]]:
            raise RuntimeError(f"job {i} attempt {attempts[i]}")
        return i

    sz = ScheduleZero()
    for _ in range(3):
        sz.handler(work, name="steady", concurrency=8)
        sz.handler(work, name="flaky", concurrency=8, retries=1)
    ended: dict[int, str] = {}

    async def caller(first: int) -> None:
        # 100 callers, not a task per job: asyncio's debug mode makes tasks dear.
        for i in range(first, jobs, callers):
            try:
                assert await sz.run_now(plan[i][0], args=[i], timeout=30) == i
                ended[i] = "success"
            except JobFailed as exc:
                ended[i] = exc.outcome

    async with sz:
        async with anyio.create_task_group() as tg:
            for first in range(callers):
                tg.start_soon(caller, first)
        rows = await sz.history(limit=100_000)

    expected: dict[int, tuple[str, int]] = {}
    for i, (task, first_fails, second_fails) in enumerate(plan):
        if not first_fails:
            expected[i] = ("success", 1)
        elif task == "steady":
            expected[i] = ("failure", 1)
        else:
            expected[i] = ("failure" if second_fails else "success", 2)
    assert ended == {i: outcome for i, (outcome, _) in expected.items()}
    assert dict(attempts) == {i: n for i, (_, n) in expected.items()}

    by_job: defaultdict[str, list[Attempt]] = defaultdict(list)
    for row in rows:
        by_job[row.job_id].append(row)
    assert len(by_job) == jobs
    assert len(rows) == sum(n for _, n in expected.values())
    for job_rows in by_job.values():
        job_rows.sort(key=lambda row: row.attempt)
        assert [row.attempt for row in job_rows] == list(range(1, len(job_rows) + 1))
        assert [row.final for row in job_rows] == [False] * (len(job_rows) - 1) + [True]
        assert all(
            (row.outcome, row.reason) == ("failure", "retry_after_failure")
            for row in job_rows[:-1]
        )
        assert all(row.handler is not None for row in job_rows)
    finals = Counter(row.outcome for row in rows if row.final)
    assert finals == Counter(outcome for outcome, _ in expected.values())
