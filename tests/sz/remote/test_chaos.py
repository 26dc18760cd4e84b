"""Chaos: workers killed, stopped, signalled and choked; the broker restarted.

Real ``sz worker`` subprocesses on loopback TCP, the scheduler in the test's
process (asyncio and trio). What must hold through each fault: every job ends
exactly once (one final history row), lost attempts are retried elsewhere with
the reason the fault gives, and workers find their way back unaided.
"""

from __future__ import annotations

import os
import signal
from collections import Counter, defaultdict
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors import Backoff
from sz import BrokerSettings, ScheduleZero, ZMQHandler
from transport import Router

from .conftest import ANY_PORT, eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from sz.jobs import Attempt

    from .conftest import WorkerProcess

    Spawn = Callable[..., Awaitable[WorkerProcess]]
    Backend = tuple[str, dict[str, object]]

pytestmark = pytest.mark.anyio

#: Seconds between heartbeats, broker and workers alike: dead after 0.6 s.
HEARTBEAT = 0.2

#: Deadline for "eventually": a worker process starts in about 0.5 s, far
#: slower on a loaded two-core machine.
PATIENCE = 15.0


def broker_at(endpoint: str = ANY_PORT, **settings: Any) -> ScheduleZero:
    """A scheduler whose broker binds ``endpoint``, a free port by default."""
    settings.setdefault("heartbeat", HEARTBEAT)
    return ScheduleZero(
        store="memory", broker=BrokerSettings(endpoint=endpoint, **settings)
    )


async def endpoint_of(sz: ScheduleZero) -> str:
    """Where ``sz``'s broker listens, the port it bound included."""
    endpoint, _ = await sz.broker()
    return endpoint


async def registered(sz: ScheduleZero) -> set[str]:
    return {status.name for status in await sz.handlers() if status.kind == "remote"}


async def wait_registered(sz: ScheduleZero, *names: str) -> None:
    async def all_there() -> bool:
        return set(names) <= await registered(sz)

    await eventually(all_there, timeout=PATIENCE, what=f"{names} register")


async def starts(trace: Path) -> list[tuple[str, int]]:
    """The ``announce`` lines written so far: (token, pid) of each start."""
    path = anyio.Path(trace)
    if not await path.exists():
        return []
    # Whole lines only: a worker may be writing the last one.
    lines = (await path.read_text(encoding="utf-8")).split("\n")[:-1]
    return [(token, int(pid)) for token, pid in (line.split() for line in lines)]


async def wait_starts(trace: Path, count: int) -> list[tuple[str, int]]:
    """Wait until ``count`` jobs have started (written their line)."""

    async def enough() -> bool:
        return len(await starts(trace)) >= count

    await eventually(enough, timeout=PATIENCE, what=f"{count} jobs start")
    return await starts(trace)


async def attempts_by_job(sz: ScheduleZero, task: str) -> dict[str, list[Attempt]]:
    """Every history row of ``task``, by job id, in attempt order."""
    jobs: dict[str, list[Attempt]] = defaultdict(list)
    for row in await sz.history(task=task, limit=10_000):
        jobs[row.job_id].append(row)
    return {job: sorted(rows, key=lambda r: r.attempt) for job, rows in jobs.items()}


def summary(rows: list[Attempt]) -> list[tuple[int, str, str | None, str | None, bool]]:
    """A job's rows as (attempt, outcome, reason, handler, final)."""
    return [(r.attempt, r.outcome, r.reason, r.handler, r.final) for r in rows]


def backend_of(anyio_backend: Backend) -> str:
    return anyio_backend[0]


@asynccontextmanager
async def a_job_on_one_of_two(
    sz: ScheduleZero,
    spawn_worker: Spawn,
    endpoint: str,
    backend: str,
    trace: Path,
    seconds: float,
) -> AsyncIterator[tuple[WorkerProcess, WorkerProcess, list[int]]]:
    """Workers ``a`` and ``b``, and one ``announce`` job running on one of them.

    Yields the worker holding the job, the other, and the list the job's result
    (the pid that ran it) is appended to once it ends, after the block.
    """
    workers = {
        name: await spawn_worker(endpoint, name=name, backend=backend)
        for name in ("a", "b")
    }
    await wait_registered(sz, "a", "b")
    by_pid = {worker.pid: worker for worker in workers.values()}
    result: list[int] = []
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            args = [str(trace), "job", seconds]
            result.append(await sz.run_now("announce", args=args, timeout=30))

        tg.start_soon(run)
        [(_, pid)] = await wait_starts(trace, 1)
        holder = by_pid[pid]
        (other,) = (w for w in workers.values() if w is not holder)
        yield holder, other, result


