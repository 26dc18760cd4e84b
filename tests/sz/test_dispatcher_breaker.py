from __future__ import annotations

import random

import anyio
import pytest

from sz.errors import JobFailed, SzError
from sz.scheduler import ScheduleZero


def adder() -> ScheduleZero:
    sz = ScheduleZero()

    async def add(a: int, b: int = 0) -> int:
        await anyio.lowlevel.checkpoint()
        return a + b

    sz.handler(add)
    return sz


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        (None, None, "missing a required argument: 'a'"),
        ([1, 2, 3], None, "too many positional arguments"),
        ([1], {"c": 3}, "unexpected keyword argument 'c'"),
        ({"b": 1}, None, "missing a required argument: 'a'"),
    ],
)
async def test_run_now_refuses_arguments_that_do_not_bind(
    args: list[int] | dict[str, int] | None,
    kwargs: dict[str, int] | None,
    problem: str,
) -> None:
    async with adder() as sz:
        with pytest.raises(SzError, match="task 'add'") as caught:
            await sz.run_now("add", args=args, kwargs=kwargs)
        assert problem in str(caught.value)
        assert await sz.history(task="add") == []
        assert await sz.run_now("add", args=[1], kwargs={"b": 2}) == 3


async def test_schedule_refuses_arguments_that_do_not_bind() -> None:
    sz = adder()
    with pytest.raises(SzError, match="too many positional arguments"):
        await sz.schedule("add", "interval", seconds=60, args=[1, 2, 3])
    async with sz:
        with pytest.raises(SzError, match=r"task 'add'.*'a'"):
            await sz.schedule("add", "interval", seconds=60, kwargs={"b": 1})
        assert await sz.schedules() == []
        added = await sz.schedule("add", "interval", seconds=60, args=[1])
        assert [s.id for s in await sz.schedules()] == [added]


async def test_handler_failing_30_percent_at_random_completes_500_jobs() -> None:
    sz = ScheduleZero()
    chance = random.Random(15)

    async def flaky() -> str:
        await anyio.lowlevel.checkpoint()
        if chance.random() < 0.3:
            raise RuntimeError("bad luck")
        return "ok"

    sz.handler(flaky)
    failed = 0
    async with sz:
        for _ in range(500):
            try:
                await sz.run_now("flaky", timeout=5.0)
            except JobFailed:
                failed += 1
            health = (await sz.handlers())[0].health
            assert health.state in ("healthy", "degraded"), health
        assert await sz.history(task="flaky", outcome="no_healthy_handler") == []
        rows = await sz.history(task="flaky", final=True, limit=1000)
        assert len(rows) == 500
        assert sum(row.outcome == "failure" for row in rows) == failed
    assert 100 < failed < 200
