"""Running a scenario: ``run_scenario`` and the run's actor.

Each run builds a fresh embedded ``ScheduleZero`` from the scenario's setup
(its handlers wrapped to count executions, its store in a temporary folder of
its own, a broker and worker processes when the setup has workers), then runs
its steps in a supervised actor, ``/user/scenarios/<run id>``, whose children
are the steps as they run. A sampler records the metrics over time; at the end
the history is read back and checked, and the assertions evaluated.

The run always ends with a result, never a hang: killing or stopping the run's
actor (or a step's) ends it ``aborted``, and so does the scheduler ending
under it (a supervisor that gave up past ``/user``).
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import attrs

from actors import Actor, Escalated

from ..dispatcher import Register
from ..errors import ExpressionError, SzError
from ..handlers import HandlerActor, HandlerSpec as LocalSpec
from ..remote import BrokerSettings
from ..scheduler import ScheduleZero
from ..tree import HANDLER_MAILBOX
from .catalog import METRICS
from .checks import read_history, restart_budget, run_checks
from .context import Progress, RunContext
from .counting import counted, resolve_functions
from .evaluation import evaluate, metrics_named
from .loader import load_scenario
from .measures import final_metrics, summarize
from .model import ChaosStep, Scenario
from .operations import LocalHandler, Operations
from .record import RunRecord
from .result import AssertionResult, Outcome, ScenarioResult
from .sampler import Sampler
from .steps import Aborted, StepFailed, run_child
from .workers import open_fleet

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping

    from actors import ActorRef

    from .fleet import WorkerFleet
    from .result import TimelineEvent

__all__ = [
    "REGISTRATION_TIMEOUT",
    "RUN_BROKER",
    "RunActor",
    "ScenariosActor",
    "run_scenario",
]

#: Seconds a run waits for its worker processes to register with its broker.
REGISTRATION_TIMEOUT = 30.0

#: The broker of a run with workers: on a free port of this machine, and a
#: heartbeat of half a second (its workers beat at the same interval), so that
#: a worker killed, paused or cut off is declared lost within 1.5 s.
RUN_BROKER = BrokerSettings(endpoint="tcp://127.0.0.1:*", heartbeat=0.5)


@attrs.define
class RunSlot:
    """How a run's actor ended, for ``run_scenario``.

    Attributes:
        done: Set when it ended, however.
        finished: True if its steps ran to their end (or failed on their own).
        error: What ended the steps early, or None.
    """

    done: anyio.Event = attrs.Factory(anyio.Event)
    finished: bool = False
    error: BaseException | None = None


@attrs.frozen
class _StartRun:
    """Ask ``/user/scenarios`` to start a run's actor."""

    run_id: str
    scenario: Scenario
    context: RunContext
    slot: RunSlot


@attrs.frozen
class _SpawnHandler:
    """Ask the run's actor for one more handler of a task, as its child."""

    spec: LocalSpec


class RunActor(Actor):
    """One run: runs its top-level steps in order, each in a child actor.

    Args:
        steps: The scenario's steps.
        context: The run's shared parts.
        slot: Where it says how the run ended.
    """

    def __init__(self, scenario: Scenario, context: RunContext, slot: RunSlot) -> None:
        self.scenario = scenario
        self.context = context
        self.slot = slot

    async def on_start(self) -> None:
        """Start the steps."""
        self.start_task(self._main, name="steps")

    async def _main(self) -> None:
        try:
            for index, step in enumerate(self.scenario.steps, 1):
                self.context.index = index
                child = await run_child(
                    self, step, self.context, self.context.next_number()
                )
                if child.error is not None:
                    raise child.error
                if not child.ok:
                    raise Aborted("a step's actor was killed or stopped before its end")
                if step.name is not None and step.name == self.scenario.warmup:
                    self.context.record.event("warmup_end", step.name)
        except Exception as error:
            self.slot.error = error
        self.slot.finished = not isinstance(self.slot.error, Aborted)
        self.slot.done.set()
        await self.stop()

    async def receive(self, message: Any) -> Any:
        """Spawn a handler for ``spawn_handler``: a child of the run."""
        if isinstance(message, _SpawnHandler):
            spec = message.spec
            return await self.spawn(
                HandlerActor,
                spec,
                name=spec.name,
                capacity=spec.concurrency + HANDLER_MAILBOX,
            )
        return await super().receive(message)

    async def on_stop(self) -> None:
        """Killed or stopped before the end: the run is aborted."""
        self.slot.done.set()


class ScenariosActor(Actor):
    """``/user/scenarios``: the parent of every run; never restarts one."""

    async def receive(self, message: Any) -> Any:
        """Start a run's actor; answer its ref."""
        if isinstance(message, _StartRun):
            return await self.spawn(
                RunActor,
                message.scenario,
                message.context,
                message.slot,
                name=message.run_id,
                restart="temporary",
            )
        return await super().receive(message)