# ------------------------------------------------------------------ kill -9


async def test_a_job_on_a_killed_worker_completes_on_another_as_attempt_two(
    spawn_worker: Spawn, anyio_backend: Backend, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    async with broker_at() as sz:
        endpoint = await endpoint_of(sz)
        backend = backend_of(anyio_backend)
        async with a_job_on_one_of_two(
            sz, spawn_worker, endpoint, backend, trace, 3.0
        ) as (doomed, survivor, result):
            killed = datetime.now(UTC)
            doomed.kill()
        assert result == [survivor.pid]
        [(job, rows)] = (await attempts_by_job(sz, "announce")).items()
        assert summary(rows) == [
            (1, "abandoned", "retry_after_worker_lost", doomed.name, False),
            (2, "success", None, survivor.name, True),
        ], job
        # The lost attempt started before the kill (when it was sent) and ran
        # until its worker was declared lost, not 0 ms at that moment.
        lost = rows[0]
        assert lost.started_at is not None
        assert lost.duration is not None
        assert lost.started_at < killed < lost.finished_at
        assert lost.duration >= (killed - lost.started_at).total_seconds()
        assert [token for token, _ in await starts(trace)] == ["job", "job"]
        _, stats = await sz.broker()
        assert stats.workers_lost == 1


# ----------------------------------------------------------- broker restart


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(0.0, id="at-once"),
        # Longer than the workers' liveness (0.6 s): each worker's connection
        # has failed and waits out its first backoff (1 s) when the new one
        # starts. A fault of a set length, not a wait for something.
        pytest.param(1.0, id="after-1s"),
    ],
)
async def test_workers_register_with_a_restarted_broker_within_two_seconds(
    spawn_worker: Spawn, anyio_backend: Backend, outage: float
) -> None:
    async with broker_at() as sz:
        # The restarted broker below binds the port this one chose.
        endpoint = await endpoint_of(sz)
        workers = [
            await spawn_worker(
                endpoint,
                name=name,
                backend=backend_of(anyio_backend),
                heartbeat=HEARTBEAT,
            )
            for name in ("a", "b")
        ]
        await wait_registered(sz, "a", "b")
    await anyio.sleep(outage)
    began = anyio.current_time()
    async with broker_at(endpoint) as sz:
        started = anyio.current_time()
        await wait_registered(sz, "a", "b")
        took = anyio.current_time() - began
        print(
            f"re-registration: {took:.3f} s after the new start began "
            f"({anyio.current_time() - started:.3f} s after it returned)"
        )
        # The spec's target, measured from the moment the new scheduler began to
        # start (binding included): no margin.
        assert took <= 2.0
        pids: set[int] = set()
        async with anyio.create_task_group() as tg:
            for _ in workers:

                async def run() -> None:
                    pids.add(await sz.run_now("nap", args=[0.5], timeout=30))

                tg.start_soon(run)
        # One job each: the least loaded takes the next.
        assert pids == {worker.pid for worker in workers}


# ----------------------------------------------------------------- SIGSTOP


