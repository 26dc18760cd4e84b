"""Property-based tests: random programs against a supervised tree, checked by a model.

A program is a tree (``/user/parent``, a ``Supervisor`` with a random ``Supervision``
and restart type, over one to four ``Worker`` children with random restart types and
mailboxes) and a list of operations: bursts of tells (plain, crash-on-message and
stop-yourself messages), asks, kills, stops, and moves of the manual clock. After
every operation the test waits until the runtime has done what a small model of the
contract says it must, then moves on; at the end it checks:

1. per-sender order: each child processed the test's messages in the order sent;
2. conservation: every message is exactly one of processed, the ``message`` of a
   ``Crashed`` event, a ``DeadLetter``, or refused to the sender (``MailboxFull``),
   and every ask had exactly the outcome the model says;
3. supervision: ``Crashed``, ``Restarted``, ``Escalated``, ``Started`` and ``Stopped``
   events (with their reasons), and the snapshot's counters, are exactly what the
   strategy, restart types and intensity say, up to an escalation past ``/user``
   that ends the system with the original exception;
4. no task is left running once ``async with ActorSystem()`` has exited.

Each operation completes before the next starts (asks are awaited, crashes waited
out), and messages only queue up within one operation on one child, so that the
model is exact: with two children crashing at once, which restarts a group restart
absorbs depends on the scheduler, and a kill racing a crash may find the actor
between incarnations (where a kill is ignored). Where the contract leaves a choice
to the scheduler (which queued message a kill interrupts), the model allows each.
Waits end as soon as the model is satisfied, and fail as soon as every task is
blocked without it: no sleeps, and no real-time guesses.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any, Literal

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from actors import (
    Actor,
    ActorCrashed,
    ActorError,
    ActorEvent,
    ActorKilled,
    ActorRef,
    ActorStopped,
    ActorSystem,
    Child,
    Crashed,
    DeadLetter,
    Escalated,
    MailboxFull,
    Overflow,
    Restarted,
    RestartType,
    Started,
    Stopped,
    Strategy,
    Supervision,
    Supervisor,
    lowlevel,
)
from actors.testing import ManualClock, record_events

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

GUARDIAN = "/user"
PARENT = "/user/parent"
#: Real seconds any single wait may take: only a guard against a livelock. A step
#: the runtime never takes fails at once, when every task is blocked (see
#: ``Recorder.wait_until``); each step takes microseconds.
DEADLINE = 5.0


Kind = Literal["msg", "crash", "finish"]
Outcome = Literal["processed", "crashed", "dead", "refused"]
PROCESSED: frozenset[Outcome] = frozenset({"processed"})
CRASHED: frozenset[Outcome] = frozenset({"crashed"})
DEAD: frozenset[Outcome] = frozenset({"dead"})
REFUSED: frozenset[Outcome] = frozenset({"refused"})


class Boom(Exception):
    """What a worker raises on a ``crash`` message."""


@attrs.frozen
class Msg:
    """A numbered message: ``msg`` is handled, ``crash`` raises, ``finish`` stops."""

    kind: Kind
    id: int


# --------------------------------------------------------------------- programs


@attrs.frozen
class ChildSpec:
    restart: RestartType
    capacity: int
    overflow: Overflow


@attrs.frozen
class Burst:
    """Tell ``child`` these messages without yielding in between."""

    child: int
    kinds: tuple[Kind, ...]


@attrs.frozen
class AskOp:
    """Tell ``child`` ``pre`` plain messages, then ask it one of ``kind``."""

    child: int
    kind: Kind
    pre: int


@attrs.frozen
class KillOp:
    """Tell ``child`` ``pre`` plain messages, then kill it."""

    child: int
    pre: int


@attrs.frozen
class StopOp:
    """Tell ``child`` ``pre`` plain messages, then stop it."""

    child: int
    pre: int


@attrs.frozen
class AdvanceOp:
    """Move the manual clock, which the restart intensity window reads."""

    seconds: float


Op = Burst | AskOp | KillOp | StopOp | AdvanceOp


@attrs.frozen
class Program:
    supervision: Supervision
    parent_restart: RestartType
    children: tuple[ChildSpec, ...]
    ops: tuple[Op, ...]


RESTART_TYPES: tuple[RestartType, ...] = ("permanent", "transient", "temporary")
STRATEGIES: tuple[Strategy, ...] = ("one_for_one", "one_for_all", "rest_for_one")
OVERFLOWS: tuple[Overflow, ...] = ("block", "fail", "drop_newest", "drop_oldest")

KINDS: tuple[Kind, ...] = ("msg", "msg", "msg", "crash", "finish")
STORM: tuple[Kind, ...] = ("msg", "crash", "crash", "crash", "finish")
child_specs = st.builds(
    ChildSpec,
    restart=st.sampled_from(RESTART_TYPES),
    # Mostly roomy; sometimes small enough that a burst overflows it.
    capacity=st.sampled_from((1000, 1000, 1, 2, 3)),
    overflow=st.sampled_from(OVERFLOWS),
)


def ops_for(children: int, *, stormy: bool) -> st.SearchStrategy[Op]:
    """Operations on ``children`` children; a stormy program mostly crashes them."""
    child = st.integers(0, children - 1)
    pre = st.integers(0, 3)
    kinds = st.sampled_from(STORM if stormy else KINDS)
    bursts = st.builds(Burst, child, st.lists(kinds, min_size=1, max_size=6).map(tuple))
    asks = st.builds(AskOp, child, kinds, pre)
    kills = st.builds(KillOp, child, pre)
    if stormy:
        return st.one_of(bursts, asks, kills)
    return st.one_of(
        bursts,
        asks,
        kills,
        st.builds(StopOp, child, pre),
        # Halves: the manual clock then sums exactly, as the model does.
        st.builds(AdvanceOp, st.sampled_from((0.5, 1.0, 2.5, 5.0))),
    )


@st.composite
def programs(draw: st.DrawFn) -> Program:
    # Stormy programs crash often against a low intensity: they reach escalation
    # and, past the three restarts /user tolerates, the end of the system.
    stormy = draw(st.booleans())
    supervision = Supervision(
        strategy=draw(st.sampled_from(STRATEGIES)),
        max_restarts=draw(st.sampled_from((0, 1) if stormy else (0, 1, 2, 3))),
        within=draw(st.sampled_from((1.0, 2.5, 5.0))),
    )
    children = tuple(draw(st.lists(child_specs, min_size=1, max_size=4)))
    ops = draw(st.lists(ops_for(len(children), stormy=stormy), min_size=1, max_size=16))
    parent_restart = draw(st.sampled_from(RESTART_TYPES))
    return Program(supervision, parent_restart, children, tuple(ops))


# ------------------------------------------------------------------- the model


def child_path(index: int) -> str:
    return f"{PARENT}/c{index}"


@attrs.define
class CellModel:
    """What the contract says one actor cell (one ref's lifetime) is like now."""

    path: str
    restart: RestartType
    spec: ChildSpec | None = None
    alive: bool = True
    restarts: int = 0
    failures: int = 0


def within_intensity(
    history: list[float], now: float, supervision: Supervision
) -> bool:
    """Record a restart now unless it is one more than ``max_restarts`` in ``within``.

    Restarts up to ``within`` seconds old count, as OTP's ``inPeriod`` does.
    """
    recent = [t for t in history if now - t <= supervision.within]
    history[:] = recent
    if len(recent) >= supervision.max_restarts:
        return False
    history.append(now)
    return True


class Model:
    """The contract of section 2, for one parent over workers, as plain bookkeeping.

    Each method is one thing the test just did to an idle tree whose mailboxes are
    empty; it updates what must be observed once the runtime has settled.
    """

    def __init__(self, program: Program) -> None:
        self.program = program
        self.supervision = program.supervision
        self.now = 0.0
        self.guardian = CellModel(GUARDIAN, "permanent")
        self.parent = CellModel(PARENT, program.parent_restart)
        self.guardian_history: list[float] = []
        self.parent_history: list[float] = []
        self.fatal = False
        self.generation = 0
        self.events: Counter[tuple[str, str]] = Counter()
        self.stops: Counter[tuple[str, str]] = Counter()
        self.escalations: list[tuple[str, str]] = []
        self.outcomes: dict[int, frozenset[Outcome]] = {}
        self.asks: dict[int, str] = {}
        self.events["Started", GUARDIAN] += 1
        self.events["Started", PARENT] += 1
        self.children = self._start_children()

    def _start_children(self) -> list[CellModel]:
        self.generation += 1
        children = []
        for index, spec in enumerate(self.program.children):
            cell = CellModel(child_path(index), spec.restart, spec)
            self.events["Started", cell.path] += 1
            children.append(cell)
        return children

    # -- what the test does

    def tell(self, cell: CellModel, messages: list[Msg]) -> list[Msg]:
        """Tell an idle child ``messages`` at once; return those its mailbox took."""
        spec = cell.spec
        assert spec is not None
        if not cell.alive:
            self._all(messages, DEAD)
            return []
        room = spec.capacity
        if len(messages) <= room:
            return list(messages)
        if spec.overflow in ("block", "fail"):  # tell raises MailboxFull
            self._all(messages[room:], REFUSED)
            return list(messages[:room])
        if spec.overflow == "drop_newest":
            self._all(messages[room:], DEAD)
            return list(messages[:room])
        self._all(messages[:-room], DEAD)
        return list(messages[-room:])

    def process(self, cell: CellModel, queued: list[Msg]) -> None:
        """The child works through its mailbox, one message at a time."""
        for message in queued:
            if not cell.alive:
                self.outcomes[message.id] = DEAD
            elif message.kind == "crash":
                self.outcomes[message.id] = CRASHED
                self._crash(cell)
            else:
                self.outcomes[message.id] = PROCESSED
                if message.kind == "finish":
                    self._exit(cell, crashed=False)

    def ask(self, cell: CellModel, pre: list[Msg], message: Msg) -> None:
        """Tell ``pre``, then ask ``message``; records the ask's expected outcome."""
        spec = cell.spec
        assert spec is not None
        if not cell.alive:
            self._all([*pre, message], DEAD)
            self.asks[message.id] = "ActorStopped"
            return
        queued = self.tell(cell, pre)
        if len(queued) < spec.capacity or spec.overflow == "block":
            queued.append(message)  # under "block" the ask waits for room
        elif spec.overflow == "fail":
            self.outcomes[message.id] = REFUSED
            self.asks[message.id] = "MailboxFull"
        elif spec.overflow == "drop_newest":
            self.outcomes[message.id] = DEAD
            self.asks[message.id] = "MailboxFull"
        else:
            self.outcomes[queued[0].id] = DEAD
            queued = [*queued[1:], message]
        self.process(cell, queued)
        if message.id not in self.asks:
            crashed = self.outcomes[message.id] == CRASHED
            self.asks[message.id] = "ActorCrashed" if crashed else "reply"

    def kill(self, cell: CellModel, pre: list[Msg]) -> None:
        """Tell ``pre`` plain messages, then kill the child."""
        queued = self.tell(cell, pre)
        if not cell.alive:
            return  # killing an ended actor does nothing
        lives_on = self._crash(cell)
        # The kill lands before the first message or while it is being handled (then
        # it is the Crashed event's message); the rest wait for the next incarnation.
        after: Outcome = "processed" if lives_on else "dead"
        self._all(queued, frozenset({"crashed", after}))

    def stop(self, cell: CellModel, pre: list[Msg]) -> None:
        """Tell ``pre`` plain messages, then stop the child for good."""
        queued = self.tell(cell, pre)
        if not cell.alive:
            return
        # Graceful: a message already being handled finishes; the rest are dead.
        self._all(queued, frozenset({"processed", "dead"}))
        self._end(cell, "stopped")

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def shutdown(self) -> None:
        """The system exits normally: everything still alive stops, children first."""
        for cell in [*reversed(self.children), self.parent, self.guardian]:
            if cell.alive:
                self._end(cell, "shutdown")

    # -- what the runtime must do about it

    def _all(self, messages: list[Msg], outcomes: frozenset[Outcome]) -> None:
        for message in messages:
            self.outcomes[message.id] = outcomes

    def _end(self, cell: CellModel, reason: str) -> None:
        cell.alive = False
        self.stops[cell.path, reason] += 1

    def _crash(self, cell: CellModel) -> bool:
        """The child crashed; return whether it lives on (restarted in place)."""
        cell.failures += 1
        self.events["Crashed", cell.path] += 1
        self._exit(cell, crashed=True)
        return cell.alive

    def _exit(self, cell: CellModel, *, crashed: bool) -> None:
        """A child crashed (or ended itself normally): its parent's decision."""
        if not crashed and cell.restart != "permanent":
            self._end(cell, "finished")
            return
        if crashed and cell.restart == "temporary":
            self._end(cell, "failed")
            return
        if not within_intensity(self.parent_history, self.now, self.supervision):
            self._end(cell, "failed")
            self.escalations.append((PARENT, cell.path))
            self._fail_parent()
            return
        for member in self._group(cell):
            member.restarts += 1
            self.events["Restarted", member.path] += 1

    def _group(self, failed: CellModel) -> list[CellModel]:
        """The children restarted with ``failed``, by the parent's strategy."""
        strategy = self.supervision.strategy
        if strategy == "one_for_one":
            return [failed]
        alive = [cell for cell in self.children if cell.alive]
        if strategy == "rest_for_one":
            alive = alive[alive.index(failed) :]
        group = []
        for cell in alive:
            if cell is failed or cell.restart != "temporary":
                group.append(cell)
            else:  # taken down with the group, never restarted (as in OTP)
                self._end(cell, "stopped")
        return group

    def _fail_parent(self) -> None:
        """The parent gave up on a child: it fails, and ``/user`` decides."""
        parent = self.parent
        parent.failures += 1
        self.events["Crashed", PARENT] += 1
        for cell in reversed(self.children):
            if cell.alive:
                self._end(cell, "stopped")
        if parent.restart == "temporary":
            self._end(parent, "failed")
            return
        if not within_intensity(self.guardian_history, self.now, Supervision()):
            # Past the root: the system ends, raising the original exception.
            self.escalations.append((GUARDIAN, PARENT))
            self._end(parent, "failed")
            self.events["Crashed", GUARDIAN] += 1
            self._end(self.guardian, "failed")
            self.fatal = True
            return
        parent.restarts += 1
        self.events["Restarted", PARENT] += 1
        self.parent_history.clear()  # a fresh parent instance, a fresh window
        self.children = self._start_children()


# ----------------------------------------------------------------- the runtime


class Recorder:
    """Everything observed, kept outside the actors: restarts make fresh instances."""

    def __init__(self) -> None:
        self.events: list[ActorEvent] = []
        self.processed: dict[str, list[int]] = defaultdict(list)
        self.refused: list[int] = []
        self._changed = anyio.Event()

    def touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def handled(self, name: str, message: Msg) -> None:
        self.processed[name].append(message.id)
        self.touch()

    async def pump(self, events: AsyncIterator[ActorEvent]) -> None:
        """Record events until the system exits and ends the subscription."""
        async for event in events:
            self.events.append(event)
            self.touch()

    async def wait_until(self, missing: Callable[[], list[str]]) -> None:
        """Wait until ``missing()`` is empty; fail with what it still lists.

        Fails as soon as every other task is blocked with something still missing:
        with a manual clock nothing can move on then, so no real-time guess is
        needed (the deadline only guards against a livelock).
        """
        with anyio.fail_after(DEADLINE):
            while missing():
                changed = self._changed
                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_on, changed, tg.cancel_scope)
                    await anyio.wait_all_tasks_blocked()
                    tg.cancel_scope.cancel()
                if not changed.is_set() and (still := missing()):
                    raise AssertionError(f"stalled; the runtime never did: {still}")

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter(
            (type(event).__name__, event.path)
            for event in self.events
            if isinstance(event, Started | Crashed | Restarted)
        )

    def stops(self) -> Counter[tuple[str, str]]:
        return Counter(
            (event.path, event.reason)
            for event in self.events
            if isinstance(event, Stopped)
        )

    def escalations(self) -> list[tuple[str, str]]:
        return [
            (event.path, event.child)
            for event in self.events
            if isinstance(event, Escalated)
        ]

    def outcomes(self) -> dict[int, list[Outcome]]:
        seen: dict[int, list[Outcome]] = defaultdict(list)
        for ids in self.processed.values():
            for id_ in ids:
                seen[id_].append("processed")
        for event in self.events:
            if isinstance(event, Crashed) and isinstance(event.message, Msg):
                seen[event.message.id].append("crashed")
            elif isinstance(event, DeadLetter) and isinstance(event.message, Msg):
                seen[event.message.id].append("dead")
        for id_ in self.refused:
            seen[id_].append("refused")
        return seen


