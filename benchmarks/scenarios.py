"""Scenario runner benchmark: ``python -m benchmarks.scenarios [--quick] [-h]``.

The scenario runner (``sz.scenarios.run_scenario``, what ``sz scenario run``
does), each figure beside the same work done without it in the same run and
on the same backend, so a ratio reads off one run (issue 18):

- ``submit_jobs`` pacing: a scenario whose step submits jobs at an offered
  rate (500 to 5,000 a second, for ``SECONDS`` each), to a no-op handler;
  the rate achieved over the step (``n - 1`` intervals from its start to its
  end, read off the run's timeline) and its error. Beside: the same jobs
  submitted at the same rate by ``sz.scenarios.Pacer`` and ``sz.submit`` in a
  plain task of a scheduler of the benchmark's own. Target: within 2 % up to
  5,000 jobs/s.
- The runner's overhead: the scheduler's throughput of one load (jobs
  submitted as fast as they are accepted, to a no-op handler of concurrency
  1,000, on the memory store), through a scenario's ``submit_jobs`` step and
  directly through ``sz.submit``, runs alternating, each side the best of
  ``REPEAT``. Throughput is read off the handler's side (its first and last
  call), so both sides are timed alike; the runner's record of every job, its
  counting wrapper and its sampler are what it costs. Target: at most 10 %.
- ``sz scenario run chaos_kill_actors`` at its full size (1,000 kills at
  random actors under ``/user`` while 20,000 jobs are submitted at 1,000 a
  second), in a process of its own: wall time, the outcome and its checks.
  Beside: the floor its own pacing sets (its jobs at its rate, or its kills
  with their pauses, whichever is longer). Target: under a minute.

``--only pacing,overhead,chaos`` picks parts (repeatable; all by default).
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from benchmarks import workload
from benchmarks.common import arguments, backends, say, verdict
from sz import ScheduleZero
from sz.scenarios import Pacer, ScenarioResult, parse_scenario, run_scenario

#: Each overhead figure is the best of this many runs (a shared VM wanders).
REPEAT = 7

#: Offered rates of the pacing part, jobs a second.
RATES = (500, 1_000, 2_000, 5_000)

#: Seconds each offered rate is held.
SECONDS = 5

#: Jobs a handler runs at once (as benchmarks.common's ``CONCURRENCY``).
CONCURRENCY = 1_000

TARGETS = {"rate_error": 0.02, "overhead": 0.10, "chaos_seconds": 60.0}

#: The shipped chaos run at full size, as its file's comment gives it.
CHAOS_PARAMS = {"kills": 1_000, "jobs": 20_000, "rate": 1_000}
QUICK_CHAOS_PARAMS = {"kills": 100, "jobs": 2_000, "rate": 1_000}

#: Width of the label column.
LABEL = 40

_SCENARIO = """
test:
  name: bench_submit
  parameters:
    jobs: 1000
    rate: 1000
  setup:
    handlers: [{{module: benchmarks.workload, methods: [timed],
                concurrency: {concurrency}}}]
    store: memory
  steps:
    - name: submit
      type: action
      action:
        method: submit_jobs
        args: {{task: timed, count: "${{jobs}}"{rate}}}
    - {{name: settle, type: wait_until, condition: "jobs_pending == 0",
       timeout: 300}}
  checks: [no_lost_jobs]
"""


def row(label: str, figures: str) -> None:
    say(f"    {label:<{LABEL}} {figures}")


def scenario_text(paced: bool) -> str:
    """The benchmark's scenario: ``jobs`` submitted at ``rate`` (if ``paced``)."""
    rate = ', rate: "${rate}"' if paced else ""
    return _SCENARIO.format(concurrency=CONCURRENCY, rate=rate)


async def through_runner(jobs: int, rate: float | None) -> ScenarioResult:
    """One run of the benchmark's scenario; fails loudly unless it passed."""
    params: dict[str, object] = {"jobs": jobs}
    if rate is not None:
        params["rate"] = rate
    scenario = parse_scenario(
        scenario_text(rate is not None),
        source="benchmarks.scenarios",
        parameters=params,
    )
    workload.CALLS.reset(jobs)
    result = await run_scenario(scenario, seed=1)
    if not result.passed:
        raise RuntimeError(f"the benchmark's scenario did not pass: {result.dumps()}")
    if workload.CALLS.count != jobs:
        raise RuntimeError(f"{workload.CALLS.count:,} of {jobs:,} jobs ran")
    return result


