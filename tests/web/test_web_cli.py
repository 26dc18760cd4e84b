"""``sz serve`` and the gateway: real processes, real sockets on 127.0.0.1.

The ``sz`` command is ``web.cli:main`` (``python -m web``); ``python -m sz`` is
the scheduler's own command line, without the gateway. Each server runs on the
test's backend; nothing waits by sleeping: each step waits for a line.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from subprocess import PIPE, STDOUT
from typing import TYPE_CHECKING

import anyio
import pytest
from web_http import http

from actors.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from anyio.abc import Process

SZ = [sys.executable, "-m", "web"]
CORE = [sys.executable, "-m", "sz"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
PATIENCE = 20.0
DASHBOARD = re.compile(r"dashboard: (http://127\.0\.0\.1:(\d+))/")


class Output:
    """A process's merged output, read as it comes so the pipe never fills."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.text = ""

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for chunk in self.process.stdout:
            self.text += chunk.decode(errors="replace")

    async def wait_for(self, needle: str) -> None:
        await wait_until(
            lambda: needle in self.text,
            timeout=PATIENCE,
            message=f"{needle!r} did not appear in:\n{self.text}",
        )


@asynccontextmanager
async def running(command: list[str], cwd: Path) -> AsyncIterator[Output]:
    async with (
        await anyio.open_process(
            command, cwd=cwd, stdout=PIPE, stderr=STDOUT, env=ENV
        ) as process,
        anyio.create_task_group() as tg,
    ):
        output = Output(process)
        tg.start_soon(output.read)
        try:
            yield output
        finally:
            if process.returncode is None:
                process.kill()


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (Linux: its sockets in /proc)."""
    sockets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            with_link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed since it was listed: the process runs on
        if with_link.startswith("socket:["):
            sockets.add(with_link[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in sockets:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def stop(output: Output) -> None:
    output.process.send_signal(signal.SIGTERM)
    with anyio.fail_after(PATIENCE):
        assert await output.process.wait() == 0, output.text
    assert "stopped cleanly" in output.text


async def test_sz_serve_logs_the_dashboards_url_and_the_api_answers_there(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    command = [*SZ, "serve", "--web", "127.0.0.1:0", "--backend", anyio_backend_name]
    async with running(command, tmp_path) as output:
        await output.wait_for("actor tree")
        found = DASHBOARD.search(output.text)
        assert found is not None, output.text
        url, port = found[1], int(found[2])
        answer = await http("GET", f"{url}/api/summary")
        assert answer.status == 200
        assert answer.json()["schedules"]["total"] == 3  # the demo's
        ports = await anyio.to_thread.run_sync(listening_ports, output.process.pid)
        assert ports == {port}
        await stop(output)


async def test_sz_serve_no_web_listens_on_no_port(tmp_path: Path) -> None:
    async with running([*SZ, "serve", "--no-web"], tmp_path) as output:
        await output.wait_for("actor tree")
        ports = await anyio.to_thread.run_sync(listening_ports, output.process.pid)
        assert ports == set()
        assert "dashboard" not in output.text
        await stop(output)


async def test_python_m_sz_serve_says_it_serves_no_gateway(tmp_path: Path) -> None:
    async with running([*CORE, "serve", "--web", "127.0.0.1:0"], tmp_path) as output:
        await output.wait_for("actor tree")
        assert "web gateway: not served by python -m sz" in output.text
        ports = await anyio.to_thread.run_sync(listening_ports, output.process.pid)
        assert ports == set()
        await stop(output)


async def refused(command: list[str], cwd: Path) -> str:
    """Run ``command`` expecting exit code 2; its stderr, which is one line."""
    with anyio.fail_after(PATIENCE):
        result = await anyio.run_process(command, cwd=cwd, env=ENV, check=False)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.count("\n") == 1, stderr
    return stderr.strip()


async def test_sz_serve_beyond_this_machine_without_a_token_exits_two(
    tmp_path: Path,
) -> None:
    stderr = await refused([*SZ, "serve", "--web", "0.0.0.0:0"], tmp_path)
    assert stderr == (
        "sz serve: web gateway: refusing to listen on 0.0.0.0 without a token: "
        "set web.token (16 characters or more), or listen on 127.0.0.1"
    )
    # Refused before anything started: no store was made.
    assert not await anyio.Path(tmp_path / "schedulezero.db").exists()


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


async def test_sz_serve_on_a_taken_port_exits_two_in_one_line(
    tmp_path: Path, taken_port: int, anyio_backend_name: str
) -> None:
    command = [*SZ, "serve", "--web", f"127.0.0.1:{taken_port}"]
    stderr = await refused([*command, "--backend", anyio_backend_name], tmp_path)
    assert stderr == (
        f"sz serve: web gateway: cannot listen on http://127.0.0.1:{taken_port}: "
        "address already in use"
    )
    assert not await anyio.Path(tmp_path / "schedulezero.db").exists()


async def test_a_short_token_in_the_config_exits_two_without_showing_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    await anyio.Path(config).write_text(
        "web:\n  host: 0.0.0.0\n  port: 0\n  token: too-short\n"
    )
    stderr = await refused([*SZ, "serve", "-c", str(config)], tmp_path)
    assert stderr == (
        f"sz serve: {config}: web.token: expected a token of at least 16 "
        "characters without spaces, got 9 characters (not shown)"
    )