def _backend() -> str:
    module = anyio.lowlevel.current_token().backend_class.__module__
    return module.rsplit("_", 1)[-1]


def _build(
    scenario: Scenario, record: RunRecord, folder: Path
) -> tuple[ScheduleZero, dict[str, list[LocalHandler]], dict[str, Any]]:
    """The run's scheduler, its local handlers by task, and their functions."""
    setup = scenario.setup
    store = "memory" if setup.store == "memory" else f"sqlite:///{folder / 'run.db'}"
    broker = RUN_BROKER if setup.workers else None
    sz = ScheduleZero(config=setup.config, store=store, broker=broker, name="scenario")
    handlers: dict[str, list[LocalHandler]] = {}
    functions: dict[str, Any] = {}
    concurrency: dict[str, int | None] = {}
    for spec in setup.handlers:
        for task, func in resolve_functions(spec).items():
            function, observe = functions.setdefault(task, counted(func, record))
            concurrency.setdefault(task, spec.concurrency)
            sz.handler(
                function,
                name=task,
                concurrency=spec.concurrency or 1,
                observe=observe,
            )
            serving = handlers.setdefault(task, [])
            name = task if not serving else f"{task}#{len(serving) + 1}"
            serving.append(
                LocalHandler(name=name, task=task, path=f"/user/handlers/{name}")
            )
    return sz, handlers, {"functions": functions, "concurrency": concurrency}


async def _wait_registered(sz: ScheduleZero, names: tuple[str, ...]) -> None:
    with anyio.fail_after(REGISTRATION_TIMEOUT):
        while True:
            known = {status.name for status in await sz.handlers()}
            if all(name in known for name in names):
                return
            await anyio.sleep(0.05)