async def cancel_on(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


class Worker(Actor):
    """Records what it handled, raises on ``crash``, stops itself on ``finish``."""

    def __init__(self, label: str, recorder: Recorder) -> None:
        self.label = label
        self.recorder = recorder

    async def receive(self, message: Any) -> Any:
        # A checkpoint first, so that a kill can land mid-message; nothing awaits
        # after the record, so a message recorded is a message handled.
        await anyio.lowlevel.checkpoint()
        assert isinstance(message, Msg)
        if message.kind == "crash":
            raise Boom(message.id)
        if message.kind == "finish":
            await self.stop()
        self.recorder.handled(self.label, message)
        return message.id


class Runner:
    """Runs a program's operations on a real system and on the model, in step."""

    def __init__(
        self, system: ActorSystem, program: Program, recorder: Recorder
    ) -> None:
        self.system = system
        self.program = program
        self.recorder = recorder
        self.model = Model(program)
        self.clock = lowlevel.clock(system)
        self.refs: list[ActorRef] = []
        self.generation = 0
        #: Per child, how many of its handled messages earlier generations handled.
        self.offsets: dict[str, int] = {}
        self.sent: list[Msg] = []
        self.ask_results: dict[int, str] = {}
        self.returned = True

    def message(self, kind: Kind) -> Msg:
        message = Msg(kind, len(self.sent))
        self.sent.append(message)
        return message

    def tell(self, ref: ActorRef, message: Msg) -> None:
        try:
            ref.tell(message)
        except MailboxFull:
            self.recorder.refused.append(message.id)

    async def start(self) -> None:
        program = self.program
        children = [
            Child(
                Worker,
                f"c{index}",
                self.recorder,
                name=f"c{index}",
                restart=spec.restart,
                capacity=spec.capacity,
                overflow=spec.overflow,
            )
            for index, spec in enumerate(program.children)
        ]
        await self.system.spawn(
            Supervisor,
            children,
            program.supervision,
            name="parent",
            restart=program.parent_restart,
        )
        self.refresh_refs()

    def refresh_refs(self) -> None:
        """After the parent restarted, the children are new actors at the same paths."""
        if self.generation == self.model.generation:
            return
        self.generation = self.model.generation
        self.refs = []
        for index in range(len(self.program.children)):
            ref = self.system.lookup(child_path(index))
            assert ref is not None, f"{child_path(index)} did not come back"
            self.refs.append(ref)
            self.offsets[f"c{index}"] = len(self.recorder.processed[f"c{index}"])

    async def run(self) -> None:
        await self.start()
        await self.settle()
        for op in self.program.ops:
            # In a task of its own, so that an ask, kill or stop that never returns
            # is reported as soon as nothing else can happen.
            self.returned = False
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.perform, op)
                await self.settle()
            self.refresh_refs()
        self.check_snapshot()

    async def perform(self, op: Op) -> None:
        await self.apply(op)
        self.returned = True
        self.recorder.touch()

    async def apply(self, op: Op) -> None:
        model = self.model
        if isinstance(op, AdvanceOp):
            model.advance(op.seconds)
            assert isinstance(self.clock, ManualClock)
            self.clock.advance(op.seconds)
            return
        ref = self.refs[op.child]
        cell = model.children[op.child]
        if isinstance(op, Burst):
            messages = [self.message(kind) for kind in op.kinds]
            model.process(cell, model.tell(cell, messages))
            for message in messages:
                self.tell(ref, message)
            return
        pre = [self.message("msg") for _ in range(op.pre)]
        if isinstance(op, AskOp):
            asked = self.message(op.kind)
            model.ask(cell, pre, asked)
        elif isinstance(op, KillOp):
            model.kill(cell, pre)
        else:
            model.stop(cell, pre)
        for message in pre:
            self.tell(ref, message)
        if isinstance(op, AskOp):
            spec = self.program.children[op.child]
            self.ask_results[asked.id] = await self.ask(ref, asked, spec)
        elif isinstance(op, KillOp):
            await ref.kill()
        else:
            await ref.stop()

    async def ask(self, ref: ActorRef, message: Msg, spec: ChildSpec) -> str:
        """Ask, and name the outcome; ``AskTimeout`` is a failure and propagates."""
        try:
            reply = await ref.ask(message, timeout=DEADLINE)
        except (MailboxFull, ActorCrashed, ActorStopped) as exc:
            error: ActorError = exc
        else:
            assert reply == message.id
            return "reply"
        if isinstance(error, ActorCrashed):
            assert isinstance(error.__cause__, Boom), error.__cause__
        if isinstance(error, MailboxFull) and spec.overflow == "fail":
            self.recorder.refused.append(message.id)  # nobody else saw it
        return type(error).__name__

    def missing(self) -> list[str]:
        """What the model says must have happened by now and has not, yet."""
        model, recorder = self.model, self.recorder
        if model.fatal:
            # An escalation past /user ends the system, which cancels this wait.
            return [f"the system to end by {model.escalations[-1]}"]
        counts = recorder.counts()
        missing = [] if self.returned else ["the operation to return"]
        missing += [
            f"{key}: {count} expected, seen {counts[key]}"
            for key, count in model.events.items()
            if counts[key] < count
        ]
        stops = Counter(path for path, _ in recorder.stops().elements())
        expected = Counter(
            path for path, reason in model.stops.elements() if reason != "shutdown"
        )
        missing += [
            f"Stopped({path!r}): {count} expected, seen {stops[path]}"
            for path, count in expected.items()
            if stops[path] < count
        ]
        if len(recorder.escalations()) < len(model.escalations):
            missing.append(f"escalations {model.escalations}")
        outcomes = recorder.outcomes()
        missing += [f"an outcome for {m}" for m in self.sent if not outcomes[m.id]]
        return missing

    async def settle(self) -> None:
        await self.recorder.wait_until(self.missing)

    def check_snapshot(self) -> None:
        """The snapshot's counters agree with the model and with what was handled."""
        model = self.model
        tree = self.system.snapshot()
        parent = tree.find(PARENT)
        if not model.parent.alive:
            assert parent is None
            return
        assert parent is not None
        assert (parent.restarts, parent.failures) == (
            model.parent.restarts,
            model.parent.failures,
        )
        for index, cell in enumerate(model.children):
            name = f"c{index}"
            snapshot = tree.find(cell.path)
            assert self.refs[index].is_alive == cell.alive
            if not cell.alive:
                assert snapshot is None, snapshot
                continue
            assert snapshot is not None, cell.path
            handled = len(self.recorder.processed[name]) - self.offsets[name]
            assert (snapshot.state, snapshot.mailbox_depth) == ("running", 0)
            assert (snapshot.restarts, snapshot.failures, snapshot.processed) == (
                cell.restarts,
                cell.failures,
                handled,
            ), (snapshot, cell)
        alive = 2 + sum(cell.alive for cell in model.children)
        assert self.system.statistics().actors == alive


