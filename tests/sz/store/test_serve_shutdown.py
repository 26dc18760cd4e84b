"""``sz serve`` ends on SIGTERM even while a sync handler never returns.

Real processes; nothing waits by sleeping: each step waits for a line of output.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import anyio
import pytest

from sz.cli import THREAD_GRACE

from .test_store_recovery import serving

if TYPE_CHECKING:
    from pathlib import Path

#: A sleeper and a CPU hog: neither returns, and no timeout is set.
STUCK = """\
import time


def sleeper(**kwargs):
    print("sleeper started", flush=True)
    time.sleep(3600)


def hog(**kwargs):
    print("hog started", flush=True)
    while True:
        pass
"""
CONFIG = """\
handlers:
  builtin:
    - {module: stuck, methods: [sleeper, hog]}
schedules:
  - {id: sleepy, task: sleeper, interval: {hours: 1}}
  - {id: greedy, task: hog, interval: {hours: 1}}
"""
#: Seconds from SIGTERM to exit, far above THREAD_GRACE: a loaded machine passes.
BOUND = 15.0


@pytest.fixture
def stuck_config(tmp_path: Path) -> Path:
    """A working directory with the stuck handlers and a config that runs both."""
    (tmp_path / "stuck.py").write_text(STUCK)
    (tmp_path / "config.yaml").write_text(CONFIG)
    return tmp_path


@pytest.fixture
def backend(anyio_backend: tuple[str, dict[str, object]]) -> str:
    return anyio_backend[0]


async def test_sz_serve_exits_on_sigterm_while_sync_handlers_never_return(
    stuck_config: Path, backend: str
) -> None:
    assert BOUND > THREAD_GRACE * 3
    async with serving(
        stuck_config, "--backend", backend, "-c", "config.yaml", "--store", "memory"
    ) as serve:
        await serve.wait_for_line("sleeper started")
        await serve.wait_for_line("hog started")
        serve.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(BOUND):
            code = await serve.process.wait()
        await serve.wait_for(lambda: serve.ended, "end of output")
    out = serve.output
    assert code == 0, out[-4000:]
    assert "stopped cleanly" in out
    assert "Traceback" not in out
    abandoned = [line for line in serve.lines if "abandoned job" in line]
    assert len(abandoned) == 2, out[-4000:]
    assert any("handler sleeper" in line and "sleepy" in line for line in abandoned)
    assert any("handler hog" in line and "greedy" in line for line in abandoned)