async def _watch_escalations(
    sz: ScheduleZero,
    record: RunRecord,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    async with sz.system.events(buffer=100_000) as events:
        task_status.started()
        async for event in events:
            if isinstance(event, Escalated):
                record.escalations.append((event.path, event.child, repr(event.error)))
                record.event("escalated", event.path, child=event.child)


def _has_faults(scenario: Scenario) -> bool:
    return any(isinstance(step, ChaosStep) for step in scenario.walk())


async def _watch_steady(scenario: Scenario, context: RunContext) -> None:
    failing: set[str] = set()
    while True:
        await context.sampler.wait_sample()
        context.progress("sample")
        _steady(scenario, context, failing)


def _steady(
    scenario: Scenario,
    context: RunContext,
    failing: set[str],
    *,
    start: bool = False,
    end: bool = False,
) -> None:
    """Evaluate the steady state on the latest samples, and keep each verdict.

    Which phase a verdict falls in is decided at the end (``steady_phases``),
    once the last fault is known; the timeline's ``steady_state`` events say
    the phase as known at the time.
    """
    if not scenario.steady_state:
        return
    record = context.record
    values = context.live_metrics()
    offset = record.offset()
    if start:
        phase = "before"
    elif end:
        phase = "after"
    elif _has_faults(scenario):
        phase = "during" if record.faults else "before"
    else:
        phase = "during"
    for condition in scenario.steady_state:
        try:
            holds = evaluate(
                condition.expression, values, trend_after=record.warmup_end()
            )
        except ExpressionError:
            continue  # not measured yet
        record.steady_state_checks.append((offset, condition.text, holds))
        key = f"{phase}:{condition.text}"
        if not holds and key not in failing:
            failing.add(key)
            record.event("steady_state", condition.text, phase=phase)


#: The steady state's phases, in order.
PHASES = ("before", "during", "after")


def steady_phases(
    record: RunRecord, steps: tuple[float, float] | None
) -> dict[str, Any]:
    """The steady state's verdicts by phase: before, during and after the faults.

    The phases are marked by the run's faults: before the first fault struck,
    from then until the last fault's step returned, and after. A run without
    faults (or none struck) has them marked by its steps: before the first
    step, while the steps ran, after the last. A phase without a sample taken
    in it shows ``checked`` 0 and holds.

    Args:
        record: The run's record, with its verdicts.
        steps: When the steps started and ended (offsets), or None if they
            never did.
    """
    faults = record.faults
    if faults:
        marked_by = "faults"
        start = faults[0].offset
        end = record.last_fault_end if record.last_fault_end is not None else start
    else:
        marked_by = "steps"
        start, end = steps if steps is not None else (math.inf, math.inf)
    phases: dict[str, dict[str, Any]] = {
        name: {"passed": True, "checked": 0, "violations": []} for name in PHASES
    }
    violations: list[dict[str, str]] = []
    samples: dict[str, set[float]] = {name: set() for name in PHASES}
    for offset, text, held in record.steady_state_checks:
        name = "before" if offset < start else "during" if offset <= end else "after"
        phase = phases[name]
        samples[name].add(offset)
        if not held and text not in phase["violations"]:
            phase["passed"] = False
            phase["violations"].append(text)
            violations.append({"phase": name, "condition": text})
    for name in PHASES:
        phases[name]["checked"] = len(samples[name])
    return {
        "passed": not violations,
        "marked_by": marked_by,
        "phases": phases,
        "violations": violations,
    }


async def _warm_up(seconds: float, record: RunRecord) -> None:
    await anyio.sleep(seconds)
    record.event("warmup_end", f"{seconds:g}s")


async def run_scenario(
    scenario: Scenario | str | os.PathLike[str],
    *,
    seed: int | None = None,
    params: Mapping[str, object] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    run_id: str | None = None,
    on_event: Callable[[TimelineEvent], None] | None = None,
) -> ScenarioResult:
    """Run a scenario in a fresh embedded scheduler; return its result.

    A checkpoint; takes as long as the scenario's steps, then reads the
    history back for the checks. Cancelling it stops the run's scheduler and
    worker processes (nothing is left running) and raises the cancellation.

    Args:
        scenario: A loaded scenario, or a scenario file to load.
        seed: The seed of the run's random choices; a random one by default
            (the result says which, for ``--seed``).
        params: Parameter overrides, applied when ``scenario`` is a file.
        on_progress: Called (on the event loop, quickly) as each step starts
            and with each fresh sample; None by default.
        run_id: The run's id (its actor's name); a fresh one by default.
        on_event: Called (on the event loop, quickly) with each moment of the
            run's timeline as it happens (a step starts, a fault strikes);
            None by default.

    Returns:
        The result: ``passed`` when every check, assertion and steady-state
        condition held; ``failed``, ``aborted`` or ``error`` otherwise.

    Raises:
        ScenarioError: ``scenario`` is a file that does not load.
        ValueError: ``params`` given with a loaded scenario.
    """
    if not isinstance(scenario, Scenario):
        # Reading a file is a blocking call: not on the event loop.
        scenario = await anyio.to_thread.run_sync(
            partial(load_scenario, scenario, parameters=params)
        )
    elif params:
        raise ValueError("params apply to a scenario file: load_scenario takes them")
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    run_id = run_id or f"run-{uuid.uuid4().hex[:8]}"
    started_at = datetime.now(UTC)
    record = RunRecord(started_at, on_event)
    record.warmup = scenario.warmup
    record.event("run_start", scenario.name, seed=seed)
    folder = Path(
        await anyio.to_thread.run_sync(tempfile.mkdtemp, None, "sz-scenario-")
    )
    outcome: Outcome = "error"
    error: str | None = None
    checks: dict[str, dict[str, Any]] = {}
    values: dict[str, Any] = {}
    steps: list[float] = []
    try:
        outcome, error, checks, values = await _run(
            scenario, seed, run_id, record, folder, on_progress, steps
        )
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, folder, True)
    bounds = (steps[0], steps[1]) if len(steps) == 2 else None
    return _result(
        scenario, seed, run_id, record, outcome, error, checks, values, bounds
    )


