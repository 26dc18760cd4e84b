"""Jobs one can follow: ``submit``, ``JobHandle``, ``job(id)`` and ``jobs()``."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors.testing import wait_until
from sz import JobFailed, JobHandle, JobTimeout, ScheduleZero, SzError
from sz.dispatcher import Submit
from sz.jobs import Job

if TYPE_CHECKING:
    from pathlib import Path


class Gate:
    """What a handler waits on: the test lets it through, and sees it start."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.open = anyio.Event()
        self.cancelled = 0

    async def enter(self, n: Any = None) -> Any:
        self.started.append(n)
        try:
            await self.open.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        return {"n": n}


def gated(url: str = "memory", *, concurrency: int = 1) -> tuple[ScheduleZero, Gate]:
    gate = Gate()
    sz = ScheduleZero(store=url)
    sz.handler(gate.enter, name="gated", concurrency=concurrency)
    return sz, gate


async def test_submit_returns_at_once_and_the_handle_gives_the_result() -> None:
    sz, gate = gated()
    async with sz:
        handle = await sz.submit("gated", args=[7])
        assert isinstance(handle, JobHandle)
        await wait_until(lambda: gate.started == [7])
        status = await handle.status()
        assert (status.state, status.handler, status.attempt) == ("running", "gated", 1)
        assert status.since is not None
        assert status.since <= datetime.now(UTC)
        gate.open.set()
        assert await handle.result() == {"n": 7}
        ended = await handle.status()
    assert (ended.state, ended.outcome, ended.handler) == ("ended", "success", "gated")


async def test_jobs_says_what_runs_what_waits_and_why() -> None:
    sz, gate = gated()
    async with sz:
        first = await sz.submit("gated", args=[1])
        await wait_until(lambda: gate.started == [1])
        second = await sz.submit("gated", args=[2])
        await wait_until(lambda: len(sz._state.waiting_task) == 1)  # type: ignore[union-attr]
        running = await sz.jobs("running")
        waiting = await sz.jobs("waiting")
        everything = await sz.jobs()
        gate.open.set()
        await first.result()
        await second.result()
    assert [(j.id, j.handler, j.attempt) for j in running] == [(first.id, "gated", 1)]
    assert [(j.id, j.why) for j in waiting] == [(second.id, "handlers_busy")]
    assert {j.id for j in everything} == {first.id, second.id}


async def test_a_job_held_until_due_is_listed_as_held() -> None:
    sz, _gate = gated()
    job = Job("gated", datetime.now(UTC) + timedelta(hours=1), schedule_id="later")
    async with sz:
        assert sz._dispatcher is not None
        sz._dispatcher.tell(Submit(job=job, hold=True))
        (held,) = await sz.jobs("held")
        assert (held.id, held.why, held.since) == (
            job.id,
            "due_later",
            job.scheduled_at,
        )
        assert (await sz.job(job.id).status()).state == "held"
        assert await sz.job(job.id).cancel()
        assert await sz.jobs() == []
        (row,) = await sz.history(job_id=job.id)
    assert (row.outcome, row.reason, row.final) == (
        "cancelled",
        "cancel_requested",
        True,
    )


async def test_a_waiting_job_cancelled_ends_at_once_and_never_runs() -> None:
    sz, gate = gated()
    async with sz:
        first = await sz.submit("gated", args=[1])
        await wait_until(lambda: gate.started == [1])
        second = await sz.submit("gated", args=[2])
        assert await second.cancel()
        with pytest.raises(JobFailed) as failed:
            await second.result()
        assert failed.value.outcome == "cancelled"
        gate.open.set()
        await first.result()
        rows = await sz.history(job_id=second.id)
    assert gate.started == [1]
    assert [(r.outcome, r.reason, r.final) for r in rows] == [
        ("cancelled", "cancel_requested", True)
    ]


async def test_a_running_async_job_cancelled_is_cancelled_and_frees_its_slot() -> None:
    sz, gate = gated()
    async with sz:
        running = await sz.submit("gated", args=[1])
        await wait_until(lambda: gate.started == [1])
        assert await running.cancel()
        await wait_until(lambda: gate.cancelled == 1)
        assert not await running.cancel()  # ended already
        # The one slot is free again: the next job runs.
        gate.open.set()
        assert await sz.run_now("gated", args=[2], timeout=10) == {"n": 2}
        rows = await sz.history(job_id=running.id)
    assert [(r.outcome, r.reason, r.final, r.handler) for r in rows] == [
        ("cancelled", "cancel_requested", True, "gated")
    ]