def step_span(result: ScenarioResult, name: str) -> tuple[float, dict[str, Any]]:
    """Seconds from the start to the end of step ``name``, and its end's detail."""
    start = end = None
    detail: dict[str, Any] = {}
    for event in result.timeline:
        if event.name == name and event.event == "step_start":
            start = event.offset
        elif event.name == name and event.event == "step_end":
            end, detail = event.offset, dict(event.detail)
    if start is None or end is None:
        raise RuntimeError(f"no step {name!r} in the run's timeline")
    return end - start, detail


def direct_scheduler() -> ScheduleZero:
    """The scheduler the runner builds for the scenario, built by hand."""
    sz = ScheduleZero(name="bench", store="memory")
    sz.handler(workload.timed, name="timed", concurrency=CONCURRENCY)
    return sz


async def all_ran() -> None:
    assert workload.CALLS.all_ran is not None
    with anyio.fail_after(300):
        await workload.CALLS.all_ran.wait()


async def direct_submit(sz: ScheduleZero, jobs: int, rate: float | None) -> float:
    """``jobs`` through ``sz.submit`` paced by ``Pacer``: seconds from the first
    to the last submission."""
    workload.CALLS.reset(jobs)
    pacer = Pacer(jobs, rate)
    start = last = 0.0
    while n := await pacer.due():
        if not start:
            start = time.perf_counter()
        for _ in range(n):
            await sz.submit("timed")
        last = time.perf_counter()
    await all_ran()
    return last - start


# ----------------------------------------------------------------- pacing


def achieved(jobs: int, seconds: float, offered: float) -> str:
    rate = (jobs - 1) / seconds if seconds > 0 else float("inf")
    error = rate / offered - 1
    return (
        f"{rate:>8,.0f} jobs/s ({error:+6.2%})"
        f"  {verdict(abs(error) <= TARGETS['rate_error'])}"
    )


async def pacing_figures(seconds: int) -> None:
    say(
        f"  submit_jobs at an offered rate, {seconds} s each, no-op handler"
        f" (target: within {TARGETS['rate_error']:.0%}):"
    )
    sz = direct_scheduler()
    async with sz:
        direct: dict[int, float] = {}
        for rate in RATES:
            direct[rate] = await direct_submit(sz, rate * seconds, rate)
    for rate in RATES:
        jobs = rate * seconds
        result = await through_runner(jobs, rate)
        span, detail = step_span(result, "submit")
        if detail.get("accepted") != jobs:
            raise RuntimeError(f"submit_jobs accepted {detail}, not {jobs:,}")
        row(f"offered {rate:,}/s, {jobs:,} jobs: runner", achieved(jobs, span, rate))
        row("  Pacer + sz.submit in a plain task", achieved(jobs, direct[rate], rate))


# --------------------------------------------------------------- overhead


async def overhead_figures(jobs: int, repeat: int) -> None:
    runner: list[float] = []
    plain: list[float] = []

    def handled() -> float:
        calls = workload.CALLS
        return (calls.count - 1) / (calls.last - calls.first)

    async def through_scenario() -> None:
        await through_runner(jobs, None)
        runner.append(handled())

    async def directly() -> None:
        async with direct_scheduler() as sz:
            await direct_submit(sz, jobs, None)
        plain.append(handled())

    for i in range(repeat):
        # Alternating which goes first: the VM's drift falls on both.
        for side in (
            (through_scenario, directly) if i % 2 else (directly, through_scenario)
        ):
            # Each side from a collected heap: else the previous run's garbage
            # falls into one side's window as a full collection (30-60 ms
            # here, a few % of a run) by luck, not by what that side does.
            gc.collect()
            await side()
    overhead = 1 - max(runner) / max(plain)
    # Each alternating pair's own overhead: how far the VM's wander moves it.
    pairs = [1 - r / p for r, p in zip(runner, plain, strict=True)]
    say(
        f"  {jobs:,} jobs submitted as fast as accepted, no-op handler of concurrency"
        f" {CONCURRENCY:,} (best of {repeat}, runs alternating):"
    )
    target = TARGETS["overhead"]
    row(
        "through a scenario (submit_jobs)",
        f"{max(runner):>8,.0f} jobs/s   overhead {overhead:6.1%}"
        f" (pairs {min(pairs):.1%} to {max(pairs):.1%},"
        f" median {statistics.median(pairs):.1%};"
        f" runs {min(runner):,.0f}-{max(runner):,.0f})"
        f"   target <= {target:.0%}  {verdict(overhead <= target)}",
    )
    row(
        "sz.submit directly",
        f"{max(plain):>8,.0f} jobs/s"
        f"                  (runs {min(plain):,.0f}-{max(plain):,.0f})",
    )