async def _run(
    scenario: Scenario,
    seed: int,
    run_id: str,
    record: RunRecord,
    folder: Path,
    on_progress: Callable[[Progress], None] | None,
    steps: list[float],
) -> tuple[Outcome, str | None, dict[str, dict[str, Any]], dict[str, Any]]:
    """Run it; ``steps`` gets when the steps started and when they ended."""
    try:
        sz, handlers, built = _build(scenario, record, folder)
    except SzError as exc:
        return "error", f"setup: {exc}", {}, {}
    slot = RunSlot()
    checks: dict[str, dict[str, Any]] = {}
    values: dict[str, Any] = {}
    outcome: Outcome = "error"
    error: str | None = None
    running = False
    try:
        async with sz, AsyncExitStack() as stack:
            fleet: WorkerFleet | None = None
            if scenario.setup.workers:
                endpoint, _ = await sz.broker()
                fleet = await stack.enter_async_context(
                    open_fleet(
                        scenario.setup.workers,
                        endpoint,
                        backend=_backend(),
                        heartbeat=RUN_BROKER.heartbeat,
                        cwd=Path(),
                    )
                )
                await _wait_registered(sz, fleet.names)
            sampler = Sampler(sz, record)
            context = RunContext(
                name=scenario.name,
                run_id=run_id,
                sz=sz,
                record=record,
                sampler=sampler,
                operations=None,  # type: ignore[arg-type]
                rng=random.Random(seed),
                fleet=fleet,
                total=len(scenario.steps),
                on_progress=on_progress,
            )
            run_ref: list[ActorRef] = []

            async def spawn_handler(
                task: str, name: str, concurrency: int | None
            ) -> ActorRef:
                found = built["functions"].get(task)
                if found is None:
                    from .. import builtin

                    found = counted(getattr(builtin, task), record)
                    built["functions"][task] = found
                func, observe = found
                given = concurrency or built["concurrency"].get(task) or 1
                spec = LocalSpec(
                    name=name,
                    task=task,
                    func=func,
                    concurrency=given,
                    observe=observe,
                )
                ref: ActorRef = await run_ref[0].ask(_SpawnHandler(spec))
                dispatcher = sz.system.lookup("/user/dispatcher")
                if dispatcher is None:
                    raise SzError("the dispatcher is not running")
                dispatcher.tell(
                    Register(
                        name=name, task=task, ref=ref, concurrency=given, retries=0
                    )
                )
                return ref

            context.operations = Operations(sz, record, handlers, spawn_handler)
            async with anyio.create_task_group() as group:
                await group.start(_watch_escalations, sz, record)
                group.start_soon(sampler.run)
                await sampler.wait_sample()
                _steady(scenario, context, set(), start=True)
                running = True
                group.start_soon(_watch_steady, scenario, context)
                scenarios = await sz.system.spawn(ScenariosActor, name="scenarios")
                steps.append(record.offset())
                if isinstance(scenario.warmup, float):
                    group.start_soon(_warm_up, scenario.warmup, record)
                run_ref.append(
                    await scenarios.ask(_StartRun(run_id, scenario, context, slot))
                )
                await slot.done.wait()
                steps.append(record.offset())
                await sampler.wait_fresh_sample()
                _steady(scenario, context, set(), end=True)
                context.progress("end")
                group.cancel_scope.cancel()
            history = await read_history(sz)
            end = datetime.now(UTC)
            names = [entry.name for entry in scenario.checks]
            checks, lost, duplicates = await anyio.to_thread.run_sync(
                run_checks, names, record, history, end
            )
            values = final_metrics(record, history, lost, duplicates)
    except Exception as exc:
        if not running:  # it never started: the setup's fault
            return "error", f"setup: {type(exc).__name__}: {exc}", checks, values
        # The scheduler ended under the run (a supervisor gave up past /user):
        # its actor system re-raises why as the scheduler stops. The history
        # went with it; the supervisors that gave up are known.
        if any(entry.name == "restart_budget" for entry in scenario.checks):
            checks = {"restart_budget": restart_budget(record)}
        return "aborted", f"the scheduler ended: {exc!r}", checks, values
    if not slot.done.is_set() or not slot.finished:
        outcome, error = "aborted", "the run's actor was killed or stopped"
    elif slot.error is not None:
        failed = isinstance(slot.error, StepFailed)
        outcome = "failed" if failed else "error"
        error = str(slot.error)
    else:
        outcome = "passed"
    if isinstance(slot.error, Aborted):
        outcome, error = "aborted", str(slot.error)
    return outcome, error, checks, values


def _result(
    scenario: Scenario,
    seed: int,
    run_id: str,
    record: RunRecord,
    outcome: Outcome,
    error: str | None,
    checks: dict[str, dict[str, Any]],
    values: dict[str, Any],
    steps: tuple[float, float] | None,
) -> ScenarioResult:
    assertions: list[AssertionResult] = []
    trend_after = record.warmup_end()
    for condition in scenario.assertions:
        try:
            held = evaluate(condition.expression, values, trend_after=trend_after)
        except ExpressionError as exc:
            assertions.append(
                AssertionResult(
                    expression=condition.text, value=None, passed=False, error=str(exc)
                )
            )
        else:
            assertions.append(
                AssertionResult(expression=condition.text, value=held, passed=held)
            )
    if scenario.steady_state:
        checks["steady_state"] = steady_phases(record, steps)
    wanted = [entry.name for entry in scenario.metrics]
    for condition in scenario.assertions:
        wanted += sorted(metrics_named(condition.expression) - set(wanted))
    metrics = {
        name: summarize(name, values[name], trend_after)
        for name in wanted
        if name in values
    }
    if outcome == "passed" and not (
        all(check["passed"] for check in checks.values())
        and all(assertion.passed for assertion in assertions)
    ):
        outcome = "failed"
    record.event("run_end", scenario.name, outcome=outcome, error=error)
    finished_at = record.timeline[-1].at
    return ScenarioResult(
        name=scenario.name,
        run_id=run_id,
        seed=seed,
        parameters=dict(scenario.parameters),
        started_at=record.started_at,
        finished_at=finished_at,
        outcome=outcome,
        metrics=metrics,
        checks=checks,
        assertions=tuple(assertions),
        timeline=tuple(record.timeline),
        samples=tuple(
            sample for sample in record.all_samples() if sample.metric in METRICS
        ),
        error=error,
    )
