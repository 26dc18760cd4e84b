"""The machine's stalls of the run's loop: read from the kernel, bounded from below."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from sz.jobs import Attempt
from sz.scenarios.checks import History, schedule_fidelity
from sz.scenarios.record import RunRecord, ScheduleRecord
from sz.scenarios.stalls import cpu_wait, cpu_wait_within


@pytest.mark.skipif(sys.platform != "linux", reason="Linux counts run-queue waits")
def test_a_threads_cpu_wait_is_read_and_only_grows() -> None:
    thread = threading.get_native_id()
    first = cpu_wait(thread)
    assert first is not None
    assert first >= 0.0
    sum(range(200_000))  # run a little, perhaps wait a little
    second = cpu_wait(thread)
    assert second is not None
    assert second >= first


def test_a_thread_that_is_not_there_has_no_cpu_wait() -> None:
    assert cpu_wait(2**31 - 1) is None


def test_a_stall_inside_the_span_counts_whole() -> None:
    # Read at 0.0, then (the loop stalled) at 1.2 s: 1 s of waiting between.
    reads = [(0.0, 0.0, 5.0), (1.2, 1.2, 6.0)]
    assert cpu_wait_within(reads, 0.0, 1.2) == pytest.approx(1.0)


def test_only_what_cannot_have_fallen_outside_the_span_counts() -> None:
    reads = [(0.0, 0.0, 5.0), (1.2, 1.2, 6.0)]
    # 1 s of wait in 1.2 s: at least 0.9 s of it in the 1.1 s from 0.1 s.
    assert cpu_wait_within(reads, 0.1, 1.5) == pytest.approx(0.9)
    # Half the span holds none of it for sure: the wait may all lie outside.
    assert cpu_wait_within(reads, 0.0, 0.1) == 0.0


def test_a_read_in_a_thread_counts_from_its_widest_span() -> None:
    # Each total was read somewhere between its two offsets: the wait between
    # two reads may lie anywhere from the first's start to the second's end.
    reads = [(0.0, 0.1, 5.0), (1.0, 1.3, 6.0)]
    assert cpu_wait_within(reads, 0.0, 1.3) == pytest.approx(1.0)
    assert cpu_wait_within(reads, 0.0, 1.0) == pytest.approx(0.7)


def test_waits_of_several_intervals_add_up_and_the_rest_is_left_out() -> None:
    reads = [(0.0, 0.0, 0.0), (0.2, 0.2, 0.1), (0.4, 0.4, 0.1), (1.4, 1.4, 1.0)]
    assert cpu_wait_within(reads, 0.0, 1.4) == pytest.approx(1.0)
    assert cpu_wait_within(reads, 0.4, 1.4) == pytest.approx(0.9)
    assert cpu_wait_within(reads, 2.0, 3.0) == 0.0
    assert cpu_wait_within([], 0.0, 1.0) == 0.0


def fire_late_by(record: RunRecord, due: float, late: float) -> History:
    """One schedule in ``record``; a history of one of its fires ``late`` s late.

    ``record`` is made on an event loop (it reads its clock): these tests are async.
    """
    record.schedules["s"] = ScheduleRecord(
        id="s",
        task="noop",
        trigger="interval",
        fields={"seconds": 1},
        grace=None,
        created_at=record.started_at,
    )
    moment = record.wall(due)
    started = record.wall(due + late)
    row = Attempt(
        job_id="j",
        schedule_id="s",
        task="noop",
        handler="noop",
        scheduled_at=moment,
        started_at=started,
        finished_at=started,
        duration=0.0,
        outcome="success",
        error=None,
        attempt=1,
        final=True,
    )
    return History([row])


def fidelity(record: RunRecord, history: History) -> dict[str, Any]:
    (row,) = history.rows
    return schedule_fidelity(record, history, [("s", row.scheduled_at, [row])], [])


@pytest.mark.anyio
async def test_a_fire_late_only_by_the_machines_stall_is_on_time() -> None:
    record = RunRecord(datetime.now(UTC))
    history = fire_late_by(record, due=1.0, late=1.3)
    # The loop waited a whole second for a CPU from 0.9 s to 2.1 s.
    record.cpu_waits[:] = [(0.9, 0.9, 3.0), (2.1, 2.1, 4.0)]
    check = fidelity(record, history)
    assert check["passed"] is True, check
    assert check["excused"] == 1
    assert check["drift"]["max"] == pytest.approx(1.3)
    assert check["own_drift"]["max"] == pytest.approx(1.3 - (1.0 - 0.1))
    assert check["machine_stall"] == pytest.approx(1.0)


@pytest.mark.anyio
async def test_a_fire_later_than_the_machines_stall_explains_is_late() -> None:
    record = RunRecord(datetime.now(UTC))
    history = fire_late_by(record, due=1.0, late=1.3)
    record.cpu_waits[:] = [(0.9, 0.9, 3.0), (2.1, 2.1, 3.2)]
    check = fidelity(record, history)
    assert check["passed"] is False
    assert check["late"] == 1
    assert check["excused"] == 0


@pytest.mark.anyio
async def test_without_counts_of_cpu_waits_the_clocks_lateness_is_judged() -> None:
    record = RunRecord(datetime.now(UTC))
    check = fidelity(record, fire_late_by(record, due=1.0, late=1.3))
    assert check["passed"] is False
    assert check["machine_stall"] is None
