"""Each check holds on a healthy run, and fails when its invariant is broken.

How each is broken, honestly:

- ``no_lost_jobs``: the scheduler records an outcome for every job it
  accepts, so a handler cannot drop one. The check is fed, instead, a
  submitted job id the scheduler never saw and a schedule whose fires never
  reached it (the run's bookkeeping says they were due; the real history,
  from a real scheduler, has no row for them): exactly what a job lost
  without a trace would look like.
- ``no_duplicate_jobs``: a real duplicate. A sync handler's thread cannot be
  stopped: its actor killed mid-call, the job is retried elsewhere while the
  first call runs on in its thread and returns too. The run's own handlers
  count both returns.
- ``schedule_fidelity``: a schedule firing every 100 ms into one handler
  busy 300 ms a job, with a grace of 50 ms: fires start late, or are missed.
- ``recovery_time``: the only handler of the load's task stopped for good
  under load: throughput never comes back.
- ``restart_budget``: a handler the run spawned (a child of the run's actor,
  whose supervision allows 3 restarts in 5 s) killed four times: the run's
  actor gives up on it.
"""

# Scenario YAML is written here in flow style, one step a line, as in the
# shipped files: its lines are as long as a step is.
# ruff: noqa: E501

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from sz import ScheduleZero
from sz.builtin import noop
from sz.scenarios.checks import read_history, run_checks
from sz.scenarios.record import RunRecord, ScheduleRecord

from .runs import explain, run_text

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def test_no_lost_jobs_holds_for_every_job_and_fire_of_a_healthy_run() -> None:
    result = await run_text(
        """\
        test:
          name: healthy
          setup: {handlers: [{task: noop, concurrency: 4}, echo]}
          steps:
            - {type: action, action: {method: create_schedule, args: {task_id: echo, trigger: {type: interval, seconds: 0.1}, args: [1]}}}
            - {type: action, action: {method: submit_jobs, args: {task: noop, count: 300, rate: 300}}}
            - {type: sleep, duration: 1500ms}
            - {type: action, action: {method: delete_schedule}}
            - {type: wait_until, condition: "jobs_pending == 0", timeout: 10}
          checks: [no_lost_jobs, no_duplicate_jobs, schedule_fidelity, restart_budget]
        """
    )
    assert result.outcome == "passed", explain(result)
    lost = result.checks["no_lost_jobs"]
    assert lost["submitted"] == 300
    assert lost["fires_due"] >= 5
    assert lost["lost"] == 0
    assert result.checks["schedule_fidelity"]["fires_due"] == lost["fires_due"]


async def test_no_lost_jobs_fails_for_a_job_and_fires_with_no_final_row() -> None:
    sz = ScheduleZero()
    sz.handler(noop)
    now = datetime.now(UTC)
    record = RunRecord(now)
    async with sz:
        handle = await sz.submit("noop")
        record.submitted_job(handle)
        await handle.result()
        record.claim_submitted("never-accepted")
        record.schedules["ghost"] = ScheduleRecord(
            id="ghost",
            task="noop",
            trigger="interval",
            fields={"seconds": 1},
            grace=None,
            created_at=now - timedelta(seconds=5),
        )
        history = await read_history(sz)
        checks, lost, _ = run_checks(
            ["no_lost_jobs", "schedule_fidelity"], record, history, datetime.now(UTC)
        )
    check = checks["no_lost_jobs"]
    assert check["passed"] is False
    assert check["submitted"] == 2
    assert check["fires_due"] >= 3
    assert lost == check["lost"] == 1 + check["fires_due"]
    assert check["lost_ids"][0] == "never-accepted"
    assert check["lost_ids"][1].startswith("ghost@")
    fidelity = checks["schedule_fidelity"]
    assert fidelity["passed"] is False
    assert fidelity["missed"] == check["fires_due"]


DUPLICATING = '''\
import threading

retry_started = threading.Event()


def slow_once(key):
    """The first call runs on in its thread until the retry has started."""
    if not retry_started.is_set() and not getattr(slow_once, "called", False):
        slow_once.called = True
        retry_started.wait(10)
        return key
    retry_started.set()
    return key
'''


