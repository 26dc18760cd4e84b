"""A failure's row carries its traceback, and the log prints it once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

import transport
from sz import JobFailed, ScheduleZero
from sz.jobs import MAX_TRACEBACK, describe_traceback

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def deep(n: int) -> None:
    if n == 0:
        raise ValueError("bottom of the well")
    deep(n - 1)


async def failing_async(depth: int) -> None:
    deep(depth)


def failing_sync(depth: int) -> None:
    deep(depth)


@pytest.mark.parametrize("func", [failing_async, failing_sync])
async def test_a_failure_row_has_the_traceback_and_the_log_prints_it_once(
    tmp_path: Path, func: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    sz = ScheduleZero(store=f"sqlite:///{tmp_path}/t.db")
    sz.handler(name="well")(func)
    caplog.set_level(logging.INFO, logger="sz.history")
    async with sz:
        with pytest.raises(JobFailed):
            await sz.run_now("well", args=[3])
        (row,) = await sz.history(task="well")
    assert row.traceback is not None
    assert row.traceback.startswith("Traceback (most recent call last):")
    assert row.traceback.rstrip().endswith("ValueError: bottom of the well")
    assert row.traceback.count("in deep") == 4  # the user's own frames
    # Not ScheduleZero's frames that led to the call: they say nothing of it.
    assert "sz/handlers.py" not in row.traceback
    assert "sz/threads.py" not in row.traceback
    records = [r for r in caplog.records if r.name == "sz.history"]
    (failure,) = [r for r in records if r.levelno == logging.WARNING]
    assert failure.exc_text is not None
    assert "ValueError: bottom of the well" in failure.exc_text
    assert sum("bottom of the well" in (r.exc_text or "") for r in records) == 1


async def test_a_success_row_has_no_traceback() -> None:
    sz = ScheduleZero()

    @sz.handler
    async def fine() -> int:
        return 1

    async with sz:
        await sz.run_now("fine")
        (row,) = await sz.history()
    assert row.traceback is None


def ping(n: int) -> None:
    # Two functions calling each other: frames Python does not fold together.
    pong(n - 1) if n else deep(0)


def pong(n: int) -> None:
    ping(n - 1) if n else deep(0)


def test_a_long_traceback_keeps_its_innermost_frames() -> None:
    try:
        ping(400)
    except ValueError as error:
        text = describe_traceback(error)
    assert text is not None
    assert len(text) <= MAX_TRACEBACK
    assert text.startswith("[")
    assert "characters of outer frames cut]" in text.splitlines()[0]
    assert text.rstrip().endswith("ValueError: bottom of the well")


def test_an_exception_never_raised_has_no_traceback() -> None:
    assert describe_traceback(ValueError("never raised")) is None


def test_tracebacks_are_cut_to_what_the_wire_takes() -> None:
    # A worker sends the text describe_traceback gives: it must always fit.
    assert MAX_TRACEBACK <= transport.MAX_TRACEBACK
