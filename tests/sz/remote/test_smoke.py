"""A worker process runs a job; the broker fails to start loudly, and comes back
from crashes with its workers (asyncio and trio)."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

import anyio
import pytest

from sz import BrokerSettings, JobFailed, ScheduleZero, SzError, ZMQHandler
from sz.health import HealthPolicy

from .conftest import ANY_PORT, eventually, free_endpoint

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .conftest import WorkerProcess

pytestmark = pytest.mark.anyio


async def test_a_worker_process_runs_a_job(
    spawn_worker: Callable[..., Awaitable[WorkerProcess]],
) -> None:
    sz = ScheduleZero(store="memory", broker=BrokerSettings(endpoint=ANY_PORT))
    async with sz:
        endpoint, _ = await sz.broker()
        worker = await spawn_worker(endpoint, name="w1", capacity=2)

        async def registered() -> bool:
            return any(s.name == "w1" for s in await sz.handlers())

        await eventually(registered, what="w1 registers")
        assert await sz.run_now("add", args=[2, 3]) == 5
        assert await sz.run_now("where") == worker.pid


async def test_a_remote_failure_row_carries_the_workers_traceback(
    spawn_worker: Callable[..., Awaitable[WorkerProcess]],
) -> None:
    sz = ScheduleZero(store="memory", broker=BrokerSettings(endpoint=ANY_PORT))
    async with sz:
        endpoint, _ = await sz.broker()
        await spawn_worker(endpoint, name="w1")

        async def registered() -> bool:
            return any(s.name == "w1" for s in await sz.handlers())

        await eventually(registered, what="w1 registers")
        with pytest.raises(JobFailed):
            await sz.run_now("fail", args={"message": "from afar"}, timeout=10)
        (row,) = await sz.history(task="fail")
    assert row.handler == "w1"
    assert row.traceback is not None
    # The worker's own frames, as the worker formatted them.
    assert "workload.py" in row.traceback
    assert "in fail" in row.traceback
    assert row.traceback.rstrip().endswith("RuntimeError: from afar")


async def test_arguments_that_do_not_fit_a_workers_task_never_open_its_circuit(
    spawn_worker: Callable[..., Awaitable[WorkerProcess]],
) -> None:
    # More wrong calls than the breaker's window (100), all failing: held
    # against the worker, they would open its circuit after 50.
    calls = 2 * HealthPolicy().window + 10
    sz = ScheduleZero(store="memory", broker=BrokerSettings(endpoint=ANY_PORT))
    async with sz:
        endpoint, _ = await sz.broker()
        await spawn_worker(endpoint, name="w1", capacity=4)

        async def registered() -> bool:
            return any(s.name == "w1" for s in await sz.handlers())

        await eventually(registered, what="w1 registers")
        for _ in range(calls):
            # add(a, b) without b: the worker's call raises TypeError.
            with pytest.raises(JobFailed):
                await sz.run_now("add", args=[1], timeout=10)
            (status,) = await sz.handlers()
            assert status.health.state == "healthy", status.health
        assert status.health.failures == 0
        rows = await sz.history(task="add", limit=1000)
        assert len(rows) == calls
        assert {(row.outcome, row.handler) for row in rows} == {("failure", "w1")}
        assert "missing 1 required positional argument: 'b'" in (rows[0].error or "")
        assert await sz.run_now("add", args=[2, 3], timeout=10) == 5
        (status,) = await sz.handlers()
        assert (status.health.state, status.health.successes) == ("healthy", 1)


async def test_a_broker_that_cannot_bind_fails_the_start_naming_the_endpoint() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        sz = ScheduleZero(store="memory", broker=BrokerSettings(endpoint=endpoint))
        with pytest.raises(SzError, match=rf"cannot bind {endpoint}"):
            await sz.start()


def test_broker_settings_refuse_an_endpoint_no_socket_could_bind() -> None:
    with pytest.raises(ValueError, match=r"^endpoint: expected tcp://HOST:PORT with a"):
        BrokerSettings(endpoint="tcp://127.0.0.1:65536")


async def test_the_broker_killed_again_and_again_comes_back_and_so_do_its_workers() -> (
    None
):
    settings = BrokerSettings(endpoint=ANY_PORT, heartbeat=0.25)
    async with ScheduleZero(store="memory", broker=settings) as sz:
        # Each new broker binds the port the first one chose.
        endpoint, _ = await sz.broker()
        worker = ZMQHandler(endpoint, name="w", heartbeat=0.25)

        @worker.task
        async def where() -> str:
            return "here"

        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.serve)
            for _ in range(5):  # more than a default supervisor tolerates
                broker = sz.system.lookup("/user/remote/broker")
                assert broker is not None
                await broker.kill()

                async def serves() -> bool:
                    statuses = await sz.handlers()
                    return any(status.name == "w" for status in statuses)

                await eventually(serves, what="w registers with the new broker")
                assert await sz.run_now("where", timeout=10) == "here"
                assert (await sz.broker())[0] == endpoint
            worker.stop()


async def test_a_worker_started_before_its_broker_says_so_and_registers_when_it_comes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The worker must know where its broker will be before any broker binds:
    # the one case left to free_endpoint's race.
    endpoint = free_endpoint()
    worker = ZMQHandler(endpoint, name="early", heartbeat=0.05, liveness=2)

    @worker.task
    async def where() -> str:
        return "here"

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "sz.worker"]

    async def waiting() -> bool:
        return any("no broker answers" in message for message in said())

    with caplog.at_level(logging.INFO, logger="sz.worker"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.serve)
            await eventually(waiting, what="the worker says no broker answers")
            settings = BrokerSettings(endpoint=endpoint)
            async with ScheduleZero(store="memory", broker=settings) as sz:

                async def serves() -> bool:
                    return any(s.name == "early" for s in await sz.handlers())

                await eventually(serves, what="the early worker registers")
                assert await sz.run_now("where", timeout=10) == "here"
                worker.stop()
    messages = said()
    assert messages[0] == f"worker early: connecting to {endpoint}"
    waited = f"worker early: no broker answers at {endpoint} after"
    assert messages[1].startswith(waited)
    assert messages[1].endswith("s; still trying")
    registering = f"worker early: registering with {endpoint}"
    assert any(message.startswith(registering) for message in messages)


async def test_a_broker_open_to_the_network_without_curve_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_to_all = BrokerSettings(endpoint="tcp://0.0.0.0:*")
    with caplog.at_level(logging.WARNING, logger="sz.broker"):
        async with ScheduleZero(store="memory", broker=open_to_all):
            pass
        async with ScheduleZero(
            store="memory", broker=BrokerSettings(endpoint="tcp://127.0.0.1:*")
        ):
            pass
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "sz.broker" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1, warnings
    assert "without CURVE: anyone who can reach it" in warnings[0]
