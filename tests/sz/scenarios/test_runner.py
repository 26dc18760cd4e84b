"""The runner: each step type, each action, assertions, the steady state, aborts."""

# Scenario YAML is written here in flow style, one step a line, as in the
# shipped files: its lines are as long as a step is.
# ruff: noqa: E501

from __future__ import annotations

import anyio
import pytest

from sz.scenarios import Pacer, format_result

from .runs import events, explain, run_text

pytestmark = pytest.mark.anyio


async def test_sleep_loop_and_parallel_steps_run_in_order_on_the_timeline() -> None:
    result = await run_text(
        """\
        test:
          name: steps
          setup: {handlers: [noop]}
          steps:
            - name: twice
              type: loop
              iterations: 2
              steps: [{type: sleep, duration: 10ms}]
            - name: briefly
              type: loop
              duration: 50ms
              steps: [{type: sleep, duration: 10ms}]
            - name: both
              type: parallel
              steps:
                - {name: left, type: sleep, duration: 20ms}
                - {name: right, type: sleep, duration: 20ms}
            - {name: nap, type: sleep, duration: 10ms}
        """
    )
    assert result.outcome == "passed", explain(result)
    ends = {event.name: dict(event.detail) for event in events(result, "step_end")}
    assert ends["twice"]["iterations"] == 2
    assert ends["briefly"]["iterations"] >= 1
    assert ends["both"]["branches"] == 2
    starts = [event.name for event in events(result, "step_start")]
    assert starts.index("twice") < starts.index("briefly") < starts.index("both")
    assert {"left", "right"} <= set(starts)
    assert starts[-1] == "nap"
    assert [event.event for event in result.timeline][:: len(result.timeline) - 1] == [
        "run_start",
        "run_end",
    ]


async def test_wait_until_that_never_holds_fails_the_run_at_its_timeout() -> None:
    result = await run_text(
        """\
        test:
          name: waits
          setup: {handlers: [noop]}
          steps:
            - {name: never, type: wait_until, condition: "jobs_pending > 5", timeout: 300ms}
            - {name: after, type: sleep, duration: 1ms}
        """
    )
    assert result.outcome == "failed"
    assert "wait_until jobs_pending > 5: still false after 0.3 s" in (
        result.error or ""
    )
    assert "after" not in [event.name for event in events(result, "step_start")]


async def test_wait_until_returns_once_the_condition_holds() -> None:
    result = await run_text(
        """\
        test:
          name: settles
          setup: {handlers: [{task: sleep, concurrency: 4}]}
          steps:
            - {type: action, action: {method: submit_jobs, args: {task: sleep, count: 20, args: {seconds: 0.05}}}}
            - {name: settle, type: wait_until, condition: "jobs_pending == 0", timeout: 10}
          checks: [no_lost_jobs]
        """
    )
    assert result.outcome == "passed", explain(result)
    assert result.checks["no_lost_jobs"]["submitted"] == 20


async def test_schedule_actions_act_on_the_oldest_fitting_schedule_by_default() -> None:
    result = await run_text(
        """\
        test:
          name: schedules
          setup: {handlers: [echo]}
          steps:
            - {type: action, action: {method: create_schedule, args: {task_id: echo, trigger: {type: interval, seconds: 60}, args: [1]}}}
            - {type: action, action: {method: create_schedule, args: {task_id: echo, trigger: "*/5 * * * *", schedule_id: second}}}
            - {type: action, action: {method: pause_schedule}}
            - {type: action, action: {method: pause_schedule}}
            - {type: action, action: {method: resume_schedule}}
            - {type: action, action: {method: delete_schedule}}
            - {type: action, action: {method: delete_schedule, args: {schedule_id: second}}}
          metrics: [creation_rate, deletion_rate]
          assertions: [creation_rate > 0, deletion_rate > 0]
        """
    )
    assert result.outcome == "passed", explain(result)
    ends = [dict(e.detail) for e in events(result, "step_end")]
    first = ends[0]["schedule_id"]
    assert [end["schedule_id"] for end in ends] == [
        first,
        "second",
        first,
        "second",
        first,
        first,
        "second",
    ]


