"""In-process chaos faults, the seeded pick, and worker faults without a fleet."""

# Scenario YAML is written here in flow style, one step a line, as in the
# shipped files: its lines are as long as a step is.
# ruff: noqa: E501

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import anyio
import pytest

from sz.scenarios.faults import pick

from .runs import events, explain, run_text

if TYPE_CHECKING:
    from blockbuster import BlockBuster

pytestmark = pytest.mark.anyio


def test_pick_first_all_and_random_seeded() -> None:
    paths = ["/user/c", "/user/a", "/user/b"]
    assert pick(paths, None, "first", random.Random(1)) == ["/user/a"]
    assert pick(paths, 2, "first", random.Random(1)) == ["/user/a", "/user/b"]
    assert pick(paths, None, "all", random.Random(1)) == [
        "/user/a",
        "/user/b",
        "/user/c",
    ]
    once = pick(paths, 2, "random", random.Random(42))
    assert once == pick(paths, 2, "random", random.Random(42))
    assert len(set(once)) == 2
    assert pick(paths, 10, "random", random.Random(3)) != []
    assert pick([], 1, "random", random.Random(3)) == []


async def test_kill_actor_crashes_handlers_which_restart_and_lose_no_job() -> None:
    result = await run_text(
        """\
        test:
          name: kills
          setup: {handlers: [{task: sleep, concurrency: 4}, noop]}
          steps:
            - name: load
              type: parallel
              steps:
                - {type: action, action: {method: submit_jobs, args: {task: sleep, count: 40, rate: 200, args: {seconds: 0.02}}}}
                - type: loop
                  iterations: 3
                  steps:
                    - {type: sleep, duration: 30ms}
                    - {type: chaos, fault: kill_actor, target: "/user/handlers/*", pick: first}
            - {type: wait_until, condition: "jobs_pending == 0", timeout: 20}
          checks: [no_lost_jobs, no_duplicate_jobs, restart_budget]
          metrics: [restarts]
          assertions: [max(restarts) >= 3]
        """
    )
    assert result.outcome == "passed", explain(result)
    faults = events(result, "fault")
    assert [list(f.detail["targets"]) for f in faults] == [["/user/handlers/noop"]] * 3
    assert result.checks["restart_budget"]["restarts"] >= 3


async def test_kill_actor_picks_the_same_victims_for_the_same_seed() -> None:
    text = """\
        test:
          name: seeded
          setup: {handlers: [noop, echo, sleep, log]}
          steps:
            - type: loop
              iterations: 4
              steps:
                - {type: chaos, fault: kill_actor, target: "/user/handlers/*", count: 2}
        """
    first = await run_text(text, seed=5)
    again = await run_text(text, seed=5)
    picked = [list(f.detail["targets"]) for f in events(first, "fault")]
    assert picked == [list(f.detail["targets"]) for f in events(again, "fault")]
    assert all(len(targets) == 2 for targets in picked)


async def test_stop_actor_stops_a_handler_for_good() -> None:
    result = await run_text(
        """\
        test:
          name: stops
          setup: {handlers: [noop, echo]}
          steps:
            - {type: chaos, fault: stop_actor, target: "/user/handlers/echo"}
            - {type: action, action: {method: run_job, args: {task: noop, timeout: 5s}}}
            - {type: chaos, fault: stop_actor, target: "/user/handlers/echo"}
          metrics: [restarts]
        """
    )
    assert result.outcome == "passed", explain(result)
    first, second = events(result, "fault")
    assert list(first.detail["targets"]) == ["/user/handlers/echo"]
    assert list(second.detail["targets"]) == []  # gone: nothing left to match


async def test_faults_never_pick_the_runs_own_actors_unless_named() -> None:
    result = await run_text(
        """\
        test:
          name: spares
          setup: {handlers: [noop]}
          steps:
            - {type: chaos, fault: kill_actor, target: "/user/**", pick: all}
            - {type: wait_until, condition: "restarts >= 1", timeout: 10}
        """
    )
    assert result.outcome in ("passed", "aborted"), explain(result)
    targets = list(events(result, "fault")[0].detail["targets"])
    assert targets
    assert not any(path.startswith("/user/scenarios") for path in targets)


async def test_flood_mailbox_tells_each_target_count_messages_it_ignores() -> None:
    result = await run_text(
        """\
        test:
          name: floods
          setup: {handlers: [noop]}
          steps:
            - {type: chaos, fault: flood_mailbox, target: "/user/handlers/noop", count: 500}
            - {type: chaos, fault: flood_mailbox, target: "/user/dispatcher", count: 2000}
            - {type: action, action: {method: run_job, args: {task: noop, timeout: 5s}}}
          checks: [restart_budget]
        """
    )
    assert result.outcome == "passed", explain(result)
    first, second = events(result, "fault")
    assert first.detail == {
        "step": "flood_mailbox",
        "targets": ["/user/handlers/noop"],
        "told": 500,
        "refused": 0,
    }
    assert second.detail["told"] == 2000


async def test_block_loop_holds_the_event_loop_for_its_duration(
    blockbuster: BlockBuster,
) -> None:
    # The fault's very purpose is a blocking call on the event loop.
    blockbuster.functions["time.sleep"].deactivate()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        started = anyio.current_time()
        result = await run_text(
            """\
            test:
              name: blocks
              setup: {handlers: [noop]}
              steps:
                - {type: chaos, fault: block_loop, duration: 300ms}
            """
        )
        group.cancel_scope.cancel()
    assert result.outcome == "passed", explain(result)
    fault = events(result, "fault")[0]
    assert fault.detail["duration"] == 0.3
    step = events(result, "step_end")[0]
    start = events(result, "step_start")[0]
    assert step.offset - start.offset >= 0.3
    assert anyio.current_time() - started >= 0.3


async def test_a_worker_fault_in_a_run_without_workers_ends_it_as_error() -> None:
    result = await run_text(
        """\
        test:
          name: no_workers
          setup:
            handlers: [noop]
          steps:
            - {type: chaos, fault: kill_worker}
        """
    )
    assert result.outcome == "error"
    assert "kill_worker: the run has no worker processes" in (result.error or "")
