"""Worker faults through the fleet (``sz.scenarios.fleet``): real worker processes."""

# Scenario YAML is written here in flow style, one step a line, as in the
# shipped files: its lines are as long as a step is.
# ruff: noqa: E501

from __future__ import annotations

import pytest

from .runs import events, explain, run_text

pytestmark = pytest.mark.anyio

WORKERS = """\
test:
  name: workers
  setup:
    handlers: []
    workers: [{module: sz.builtin, methods: [noop, sleep], count: 2}]
  steps:
    - name: load
      type: parallel
      steps:
        - {type: action, action: {method: submit_jobs, args: {task: sleep, count: 100, rate: 50, args: {seconds: 0.01}}}}
        - type: loop
          iterations: 1
          steps:
            - {type: sleep, duration: 500ms}
            - {name: fault, type: chaos, fault: FAULT}
    - {type: wait_until, condition: "jobs_pending == 0", timeout: 20}
  checks: [no_lost_jobs, restart_budget]
"""


def with_fault(fault: str) -> str:
    return WORKERS.replace("fault: FAULT", f"fault: {fault}")


async def test_kill_worker_with_restart_loses_no_job() -> None:
    result = await run_text(
        with_fault(
            "kill_worker, target: worker-1, signal: SIGKILL, restart_after: 500ms"
        )
    )
    assert result.outcome == "passed", explain(result)
    fault = events(result, "fault")[0]
    assert list(fault.detail["targets"]) == ["worker-1"]
    assert fault.detail["signal"] == "SIGKILL"


async def test_pause_worker_holds_the_step_for_its_duration() -> None:
    result = await run_text(with_fault("pause_worker, target: worker-2, duration: 1s"))
    assert result.outcome == "passed", explain(result)
    start = next(e for e in events(result, "step_start") if e.name == "fault")
    end = next(e for e in events(result, "step_end") if e.name == "fault")
    assert end.offset - start.offset >= 1.0


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(
            "partition, target: worker-1, duration: 1s",
            id="partition",
        ),
        pytest.param(
            "delay, target: worker-1, delay: 100ms, jitter: 20ms, duration: 1s",
            id="delay",
        ),
        pytest.param(
            "drop, target: worker-1, probability: 0.3, duration: 1s",
            id="drop",
        ),
    ],
)
async def test_link_faults_go_through_the_workers_proxy(fault: str) -> None:
    result = await run_text(with_fault(fault))
    assert result.outcome == "passed", explain(result)
    assert list(events(result, "fault")[0].detail["targets"]) == ["worker-1"]