async def test_a_running_sync_job_cancelled_runs_on_and_its_result_is_dropped() -> None:
    release = threading.Event()
    started = threading.Event()
    calls: list[int] = []
    sz = ScheduleZero()

    @sz.handler(concurrency=1)
    def blocking(n: int) -> int:
        started.set()
        release.wait(30)
        calls.append(n)
        return n

    async with sz:
        handle = await sz.submit("blocking", args=[1])
        await wait_until(started.is_set)
        assert await handle.cancel()
        with pytest.raises(JobFailed, match="cancelled"):
            await handle.result()
        release.set()
        # Its slot frees once the thread returns: the next job runs.
        assert await sz.run_now("blocking", args=[2], timeout=10) == 2
        rows = await sz.history(job_id=handle.id)
    assert calls == [1, 2]
    assert [(r.outcome, r.final) for r in rows] == [("cancelled", True)]


async def test_the_same_job_id_runs_once_however_often_it_is_submitted() -> None:
    sz, gate = gated(concurrency=4)
    async with sz:
        handles: list[JobHandle] = []
        async with anyio.create_task_group() as tg:
            for _ in range(5):

                async def submit() -> None:
                    handles.append(
                        await sz.submit("gated", args=[1], job_id="invoice-42")
                    )

                tg.start_soon(submit)
        assert {h.id for h in handles} == {"invoice-42"}
        gate.open.set()
        assert [await h.result() for h in handles] == [{"n": 1}] * 5
        # Ended: the id still names the first job, not a new one.
        again = await sz.submit("gated", args=[2], job_id="invoice-42")
        assert await again.result() == {"n": 1}
        rows = await sz.history(job_id="invoice-42")
    assert gate.started == [1]
    assert [(r.outcome, r.final) for r in rows] == [("success", True)]


