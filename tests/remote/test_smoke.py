"""One worker subprocess registers and runs a job, on asyncio and trio."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sz import BrokerSettings, ScheduleZero

from .conftest import eventually, free_endpoint

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .conftest import WorkerProcess

pytestmark = pytest.mark.anyio


async def test_a_worker_process_runs_a_job(
    spawn_worker: Callable[..., Awaitable[WorkerProcess]],
) -> None:
    endpoint = free_endpoint()
    sz = ScheduleZero(store="memory", broker=BrokerSettings(endpoint=endpoint))
    async with sz:
        worker = await spawn_worker(endpoint, name="w1", capacity=2)

        async def registered() -> bool:
            return any(s.name == "w1" for s in await sz.handlers())

        await eventually(registered, what="w1 registers")
        assert await sz.run_now("add", args=[2, 3]) == 5
        assert await sz.run_now("where") == worker.pid