async def test_an_action_without_a_schedule_to_act_on_fails_the_run() -> None:
    result = await run_text(
        """\
        test:
          name: nothing
          setup: {handlers: [echo]}
          steps:
            - {type: action, action: {method: delete_schedule}}
        """
    )
    assert result.outcome == "failed"
    assert "no schedule of the run" in (result.error or "")


async def test_run_job_waits_for_its_end_and_a_failing_job_fails_the_run() -> None:
    ok = await run_text(
        """\
        test:
          name: one
          setup: {handlers: [echo, fail]}
          steps:
            - {type: action, action: {method: run_job, args: {task: echo, args: [42], timeout: 5s}}}
        """
    )
    assert ok.outcome == "passed", explain(ok)
    assert events(ok, "step_end")[0].detail["result"] == "42"
    failed = await run_text(
        """\
        test:
          name: one
          setup: {handlers: [echo, fail]}
          steps:
            - {type: action, action: {method: run_job, args: {task: fail, timeout: 5s}}}
        """
    )
    assert failed.outcome == "failed"
    assert "run_job fail" in (failed.error or "")


async def test_submit_jobs_at_a_rate_takes_at_least_count_over_rate() -> None:
    started = anyio.current_time()
    result = await run_text(
        """\
        test:
          name: paced
          setup: {handlers: [{task: noop, concurrency: 4}]}
          steps:
            - {type: action, action: {method: submit_jobs, args: {task: noop, count: 100, rate: 400}}}
            - {type: wait_until, condition: "jobs_pending == 0", timeout: 10}
          checks: [no_lost_jobs, no_duplicate_jobs]
        """
    )
    assert result.outcome == "passed", explain(result)
    # 100 jobs at 400 a second: the last is due 99/400 s after the first.
    assert anyio.current_time() - started >= 99 / 400
    assert events(result, "step_end")[0].detail == {
        "kind": "action",
        "accepted": 100,
        "refused": 0,
    }


async def test_pacer_releases_every_event_due_and_never_more() -> None:
    pacer = Pacer(50, 10_000)
    released = []
    while n := await pacer.due():
        released.append(n)
    assert sum(released) == 50
    unpaced = Pacer(200, None, batch=64)
    counts = []
    while n := await unpaced.due():
        counts.append(n)
    assert counts == [64, 64, 64, 8]


async def test_spawn_handler_adds_a_child_of_the_run_and_stop_handler_stops_the_newest() -> (
    None
):
    result = await run_text(
        """\
        test:
          name: handlers
          setup: {handlers: [{task: echo, concurrency: 2}, noop]}
          steps:
            - {type: action, action: {method: spawn_handler, args: {task: echo}}}
            - {type: action, action: {method: spawn_handler, args: {task: noop, concurrency: 3}}}
            - {type: action, action: {method: submit_jobs, args: {task: echo, count: 50, args: [1]}}}
            - {type: action, action: {method: run_job, args: {task: noop, timeout: 5s}}}
            - {type: action, action: {method: stop_handler, args: {task: echo}}}
            - {type: action, action: {method: run_job, args: {task: echo, args: [2], timeout: 5s}}}
            - {type: wait_until, condition: "jobs_pending == 0", timeout: 10}
            - {type: action, action: {method: stop_handler, args: {task: echo}}}
            - {type: action, action: {method: stop_handler, args: {task: echo}}}
          checks: [no_lost_jobs, no_duplicate_jobs]
        """,
        seed=7,
    )
    ends = [dict(event.detail) for event in events(result, "step_end")]
    assert ends[0]["handler"] == "echo#2"
    assert ends[0]["path"] == f"/user/scenarios/{result.run_id}/echo#2"
    assert ends[1]["handler"] == "noop#2"
    assert ends[4]["handler"] == "echo#2"
    assert ends[7]["handler"] == "echo"
    # The last stop finds no local handler of echo left.
    assert result.outcome == "failed"
    assert "no local handler of 'echo' is left" in (result.error or "")
    assert result.checks["no_lost_jobs"]["passed"], explain(result)
    assert result.checks["no_duplicate_jobs"]["passed"], explain(result)


