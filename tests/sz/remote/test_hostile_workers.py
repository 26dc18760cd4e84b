"""Hostile functions on a remote worker: each fails its own job, once.

A real ``sz worker`` subprocess (on the test's backend) serves ``workload``'s
hostile functions: ``SystemExit`` and ``KeyboardInterrupt`` on the event loop
and in a worker thread, an exception that cannot be printed, results msgpack
cannot encode. What must hold: each job ends ``failure`` with exactly one
final history row that names the trouble, and the same worker process, on the
same connection, then runs a normal job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sz import BrokerSettings, JobFailed, RemoteError, ScheduleZero, SzError

from .conftest import ANY_PORT, eventually

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .conftest import WorkerProcess

    Spawn = Callable[..., Awaitable[WorkerProcess]]
    Backend = tuple[str, dict[str, object]]

pytestmark = pytest.mark.anyio

#: The bound on any single job here.
HANG = 10

#: A worker process starts in about 0.5 s, far slower on a loaded machine.
PATIENCE = 15.0


def unencodable(error: BaseException) -> str:
    """The row of a job whose result failed to pack with ``error``."""
    return repr(SzError(f"the result cannot travel as msgpack: {error!r}"))


#: Each hostile task, its arguments, and how its history row begins.
HOSTILE = [
    ("exit_now", [3], "SystemExit(3)"),
    ("exit_in_thread", [4], "SystemExit(4)"),
    ("interrupt", [], "KeyboardInterrupt()"),
    ("interrupt_in_thread", [], "KeyboardInterrupt()"),
    ("unprintable", [], "<Unprintable: unprintable (repr raised ValueError)>"),
    ("opaque", [], unencodable(TypeError("can not serialize 'object' object"))),
    ("treacherous", [], unencodable(SystemExit("from items"))),
]


async def test_hostile_functions_fail_their_jobs_once_and_the_worker_serves_on(
    spawn_worker: Spawn, anyio_backend: Backend
) -> None:
    sz = ScheduleZero(
        store="memory", broker=BrokerSettings(endpoint=ANY_PORT, heartbeat=0.2)
    )
    async with sz:
        endpoint, _ = await sz.broker()
        worker = await spawn_worker(endpoint, name="hostile", backend=anyio_backend[0])

        async def registered() -> bool:
            return any(status.name == "hostile" for status in await sz.handlers())

        await eventually(registered, timeout=PATIENCE, what="the worker registers")
        for task, args, text in HOSTILE:
            with pytest.raises(JobFailed) as failed:
                await sz.run_now(task, args=args, timeout=HANG)
            assert failed.value.outcome == "failure", task
            cause = failed.value.__cause__
            assert isinstance(cause, RemoteError), task
            assert repr(cause) == text
            # "job <id> of task '<task>' ended with failure"
            job_id = str(failed.value).split()[1]
            rows = await sz.history(job_id=job_id)
            assert [(r.attempt, r.outcome, r.final, r.error) for r in rows] == [
                (1, "failure", True, text)
            ], task
            # Twice: one failure in three keeps the worker's failure ratio below
            # the health policy's 0.5, so no circuit opens (and no cooldown).
            for _ in range(2):
                assert await sz.run_now("where", timeout=HANG) == worker.pid, task
        _, stats = await sz.broker()
        # The one connection it opened served every job: nothing was lost.
        assert stats.registered == 1
        assert (stats.workers_lost, stats.disconnections) == (0, 0)
    assert worker.process.returncode is None
