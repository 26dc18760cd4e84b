"""Steps as actors: each top-level step, and each parallel branch, in an actor.

Each runs under the run's actor (``/user/scenarios/<run>/<n>-<step>``),
spawned as it starts and stopped when it ends.

A loop runs its iterations inside its own actor (an actor per iteration would
cost a schedule storm most of its rate). A step actor is ``temporary``: it is
never restarted; killed or stopped, its step ends unfinished and the run is
aborted. What a step did goes on the run's timeline: its start and end (steps
inside a loop only when they are faults, which are always recorded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import attrs

from actors import Actor

from ..errors import ExpressionError, SzError
from .evaluation import evaluate
from .faults import inject
from .model import (
    ActionStep,
    ChaosStep,
    LoopStep,
    ParallelStep,
    SleepStep,
    Step,
    WaitUntilStep,
)
from .operations import ActionFailed
from .record import FaultMark

if TYPE_CHECKING:
    from .context import RunContext

__all__ = ["StepActor", "StepFailed", "StepSlot", "execute", "run_child", "step_label"]


class StepFailed(SzError, RuntimeError):
    """A step did not do what it must: a ``wait_until`` timed out, an action failed."""


@attrs.define
class StepSlot:
    """How a step actor's step ended, for whoever started it.

    Attributes:
        done: Set when the step ended, however.
        ok: True if it ran to its end.
        error: What it raised, or None (None and not ``ok``: it was cut short).
    """

    done: anyio.Event = attrs.Factory(anyio.Event)
    ok: bool = False
    error: BaseException | None = None


def step_label(step: Step) -> str:
    """A step's name, or its kind (``sleep``), or for a chaos step its fault's."""
    if step.name:
        return step.name
    if isinstance(step, ChaosStep):
        return step.fault.kind
    if isinstance(step, ActionStep):
        return step.method
    return step.kind


class StepActor(Actor):
    """Runs one step in a task of its own, then stops.

    Args:
        step: The step.
        context: The run's context.
        slot: Where it says how the step ended.
    """

    def __init__(self, step: Step, context: RunContext, slot: StepSlot) -> None:
        self.step = step
        self.context = context
        self.slot = slot

    async def on_start(self) -> None:
        """Start the step."""
        self.start_task(self._run, name="step")

    async def _run(self) -> None:
        try:
            await execute(self.step, self.context, self)
        except Exception as error:
            self.slot.error = error
        else:
            self.slot.ok = True
        finally:
            self.slot.done.set()
        await self.stop()

    async def on_stop(self) -> None:
        """Cut short (killed, stopped): say so."""
        self.slot.done.set()


async def run_child(
    parent: Actor, step: Step, context: RunContext, number: int
) -> StepSlot:
    """Run ``step`` in a child actor of ``parent``; how it ended. A checkpoint."""
    slot = StepSlot()
    name = f"{number}-{step_label(step)}".replace("/", "_")
    await parent.spawn(StepActor, step, context, slot, name=name, restart="temporary")
    await slot.done.wait()
    return slot


def raise_for(slot: StepSlot) -> None:
    """Raise what ended ``slot``'s step badly; a step cut short is ``Aborted``."""
    if slot.error is not None:
        raise slot.error
    if not slot.ok:
        raise Aborted("a step's actor was killed or stopped before its end")


class Aborted(SzError, RuntimeError):
    """The run's actor, or one of its steps', was killed or stopped."""


async def execute(
    step: Step, context: RunContext, actor: Actor, *, in_loop: bool = False
) -> None:
    """Run one step in ``actor``'s task. A checkpoint.

    Raises:
        StepFailed: It did not do what it must.
        Aborted: A step actor under it was cut short.
        SzError: The scheduler refused an action.
    """
    label = step_label(step)
    record = context.record
    shown = not in_loop or isinstance(step, ChaosStep)
    if shown:
        record.current_step = label
        record.event("step_start", label, kind=step.kind)
        context.progress("step")
    detail: dict[str, Any] = {}
    try:
        detail = await _execute(step, context, actor, in_loop)
    except Exception as error:
        if shown:
            record.event("step_end", label, kind=step.kind, error=str(error))
        raise
    if shown:
        record.event("step_end", label, kind=step.kind, **detail)


async def _execute(
    step: Step, context: RunContext, actor: Actor, in_loop: bool
) -> dict[str, Any]:
    match step:
        case ActionStep():
            try:
                return await context.operations.perform(step.method, step.args)
            except ActionFailed as error:
                raise StepFailed(f"{step.location}: {error}") from error
        case SleepStep():
            await anyio.sleep(step.duration)
            return {}
        case WaitUntilStep():
            return await _wait_until(step, context)
        case ChaosStep():
            record = context.record
            offset = record.offset()
            record.faults.append(
                FaultMark(offset=offset, kind=step.fault.kind, name=step_label(step))
            )
            detail = await inject(step.fault, context.sz, context.rng, context.fleet)
            record.event("fault", step.fault.kind, step=step_label(step), **detail)
            record.last_fault_end = record.offset()
            return detail
        case LoopStep():
            return await _loop(step, context, actor)
        case ParallelStep():
            return await _parallel(step, context, actor)


async def _wait_until(step: WaitUntilStep, context: RunContext) -> dict[str, Any]:
    started = anyio.current_time()
    with anyio.move_on_after(step.timeout):
        while True:
            await context.sampler.wait_fresh_sample()
            try:
                if evaluate(
                    step.condition.expression,
                    context.live_metrics(),
                    trend_after=context.record.warmup_end(),
                ):
                    return {"waited": round(anyio.current_time() - started, 3)}
            except ExpressionError:
                pass  # a metric with no sample yet: not yet
    raise StepFailed(
        f"{step.location}: wait_until {step.condition.text}: still false after "
        f"{step.timeout:g} s"
    )


async def _loop(step: LoopStep, context: RunContext, actor: Actor) -> dict[str, Any]:
    iterations = 0
    if step.iterations is not None:
        for _ in range(step.iterations):
            for inner in step.steps:
                await execute(inner, context, actor, in_loop=True)
            iterations += 1
    else:
        assert step.duration is not None
        deadline = anyio.current_time() + step.duration
        while anyio.current_time() < deadline:
            for inner in step.steps:
                await execute(inner, context, actor, in_loop=True)
            iterations += 1
    return {"iterations": iterations}


async def _parallel(
    step: ParallelStep, context: RunContext, actor: Actor
) -> dict[str, Any]:
    slots: list[StepSlot] = []

    async def branch(number: int, inner: Step) -> None:
        slots.append(await run_child(actor, inner, context, context.next_number()))

    async with anyio.create_task_group() as group:
        for number, inner in enumerate(step.steps, 1):
            group.start_soon(branch, number, inner)
    for slot in slots:
        raise_for(slot)
    return {"branches": len(slots)}