async def test_assertions_are_evaluated_and_any_false_one_fails_the_run() -> None:
    result = await run_text(
        """\
        test:
          name: asserts
          setup: {handlers: [noop]}
          steps:
            - {type: action, action: {method: submit_jobs, args: {task: noop, count: 10}}}
            - {type: wait_until, condition: "jobs_pending == 0", timeout: 10}
          checks: [no_lost_jobs]
          metrics: [job_latency]
          assertions:
            - lost_jobs == 0
            - p99(job_latency) < 10s
            - duplicate_jobs > 0
        """
    )
    assert result.outcome == "failed"
    shown = [(a.expression, a.value, a.passed) for a in result.assertions]
    assert shown == [
        ("lost_jobs == 0", True, True),
        ("p99(job_latency) < 10s", True, True),
        ("duplicate_jobs > 0", False, False),
    ]
    assert result.metrics["job_latency"]["count"] == 10  # type: ignore[index]


async def test_error_rate_is_the_share_of_jobs_that_did_not_succeed_in_percent() -> (
    None
):
    result = await run_text(
        """\
        test:
          name: errors
          setup: {handlers: [noop, fail]}
          steps:
            - {type: action, action: {method: submit_jobs, args: {task: noop, count: 9}}}
            - {type: action, action: {method: submit_jobs, args: {task: fail, count: 1}}}
            - {type: wait_until, condition: "jobs_pending == 0", timeout: 10}
          metrics: [{error_rate: "%"}]
          assertions: [error_rate < 1%, error_rate <= 10, error_rate == 0.1]
        """
    )
    held = {a.expression: a.passed for a in result.assertions}
    assert held == {
        "error_rate < 1%": False,
        "error_rate <= 10": True,
        "error_rate == 0.1": False,  # shown in %: 0.1 means 0.1 %
    }
    assert result.metrics["error_rate"] == pytest.approx(0.1)


async def test_a_steady_state_condition_that_breaks_during_the_run_fails_it() -> None:
    result = await run_text(
        """\
        test:
          name: steady
          setup: {handlers: [{task: sleep, concurrency: 1}]}
          steady_state: [jobs_pending < 3, memory_usage < 100GB]
          steps:
            - {type: action, action: {method: submit_jobs, args: {task: sleep, count: 10, args: {seconds: 0.05}}}}
            - {type: wait_until, condition: "jobs_pending == 0", timeout: 10}
        """
    )
    assert result.outcome == "failed"
    check = result.checks["steady_state"]
    assert check["passed"] is False
    assert check["violations"] == [{"phase": "during", "condition": "jobs_pending < 3"}]
    assert [e.name for e in events(result, "steady_state")] == ["jobs_pending < 3"]
    # Without faults, the steps mark the phases.
    assert check["marked_by"] == "steps"
    phases = check["phases"]
    assert [(name, v["passed"]) for name, v in phases.items()] == [
        ("before", True),
        ("during", False),
        ("after", True),
    ]
    assert phases["during"]["violations"] == ["jobs_pending < 3"]
    assert phases["before"]["checked"] >= 1
    assert phases["after"]["checked"] >= 1