async def test_results_and_job_ids_outlive_a_restart_on_the_sqlite_store(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    sz, gate = gated(url)
    gate.open.set()
    async with sz:
        first = await sz.submit("gated", args=["a"], job_id="report-1")
        assert await first.result() == {"n": "a"}
    again, again_gate = gated(url)
    again_gate.open.set()
    async with again:
        assert await again.job("report-1").result() == {"n": "a"}
        status = await again.job("report-1").status()
        resubmitted = await again.submit("gated", args=["b"], job_id="report-1")
        assert await resubmitted.result() == {"n": "a"}
        (row,) = await again.history(job_id="report-1")
    assert (status.state, status.outcome) == ("ended", "success")
    assert again_gate.started == []
    assert row.arguments == "('a',), {}"


async def test_a_result_too_large_to_keep_is_noted_in_its_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    sz = ScheduleZero(store=url)

    @sz.handler
    async def big() -> bytes:
        return b"x" * 100_000

    async with sz:
        handle = await sz.submit("big")
        assert len(await handle.result()) == 100_000  # the caller still gets it
    again = ScheduleZero(store=url)
    again.handler(big)
    async with again:
        with pytest.raises(SzError, match="result was not kept"):
            await again.job(handle.id).result()
        (row,) = await again.history(job_id=handle.id)
    assert row.note is not None
    assert row.note.startswith("result not kept: 100,0")
    assert "store.max_result_bytes (65,536)" in row.note


async def test_a_job_of_a_fire_is_followed_by_its_id() -> None:
    sz, gate = gated()
    async with sz:
        await sz.schedule("gated", "interval", hours=1, id="hourly")
        await wait_until(lambda: gate.started == [None])
        (running,) = await sz.jobs("running")
        assert running.schedule_id == "hourly"
        handle = sz.job(running.id)
        async with anyio.create_task_group() as tg:
            results: list[Any] = []

            async def wait() -> None:
                results.append(await handle.result())

            tg.start_soon(wait)
            # Attached to the live job (the memory store keeps no result for a
            # job nobody holds when it ends): then let it end.
            in_flight = sz._state.in_flight  # type: ignore[union-attr]
            await wait_until(lambda: in_flight[running.id].future is not None)
            gate.open.set()
    assert results == [{"n": None}]


async def test_waiting_past_a_timeout_raises_job_timeout_and_the_job_goes_on() -> None:
    sz, gate = gated()
    async with sz:
        handle = await sz.submit("gated", args=[1])
        with pytest.raises(JobTimeout) as timed_out:
            await handle.result(timeout=0.05)
        assert timed_out.value.job_id == handle.id
        assert isinstance(timed_out.value, TimeoutError)
        with pytest.raises(JobTimeout, match="it goes on") as run_now_timed_out:
            await sz.run_now("gated", args=[2], timeout=0.05)
        gate.open.set()
        assert await handle.result() == {"n": 1}
        other = sz.job(run_now_timed_out.value.job_id)
        assert await other.result(timeout=10) == {"n": 2}


async def test_an_unknown_job_is_said_to_be_unknown() -> None:
    sz, _gate = gated()
    async with sz:
        nobody = sz.job("no-such-job")
        assert (await nobody.status()).state == "unknown"
        with pytest.raises(SzError, match="no job 'no-such-job' here"):
            await nobody.result()
        assert not await nobody.cancel()


@pytest.mark.parametrize("job_id", ["", 7, "x" * 201])
async def test_a_bad_job_id_is_refused(job_id: Any) -> None:
    sz, _gate = gated()
    async with sz:
        with pytest.raises(SzError, match="job_id must be"):
            await sz.submit("gated", job_id=job_id)
        with pytest.raises(SzError, match="job_id must be"):
            sz.job(job_id)


async def test_jobs_refuses_a_state_it_does_not_know() -> None:
    sz, _gate = gated()
    async with sz:
        with pytest.raises(SzError, match="state must be"):
            await sz.jobs("finished")  # type: ignore[arg-type]


async def test_a_retry_waits_its_backoff_held_and_then_runs() -> None:
    from actors import Backoff

    attempts: list[datetime] = []
    sz = ScheduleZero()

    @sz.handler(retries=2, retry_backoff=Backoff(min=0.2, max=0.4, jitter=0.0))
    async def flaky() -> str:
        attempts.append(datetime.now(UTC))
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "done"

    async with sz:
        handle = await sz.submit("flaky")
        await wait_until(lambda: len(attempts) == 1)

        async def held_for_backoff() -> bool:
            return bool(await sz.jobs("held"))

        await wait_until(held_for_backoff)
        (held,) = await sz.jobs("held")
        assert (held.id, held.why, held.attempt) == (handle.id, "retry_backoff", 2)
        assert held.since is not None
        assert held.since > attempts[0]
        assert await handle.result(timeout=10) == "done"
        rows = await sz.history(job_id=handle.id)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.2  # min
    assert gaps[1] >= 0.4  # min * factor, capped at max
    assert sorted((r.attempt, r.outcome, r.reason) for r in rows) == [
        (1, "failure", "retry_after_failure"),
        (2, "failure", "retry_after_failure"),
        (3, "success", None),
    ]


async def test_without_a_backoff_a_retry_follows_at_once_and_keeps_its_place() -> None:
    order: list[str] = []
    release = anyio.Event()
    sz = ScheduleZero()

    @sz.handler(retries=1, concurrency=1)
    async def work(name: str) -> None:
        order.append(name)
        if name == "first" and order.count("first") == 1:
            await release.wait()
            raise RuntimeError("once")

    async with sz:
        first = await sz.submit("work", args=["first"])
        await wait_until(lambda: order == ["first"])
        later = [await sz.submit("work", args=[f"later-{n}"]) for n in range(3)]
        release.set()
        await first.result(timeout=10)
        for handle in later:
            await handle.result(timeout=10)
    # The retry of the first job, due before the others, ran before them.
    assert order == ["first", "first", "later-0", "later-1", "later-2"]


async def test_a_bad_retry_backoff_is_refused() -> None:
    sz = ScheduleZero()
    bad: Any = 0.5
    register = sz.handler(retries=1, retry_backoff=bad)
    with pytest.raises(SzError, match="retry_backoff"):
        register(lambda: None)