def task_ids() -> set[int]:
    return {task.id for task in anyio.get_running_tasks()}


async def run_program(program: Program) -> None:
    before = task_ids()
    recorder = Recorder()
    system = ActorSystem(clock=ManualClock())
    runner = Runner(system, program, recorder)
    raised: BaseException | None = None
    # Subscribed before the system starts and until it has exited, so that the
    # record includes the shutdown's events (record_events ends with its block).
    async with (
        system.events(buffer=1_000_000) as subscription,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(recorder.pump, subscription)
        try:
            async with system:
                await runner.run()
        except Exception as exc:  # checked against the model below
            raised = exc
    # 4. Nothing the system started is still running.
    assert task_ids() == before

    model = runner.model
    if raised is not None and (
        not model.fatal or any(isinstance(e, AssertionError) for e in flatten(raised))
    ):
        raise raised
    if model.fatal:
        # Escalation past /user: the block raised the original exception.
        escalations = [e for e in recorder.events if isinstance(e, Escalated)]
        assert escalations, "no escalation"
        last = escalations[-1]
        assert last.path == GUARDIAN, last
        assert raised is not None, "the system exited without raising"
        assert any(e is last.error for e in flatten(raised)), (raised, last.error)
        assert isinstance(last.error, Boom | ActorKilled | ActorError)
    else:
        model.shutdown()
    check_order(recorder)
    check_conservation(runner, system)
    check_supervision(model, recorder)


def flatten(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in flatten(inner)]
    return [error]


def check_order(recorder: Recorder) -> None:
    """1. One sender's messages are handled in the order sent."""
    for name, ids in recorder.processed.items():
        assert ids == sorted(ids), f"{name} handled out of order: {ids}"
        assert len(set(ids)) == len(ids), f"{name} handled one twice: {ids}"


def check_conservation(runner: Runner, system: ActorSystem) -> None:
    """2. Every message has exactly one fate, the one the model allows."""
    model, recorder = runner.model, runner.recorder
    seen = recorder.outcomes()
    for message in runner.sent:
        fates = seen[message.id]
        assert len(fates) == 1, f"{message}: {fates or 'vanished'}"
        allowed = model.outcomes[message.id]
        assert fates[0] in allowed, f"{message}: {fates[0]}, expected {set(allowed)}"
    dead = [e for e in recorder.events if isinstance(e, DeadLetter)]
    assert system.statistics().dead_letters == len(dead)
    assert {e.reason for e in dead} <= {"stopped", "mailbox_full"}, dead
    for id_, expected in model.asks.items():
        got = runner.ask_results.get(id_)
        if got is None and model.fatal:
            continue  # the system ended, cancelling the ask's caller
        assert got == expected, f"ask {id_}: {got}, expected {expected}"


def check_supervision(model: Model, recorder: Recorder) -> None:
    """3. Restarts, escalations and stops are exactly what the contract says."""
    counts = recorder.counts()
    assert counts == model.events, diff(model.events, counts)
    seen = recorder.stops()
    assert seen == model.stops, diff(model.stops, seen)
    assert recorder.escalations() == model.escalations


def diff(expected: Counter[Any], seen: Counter[Any]) -> str:
    keys = sorted(set(expected) | set(seen))
    return "; ".join(
        f"{key}: expected {expected[key]}, seen {seen[key]}"
        for key in keys
        if expected[key] != seen[key]
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(program=programs())
def test_random_programs_keep_order_lose_nothing_and_restart_as_the_contract_says(
    backend: str, program: Program
) -> None:
    anyio.run(run_program, program, backend=backend)


# ------------------------------------------------------- regressions found here


class Plain(Actor):
    """Crashes on ``"crash"``, answers anything else."""

    async def receive(self, message: Any) -> Any:
        if message == "crash":
            raise Boom(message)
        return message


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_a_child_given_up_on_by_a_group_strategy_ends_failed(
    strategy: Strategy,
) -> None:
    # Trio shuffles the tasks it wakes together, so that the child loses the race
    # about half the time: twenty tries all but guarantee a loss, when the bug is
    # there. Asyncio wakes them in order and the child always wins.
    reasons = []
    for _ in range(20):
        async with (
            ActorSystem(clock=ManualClock()) as system,
            record_events(system) as log,
        ):
            await system.spawn(
                Supervisor,
                [Child(Plain, name="child")],
                Supervision(strategy=strategy, max_restarts=0),
                name="parent",
            )
            child = system.lookup("/user/parent/child")
            assert child is not None
            child.tell("crash")
            stopped = await log.wait_for(
                Stopped, "/user/parent/child", timeout=DEADLINE
            )
            assert log.of(Escalated, "/user/parent")
            reasons.append(stopped.reason)
    # "failed": its parent gave up on it (as under one_for_one); watchers are told
    # Terminated(reason="failed", error=...) and not a plain "stopped".
    assert reasons == ["failed"] * 20
