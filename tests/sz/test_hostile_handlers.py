"""Hostile handlers: whatever a handler raises, it cannot take the scheduler down.

Each case runs a handler that raises something nasty (``SystemExit``,
``KeyboardInterrupt``, another ``BaseException``, an exception that cannot be
printed), async on the event loop and sync in a worker thread. What must hold:
the job ends ``failure`` with exactly one final history row that names the
exception, and the same scheduler then runs a normal job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from sz import JobFailed, ScheduleZero
from sz.jobs import describe_error, must_propagate

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.anyio

#: The bound on any single wait in these tests.
HANG = 10


class Unprintable(Exception):
    """An exception whose ``repr`` and ``str`` both raise."""

    def __repr__(self) -> str:
        raise ValueError("no repr for you")

    def __str__(self) -> str:
        raise ValueError("no str either")


class UnprintableExit(BaseException):
    """Not an ``Exception``, and ``repr`` raises ``SystemExit`` itself."""

    def __repr__(self) -> str:
        raise SystemExit("from repr")

    def __str__(self) -> str:
        raise SystemExit("from str")


class Custom(BaseException):
    """A ``BaseException`` of the user's own, neither exit nor interrupt."""


#: What each hostile handler raises, and what its history row must say.
HOSTILE: list[Any] = [
    pytest.param(lambda: SystemExit(3), "SystemExit(3)", id="system-exit"),
    pytest.param(KeyboardInterrupt, "KeyboardInterrupt()", id="keyboard-interrupt"),
    pytest.param(lambda: Custom("mine"), "Custom('mine')", id="base-exception"),
    pytest.param(
        lambda: BaseExceptionGroup("both", [KeyboardInterrupt(), ValueError("v")]),
        "BaseExceptionGroup('both', [KeyboardInterrupt(), ValueError('v')])",
        id="base-exception-group",
    ),
    pytest.param(
        Unprintable,
        "<Unprintable: unprintable (repr raised ValueError)>",
        id="unprintable",
    ),
    pytest.param(
        UnprintableExit,
        "<UnprintableExit: unprintable (repr raised SystemExit)>",
        id="unprintable-base-exception",
    ),
]


def register(
    sz: ScheduleZero, make: Callable[[], BaseException], *, sync: bool, **options: Any
) -> None:
    """``hostile`` raises what ``make`` makes; ``fine`` returns its argument."""
    if sync:

        def hostile() -> None:
            raise make()

        def fine(value: int) -> int:
            return value

    else:

        async def hostile() -> None:  # type: ignore[misc]
            raise make()

        async def fine(value: int) -> int:  # type: ignore[misc]
            return value

    sz.handler(hostile, name="hostile", **options)
    sz.handler(fine, name="fine")


async def hostile_job_fails_once(sz: ScheduleZero, text: str, attempts: int) -> None:
    """Run ``hostile``: it fails, with one final row; then ``fine`` still runs."""
    with pytest.raises(JobFailed) as failed:
        await sz.run_now("hostile", timeout=HANG)
    assert failed.value.outcome == "failure"
    # "job <id> of task 'hostile' ended with failure"
    job_id = str(failed.value).split()[1]
    rows = sorted(await sz.history(job_id=job_id), key=lambda row: row.attempt)
    assert [(row.attempt, row.outcome, row.final) for row in rows] == [
        (n, "failure", n == attempts) for n in range(1, attempts + 1)
    ]
    assert [row.error for row in rows] == [text] * attempts
    assert len(await sz.history(job_id=job_id, final=True)) == 1
    assert await sz.run_now("fine", args=[7], timeout=HANG) == 7


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize(("make", "text"), HOSTILE)
async def test_a_hostile_handler_fails_its_job_once_and_the_scheduler_runs_on(
    make: Callable[[], BaseException], text: str, sync: bool
) -> None:
    sz = ScheduleZero()
    register(sz, make, sync=sync)
    async with sz:
        await hostile_job_fails_once(sz, text, attempts=1)
        # Twice: the handler that raised is still there and still serves.
        await hostile_job_fails_once(sz, text, attempts=1)


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_a_hostile_handler_with_retries_fails_each_attempt_and_ends_once(
    sync: bool,
) -> None:
    sz = ScheduleZero()
    register(sz, lambda: SystemExit(3), sync=sync, retries=2)
    async with sz:
        await hostile_job_fails_once(sz, "SystemExit(3)", attempts=3)


async def test_the_job_failed_error_keeps_the_hostile_exception_as_its_cause() -> None:
    sz = ScheduleZero()
    register(sz, lambda: SystemExit(3), sync=False)
    async with sz:
        with pytest.raises(JobFailed) as failed:
            await sz.run_now("hostile", timeout=HANG)
    cause = failed.value.__cause__
    assert isinstance(cause, SystemExit)
    assert cause.code == 3


async def test_a_hostile_handler_with_a_timeout_still_fails_its_job_once() -> None:
    sz = ScheduleZero()
    register(sz, KeyboardInterrupt, sync=True, timeout=HANG)
    async with sz:
        await hostile_job_fails_once(sz, "KeyboardInterrupt()", attempts=1)


# ---------------------------------------------------------------- the helpers


def test_describe_error_is_the_repr_of_a_printable_exception() -> None:
    assert describe_error(ValueError("x")) == "ValueError('x')"
    assert describe_error(SystemExit(3)) == "SystemExit(3)"


def test_describe_error_names_the_type_when_repr_raises() -> None:
    assert describe_error(Unprintable()) == (
        "<Unprintable: unprintable (repr raised ValueError)>"
    )
    assert describe_error(UnprintableExit()) == (
        "<UnprintableExit: unprintable (repr raised SystemExit)>"
    )


async def a_cancellation() -> BaseException:
    """A real cancellation of the running backend (trio's has no constructor)."""
    caught: list[BaseException] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class() as exc:
            caught.append(exc)
            raise
    return caught[0]


async def test_must_propagate_the_runtime_cancellation_and_groups_holding_it() -> None:
    cancelled = await a_cancellation()
    assert must_propagate(cancelled)
    assert must_propagate(BaseExceptionGroup("g", [KeyboardInterrupt(), cancelled]))
    nested = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [cancelled])])
    assert must_propagate(nested)
    assert must_propagate(GeneratorExit())
    for error in (
        SystemExit(3),
        KeyboardInterrupt(),
        Custom(),
        ValueError("v"),
        BaseExceptionGroup("g", [KeyboardInterrupt()]),
    ):
        assert not must_propagate(error)
