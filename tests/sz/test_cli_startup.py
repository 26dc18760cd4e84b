"""What ``sz serve`` refuses at start, ``sz check-config`` refuses too: one line, 2.

Real processes in a fresh working directory; nothing waits by sleeping.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import anyio
import pytest

from actors import ActorCrashed
from sz import SzError
from sz.config import MAX_CONFIG_BYTES, MAX_CONFIG_NODES
from sz.errors import refusal_in

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from anyio.abc import Process

SZ = [sys.executable, "-c", "from sz.cli import main; main()"]
#: As an installed ``sz`` script runs: the working directory not on sys.path.
SZ_SCRIPT = [sys.executable, "-P", "-c", "from sz.cli import main; main()"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

HANDLERS = "handlers:\n  builtin:\n    - {module: myjobs, methods: [echo]}\n"
MYJOBS = "def echo(*args, **kwargs):\n    return args\n"


@pytest.fixture(autouse=True)
def _in_a_directory_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myjobs.py").write_text(MYJOBS)


@pytest.fixture
def backend(anyio_backend: tuple[str, dict[str, object]]) -> str:
    return anyio_backend[0]


def schedule(when: str) -> str:
    return f"{HANDLERS}schedules:\n  - {{id: s, task: echo, {when}}}\n"


#: Schedule arguments: nine anchors, each repeating the one before ten times
#: (``x8``: 10**9 values).
ALIAS_BOMB = "".join(
    f"      x{n}: &l{n} [{', '.join([f'*l{n - 1}' if n else 'lol'] * 10)}]\n"
    for n in range(9)
)

#: Configs ``sz serve`` refuses at start, and the line that says why.
REFUSED = {
    "crontab-field": (
        schedule("cron: '99 * * * *'"),
        "schedules[0] (s): bad crontab '99 * * * *'",
    ),
    "crontab-weekday": (schedule("cron: '* * * * 8'"), "schedules[0] (s): "),
    "interval-overflow": (
        schedule("interval: {weeks: 1.0e+300}"),
        "schedules[0] (s): ",
    ),
    "interval-past-any-date": (
        schedule("interval: {days: 100000000}"),
        "schedules[0] (s): ",
    ),
    "interval-infinite": (
        schedule("interval: {seconds: .inf}"),
        "schedules[0].interval.seconds: expected a number > 0, got inf",
    ),
    "unknown-task": (
        f"{HANDLERS}schedules:\n  - {{id: s, task: nope, cron: '* * * * *'}}\n",
        # Both list sz.scenario after echo: sz serve serves scheduled
        # scenario runs, and check-config knows it.
        (
            "schedules[0] (s): no handler for task 'nope' (registered: echo, "
            "sz.scenario)"
        ),
    ),
    "retention": (
        "reporting:\n  metrics:\n    retention_days: 100000000000\n",
        "reporting.metrics.retention_days: expected an integer from 1 to",
    ),
    "duplicate-key": (
        "web:\n  port: 80\nweb:\n  port: 81\n",
        "line 3, column 1: invalid YAML: duplicate key 'web' (first on line 1)",
    ),
    "too-deep": ("x: " + "[" * 50_000 + "]" * 50_000, "nested deeper than 32"),
    "too-big": ("#" * (MAX_CONFIG_BYTES + 1), "larger than 1048576 bytes"),
    # "Billion laughs": 10**9 values once its aliases are expanded.
    "alias-bomb": (
        (
            f"{HANDLERS}schedules:\n  - id: s\n    task: echo\n"
            f"    interval: {{seconds: 5}}\n    args:\n{ALIAS_BOMB}"
        ),
        f"invalid YAML: more than {MAX_CONFIG_NODES} values with its aliases",
    ),
    "module-syntax-error": (
        HANDLERS.replace("myjobs", "broken"),
        "handlers.builtin: cannot import broken: '(' was never closed (",
    ),
    "module-raises": (
        HANDLERS.replace("myjobs", "raising"),
        "handlers.builtin: cannot import raising: RuntimeError: no database (",
    ),
}

RAISING = (
    "import os\n\n\ndef echo():\n    return 1\n\n\nraise RuntimeError('no database')\n"
)
MODULES = {
    "broken": ("def echo():\n    return (\n", "broken.py, line 2)"),
    "raising": (
        RAISING,
        "raising.py, line 8)",
    ),
}


def write_config(tmp_path: Path, case: str) -> str:
    for name, (source, _where) in MODULES.items():
        (tmp_path / f"{name}.py").write_text(source)
    (tmp_path / "config.yaml").write_text(REFUSED[case][0])
    return "config.yaml"


def check_line(stderr: str, prefix: str, case: str) -> None:
    """One line: the prefix, what is wrong, and the file and line where."""
    assert "Traceback" not in stderr
    line = stderr.strip()
    assert "\n" not in line, stderr
    assert line.startswith(prefix), line
    assert REFUSED[case][1] in line
    for module, (_source, where) in MODULES.items():
        if f"cannot import {module}" in line:
            assert line.endswith(where), line


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_check_config_refuses_what_sz_serve_refuses_in_one_line(
    tmp_path: Path, case: str
) -> None:
    config = write_config(tmp_path, case)
    result = subprocess.run(
        [*SZ, "check-config", config], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2, result.stderr
    check_line(result.stderr, "config.yaml: ", case)


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_sz_serve_refuses_at_start_in_one_line_with_exit_code_two(
    tmp_path: Path, case: str, backend: str
) -> None:
    config = await anyio.to_thread.run_sync(write_config, tmp_path, case)
    result = await anyio.run_process(
        [*SZ_SCRIPT, "serve", "-c", config, "--store", "memory", "--backend", backend],
        check=False,
    )
    assert result.returncode == 2, result.stderr.decode()
    check_line(result.stderr.decode(), "sz serve: ", case)


def test_check_config_accepts_what_sz_serve_starts(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(schedule("interval: {days: 3000}"))
    result = subprocess.run(
        [*SZ_SCRIPT, "check-config", "config.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "config.yaml: ok (scheduler mode embedded)\n"


#: A config schedule of recurring scenario runs, as ``sz serve`` serves them.
SCENARIO_SCHEDULE = (
    f"{HANDLERS}schedules:\n"
    "  - {id: nightly, task: sz.scenario, cron: '0 3 * * *', "
    "args: {scenario: soak}}\n"
)


def test_check_config_knows_the_sz_scenario_task_that_sz_serve_serves(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.yaml").write_text(SCENARIO_SCHEDULE)
    result = subprocess.run(
        [*SZ_SCRIPT, "check-config", "config.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "config.yaml: ok (scheduler mode embedded)\n"


async def read_until(process: Process, *needles: str) -> str:
    assert process.stdout is not None
    seen = ""
    with anyio.fail_after(20):
        async for chunk in process.stdout:
            seen += chunk.decode()
            if all(needle in seen for needle in needles):
                return seen
    raise AssertionError(f"{needles!r} did not all appear in:\n{seen}")


async def serve_until(backend: str, text: str, *needles: str) -> str:
    """``sz serve -c`` TEXT, as the installed script runs, until NEEDLES; its log."""
    await anyio.Path("config.yaml").write_text(text)
    argv = [*SZ_SCRIPT, "serve", "-c", "config.yaml", "--store", "memory"]
    async with await anyio.open_process(
        [*argv, "--backend", backend], stderr=subprocess.STDOUT, env=ENV
    ) as process:
        seen = await read_until(process, *needles, "actor tree:")
        # It listens for SIGTERM before it says it runs: a clean stop, exit 0.
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(5):
            await process.wait()
        assert process.returncode == 0, seen
    return seen


async def test_sz_serve_imports_handler_modules_from_the_working_directory(
    backend: str,
) -> None:
    seen = await serve_until(backend, schedule("cron: '* * * * *'"), "schedule s: echo")
    assert "Traceback" not in seen


async def test_sz_serve_starts_the_config_schedule_of_scenario_runs_it_checked(
    backend: str,
) -> None:
    seen = await serve_until(
        backend, SCENARIO_SCHEDULE, "schedule nightly: sz.scenario"
    )
    assert "Traceback" not in seen


async def test_sz_serve_logs_a_summary_not_a_line_per_schedule_when_there_are_many(
    backend: str,
) -> None:
    many = "".join(
        f"  - {{id: s{n}, task: echo, interval: {{minutes: {n + 1}}}}}\n"
        for n in range(25)
    )
    seen = await serve_until(
        backend,
        f"{HANDLERS}schedules:\n{many}",
        "25 schedules (0 paused), the next fire at 2",
    )
    assert "schedule s1:" not in seen


async def test_sz_serve_whose_broker_port_is_taken_says_one_line_and_no_traceback(
    backend: str,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text = (
            "scheduler: {mode: distributed}\nhandlers:\n  zmq:\n"
            f"    registration_server: tcp://127.0.0.1:{port}\n"
        )
        await anyio.Path("config.yaml").write_text(text)
        result = await anyio.run_process(
            [
                *SZ,
                "serve",
                "-c",
                "config.yaml",
                "--store=memory",
                f"--backend={backend}",
            ],
            check=False,
        )
    assert result.returncode == 2
    stderr = result.stderr.decode()
    # Once the broker's and its supervisor's crashes came first, at ERROR, each
    # with its traceback.
    assert "Traceback" not in stderr, stderr
    *before, line = stderr.strip().splitlines()
    # Only the start-up's INFO lines (the store in use) come before it.
    assert [x for x in before if " INFO " not in x] == [], stderr
    assert line.startswith("sz serve: the broker cannot start: "), line
    assert f"cannot bind tcp://127.0.0.1:{port}: " in line


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["serve", "--store", ""], "argument --store: store url ''"),
        (["serve", "--store", "mysql://x"], "argument --store: store url"),
        (["serve", "--interval", "inf"], "expected a finite number, got 'inf'"),
        (["serve", "--interval", "nan"], "expected a finite number, got 'nan'"),
        (
            ["serve", "--drain-timeout", "-1"],
            "argument --drain-timeout: expected seconds from 0 to 3600, got '-1'",
        ),
        (
            ["serve", "--drain-timeout", "nan"],
            "argument --drain-timeout: expected seconds from 0 to 3600, got 'nan'",
        ),
        (
            ["worker", "tcp://127.0.0.1:5999", "myjobs", "--drain-timeout", "0"],
            "argument --drain-timeout: expected a number > 0, got '0'",
        ),
        (
            ["worker", "tcp://127.0.0.1:5999", "myjobs", "--heartbeat", "inf"],
            "argument --heartbeat: expected a finite number, got 'inf'",
        ),
    ],
)
def test_bad_cli_numbers_and_stores_exit_two_naming_them(
    argv: list[str], complaint: str
) -> None:
    result = subprocess.run([*SZ, *argv], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


def groups() -> Iterator[BaseException]:
    refusal = SzError("the broker cannot start")
    yield refusal
    yield ExceptionGroup("x", [refusal])
    yield BaseExceptionGroup("x", [ExceptionGroup("y", [refusal])])
    crashed = ActorCrashed("/user/x failed to start")
    crashed.__cause__ = refusal
    yield ExceptionGroup("x", [crashed])


@pytest.mark.parametrize("error", list(groups()))
def test_a_refusal_is_found_in_exception_groups_and_causes(
    error: BaseException,
) -> None:
    found = refusal_in(error)
    assert isinstance(found, SzError)
    assert str(found) == "the broker cannot start"


def test_a_group_holding_anything_but_refusals_is_no_refusal() -> None:
    group = ExceptionGroup("x", [SzError("no"), ZeroDivisionError()])
    assert refusal_in(group) is None
    assert refusal_in(RuntimeError("bug")) is None
