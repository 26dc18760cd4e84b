"""Chaos aimed at the scheduler's own tree: it runs on, no job lost or doubled."""

from __future__ import annotations

import contextlib
import logging
import random
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors import Actor, ActorSnapshot, Escalated, Restarted
from actors.testing import record_events, wait_until
from sz import JobFailed, ScheduleZero
from sz.tree import CORE_BACKOFF, CORE_SUPERVISION, HANDLERS_SUPERVISION

if TYPE_CHECKING:
    from pathlib import Path

    from sz import JobHandle

#: Seconds of kills, one every PACE seconds (10 a second).
STORM = 3.0
PACE = 0.1


def under_user(snapshot: ActorSnapshot) -> list[str]:
    """Every actor's path under ``snapshot``, supervisors included."""
    paths: list[str] = []
    for child in snapshot.children:
        paths.append(child.path)
        paths.extend(under_user(child))
    return paths


class Counted:
    """A scheduler whose handlers count what they complete."""

    def __init__(self, store: str) -> None:
        self.sz = ScheduleZero(store=store)
        self.completed: Counter[int] = Counter()
        self.ticks = 0

        async def work(key: int) -> int:
            await anyio.sleep(0.002)
            self.completed[key] += 1  # after the last checkpoint: done is done
            return key

        # Two handlers of one task: a kill of one leaves the other serving.
        self.sz.handler(name="work", concurrency=4)(work)
        self.sz.handler(name="work", concurrency=4)(work)

        @self.sz.handler
        async def tick() -> None:
            self.ticks += 1


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_random_kills_at_ten_a_second_lose_and_double_no_job(
    store: str, tmp_path: Path
) -> None:
    url = "memory" if store == "memory" else f"sqlite:///{tmp_path}/chaos.db"
    counted = Counted(url)
    sz = counted.sz
    rng = random.Random(18)
    handles: list[tuple[int, JobHandle]] = []
    results: dict[int, Any] = {}
    kills: Counter[str] = Counter()
    async with sz:
        await sz.schedule("tick", "interval", seconds=0.05, id="tick")

        async def submit_jobs(stop: anyio.Event) -> None:
            key = 0
            while not stop.is_set():
                handles.append((key, await sz.submit("work", args={"key": key})))
                key += 1
                if key % 10 == 0:  # and some callers wait for theirs
                    results[-key] = await sz.run_now(
                        "work", args={"key": -key}, timeout=10
                    )
                await anyio.sleep(0.005)

        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(submit_jobs, stop)
            for _ in range(round(STORM / PACE)):
                path = rng.choice(under_user(sz.system.snapshot()))
                ref = sz.system.lookup(path)
                if ref is not None:
                    await ref.kill("chaos")
                    kills[path] += 1
                await anyio.sleep(PACE)  # pacing the kills, not waiting
            stop.set()
        await sz.pause("tick")
        for key, handle in handles:
            with contextlib.suppress(JobFailed):
                results[key] = await handle.result(timeout=10)
        await wait_until(
            lambda: jobs_live(sz), timeout=10, message="no job is live any more"
        )
        after = await sz.run_now("work", args={"key": 10**6}, timeout=10)
        rows = await sz.history(limit=100_000)
        snapshot = sz.system.snapshot()

    assert after == 10**6
    assert sum(kills.values()) >= round(STORM / PACE) * 0.8
    # Supervisors were among the kills, not only leaves.
    assert {"/user/handlers", "/user/dispatcher", "/user/history"} & set(kills)
    assert snapshot.find("/user/dispatcher") is not None
    finals = Counter(row.job_id for row in rows if row.final)
    # Exactly one final row per job: none doubled ...
    assert [job for job, count in finals.items() if count > 1] == []
    # ... and none lost: every job submitted has one.
    assert [key for key, handle in handles if handle.id not in finals] == []
    # No job completed twice, and each completed one's final row says success.
    assert [key for key, count in counted.completed.items() if count > 1] == []
    succeeded = {row.job_id for row in rows if row.final and row.outcome == "success"}
    for key, handle in handles:
        assert (counted.completed[key] == 1) == (handle.id in succeeded), key
    # Every fire of the schedule has one final row too, and ran at most once.
    tick_rows = [row for row in rows if row.schedule_id == "tick" and row.final]
    assert counted.ticks == sum(row.outcome == "success" for row in tick_rows)
    # Most jobs got through the storm (a job is abandoned only when it is
    # killed with its handler four times over).
    assert len(succeeded) >= 0.9 * len(finals)


