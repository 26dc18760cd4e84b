"""A program embedding ScheduleZero exits when its main returns, stuck handlers or not.

Real processes, on both backends: a sync handler that never returns must not
hold the interpreter's exit once ``async with ScheduleZero()`` has ended, and a
library may not end the process with ``os._exit`` to get there.
"""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

#: A sleeper and a CPU hog, neither with a timeout; each job is left running
#: once ``run_now`` gives up on it, then the program leaves and returns.
PROGRAM = """\
import sys
import time

import anyio

from sz import ScheduleZero

sz = ScheduleZero()


@sz.handler
def sleeper() -> None:
    print("sleeper started", flush=True)
    time.sleep(3600)


@sz.handler
def hog() -> None:
    print("hog started", flush=True)
    while True:
        pass


async def main() -> None:
    async with sz:
        for task in ("sleeper", "hog"):
            try:
                await sz.run_now(task, timeout=0.5)
            except TimeoutError:
                pass
    print("main returns", flush=True)


anyio.run(main, backend=sys.argv[1])
"""

#: Seconds the program has to start, run both jobs and exit: about 3 on an idle
#: machine; far more for a loaded one.
BOUND = 20.0


@pytest.fixture
def backend(anyio_backend: tuple[str, dict[str, object]]) -> str:
    return anyio_backend[0]


async def run_program(source: str, *args: str) -> tuple[int, str]:
    """Run ``python -c source *args``: its exit code and output, within BOUND.

    Raises:
        TimeoutError: It did not exit within BOUND (it is killed).
    """
    async with await anyio.open_process(
        [sys.executable, "-c", source, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as process:
        assert process.stdout is not None
        try:
            with anyio.fail_after(BOUND):
                output = b"".join([chunk async for chunk in process.stdout])
                code = await process.wait()
        except BaseException:
            process.kill()
            raise
    return code, output.decode(errors="replace")


async def test_a_program_exits_when_main_returns_while_sync_handlers_never_do(
    backend: str,
) -> None:
    code, output = await run_program(PROGRAM, backend)
    assert code == 0, output[-4000:]
    assert "sleeper started" in output
    assert "hog started" in output
    assert "main returns" in output
    assert "Traceback" not in output, output[-4000:]
    abandoned = [line for line in output.splitlines() if "abandoned job" in line]
    assert len(abandoned) == 2, output[-4000:]
