"""A scenario run's worker fleet: real ``sz worker`` processes behind fault proxies.

A scheduler with a broker on loopback in the test's process, two workers
serving ``sz.builtin`` through a ``FaultProxy`` each (asyncio and trio). What
must hold: the workers register and run jobs as if connected directly; a kill,
a pause or a partition takes one away and it comes back by itself; the fleet
records what it did; leaving it leaves no process behind.
"""

from __future__ import annotations

import os
import random
import signal
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest

from actors.testing import wait_until
from sz import BrokerSettings, ScheduleZero
from sz.scenarios import UnknownWorker, WorkerFleet, WorkerSpec

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sz.remote import BrokerStats

    Backend = tuple[str, dict[str, object]]

pytestmark = pytest.mark.anyio

#: Seconds between heartbeats, broker and workers alike: dead after 0.6 s.
HEARTBEAT = 0.2

#: Deadline for what another process must do (start, register, come back): a
#: worker starts in about half a second, far slower on a loaded 2-core machine.
PATIENCE = 20.0

WORKERS = WorkerSpec(module="sz.builtin", methods=("noop", "sleep"), count=2)


@asynccontextmanager
async def scheduler_and_fleet(
    anyio_backend: Backend,
) -> AsyncIterator[tuple[ScheduleZero, WorkerFleet]]:
    """A scheduler with a broker, and two registered workers through proxies."""
    broker = BrokerSettings(endpoint="tcp://127.0.0.1:*", heartbeat=HEARTBEAT)
    async with ScheduleZero(store="memory", broker=broker) as sz:
        endpoint, _ = await sz.broker()
        async with WorkerFleet(
            [WORKERS], endpoint, backend=anyio_backend[0], heartbeat=HEARTBEAT
        ) as fleet:
            await wait_registered(sz, "worker-1", "worker-2")
            yield sz, fleet


async def registered(sz: ScheduleZero) -> set[str]:
    return {status.name for status in await sz.handlers() if status.kind == "remote"}


async def wait_registered(sz: ScheduleZero, *names: str) -> None:
    async def all_there() -> bool:
        return set(names) <= await registered(sz)

    await wait_until(all_there, timeout=PATIENCE, message=f"{names} register")


async def stats_of(sz: ScheduleZero) -> BrokerStats:
    _, stats = await sz.broker()
    return stats


async def wait_lost(sz: ScheduleZero, before: BrokerStats) -> None:
    """Wait until the broker has declared a worker lost since ``before``."""

    async def lost() -> bool:
        return (await stats_of(sz)).workers_lost > before.workers_lost

    await wait_until(lost, timeout=PATIENCE, message="the broker loses the worker")


async def wait_back(sz: ScheduleZero, name: str, before: BrokerStats) -> None:
    """Wait until ``name`` has registered anew since ``before``."""

    async def back() -> bool:
        stats = await stats_of(sz)
        return stats.registered > before.registered and name in await registered(sz)

    await wait_until(back, timeout=PATIENCE, message=f"{name} registers again")


async def handlers_of_two_jobs(sz: ScheduleZero) -> set[str | None]:
    """Run two jobs at once: with capacity 1 each, one lands on each worker.

    The handlers that ran them (their final rows') are returned.
    """
    earlier = {row.job_id for row in await sz.history(task="sleep", limit=1000)}

    async def run() -> None:
        await sz.run_now("sleep", args=[0.3], timeout=PATIENCE)

    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(run)
    rows = await sz.history(task="sleep", limit=1000)
    return {row.handler for row in rows if row.final and row.job_id not in earlier}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def whats(fleet: WorkerFleet, worker: str) -> list[str]:
    return [event.what for event in fleet.events if event.worker == worker]


# ------------------------------------------------------------------- start


