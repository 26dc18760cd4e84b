"""A scenario as the runner reads it: frozen attrs classes, each knowing its line.

:func:`sz.scenarios.load_scenario` builds these from a YAML file and checks
everything that can be checked without running: a :class:`Scenario` that exists
is one the runner can start. Steps and faults are tagged unions (each class has
its YAML name as ``kind``): the runner matches on the class.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

import attrs

from ..config import Config
from .expressions import Predicate, render

__all__ = [
    "PICKS",
    "STORES",
    "ActionStep",
    "BlockLoop",
    "ChaosStep",
    "CheckEntry",
    "Condition",
    "Delay",
    "Drop",
    "Fault",
    "FloodMailbox",
    "HandlerSpec",
    "KillActor",
    "KillWorker",
    "Location",
    "LoopStep",
    "MetricEntry",
    "ParallelStep",
    "Partition",
    "PauseWorker",
    "Pick",
    "Scalar",
    "Scenario",
    "Setup",
    "SleepStep",
    "Step",
    "StopActor",
    "WaitUntilStep",
    "WorkerSpec",
]

#: A parameter's value.
Scalar = bool | int | float | str
Pick = Literal["random", "all", "first"]
#: How a fault picks among the actors or workers its target matches.
PICKS: tuple[Pick, ...] = ("random", "all", "first")
Store = Literal["memory", "sqlite"]
#: Where a run keeps its schedules and history: in memory, or in an SQLite file
#: of its own.
STORES: tuple[Store, ...] = ("memory", "sqlite")


@attrs.frozen(kw_only=True)
class Location:
    """Where something was written: for messages at load time and at run time.

    Attributes:
        file: The scenario file, as it was given (``<scenario>`` for text).
        line: The line, from 1.
        column: The column, from 1, where known.
    """

    file: str
    line: int
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


_NOWHERE = Location(file="<scenario>", line=1)
_location = attrs.field(default=_NOWHERE, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class Condition:
    """A condition of the scenario language, with its text as written.

    Attributes:
        text: The condition as the file says it (parameters substituted).
        expression: Its checked syntax tree, bare numbers given their units.
        location: Where it was written.
    """

    text: str
    expression: Predicate
    location: Location = _location

    def __str__(self) -> str:
        return render(self.expression)


@attrs.frozen(kw_only=True)
class HandlerSpec:
    """Functions the run registers as local handlers.

    A built-in name (``noop``) is ``module="sz.builtin"`` with that one method.

    Attributes:
        module: The dotted module the functions live in.
        methods: The functions, each a task of its name.
        concurrency: Jobs each handler runs at once; None for the scheduler's
            default.
        location: Where it was written.
    """

    module: str
    methods: tuple[str, ...]
    concurrency: int | None = None
    location: Location = _location


@attrs.frozen(kw_only=True)
class WorkerSpec:
    """Worker processes (``sz worker``) the run starts and connects to its broker.

    The run names its workers ``worker-1``, ``worker-2``, ... in the order of
    ``setup.workers`` (counts expanded): the names worker faults' targets match.

    Attributes:
        module: The dotted module whose functions the workers serve.
        methods: The functions served, each a task of its name.
        count: How many such processes, 1 by default.
        location: Where it was written.
    """

    module: str
    methods: tuple[str, ...]
    count: int = 1
    location: Location = _location


@attrs.frozen(kw_only=True)
class Setup:
    """What a run starts for itself before its first step.

    Attributes:
        handlers: Local handlers; every built-in handler (``sz.builtin``) when
            the file gives no ``handlers`` key.
        workers: Worker processes, none by default.
        store: ``"memory"`` (the default) or ``"sqlite"``, a file of the run's
            own.
        config: The run's scheduler settings: the file's ``setup.config``, which
            may hold ``config.yaml``'s ``scheduler``, ``governors`` and
            ``reporting`` sections; every default by default.
    """

    handlers: tuple[HandlerSpec, ...] = ()
    workers: tuple[WorkerSpec, ...] = ()
    store: Store = "memory"
    config: Config = attrs.field(factory=Config)

    @property
    def tasks(self) -> frozenset[str]:
        """Every task some handler or worker of the run serves."""
        served = {method for spec in self.handlers for method in spec.methods}
        return frozenset(served.union(*(spec.methods for spec in self.workers)))

    @property
    def worker_names(self) -> tuple[str, ...]:
        """The run's worker processes' names, ``worker-1`` first."""
        total = sum(spec.count for spec in self.workers)
        return tuple(f"worker-{number}" for number in range(1, total + 1))


# Faults.


@attrs.frozen(kw_only=True)
class KillActor:
    """Kill actors (as a crash would) whose paths match ``target``.

    Attributes:
        target: A glob over actor paths: ``*`` within one segment, ``**``
            across segments (``/user/handlers/*``, ``/user/**``).
        count: How many of those matched to kill; None for 1, or for every
            one with ``pick="all"``.
        pick: ``"random"`` (by the run's seed, the default), ``"first"`` (in
            path order) or ``"all"``.
    """

    kind: ClassVar[str] = "kill_actor"
    target: str
    count: int | None = None
    pick: Pick = "random"


@attrs.frozen(kw_only=True)
class StopActor:
    """Stop actors gracefully, as :class:`KillActor` picks them."""

    kind: ClassVar[str] = "stop_actor"
    target: str
    count: int | None = None
    pick: Pick = "random"


@attrs.frozen(kw_only=True)
class KillWorker:
    """Signal worker processes of the run to end.

    Attributes:
        target: A glob over the run's worker names, ``*`` by default.
        count: How many of those matched; None for 1, or every one with
            ``pick="all"``.
        pick: ``"random"`` (the default), ``"first"`` or ``"all"``.
        signal: ``"SIGKILL"`` (the default) or ``"SIGTERM"``.
        restart_after: Seconds after which the run starts the worker again;
            None (the default) for never.
    """

    kind: ClassVar[str] = "kill_worker"
    target: str = "*"
    count: int | None = None
    pick: Pick = "random"
    signal: Literal["SIGKILL", "SIGTERM"] = "SIGKILL"
    restart_after: float | None = None


@attrs.frozen(kw_only=True)
class PauseWorker:
    """Stop worker processes (SIGSTOP) for ``duration`` seconds, then SIGCONT."""

    kind: ClassVar[str] = "pause_worker"
    duration: float
    target: str = "*"
    count: int | None = None
    pick: Pick = "random"


@attrs.frozen(kw_only=True)
class Partition:
    """Cut workers' ZeroMQ links both ways for ``duration`` seconds."""

    kind: ClassVar[str] = "partition"
    duration: float
    target: str = "*"
    count: int | None = None
    pick: Pick = "random"


@attrs.frozen(kw_only=True)
class Delay:
    """Delay every message on workers' links for ``duration`` seconds.

    Attributes:
        delay: Seconds each message is held.
        jitter: Seconds of random spread added to each delay, 0 by default.
        duration: Seconds the fault lasts.
    """

    kind: ClassVar[str] = "delay"
    delay: float
    duration: float
    jitter: float = 0.0
    target: str = "*"
    count: int | None = None
    pick: Pick = "random"


@attrs.frozen(kw_only=True)
class Drop:
    """Drop messages on workers' links with ``probability`` for ``duration`` s."""

    kind: ClassVar[str] = "drop"
    probability: float
    duration: float
    target: str = "*"
    count: int | None = None
    pick: Pick = "random"


@attrs.frozen(kw_only=True)
class BlockLoop:
    """Hold the scheduler's event loop for ``duration`` seconds (a blocking call)."""

    kind: ClassVar[str] = "block_loop"
    duration: float


@attrs.frozen(kw_only=True)
class FloodMailbox:
    """Send ``count`` messages to each actor whose path matches ``target``."""

    kind: ClassVar[str] = "flood_mailbox"
    target: str
    count: int


Fault = (
    KillActor
    | StopActor
    | KillWorker
    | PauseWorker
    | Partition
    | Delay
    | Drop
    | BlockLoop
    | FloodMailbox
)

# Steps.


@attrs.frozen(kw_only=True)
class ActionStep:
    """Call one operation of the scheduler (see :data:`sz.scenarios.ACTIONS`).

    Attributes:
        method: The action's name.
        args: Its arguments, checked against the action's table.
        name: The step's name, if given.
        location: Where it was written.
    """

    kind: ClassVar[str] = "action"
    method: str
    args: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    name: str | None = None
    location: Location = _location


@attrs.frozen(kw_only=True)
class LoopStep:
    """Run ``steps`` in order, ``iterations`` times or for ``duration`` seconds.

    Exactly one of ``iterations`` and ``duration`` is given. A loop for a
    duration starts no iteration after it has passed, and finishes the one
    under way.

    Attributes:
        steps: The steps of one iteration.
        iterations: How many times.
        duration: For how many seconds.
        name: The step's name, if given.
        location: Where it was written.
    """

    kind: ClassVar[str] = "loop"
    steps: tuple[Step, ...]
    iterations: int | None = None
    duration: float | None = None
    name: str | None = None
    location: Location = _location

    def __attrs_post_init__(self) -> None:
        if (self.iterations is None) == (self.duration is None):
            raise ValueError("a loop needs exactly one of iterations and duration")


@attrs.frozen(kw_only=True)
class ParallelStep:
    """Run ``steps`` at once; done when all are.

    Attributes:
        steps: The steps, each started at once.
        name: The step's name, if given.
        location: Where it was written.
    """

    kind: ClassVar[str] = "parallel"
    steps: tuple[Step, ...]
    name: str | None = None
    location: Location = _location


@attrs.frozen(kw_only=True)
class SleepStep:
    """Wait ``duration`` seconds.

    Attributes:
        duration: Seconds.
        name: The step's name, if given.
        location: Where it was written.
    """

    kind: ClassVar[str] = "sleep"
    duration: float
    name: str | None = None
    location: Location = _location


@attrs.frozen(kw_only=True)
class WaitUntilStep:
    """Wait until ``condition`` holds; the run fails if ``timeout`` passes first.

    Attributes:
        condition: Polled against the run's live metrics.
        timeout: Seconds to wait at most.
        name: The step's name, if given.
        location: Where it was written.
    """

    kind: ClassVar[str] = "wait_until"
    condition: Condition
    timeout: float
    name: str | None = None
    location: Location = _location


@attrs.frozen(kw_only=True)
class ChaosStep:
    """Inject a fault: an event on the run's timeline.

    Attributes:
        fault: What to break, and how.
        name: The step's name, if given.
        location: Where it was written.
    """

    kind: ClassVar[str] = "chaos"
    fault: Fault
    name: str | None = None
    location: Location = _location


Step = ActionStep | LoopStep | ParallelStep | SleepStep | WaitUntilStep | ChaosStep


@attrs.frozen(kw_only=True)
class MetricEntry:
    """A metric the run reports, and the unit it is shown in.

    Attributes:
        name: A name of :data:`sz.scenarios.METRICS`.
        unit: The unit shown (``MB``, ``ms``, ``schedules/sec``), in which bare
            numbers compared with it are read; None for its base unit.
        location: Where it was written.
    """

    name: str
    unit: str | None = None
    location: Location = _location


@attrs.frozen(kw_only=True)
class CheckEntry:
    """A check the run makes of its history.

    Attributes:
        name: A name of :data:`sz.scenarios.CHECKS`.
        location: Where it was written.
    """

    name: str
    location: Location = _location


@attrs.frozen(kw_only=True)
class Scenario:
    """One scenario: what to start, what to do, what to measure and require.

    Attributes:
        name: Its name.
        description: What it shows, in a sentence; empty by default.
        parameters: Each parameter's value, overrides applied.
        setup: What the run starts for itself.
        steps: What the run does, in order.
        checks: Checks of the recorded history, none by default.
        metrics: Metrics reported, none by default (those the conditions read
            are measured regardless).
        assertions: Conditions that must hold at the end, none by default.
        steady_state: Conditions that must hold before the first fault,
            during the faults and after the last (before, while and after the
            steps in a scenario without faults: Chaos Toolkit's steady-state
            hypothesis), none by default.
        warmup: When the warm-up ends, after which trends are measured
            (``rate()`` and a metric's ``rate``): seconds after the first step
            starts, or the name of a top-level step whose end ends it. None
            (the default): no warm-up, trends read every sample.
        location: Where it was written (its ``test`` key).
    """

    name: str
    steps: tuple[Step, ...]
    description: str = ""
    parameters: Mapping[str, Scalar] = attrs.field(factory=dict, hash=False)
    setup: Setup = attrs.field(factory=Setup)
    checks: tuple[CheckEntry, ...] = ()
    metrics: tuple[MetricEntry, ...] = ()
    assertions: tuple[Condition, ...] = ()
    steady_state: tuple[Condition, ...] = ()
    warmup: float | str | None = None
    location: Location = _location

    def walk(self) -> Iterator[Step]:
        """Every step, depth first: each step before those inside it."""
        return _walk(self.steps)


def _walk(steps: tuple[Step, ...]) -> Iterator[Step]:
    for step in steps:
        yield step
        if isinstance(step, LoopStep | ParallelStep):
            yield from _walk(step.steps)