async def jobs_live(sz: ScheduleZero) -> bool:
    return not await sz.jobs()


class CrashLoop(Actor):
    """A bug: it crashes on every message it is given."""

    async def receive(self, message: Any) -> None:
        raise RuntimeError(f"a bug, on {message!r}")


async def test_a_crash_loop_beside_the_scheduler_backs_off_and_is_seen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="actors")
    sz = ScheduleZero(store="memory")

    @sz.handler
    async def noop() -> str:
        return "still here"

    async with sz, record_events(sz.system) as log:
        ref = await sz.system.spawn(CrashLoop, name="buggy")
        for number in range(1000):
            ref.tell(number)
        beyond = 6
        await log.wait_for(
            Restarted, "/user/buggy", count=CORE_SUPERVISION.max_restarts + beyond
        )
        restarts = log.of(Restarted, "/user/buggy")
        assert await sz.run_now("noop", timeout=10) == "still here"
        snapshot = sz.system.snapshot().find("/user/buggy")

    # The intensity's restarts at once; beyond it each waits longer than the
    # last (jitter 0.2 cannot undo a doubling), up to CORE_BACKOFF.max.
    delays = [event.delay for event in restarts]
    intensity = CORE_SUPERVISION.max_restarts
    assert delays[:intensity] == [0.0] * intensity
    paced = delays[intensity : intensity + beyond]
    assert all(delay > 0 for delay in paced)
    low = 1 - CORE_BACKOFF.jitter
    for number, delay in enumerate(paced):
        nominal = min(CORE_BACKOFF.max, CORE_BACKOFF.min * CORE_BACKOFF.factor**number)
        assert nominal * low <= delay <= nominal * (1 + CORE_BACKOFF.jitter)
    assert paced == sorted(paced)
    # Seen: one warning for the burst, and the snapshot's counters.
    burst = [r.getMessage() for r in caplog.records if "beyond its intensity" in r.msg]
    assert len(burst) == 1
    assert "/user/buggy" in burst[0]
    assert "RuntimeError: a bug, on" in burst[0]
    assert snapshot is not None
    assert snapshot.restarts >= intensity + beyond
    assert snapshot.mailbox_depth > 900  # paced: most of its mail still waits


async def test_kills_of_the_core_however_many_bring_each_actor_back_at_once() -> None:
    """An operator's or a chaos run's kill costs a restart, never a backoff."""
    sz = ScheduleZero(store="memory")

    @sz.handler(concurrency=2)
    async def noop(n: int) -> int:
        return n

    core = [
        "/user/dispatcher",
        "/user/history",
        "/user/handlers",
        "/user/handlers/noop",
    ]
    rounds = 3 * max(CORE_SUPERVISION.max_restarts, HANDLERS_SUPERVISION.max_restarts)
    async with sz, record_events(sz.system) as log:
        for n in range(rounds):
            for path in core:
                ref = sz.system.lookup(path)
                assert ref is not None
                await ref.kill("chaos")
            # Served between the kills: every job ends, none waits long.
            assert await sz.run_now("noop", args={"n": n}, timeout=5) == n
        delays = {path: [e.delay for e in log.of(Restarted, path)] for path in core}

    # Far beyond every intensity, not one restart waited.
    for path in core:
        assert len(delays[path]) >= rounds, path
        assert set(delays[path]) == {0.0}, path
    assert log.of(Escalated) == []