async def test_the_fleets_workers_register_through_their_proxies_and_run_jobs(
    anyio_backend: Backend,
) -> None:
    async with scheduler_and_fleet(anyio_backend) as (sz, fleet):
        assert fleet.names == ("worker-1", "worker-2")
        pids = fleet.pids
        assert all(pid is not None and alive(pid) for pid in pids.values())
        assert await handlers_of_two_jobs(sz) == {"worker-1", "worker-2"}
        for name in fleet.names:
            # Everything went through the worker's own proxy, both ways.
            counters = fleet.proxy(name).counters
            assert counters.to_broker.relayed > 0
            assert counters.to_worker.relayed > 0
            assert counters.dropped == 0
        assert [(e.worker, e.what, e.detail) for e in fleet.events] == [
            (name, "start", f"pid {pid}") for name, pid in pids.items()
        ]
    # Stopped with SIGTERM: each drained and said goodbye.
    assert fleet.pids == {"worker-1": None, "worker-2": None}
    assert not any(alive(pid) for pid in pids.values() if pid is not None)
    exits = [(e.worker, e.detail) for e in fleet.events if e.what == "exit"]
    assert sorted(exits) == [("worker-1", "exit code 0"), ("worker-2", "exit code 0")]


async def test_an_unknown_worker_name_is_refused(anyio_backend: Backend) -> None:
    async with scheduler_and_fleet(anyio_backend) as (_, fleet):
        with pytest.raises(UnknownWorker, match="worker-3"):
            await fleet.kill("worker-3", "SIGKILL", restart_after=None)
        with pytest.raises(UnknownWorker):
            fleet.proxy("nobody")


# -------------------------------------------------------------------- kill


async def test_a_killed_worker_is_lost_and_comes_back_when_restarted(
    anyio_backend: Backend,
) -> None:
    async with scheduler_and_fleet(anyio_backend) as (sz, fleet):
        before = await stats_of(sz)
        old = fleet.pids["worker-1"]
        assert old is not None
        await fleet.kill("worker-1", "SIGKILL", restart_after=0.5)
        # The proxy closes the broker's side of the dead worker's connection,
        # so the broker loses it as it would a worker connected directly.
        await wait_lost(sz, before)
        assert (await stats_of(sz)).disconnections > before.disconnections
        await wait_back(sz, "worker-1", before)
        new = fleet.pids["worker-1"]
        assert new is not None
        assert new != old
        assert not alive(old)
        assert await handlers_of_two_jobs(sz) == {"worker-1", "worker-2"}
        assert whats(fleet, "worker-1") == ["start", "kill", "exit", "restart"]
        kill, exit_, restart = (e for e in fleet.events[2:] if e.worker == "worker-1")
        assert kill.detail == "SIGKILL"
        assert exit_.detail == "killed by SIGKILL"
        assert restart.detail == f"pid {new}"
        assert kill.at <= exit_.at <= restart.at
        assert whats(fleet, "worker-2") == ["start"]
    assert not alive(new)


async def test_a_killed_worker_without_restart_stays_down(
    anyio_backend: Backend,
) -> None:
    async with scheduler_and_fleet(anyio_backend) as (sz, fleet):
        before = await stats_of(sz)
        old = fleet.pids["worker-2"]
        await fleet.kill("worker-2", "SIGTERM", restart_after=None)

        async def left() -> bool:
            return "worker-2" not in await registered(sz)

        await wait_until(left, timeout=PATIENCE, message="worker-2 leaves")
        # SIGTERM: it said goodbye rather than vanish.
        assert (await stats_of(sz)).workers_left == before.workers_left + 1
        await wait_until(lambda: fleet.pids["worker-2"] is None, timeout=PATIENCE)
        assert old is not None
        assert not alive(old)
        assert await sz.run_now("noop", timeout=PATIENCE) is None
        [row] = await sz.history(task="noop")
        assert row.handler == "worker-1"
        assert whats(fleet, "worker-2") == ["start", "kill", "exit"]
        assert fleet.events[-1].detail == "exit code 0"


# ------------------------------------------------------------------- pause


async def test_a_paused_worker_is_lost_its_jobs_go_to_the_other_and_it_comes_back(
    anyio_backend: Backend,
) -> None:
    async with scheduler_and_fleet(anyio_backend) as (sz, fleet):
        before = await stats_of(sz)
        paused = fleet.pids["worker-1"]
        async with anyio.create_task_group() as tg:
            # Far longer than the broker's liveness (3 heartbeats): a fault's
            # length, not a wait for something.
            tg.start_soon(fleet.pause, "worker-1", 3.0)
            await wait_lost(sz, before)
            # Meanwhile the other worker serves every job.
            for _ in range(3):
                await sz.run_now("noop", timeout=PATIENCE)
            rows = await sz.history(task="noop")
            assert {row.handler for row in rows if row.final} == {"worker-2"}
        # ``pause`` returned: the worker was continued, the same process.
        assert whats(fleet, "worker-1") == ["start", "pause", "resume"]
        assert fleet.pids["worker-1"] == paused
        await wait_back(sz, "worker-1", before)
        assert await handlers_of_two_jobs(sz) == {"worker-1", "worker-2"}