@pytest.fixture
def duplicating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A handler module of a fresh name (its state is per module), importable."""
    module = f"duplicating_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(DUPLICATING)
    monkeypatch.syspath_prepend(str(tmp_path))
    return module


async def test_no_duplicate_jobs_fails_when_a_job_really_ran_twice(
    duplicating: str,
) -> None:
    module = duplicating
    result = await run_text(
        f"""\
        test:
          name: duplicates
          setup: {{handlers: [{{module: {module}, methods: [slow_once]}}]}}
          steps:
            - name: both
              type: parallel
              steps:
                - {{type: action, action: {{method: run_job, args: {{task: slow_once, args: [k], timeout: 10s}}}}}}
                - type: loop
                  iterations: 1
                  steps:
                    - {{type: sleep, duration: 100ms}}
                    - {{type: chaos, fault: kill_actor, target: /user/handlers/slow_once}}
          checks: [no_duplicate_jobs, no_lost_jobs]
          assertions: [duplicate_jobs == 0]
        """
    )
    assert result.outcome == "failed", explain(result)
    check = result.checks["no_duplicate_jobs"]
    assert check["passed"] is False
    assert check["duplicates"] == 1
    assert check["executions"] == 2
    assert check["retried_jobs"] == 1
    assert result.checks["no_lost_jobs"]["passed"] is True
    assert result.assertions[0].value is False


async def test_schedule_fidelity_holds_for_timely_fires_and_fails_for_late_ones() -> (
    None
):
    timely = await run_text(
        """\
        test:
          name: timely
          setup: {handlers: [echo]}
          steps:
            - {type: action, action: {method: create_schedule, args: {task_id: echo, trigger: {type: interval, seconds: 0.2}, args: [1]}}}
            - {type: sleep, duration: 1500ms}
            - {type: action, action: {method: delete_schedule}}
            - {type: wait_until, condition: "jobs_pending == 0", timeout: 10}
          checks: [schedule_fidelity]
        """
    )
    assert timely.outcome == "passed", explain(timely)
    assert timely.checks["schedule_fidelity"]["fires_due"] >= 3
    late = await run_text(
        """\
        test:
          name: late
          setup: {handlers: [{task: sleep, concurrency: 1}]}
          steps:
            - {type: action, action: {method: create_schedule, args: {task_id: sleep, trigger: {type: interval, seconds: 0.1}, args: {seconds: 0.3}, misfire_grace_time: 50ms}}}
            - {type: sleep, duration: 2s}
            - {type: action, action: {method: delete_schedule}}
            - {type: wait_until, condition: "jobs_pending == 0", timeout: 20}
          checks: [schedule_fidelity]
        """
    )
    assert late.outcome == "failed", explain(late)
    check = late.checks["schedule_fidelity"]
    assert check["passed"] is False
    assert check["missed"] + check["late"] > 0


RECOVERY = """\
test:
  name: recovery
  parameters: {fault: kill_actor}
  setup: {handlers: [{task: noop, concurrency: 2}]}
  steps:
    - name: load
      type: parallel
      steps:
        - {type: action, action: {method: submit_jobs, args: {task: noop, count: 600, rate: 200}}}
        - type: loop
          iterations: 1
          steps:
            - {type: sleep, duration: 1500ms}
            - {type: chaos, fault: "${fault}", target: /user/handlers/noop}
  checks: [recovery_time]
"""


async def test_recovery_time_holds_when_a_killed_handler_comes_back() -> None:
    result = await run_text(RECOVERY, fault="kill_actor")
    assert result.outcome == "passed", explain(result)
    check = result.checks["recovery_time"]
    assert check["episodes"] == 1
    assert check["details"][0]["throughput_before"] > 0
    assert check["details"][0]["recovered"] is True


async def test_recovery_time_fails_when_throughput_never_comes_back() -> None:
    result = await run_text(RECOVERY, fault="stop_actor")
    assert result.outcome == "failed", explain(result)
    check = result.checks["recovery_time"]
    assert check["passed"] is False
    assert check["details"][0]["recovered"] is False


async def test_restart_budget_fails_when_a_supervisor_gives_up() -> None:
    result = await run_text(
        textwrap.dedent(
            """\
            test:
              name: budget
              setup: {handlers: [noop]}
              steps:
                - {type: action, action: {method: spawn_handler, args: {task: noop}}}
                - type: loop
                  iterations: 4
                  steps:
                    - {type: chaos, fault: kill_actor, target: "/user/scenarios/*/noop#2", pick: all}
              checks: [restart_budget]
            """
        )
    )
    assert result.outcome == "aborted", explain(result)
    check = result.checks["restart_budget"]
    assert check["passed"] is False
    assert check["gave_up"][0]["supervisor"] == f"/user/scenarios/{result.run_id}"
    assert check["gave_up"][0]["child"].endswith("noop#2")