async def test_the_steady_state_is_reported_before_during_and_after_the_faults() -> (
    None
):
    result = await run_text(
        """\
        test:
          name: phases
          setup: {handlers: [{task: sleep, concurrency: 1}]}
          steady_state: [jobs_pending < 3, memory_usage < 100GB]
          steps:
            - {name: calm, type: sleep, duration: 500ms}
            - {name: first, type: chaos, fault: kill_actor, target: /user/handlers/sleep}
            - {type: action, action: {method: submit_jobs, args: {task: sleep, count: 10, args: {seconds: 0.05}}}}
            - {type: wait_until, condition: "jobs_pending == 0", timeout: 10}
            - {name: last, type: chaos, fault: kill_actor, target: /user/handlers/sleep}
            - {name: recovered, type: sleep, duration: 500ms}
        """
    )
    assert result.outcome == "failed"
    check = result.checks["steady_state"]
    assert check["marked_by"] == "faults"
    phases = check["phases"]
    assert {name: v["passed"] for name, v in phases.items()} == {
        "before": True,
        "during": False,
        "after": True,
    }
    assert phases["during"]["violations"] == ["jobs_pending < 3"]
    assert all(phases[name]["checked"] >= 2 for name in ("before", "after"))
    # The phases are the faults': the first struck after the calm step, and
    # the samples after the last fault's step are "after".
    (calm,) = [e for e in events(result, "step_end") if e.name == "calm"]
    faults = events(result, "fault")
    assert len(faults) == 2
    assert faults[0].offset >= calm.offset
    lines = [" ".join(line.split()) for line in format_result(result).splitlines()]
    at = lines.index("steady_state FAIL phases marked by faults")
    before, during, after = lines[at + 1 : at + 4]
    assert before.startswith("before PASS ")
    assert during.startswith("during FAIL ")
    assert during.endswith("samples; broke: jobs_pending < 3")
    assert after.startswith("after PASS ")


async def test_killing_the_run_actor_aborts_the_run() -> None:
    result = await run_text(
        """\
        test:
          name: killed
          setup: {handlers: [noop]}
          steps:
            - {type: action, action: {method: submit_jobs, args: {task: noop, count: 20}}}
            - {type: chaos, fault: kill_actor, target: "/user/scenarios/*", pick: all}
            - {name: never, type: sleep, duration: 60}
          checks: [no_lost_jobs]
        """
    )
    assert result.outcome == "aborted"
    assert result.passed is False
    assert "killed or stopped" in (result.error or "")
    assert "never" not in [event.name for event in events(result, "step_start")]
    assert result.timeline[-1].event == "run_end"
    assert result.timeline[-1].detail["outcome"] == "aborted"


async def test_stopping_a_step_actor_aborts_the_run() -> None:
    result = await run_text(
        """\
        test:
          name: stopped
          setup: {handlers: [noop]}
          steps:
            - name: both
              type: parallel
              steps:
                - {name: long, type: sleep, duration: 60}
                - type: loop
                  iterations: 1
                  steps:
                    - {type: sleep, duration: 50ms}
                    - {type: chaos, fault: stop_actor, target: "/user/scenarios/*/*/*-long", pick: all}
        """
    )
    assert result.outcome == "aborted", explain(result)
    fault = events(result, "fault")[0]
    assert len(fault.detail["targets"]) == 1
    assert fault.detail["targets"][0].endswith("-long")


async def test_a_warm_up_of_a_duration_ends_that_long_after_the_steps_start() -> None:
    result = await run_text(
        """\
        test:
          name: warm
          setup: {handlers: [noop]}
          warmup: 300ms
          steps:
            - {name: nap, type: sleep, duration: 1s}
          metrics: [memory_usage]
          assertions: ["rate(memory_usage) < 1GB/s"]
        """
    )
    assert result.outcome == "passed", explain(result)
    (warmed,) = events(result, "warmup_end")
    (nap,) = [e for e in events(result, "step_start") if e.name == "nap"]
    assert warmed.name == "0.3s"
    assert 0.3 <= warmed.offset - nap.offset + 0.05 < 1.0
    memory = result.metrics["memory_usage"]
    assert isinstance(memory, dict)
    assert "rate" in memory