# --------------------------------------------------------------- partition


async def test_a_partitioned_worker_is_lost_and_rejoins_when_the_link_heals(
    anyio_backend: Backend,
) -> None:
    async with scheduler_and_fleet(anyio_backend) as (sz, fleet):
        before = await stats_of(sz)
        pid = fleet.pids["worker-1"]
        proxy = fleet.proxy("worker-1")
        proxy.partition(2.0)
        # Heartbeats stop getting through: the broker gives the worker up.
        await wait_lost(sz, before)
        assert proxy.counters.dropped > 0
        assert await sz.run_now("noop", timeout=PATIENCE) is None
        [row] = await sz.history(task="noop")
        assert row.handler == "worker-2"
        # The link heals by itself; the worker finds its way back.
        await wait_back(sz, "worker-1", before)
        assert await handlers_of_two_jobs(sz) == {"worker-1", "worker-2"}
        # Nothing happened to the process: only its link was cut.
        assert fleet.pids["worker-1"] == pid
        assert whats(fleet, "worker-1") == ["start"]


# ------------------------------------------------------------ delay, drop


async def test_jobs_still_run_over_delayed_links_only_later(
    anyio_backend: Backend,
) -> None:
    delay = 0.15  # each way; far within the liveness of three heartbeats
    async with scheduler_and_fleet(anyio_backend) as (sz, fleet):
        before = await stats_of(sz)
        for name in fleet.names:
            fleet.proxy(name).delay(delay, duration=60)
        began = anyio.current_time()
        assert await sz.run_now("noop", timeout=PATIENCE) is None
        # The JOB went down and its RESULT came up, each held back.
        assert anyio.current_time() - began >= 2 * delay
        assert sum(fleet.proxy(name).counters.delayed for name in fleet.names) >= 2
        assert (await stats_of(sz)).workers_lost == before.workers_lost


async def test_a_link_that_drops_everything_loses_its_worker(
    anyio_backend: Backend,
) -> None:
    async with scheduler_and_fleet(anyio_backend) as (sz, fleet):
        before = await stats_of(sz)
        fleet.proxy("worker-2").drop(1.0, duration=2.0, rng=random.Random(18))
        await wait_lost(sz, before)
        assert fleet.proxy("worker-2").counters.dropped > 0
        await wait_back(sz, "worker-2", before)


# ------------------------------------------------------------------- leave


async def test_leaving_stops_paused_workers_and_cancels_pending_restarts(
    anyio_backend: Backend,
) -> None:
    async with scheduler_and_fleet(anyio_backend) as (_, fleet):
        pids = [pid for pid in fleet.pids.values() if pid is not None]
        await fleet.kill("worker-1", "SIGKILL", restart_after=60.0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(fleet.pause, "worker-2", 60.0)
            await wait_until(lambda: "pause" in whats(fleet, "worker-2"))
            # Cancelled, a pause continues the worker before it returns.
            tg.cancel_scope.cancel()
        assert whats(fleet, "worker-2") == ["start", "pause", "resume"]
        os.kill(pids[1], signal.SIGSTOP)  # behind the fleet's back
    assert not any(alive(pid) for pid in pids)
    assert fleet.pids == {"worker-1": None, "worker-2": None}
    assert "restart" not in whats(fleet, "worker-1")
    assert whats(fleet, "worker-2")[-1] == "exit"


def test_workers_are_named_in_setup_order_with_counts_expanded() -> None:
    specs = [
        WorkerSpec(module="sz.builtin", methods=("noop",), count=2),
        WorkerSpec(module="sz.builtin", methods=("sleep",)),
    ]
    fleet = WorkerFleet(specs, "tcp://127.0.0.1:5555", backend="trio")
    assert fleet.names == ("worker-1", "worker-2", "worker-3")
