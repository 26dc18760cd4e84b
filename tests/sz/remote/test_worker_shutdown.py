"""A worker ends on SIGTERM even while a sync task never returns.

Both as ``sz worker`` and as a program of the user's embedding ``ZMQHandler``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import anyio
import pytest

from sz import ScheduleZero
from sz.cli import THREAD_GRACE
from sz.remote import BrokerSettings

from .conftest import ANY_PORT, eventually

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from .conftest import WorkerProcess

#: Seconds from SIGTERM to exit: the drain (1 s by default), THREAD_GRACE, and
#: far more for a loaded machine.
BOUND = 15.0


@pytest.fixture
def backend(anyio_backend: tuple[str, dict[str, object]]) -> str:
    return anyio_backend[0]


async def test_sz_worker_exits_on_sigterm_while_a_sync_task_never_returns(
    spawn_worker: Callable[..., Awaitable[WorkerProcess]],
    tmp_path: Path,
    backend: str,
) -> None:
    assert BOUND > THREAD_GRACE * 3
    marker = tmp_path / "started"
    sz = ScheduleZero(store="memory", broker=BrokerSettings(endpoint=ANY_PORT))
    async with sz, anyio.create_task_group() as tg:
        endpoint, _ = await sz.broker()
        worker = await spawn_worker(endpoint, name="w1", backend=backend)

        async def registered() -> bool:
            return any(s.name == "w1" for s in await sz.handlers())

        await eventually(registered, what="w1 registers")

        async def run() -> None:
            await sz.run_now("hang", args=[str(marker)])

        tg.start_soon(run)

        async def started() -> bool:
            return await anyio.Path(marker).exists()

        await eventually(started, what="the hang task starts")
        worker.signal(signal.SIGTERM)
        with anyio.fail_after(BOUND):
            code = await worker.wait()
        tg.cancel_scope.cancel()
    log = await worker.output()
    assert code == 0, log[-4000:]
    assert "Traceback" not in log
    abandoned = [line for line in log.splitlines() if "abandoned job" in line]
    assert len(abandoned) == 1, log[-4000:]
    assert "task hang" in abandoned[0]


#: A program embedding a worker (not ``sz worker``: no CLI around it) whose sync
#: task never returns; SIGTERM stops it through ``ZMQHandler.start``.
EMBEDDED_WORKER = """\
import sys
import time
from pathlib import Path

from sz import ZMQHandler

handler = ZMQHandler(sys.argv[1], name="embedded", heartbeat=0.2)


@handler.task
def hang(marker: str) -> None:
    Path(marker).touch()
    time.sleep(3600)


handler.start(backend=sys.argv[2])
print("start returned", flush=True)
"""


async def test_a_program_embedding_a_worker_exits_on_sigterm_while_its_task_hangs(
    tmp_path: Path, backend: str
) -> None:
    marker = tmp_path / "started"
    sz = ScheduleZero(store="memory", broker=BrokerSettings(endpoint=ANY_PORT))
    async with sz:
        endpoint, _ = await sz.broker()
        async with (
            await anyio.open_process(
                [sys.executable, "-c", EMBEDDED_WORKER, endpoint, backend],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            ) as process,
            anyio.create_task_group() as tg,
        ):
            try:

                async def registered() -> bool:
                    return any(s.name == "embedded" for s in await sz.handlers())

                await eventually(registered, what="the worker registers")

                async def run() -> None:
                    await sz.run_now("hang", args=[str(marker)])

                tg.start_soon(run)

                async def started() -> bool:
                    return await anyio.Path(marker).exists()

                await eventually(started, what="the hang task starts")
                process.send_signal(signal.SIGTERM)
                assert process.stdout is not None
                with anyio.fail_after(BOUND):
                    output = b"".join([chunk async for chunk in process.stdout])
                    code = await process.wait()
            except BaseException:
                process.kill()
                raise
            tg.cancel_scope.cancel()
    log = output.decode(errors="replace")
    assert code == 0, log[-4000:]
    assert "start returned" in log
    assert "Traceback" not in log, log[-4000:]
    abandoned = [line for line in log.splitlines() if "abandoned job" in line]
    assert len(abandoned) == 1, log[-4000:]
