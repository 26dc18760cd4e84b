"""What ``sz serve`` and ``sz worker`` log, and how: levels, text and JSON lines."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from sz.history import log_attempt
from sz.jobs import Attempt
from sz.logs import configure_logging

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SZ = [sys.executable, "-c", "from sz.cli import main; main()"]


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger (pytest's capture included) back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    apscheduler = logging.getLogger("apscheduler").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(apscheduler)


def row(outcome: Any, **changes: Any) -> Attempt:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "job_id": "4f1c2a9e0b7d6c5e00000001",
        "schedule_id": "nightly",
        "task": "report",
        "handler": "report",
        "scheduled_at": now,
        "started_at": now,
        "finished_at": now,
        "duration": 0.0125,
        "outcome": outcome,
        "error": None,
        "attempt": 1,
        "final": True,
    }
    fields.update(changes)
    return Attempt(**fields)


def test_json_lines_carry_time_level_logger_message_and_the_jobs_fields(
    root_logging: None,
) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out)
    log_attempt(row("failure", error="RuntimeError('boom')", final=False))
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "sz.history"
    assert record["message"].startswith("job 4f1c2a9e0b7d6c5e00000001 report attempt 1")
    assert datetime.fromisoformat(record["time"]).tzinfo is not None
    assert {k: record[k] for k in ("job_id", "task", "attempt", "outcome")} == {
        "job_id": "4f1c2a9e0b7d6c5e00000001",
        "task": "report",
        "attempt": 1,
        "outcome": "failure",
    }
    assert record["error"] == "RuntimeError('boom')"
    assert record["schedule_id"] == "nightly"
    assert record["duration_ms"] == pytest.approx(12.5)


def test_a_traceback_goes_into_one_json_line(root_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out)
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("sz").exception("it went wrong")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "it went wrong"
    assert "ValueError: bad value" in record["exc_info"]


def test_text_lines_have_time_level_logger_and_message(root_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", out)
    log_attempt(row("success"))
    (line,) = out.getvalue().splitlines()
    assert " INFO    sz.history: job 4f1c2a9e0b7d6c5e00000001 report attempt 1 " in line
    assert line.endswith("on report: success in 12.5 ms")


def test_failures_are_warnings_and_successes_info(root_logging: None) -> None:
    out = io.StringIO()
    configure_logging("WARNING", "text", out)
    log_attempt(row("success"))
    log_attempt(row("coalesced", reason="coalesce_latest"))
    for trouble in ("failure", "timeout", "abandoned", "no_healthy_handler"):
        log_attempt(row(trouble))
    lines = out.getvalue().splitlines()
    assert [line.split(": ")[-1].split(" ")[0] for line in lines] == [
        "failure",
        "timeout",
        "abandoned",
        "no_healthy_handler",
    ]


def test_job_ids_in_the_log_are_whole_so_each_job_is_told_apart(
    root_logging: None,
) -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", out)
    log_attempt(row("success", job_id="4f1c2a9e0b7d6c5e00000001"))
    log_attempt(row("success", job_id="4f1c2a9e0b7d6c5e00000002"))
    first, second = out.getvalue().splitlines()
    assert "4f1c2a9e0b7d6c5e00000001" in first
    assert "4f1c2a9e0b7d6c5e00000002" in second


def test_apscheduler_is_kept_to_warnings_unless_a_stricter_level_is_asked(
    root_logging: None,
) -> None:
    configure_logging("DEBUG", "text", io.StringIO())
    assert logging.getLogger("apscheduler").level == logging.WARNING
    configure_logging("ERROR", "text", io.StringIO())
    assert logging.getLogger("apscheduler").level == logging.ERROR


def test_the_library_leaves_logging_alone_when_embedded() -> None:
    # Importing and building a scheduler adds no handler anywhere.
    code = (
        "import logging; import sz; sz.ScheduleZero(); "
        "print(len(logging.getLogger().handlers), logging.getLogger().level)"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["0", str(logging.WARNING)]


FAILING = """\
schedules:
  - {id: doomed, task: fail, interval: {hours: 1}, args: {probability: 1.0}}
handlers:
  builtin:
    - {module: sz.builtin, methods: [fail]}
"""


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(FAILING)
    return tmp_path


async def serve_lines(cwd: Path, *args: str, until: str) -> list[str]:
    """Run ``sz serve *args`` until a line holds ``until``; SIGTERM; every line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    async with await anyio.open_process(
        [*SZ, "serve", "-c", "config.yaml", "--store", "memory", *args],
        cwd=cwd,
        stderr=-2,
        env=env,
    ) as process:
        assert process.stdout is not None
        seen = ""
        with anyio.fail_after(20):
            async for chunk in process.stdout:
                seen += chunk.decode()
                if until in seen:
                    break
            process.send_signal(signal.SIGTERM)
            async for chunk in process.stdout:
                seen += chunk.decode()
            assert await process.wait() == 0, seen
    return seen.splitlines()


async def test_sz_serve_logs_json_lines_with_the_failed_jobs_fields(
    failing: Path,
) -> None:
    lines = await serve_lines(
        failing, "--log-format", "json", until='"outcome": "failure"'
    )
    records = [json.loads(line) for line in lines]  # every line is one object
    failed = [r for r in records if r.get("outcome") == "failure"]
    assert failed, lines
    assert failed[0]["level"] == "WARNING"
    assert failed[0]["logger"] == "sz.history"
    assert failed[0]["task"] == "fail"
    assert failed[0]["schedule_id"] == "doomed"
    assert "failed on purpose" in failed[0]["error"]
    assert any(
        r["message"] == "store: memory (nothing outlives the process)" for r in records
    )
    assert records[-1]["message"] == "stopped cleanly"


async def test_sz_serve_at_warning_logs_the_failure_and_nothing_routine(
    failing: Path,
) -> None:
    lines = await serve_lines(
        failing, "--log-level", "warning", until="fail attempt 1 on fail: failure"
    )
    assert any("WARNING sz.history: job " in line for line in lines), lines
    assert not any(" INFO " in line for line in lines), lines