async def test_a_stopped_worker_is_declared_dead_and_rejoins_when_continued(
    spawn_worker: Spawn, anyio_backend: Backend, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    async with broker_at() as sz:
        endpoint = await endpoint_of(sz)
        backend = backend_of(anyio_backend)
        async with a_job_on_one_of_two(
            sz, spawn_worker, endpoint, backend, trace, 2.0
        ) as (frozen, other, result):
            _, before = await sz.broker()
            frozen.signal(signal.SIGSTOP)
            stopped_at = anyio.current_time()

            async def declared_dead() -> bool:
                _, stats = await sz.broker()
                return (
                    stats.workers_lost > before.workers_lost
                    and frozen.name not in await registered(sz)
                )

            await eventually(declared_dead, timeout=PATIENCE, what="declared dead")
            dead_after = anyio.current_time() - stopped_at
            print(f"declared dead {dead_after:.3f} s after SIGSTOP")
        assert result == [other.pid]
        frozen.signal(signal.SIGCONT)
        continued_at = anyio.current_time()

        async def rejoined() -> bool:
            _, stats = await sz.broker()
            return (
                stats.registered > before.registered
                and frozen.name in await registered(sz)
            )

        await eventually(rejoined, timeout=PATIENCE, what="rejoins")
        print(f"rejoined {anyio.current_time() - continued_at:.3f} s after SIGCONT")
        pids: set[int] = set()
        async with anyio.create_task_group() as tg:
            for _ in (frozen, other):

                async def run_nap() -> None:
                    pids.add(await sz.run_now("nap", args=[0.5], timeout=30))

                tg.start_soon(run_nap)
        assert pids == {frozen.pid, other.pid}
        # Whatever the frozen worker said about its old attempt once continued,
        # the job still ended once.
        [(_, rows)] = (await attempts_by_job(sz, "announce")).items()
        assert summary(rows) == [
            (1, "abandoned", "retry_after_worker_lost", frozen.name, False),
            (2, "success", None, other.name, True),
        ]
        _, stats = await sz.broker()
        print(f"stats after rejoining: {stats}")


# -------------------------------------------------------------- congestion


async def test_every_job_runs_exactly_once_through_high_water_marks_of_one(
    spawn_worker: Spawn, anyio_backend: Backend, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    count = 500
    # Heartbeats of 0.5 s: 500 jobs through queues of one keep both ends of a
    # two-core machine busy; a worker is dead after 1.5 s of silence.
    async with broker_at(heartbeat=0.5, send_hwm=1, receive_hwm=1) as sz:
        endpoint = await endpoint_of(sz)
        worker = await spawn_worker(
            endpoint,
            name="w",
            capacity=8,
            heartbeat=0.5,
            backend=backend_of(anyio_backend),
        )
        await wait_registered(sz, "w")
        pids: list[int] = []
        async with anyio.create_task_group() as tg:
            for index in range(count):

                async def run(token: str) -> None:
                    args = [str(trace), token, 0]
                    pids.append(await sz.run_now("record", args=args, timeout=60))

                tg.start_soon(run, f"t{index}")
                if index % 20 == 19:
                    # All at once, the submissions would hold this event loop
                    # (asyncio's debug mode, a busy machine) longer than the
                    # liveness of the broker's heartbeats, which it shares.
                    await anyio.lowlevel.checkpoint()
        _, stats = await sz.broker()
        print(f"congested: {stats.congested}; {stats}")
        worker.kill()
        await worker.wait()
        log = await worker.output()
        # Nothing died, so nothing ran twice nor was retried.
        assert stats.workers_lost == 0, f"{stats}\n{log}"
        assert pids == [worker.pid] * count
        lines = (await anyio.Path(trace).read_text(encoding="utf-8")).splitlines()
        seen = Counter(line.split()[0] for line in lines)
        assert seen == Counter(f"t{index}" for index in range(count))
        assert stats.jobs_sent == stats.results == count
        jobs = await attempts_by_job(sz, "record")
        assert len(jobs) == count
        assert all(
            summary(rows) == [(1, "success", None, "w", True)] for rows in jobs.values()
        )


# ----------------------------------------------------------------- SIGTERM


async def test_a_worker_given_sigterm_finishes_short_jobs_and_hands_back_long_ones(
    spawn_worker: Spawn, anyio_backend: Backend, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    backend = backend_of(anyio_backend)
    # Eight jobs at once: capacity 8, so that the long ones are in flight on
    # this worker (not waiting in the scheduler) when it is told to stop. Long
    # is longer than the drain (1 s) by far; short ends well within it.
    durations = {f"short{i}": 0.5 for i in range(4)} | {
        f"long{i}": 3.0 for i in range(4)
    }
    async with broker_at() as sz:
        endpoint = await endpoint_of(sz)
        busy = await spawn_worker(
            endpoint, name="busy", capacity=8, heartbeat=0.5, backend=backend
        )
        await wait_registered(sz, "busy")
        results: dict[str, int] = {}
        async with anyio.create_task_group() as tg:
            for token, seconds in durations.items():

                async def run(token: str, seconds: float) -> None:
                    args = [str(trace), token, seconds]
                    results[token] = await sz.run_now("announce", args=args, timeout=30)

                tg.start_soon(run, token, seconds)
            assert {pid for _, pid in await wait_starts(trace, 8)} == {busy.pid}
            busy.signal(signal.SIGTERM)
            signalled = anyio.current_time()
            spare = await spawn_worker(
                endpoint, name="spare", capacity=4, backend=backend
            )
            with anyio.fail_after(PATIENCE):
                returncode = await busy.wait()
            took = anyio.current_time() - signalled
        log = await busy.output()
        print(f"SIGTERM to exit: {took:.3f} s")
        assert returncode == 0, log
        assert took <= 2.0, log
        assert "stopped (4 jobs handed back)" in log, log
        assert results == {
            token: busy.pid if token.startswith("short") else spare.pid
            for token in durations
        }
        jobs = sorted(
            summary(rows) for rows in (await attempts_by_job(sz, "announce")).values()
        )
        assert jobs == sorted(
            [[(1, "success", None, "busy", True)]] * 4
            + [
                [
                    (1, "abandoned", "retry_after_worker_left", "busy", False),
                    (2, "success", None, "spare", True),
                ]
            ]
            * 4
        )
        _, stats = await sz.broker()
        assert (stats.workers_left, stats.workers_lost) == (1, 0)


async def test_a_draining_worker_with_quick_heartbeats_is_not_declared_dead(
    spawn_worker: Spawn, anyio_backend: Backend, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    backend = backend_of(anyio_backend)
    async with broker_at() as sz:
        endpoint = await endpoint_of(sz)
        busy = await spawn_worker(endpoint, name="busy", backend=backend)
        await wait_registered(sz, "busy")
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                args = [str(trace), "long", 3.0]
                await sz.run_now("announce", args=args, timeout=30)

            tg.start_soon(run)
            await wait_starts(trace, 1)
            busy.signal(signal.SIGTERM)
            await spawn_worker(endpoint, name="spare", backend=backend)
            await busy.wait()
        _, stats = await sz.broker()
        [(_, rows)] = (await attempts_by_job(sz, "announce")).items()
        assert summary(rows)[0][2] == "retry_after_worker_left", summary(rows)
        assert (stats.workers_left, stats.workers_lost) == (1, 0), stats


# ---------------------------------------------------- connection restarts


async def read_proc(path: str) -> str:
    return await anyio.Path(path).read_text()


async def entries(path: str) -> int:
    return len(await anyio.to_thread.run_sync(os.listdir, path))


async def usage() -> tuple[int, int, int]:
    """This process's open descriptors, threads and resident bytes."""
    pages = int((await read_proc("/proc/self/statm")).split()[1])
    fds, threads = await entries("/proc/self/fd"), await entries("/proc/self/task")
    return fds, threads, pages * os.sysconf("SC_PAGE_SIZE")


async def test_restarting_the_connection_leaks_no_descriptors_nor_memory() -> None:
    warmup, cycles = 20, 200
    async with broker_at() as sz:
        endpoint = await endpoint_of(sz)
        handler = ZMQHandler(
            endpoint,
            name="restarts",
            heartbeat=0.5,
            backoff=Backoff(min=0.001, max=0.002, jitter=0),
        )

        @handler.task
        async def noop() -> None:
            """Serve something."""

        async with anyio.create_task_group() as tg:
            tg.start_soon(handler.serve)

            async def restart() -> None:
                done = handler.registrations
                await handler.connection.kill()

                async def again() -> bool:
                    return handler.registrations > done

                await eventually(again, timeout=PATIENCE, what="registers again")

            async def settled() -> bool:
                _, stats = await sz.broker()
                return stats.registered == handler.registrations

            await wait_registered(sz, "restarts")
            for _ in range(warmup):
                await restart()
            await eventually(settled, timeout=PATIENCE, what="the broker catches up")
            before = await usage()
            samples = [before]
            began = anyio.current_time()
            for cycle in range(1, cycles + 1):
                await restart()
                if cycle % 50 == 0:
                    samples.append(await usage())
            await eventually(settled, timeout=PATIENCE, what="the broker catches up")
            took = anyio.current_time() - began
            after = await usage()
            assert await sz.run_now("noop", timeout=30) is None
            handler.stop()
        print(
            f"{cycles} restarts in {took:.2f} s; (fds, threads, rss KiB) every 50: "
            f"{[(f, t, r // 1024) for f, t, r in samples]}, after {after[:2]}; "
            f"per cycle: fds {(after[0] - before[0]) / cycles:+.4f}, "
            f"rss {(after[2] - before[2]) / cycles / 1024:+.2f} KiB"
        )
        assert handler.connections == 1 + warmup + cycles
        assert after[0] - before[0] <= 5
        assert after[1] - before[1] <= 2
        assert after[2] - before[2] < 8 * 2**20


async def test_a_worker_keeps_reconnecting_to_a_broker_that_falls_silent() -> None:
    # A broker that accepts connections and never answers: each connection
    # registers, hears nothing for 3 heartbeats and fails.
    silent = Router(ANY_PORT)
    try:
        handler = ZMQHandler(
            silent.endpoint,
            name="patient",
            heartbeat=0.1,
            backoff=Backoff(min=0.05, max=0.1, jitter=0),
        )

        @handler.task
        async def noop() -> None:
            """Serve something."""

        ended: list[BaseException] = []
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                try:
                    await handler.serve()
                except Exception as exc:
                    ended.append(exc)

            tg.start_soon(serve)

            async def six_connections_or_the_end() -> bool:
                return handler.connections >= 6 or bool(ended)

            await eventually(six_connections_or_the_end, timeout=PATIENCE)
            handler.stop()
        assert not ended, f"serve() ended after {handler.connections} connections"
    finally:
        silent.close()
