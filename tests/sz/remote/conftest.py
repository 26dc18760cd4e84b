"""Worker subprocesses and a free loopback endpoint for the remote-handler tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from anyio.abc import Process

HERE = Path(__file__).parent


#: Where a test's broker binds: a port the system picks free as it binds (no
#: window for another process to take it); ``await sz.broker()`` says which,
#: and the broker keeps it when it restarts.
ANY_PORT = "tcp://127.0.0.1:*"


def free_endpoint() -> str:
    """A loopback TCP endpoint nobody listens on (yet), for what binds later.

    A race: another process may take the port before it is bound. Only for a
    worker that must know its broker's endpoint before any broker exists;
    everything else binds ``ANY_PORT`` and reads the endpoint back.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline, not a call's
    what: str = "",
) -> None:
    """``wait_until`` with the deadline these tests need; ``what`` names ``check``.

    For evidence in another process (a worker's registration, a file), which
    no event here can announce. The default deadline is longer than
    ``wait_until``'s: a worker process takes about half a second to start.
    """
    await wait_until(check, timeout=timeout, message=what or None)


class WorkerProcess:
    """One ``sz worker`` subprocess serving ``workload``."""

    def __init__(self, process: Process, name: str) -> None:
        self.process = process
        self.name = name

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        if self.process.returncode is None:
            os.kill(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no cleanup."""
        self.signal(signal.SIGKILL)

    async def wait(self) -> int:
        return await self.process.wait()

    async def output(self) -> str:
        """What it wrote to stderr (its log), once it has exited."""
        assert self.process.stderr is not None
        chunks = [chunk async for chunk in self.process.stderr]
        return b"".join(chunks).decode(errors="replace")


@pytest.fixture
async def spawn_worker() -> AsyncIterator[Callable[..., Awaitable[WorkerProcess]]]:
    """Start ``sz worker`` subprocesses; every one is killed at teardown."""
    started: list[WorkerProcess] = []

    async def spawn(
        endpoint: str,
        *,
        name: str,
        capacity: int = 1,
        backend: str = "asyncio",
        heartbeat: float = 0.2,
        tasks: list[str] | None = None,
        key: Path | None = None,
        server_key: Path | None = None,
        extra: list[str] | None = None,
        prefix: list[str] | None = None,
    ) -> WorkerProcess:
        # ``prefix`` runs it through another program (``ip netns exec NS``),
        # which must exec the worker so that the pid is the worker's.
        command: list[Any] = [
            *(prefix or []),
            sys.executable,
            "-m",
            "sz",
            "worker",
            endpoint,
            "workload",
            "--name",
            name,
            "--capacity",
            str(capacity),
            "--backend",
            backend,
            "--heartbeat",
            str(heartbeat),
        ]
        if tasks:
            command += ["--tasks", ",".join(tasks)]
        if key is not None and server_key is not None:
            command += ["--key", str(key), "--server-key", str(server_key)]
        command += extra or []
        process = await anyio.open_process(
            command,
            cwd=HERE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        worker = WorkerProcess(process, name)
        started.append(worker)
        return worker

    try:
        yield spawn
    finally:
        for worker in started:
            worker.kill()
        with anyio.CancelScope(shield=True):
            for worker in started:
                await worker.wait()
                await worker.process.aclose()
