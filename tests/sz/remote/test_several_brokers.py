"""One ``sz worker`` serving several schedulers' brokers at once (one per node):
jobs from each, one capacity shared by all, a lost broker costing only its own
link (asyncio and trio)."""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from sz import BrokerSettings, ScheduleZero, SzError, ZMQHandler
from sz.cli import main

from .conftest import ANY_PORT, HERE, eventually

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from .conftest import WorkerProcess

    Spawn = Callable[..., Awaitable[WorkerProcess]]
    Backend = tuple[str, dict[str, object]]

pytestmark = pytest.mark.anyio


def scheduler(endpoint: str = ANY_PORT) -> ScheduleZero:
    return ScheduleZero(store="memory", broker=BrokerSettings(endpoint=endpoint))


async def serves(sz: ScheduleZero, name: str) -> bool:
    return any(status.name == name for status in await sz.handlers())


async def said(path: Path, line: str) -> bool:
    """Whether a job wrote ``line`` to ``path``."""
    where = anyio.Path(path)
    return await where.exists() and line in (await where.read_text()).splitlines()


async def peak(trace: Path) -> int:
    """The most ``crowd`` jobs the worker ran at once, by its trace."""
    lines = (await anyio.Path(trace).read_text(encoding="utf-8")).splitlines()
    return max(int(line.split()[1]) for line in lines)


async def crowd(
    sz: ScheduleZero, trace: Path, tokens: list[str], seconds: float
) -> list[Any]:
    """Run a ``crowd`` job per token on ``sz`` at once; their results."""
    results: list[Any] = []

    async def one(token: str) -> None:
        results.append(
            await sz.run_now("crowd", args=[str(trace), token, seconds], timeout=20)
        )

    async with anyio.create_task_group() as tg:
        for token in tokens:
            tg.start_soon(one, token)
    return results


async def test_a_worker_runs_jobs_from_two_schedulers_within_one_shared_capacity(
    spawn_worker: Spawn, anyio_backend: Backend, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    async with scheduler() as one, scheduler() as two:
        endpoints = [(await sz.broker())[0] for sz in (one, two)]
        worker = await spawn_worker(
            ",".join(endpoints), name="w", capacity=2, backend=anyio_backend[0]
        )
        for sz in (one, two):
            await eventually(partial(serves, sz, "w"), what="w registers")
        # Each broker is told the whole capacity: it may send 2, and the
        # worker runs 2 of the 4 at once, whichever broker sent them.
        for sz in (one, two):
            (status,) = await sz.handlers()
            assert status.concurrency == 2
        results: list[Any] = []

        async def side(sz: ScheduleZero, name: str) -> None:
            tokens = [f"{name}{n}" for n in range(3)]
            results.extend(await crowd(sz, trace, tokens, 0.3))

        async with anyio.create_task_group() as tg:
            tg.start_soon(side, one, "a")
            tg.start_soon(side, two, "b")
        assert results == [worker.pid] * 6
        for sz in (one, two):
            rows = await sz.history(task="crowd")
            assert {(row.handler, row.outcome) for row in rows} == {("w", "success")}
            assert len(rows) == 3
    assert await peak(trace) == 2


async def test_a_worker_serves_on_when_one_scheduler_stops_and_registers_again_when_it_returns(  # noqa: E501
    spawn_worker: Spawn, anyio_backend: Backend, tmp_path: Path
) -> None:
    trace, held = tmp_path / "trace", tmp_path / "held"
    async with scheduler() as two:
        one = scheduler()
        await one.start()
        try:
            lost, _ = await one.broker()
            kept, _ = await two.broker()
            worker = await spawn_worker(
                f"{lost},{kept}", name="w", capacity=2, backend=anyio_backend[0]
            )
            for sz in (one, two):
                await eventually(partial(serves, sz, "w"), what="w registers")
            # A job of the first scheduler holds one of the two slots ...
            await one.submit("hold", args=[str(held)])
            await eventually(lambda: said(held, "started"), what="held job runs")
        finally:
            await one.stop()
        # ... until the worker judges that broker lost: its job ends there (the
        # node that sent it recovers it), and both slots serve the other.
        await eventually(lambda: said(held, "ended"), what="held job ends")
        assert await crowd(two, trace, ["b0", "b1"], 0.3) == [worker.pid] * 2
        assert await peak(trace) == 2
        async with scheduler(lost) as again:
            await eventually(lambda: serves(again, "w"), what="w registers again")
            assert await again.run_now("where", timeout=10) == worker.pid
            assert await two.run_now("where", timeout=10) == worker.pid


# --------------------------------------------------------------- arguments


async def test_a_worker_given_two_endpoints_serves_both_in_process() -> None:
    async with scheduler() as one, scheduler() as two:
        endpoints = [(await sz.broker())[0] for sz in (one, two)]
        handler = ZMQHandler(endpoints, name="inproc-w", heartbeat=0.2, capacity=1)

        @handler.task
        async def where() -> str:
            return "here"

        async with anyio.create_task_group() as tg:
            tg.start_soon(handler.serve)
            for sz in (one, two):
                await eventually(partial(serves, sz, "inproc-w"), what="both")
            assert [ref.path for ref in handler.connection_refs] == [
                "/user/worker/connection-1",
                "/user/worker/connection-2",
            ]
            assert handler.connection.path == "/user/worker/connection-1"
            assert await one.run_now("where", timeout=10) == "here"
            assert await two.run_now("where", timeout=10) == "here"
            handler.stop()
    assert handler.registrations >= 2


@pytest.mark.parametrize(
    ("endpoints", "complaint"),
    [
        pytest.param(
            "tcp://127.0.0.1:5555,tcp://127.0.0.1:99999",
            "sz worker: endpoint: expected tcp://HOST:PORT with a port from 1 to "
            "65535, got 'tcp://127.0.0.1:99999'",
            id="bad-port-second",
        ),
        pytest.param(
            "tcp://127.0.0.1:5555,,tcp://127.0.0.1:5556",
            "sz worker: endpoint: expected a ZeroMQ endpoint: tcp://HOST:PORT, "
            "ipc://PATH or inproc://NAME, got ''",
            id="empty-between-commas",
        ),
        pytest.param(
            "tcp://127.0.0.1:5555, tcp://127.0.0.1:5555",
            "sz worker: endpoint: 'tcp://127.0.0.1:5555' is given twice",
            id="twice",
        ),
    ],
)
def test_sz_worker_names_the_bad_endpoint_in_its_list(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    endpoints: str,
    complaint: str,
) -> None:
    # ``sz worker`` puts the working directory on sys.path, as python -m does.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(HERE)
    with pytest.raises(SystemExit) as exited:
        main(["worker", endpoints, "workload"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == complaint
    assert "Traceback" not in err


def test_server_keys_go_one_for_all_brokers_or_one_per_endpoint(
    tmp_path: Path,
) -> None:
    with pytest.raises(SzError, match=r"one per endpoint \(2\), got 3"):
        ZMQHandler(
            ["tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556"],
            key=tmp_path / "w.key_secret",
            server_key=[tmp_path / "a.key", tmp_path / "b.key", tmp_path / "c.key"],
        )
    with pytest.raises(SzError, match="expected at least one broker"):
        ZMQHandler([])
