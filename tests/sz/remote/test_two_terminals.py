"""The two-terminal example of docs/guide/remote-workers.md, typed as a user would.

Real processes on loopback TCP with CURVE on, each on the test's backend.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import anyio
import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import Process

pytestmark = pytest.mark.anyio

CONFIG = """\
scheduler: {{mode: distributed}}
store: memory
handlers:
  zmq:
    registration_server: {endpoint}
    curve:
      server_secret_key: keys/server.key_secret
      workers: {{mailer: keys/mailer.key}}
schedules:
  - {{id: greet, task: greet, interval: {{seconds: 0.2}}, args: {{name: world}}}}
"""


def sz(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "sz", *arguments]


async def read_until(process: Process, *wanted: str, seen: list[str]) -> None:
    """Read the process's log until every line in ``wanted`` has appeared."""
    assert process.stderr is not None
    missing = list(wanted)
    buffer = ""
    async for chunk in process.stderr:
        buffer += chunk.decode(errors="replace")
        *lines, buffer = buffer.split("\n")
        seen.extend(lines)
        missing = [text for text in missing if not any(text in line for line in seen)]
        if not missing:
            return
    pytest.fail(f"the log ended without {missing}:\n" + "\n".join(seen))


async def test_the_readme_example_runs_a_job_on_a_curve_worker(
    tmp_path: Path, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    backend = anyio_backend[0]
    for name in ("server", "mailer"):
        made = await anyio.run_process(
            sz("keys", "generate", name, "--dir", "keys"), cwd=tmp_path
        )
        assert b"secret key: keys/" in made.stdout
    secret = await anyio.Path(tmp_path / "keys" / "mailer.key_secret").stat()
    assert secret.st_mode & 0o077 == 0  # readable by its owner only
    # Port *: the server picks a free port as it binds, and says which.
    await anyio.Path(tmp_path / "distributed.yaml").write_text(
        CONFIG.format(endpoint="tcp://127.0.0.1:*")
    )
    await anyio.Path(tmp_path / "tasks.py").write_text(
        'async def greet(name): return f"hello, {name}"\n'
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    serve_log: list[str] = []
    async with await anyio.open_process(
        sz("serve", "-c", "distributed.yaml", "--backend", backend),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
    ) as server:
        try:
            with anyio.fail_after(30):
                await read_until(server, "broker listening on tcp://", seen=serve_log)
        except BaseException:
            server.kill()
            raise
        (listening,) = [line for line in serve_log if "broker listening on" in line]
        endpoint = listening.split("broker listening on ")[1].split(",")[0]
        await run_worker(tmp_path, env, backend, endpoint, server, serve_log)
    assert not [line for line in serve_log if "Traceback" in line], serve_log


async def run_worker(
    tmp_path: Path,
    env: dict[str, str],
    backend: str,
    endpoint: str,
    server: Process,
    serve_log: list[str],
) -> None:
    """Start the worker at ``endpoint``; see a job done; stop both processes."""
    worker_log: list[str] = []
    async with await anyio.open_process(
        sz(
            "worker", endpoint, "tasks", "--name", "mailer", "--capacity", "4",
            "--key", "keys/mailer.key_secret", "--server-key", "keys/server.key",
            "--backend", backend,
        ),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
    ) as worker:  # fmt: skip
        try:
            with anyio.fail_after(30):
                await read_until(
                    server,
                    "worker mailer registered: greet, capacity 4",
                    "greet attempt 1 on mailer: success",
                    seen=serve_log,
                )
            worker.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                await read_until(worker, "stopped (", seen=worker_log)
                assert await worker.wait() == 0
                await read_until(server, "worker mailer left", seen=serve_log)
            server.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                assert await server.wait() == 0
        finally:
            for process in (server, worker):
                if process.returncode is None:
                    process.kill()