# ------------------------------------------------------------------ chaos


async def chaos_figures(backend: str, params: dict[str, int]) -> None:
    """``sz scenario run chaos_kill_actors`` in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="sz-bench-") as folder:
        export = Path(folder) / "result.json"
        command = [sys.executable, "-m", "sz", "scenario", "run", "chaos_kill_actors"]
        for name, value in params.items():
            command += ["--param", f"{name}={value}"]
        command += ["--backend", backend, "--seed", "1", "--export", str(export)]
        start = time.perf_counter()
        done = await anyio.run_process(command, check=False)
        wall = time.perf_counter() - start
        found = (
            ScenarioResult.from_json(json.loads(export.read_text()))
            if export.exists()
            else None
        )
    floor = max(params["jobs"] / params["rate"], params["kills"] * 0.020)
    shown = ", ".join(f"{k}={v:,}" for k, v in params.items())
    say(f"  sz scenario run chaos_kill_actors ({shown}), seed 1:")
    target = TARGETS["chaos_seconds"]
    if found is None:
        row("wall time", f"{wall:6.1f} s, NO RESULT (exit {done.returncode})")
        say(done.stderr.decode(errors="replace")[-2000:])
        return
    row(
        "wall time (process start to exit)",
        f"{wall:6.1f} s   target < {target:.0f} s  {verdict(wall < target)}",
    )
    row("  the run itself (its result's times)", f"{found.duration:6.1f} s")
    row(
        "  the floor its pacing sets",
        f"{floor:6.1f} s ({params['jobs']:,} jobs at {params['rate']:,}/s;"
        f" {params['kills']:,} kills with 20 ms pauses)",
    )
    faults = sum(event.event == "fault" for event in found.timeline)
    row(
        "outcome",
        f"{found.outcome} (exit {done.returncode}), {faults:,} kills done",
    )
    latency = found.metrics.get("job_latency")
    if isinstance(latency, dict) and latency.get("count"):
        row(
            "  job_latency (submission to final row)",
            f"p50 {latency['p50'] * 1000:,.0f} ms  p99 {latency['p99'] * 1000:,.0f} ms"
            f"  max {latency['max'] * 1000:,.0f} ms",
        )
    for name, check in found.checks.items():
        details = ", ".join(
            f"{key} {value}"
            for key, value in check.items()
            if key != "passed" and not isinstance(value, list | dict)
        )
        passed = "passed" if check["passed"] else "FAILED"
        row(f"  check {name}", f"{passed}  {details}")
    for assertion in found.assertions:
        row(
            f"  assert {assertion.expression}",
            "passed" if assertion.passed else "FAILED",
        )


# ------------------------------------------------------------------- main


PARTS = ["pacing", "overhead", "chaos"]


def main() -> None:
    parser = arguments(
        __doc__,
        "a tenth of the work: 1 s per rate, 10,000 jobs once, a tenth of the chaos",
    )
    parser.add_argument(
        "--only", choices=PARTS, action="append", help="run only these parts"
    )
    options = parser.parse_args()
    parts = options.only or PARTS
    quick = options.quick
    for backend in backends(options):
        say(f"{backend}:")
        if "pacing" in parts:
            anyio.run(pacing_figures, 1 if quick else SECONDS, backend=backend)
        if "overhead" in parts:
            anyio.run(
                overhead_figures,
                10_000 if quick else 100_000,
                1 if quick else REPEAT,
                backend=backend,
            )
        if "chaos" in parts:
            params = QUICK_CHAOS_PARAMS if quick else CHAOS_PARAMS
            anyio.run(chaos_figures, backend, params, backend=backend)


if __name__ == "__main__":
    main()
