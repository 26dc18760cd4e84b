"""``sz serve`` drains on SIGTERM, and ends even while a sync handler never returns.

Real processes; nothing waits by sleeping: each step waits for a line of output.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import anyio
import pytest

from sz.cli import THREAD_GRACE

from .logged import crash_tracebacks
from .test_store_recovery import serving

if TYPE_CHECKING:
    from pathlib import Path

#: A sleeper and a CPU hog: neither returns, and no timeout is set.
STUCK = """\
import os
import time


def sleeper(**kwargs):
    print("sleeper started", flush=True)
    time.sleep(3600)


def hog(**kwargs):
    print("hog started", flush=True)
    while True:
        pass


def gated(**kwargs):
    # Ends once the test lets it (creates the file): work that outlasts SIGTERM.
    print("gated started", flush=True)
    while not os.path.exists("open"):
        time.sleep(0.01)
"""
CONFIG = """\
handlers:
  builtin:
    - {module: stuck, methods: [sleeper, hog, gated]}
schedules:
  - {id: sleepy, task: sleeper, interval: {hours: 1}}
  - {id: greedy, task: hog, interval: {hours: 1}}
"""
GATED = """\
handlers:
  builtin:
    - {module: stuck, methods: [gated]}
schedules:
  - {id: gate, task: gated, interval: {hours: 1}}
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
def gated_config(stuck_config: Path) -> Path:
    """The same, with a config that runs only the handler the test lets end."""
    (stuck_config / "config.yaml").write_text(GATED)
    return stuck_config


@pytest.fixture
def backend(anyio_backend: tuple[str, dict[str, object]]) -> str:
    return anyio_backend[0]


async def test_sz_serve_exits_on_sigterm_while_sync_handlers_never_return(
    stuck_config: Path, backend: str
) -> None:
    assert BOUND > THREAD_GRACE * 3
    async with serving(
        stuck_config,
        *("--backend", backend, "-c", "config.yaml", "--store", "memory"),
        *("--drain-timeout", "0.5"),
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
    timed_out = [line for line in serve.lines if "drain timed out" in line]
    assert len(timed_out) == 2, out[-4000:]
    assert any("task sleeper" in line for line in timed_out)
    assert any("task hog" in line for line in timed_out)


async def test_sz_serve_lets_a_running_job_end_before_it_exits(
    gated_config: Path, backend: str
) -> None:
    stuck_config = gated_config
    async with serving(
        stuck_config, "--backend", backend, "-c", "config.yaml", "--store", "memory"
    ) as serve:
        await serve.wait_for_line("gated started")
        serve.process.send_signal(signal.SIGTERM)
        await serve.wait_for_line("draining: 1 job(s) running")
        await anyio.Path(stuck_config / "open").touch()
        with anyio.fail_after(BOUND):
            code = await serve.process.wait()
        await serve.wait_for(lambda: serve.ended, "end of output")
    out = serve.output
    assert code == 0, out[-4000:]
    assert "stopped cleanly" in out
    assert "drain timed out" not in out
    ended = [line for line in serve.lines if "gated attempt 1 on gated" in line]
    assert len(ended) == 1, out[-4000:]
    assert ": success" in ended[0]


async def test_a_second_signal_stops_sz_serve_without_waiting_for_the_drain(
    gated_config: Path, backend: str
) -> None:
    stuck_config = gated_config
    async with serving(
        stuck_config,
        *("--backend", backend, "-c", "config.yaml", "--store", "memory"),
        *("--drain-timeout", "3600"),
    ) as serve:
        await serve.wait_for_line("gated started")
        serve.process.send_signal(signal.SIGTERM)
        await serve.wait_for_line("draining: 1 job(s) running")
        serve.process.send_signal(signal.SIGINT)
        with anyio.fail_after(BOUND):
            code = await serve.process.wait()
        await serve.wait_for(lambda: serve.ended, "end of output")
    out = serve.output
    assert code == 0, out[-4000:]
    assert "received SIGINT again: stopping at once" in out
    assert "stopped cleanly" in out
    assert "Traceback" not in out


async def test_sz_serve_runs_jobs_and_exits_zero_within_two_seconds_of_sigterm(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, "--interval", "0.05") as serve:
        await serve.wait_for(
            lambda: any("echo attempt 1 on echo: success" in x for x in serve.lines),
            "an echo job's success",
        )
        serve.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(2):
            code = await serve.process.wait()
        await serve.wait_for(lambda: serve.ended, "end of output")
    assert code == 0, serve.output[-4000:]
    assert "stopped cleanly" in serve.output
    # The demo's fail job is logged with its traceback; anything else is a crash.
    assert crash_tracebacks(serve.output) == []
