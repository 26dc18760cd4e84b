"""``ActorSystem``: owns the task group, the tree, the clock and the event bus."""

from __future__ import annotations

import random
from collections import deque
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .actor import Actor
from .cell import Cell, DeathRecord
from .clock import Clock, RealClock
from .deadlines import AskDeadlines
from .errors import ActorError, ActorStopped
from .events import ActorEvent, DeadLetter, EventBus, Subscription
from .reply import Ask
from .supervision import Supervision
from .timers import TimerService

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from types import TracebackType

    from anyio.abc import TaskGroup

    from .ref import ActorRef
    from .snapshot import ActorSnapshot
    from .supervision import Backoff, Overflow, RestartType

__all__ = ["ActorSystem", "SystemStatistics"]

#: How many restart times a system keeps for ``lowlevel.recent_restarts``: a
#: storm of more within the window asked about counts as this many.
RESTARTS_KEPT = 10_000

#: How many crashes a system keeps for ``lowlevel.recent_deaths``.
DEATHS_KEPT = 200


class _Guardian(Actor):
    """``/user``: the parent of every top-level actor, by the system's supervision."""

    def __init__(self, supervision: Supervision) -> None:
        # An instance value shadows the class default for this guardian alone.
        self.supervision = supervision  # type: ignore[misc]


@attrs.frozen(kw_only=True)
class SystemStatistics:
    """Counters of one actor system.

    Attributes:
        actors: Actors alive now, the ``/user`` guardian included.
        dead_letters: Messages that went to dead letters so far.
        subscribers: Event subscriptions open now.
        dropped_events: Events dropped by subscribers that fell behind, so far.
    """

    actors: int
    dead_letters: int
    subscribers: int
    dropped_events: int


class ActorSystem:
    """A tree of supervised actors, alive inside ``async with``.

    Leaving the block stops every actor, children first and the last started
    first, each within ``shutdown_timeout`` before it is cancelled. If a failure
    escalates past the ``/user`` guardian, the block is cancelled and ends by
    raising the original exception.

    Args:
        name: The system's name, ``"sz"`` by default (for logs and repr).
        clock: Where timers, backoff and restart intensity read time; the event
            loop's clock by default (``actors.testing.ManualClock`` in tests).
        shutdown_timeout: Seconds an actor gets to finish its current message and
            ``on_stop`` when stopped, 5.0 by default; then it is cancelled.
        seed: Seed for backoff jitter, random by default.
        supervision: How the ``/user`` guardian treats top-level actors,
            ``Supervision()`` by default (3 restarts in 5 s, then the failure
            ends the system). With a ``past_intensity`` backoff it never gives
            up: the system ends only when left.
    """

    def __init__(
        self,
        name: str = "sz",
        *,
        clock: Clock | None = None,
        shutdown_timeout: float = 5.0,
        seed: int | None = None,
        supervision: Supervision | None = None,
    ) -> None:
        if not shutdown_timeout > 0:
            raise ValueError(f"shutdown_timeout must be > 0, got {shutdown_timeout!r}")
        if supervision is not None and not isinstance(supervision, Supervision):
            raise ValueError(f"supervision must be a Supervision, got {supervision!r}")
        self._supervision = supervision if supervision is not None else Supervision()
        self.name = name
        self._clock: Clock = clock if clock is not None else RealClock()
        self._shutdown_timeout = shutdown_timeout
        self._random = random.Random(seed)
        self._new_event: Callable[[], anyio.Event] = anyio.Event
        self._new_scope: Callable[..., anyio.CancelScope] = anyio.CancelScope
        self._timers = TimerService(self._clock)
        #: Grace periods (stop, on_stop): on the event loop's clock, not ``clock``.
        self._deadlines = TimerService(RealClock())
        self._ask_deadlines = AskDeadlines()
        self._shutting_down = False
        self._bus = EventBus()
        self._dead_letters = 0
        #: When restarts happened (on ``clock``), the latest ``RESTARTS_KEPT``.
        self._restart_times: deque[float] = deque(maxlen=RESTARTS_KEPT)
        #: The latest ``DEATHS_KEPT`` crashes, oldest first.
        self._deaths: deque[DeathRecord] = deque(maxlen=DEATHS_KEPT)
        self._state = "new"
        self._guardian: Cell | None = None
        self._group: TaskGroup | None = None
        self._stack: AsyncExitStack | None = None
        self._fatal_error: BaseException | None = None
        self._shields: set[anyio.CancelScope] = set()
        #: Actors whose task is running (the exit abandons any left over).
        self._live: set[Cell] = set()

    def __repr__(self) -> str:
        return f"<ActorSystem {self.name!r} {self._state}>"

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> ActorSystem:
        if self._state != "new":
            raise ActorError(f"actor system {self.name!r} can be entered once only")
        async with AsyncExitStack() as stack:
            self._group = await stack.enter_async_context(anyio.create_task_group())
            self._state = "running"
            # The backend's own Event class, looked up once: anyio.Event() looks up
            # the running backend on every call, a tenth of an ask's whole cost.
            self._new_event = type(anyio.Event())
            self._new_scope = type(anyio.CancelScope())
            self._start_task(self._timers.run, "actor timers")
            self._start_task(self._deadlines.run, "grace periods")
            self._start_task(self._ask_deadlines.run, "ask deadlines")
            guardian = Cell(
                self,
                None,
                "user",
                _Guardian,
                (self._supervision,),
                restart="permanent",
                backoff=None,
                capacity=1,
                overflow="fail",
            )
            self._guardian = guardian
            self._group.start_soon(guardian.run, name="actor /user")
            try:
                await guardian._settled.wait()
            except BaseException:
                # Cancelled (or failed) while starting: what started must stop
                # here, or leaving the task group waits forever on the shielded
                # tasks (the guardian, the timers) that only the exit ends.
                await self._abandon_start()
                raise
            self._stack = stack.pop_all()
        return self

    async def _abandon_start(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stop_tree()
        for cell in list(self._live):
            cell.abandon()
        for scope in list(self._shields):
            scope.cancel()
        self._bus.close()
        self._state = "closed"

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        assert self._group is not None
        with anyio.CancelScope(shield=True):
            await self._stop_tree()
        for cell in list(self._live):  # stragglers: nothing should be left
            cell.abandon()
        for scope in list(self._shields):  # the timer tasks
            scope.cancel()
        self._state = "closing"
        self._bus.close()
        try:
            if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
                # Let the host's own error out as it is, not wrapped in a group.
                await self._stack.aclose()
                return
            await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            self._state = "closed"
        if self._fatal_error is not None:
            raise self._fatal_error

    async def _stop_tree(self) -> None:
        """Stop every actor, children first; past the deadline, cancel them."""
        if self._shutting_down:
            return
        self._shutting_down = True
        guardian = self._guardian
        if guardian is not None:
            await guardian.stop_for_good("shutdown")

    def _fatal(self, error: BaseException) -> None:
        """A failure escalated past ``/user``: shut down and raise it from the block."""
        if self._fatal_error is None:
            self._fatal_error = error
        self._start_task(self._fatal_shutdown, "actor system failure")

    async def _fatal_shutdown(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stop_tree()
        assert self._group is not None
        self._group.cancel_scope.cancel()

    def _start_task(
        self, func: Callable[..., Awaitable[Any]], name: str, *args: Any
    ) -> None:
        """Run ``func(*args)`` in the system's task group, shielded from the host.

        Cancelling the code around ``async with ActorSystem()`` must not cut actors
        short: the system stops them in order on the way out. Only the runtime's own
        scopes cancel these tasks (and, as a last resort, the exit).
        """
        self._task_group.start_soon(self._shielded, func, args, name=name)

    async def _shielded(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        with anyio.CancelScope(shield=True) as scope:
            self._shields.add(scope)
            try:
                await func(*args)
            finally:
                self._shields.discard(scope)

    def _check_running(self) -> None:
        """Raise ``ActorError`` unless the system is inside its ``async with``."""
        if self._state != "running":
            raise ActorError(
                f"actor system {self.name!r} is {self._state}: use it inside "
                f"'async with ActorSystem()'"
            )

    @property
    def _task_group(self) -> TaskGroup:
        """The task group every actor task runs in."""
        self._check_running()
        assert self._group is not None
        return self._group

    # ------------------------------------------------------------------- actors

    async def spawn(
        self,
        factory: Callable[..., Actor],
        *args: Any,
        name: str | None = None,
        capacity: int = 1000,
        overflow: Overflow = "block",
        restart: RestartType = "transient",
        backoff: Backoff | None = None,
    ) -> ActorRef:
        """Start a top-level actor under ``/user``; return its ref once started.

        A checkpoint. Returns when the actor's first ``on_start`` has finished (a
        ``Supervisor``'s once all its children have started).

        Args:
            factory: Called as ``factory(*args)`` for the first instance and again
                for every restart; usually the ``Actor`` subclass itself.
            *args: Passed to ``factory``.
            name: Unique among its siblings; ``$1``, ``$2``, ... when None.
            capacity: The most messages that may wait in its mailbox, 1000 by
                default.
            overflow: What a full mailbox does, ``"block"`` by default (see
                ``Mailbox``).
            restart: ``"permanent"`` (always restarted), ``"transient"`` (the
                default: restarted after a crash, not after a normal exit) or
                ``"temporary"`` (never restarted).
            backoff: Delay before each restart; at once when None (the default).

        Raises:
            ActorCrashed: The first ``on_start`` (or the factory) raised; the
                exception is the ``__cause__``. The actor does not exist then.
            ActorError: Bad arguments, a name already taken, or a system that is
                not running.
        """
        self._check_running()
        assert self._guardian is not None
        return await self._guardian.spawn_child(
            factory,
            args,
            name=name,
            capacity=capacity,
            overflow=overflow,
            restart=restart,
            backoff=backoff,
        )

    def lookup(self, path: str) -> ActorRef | None:
        """Return the ref of the living actor at ``path`` (``/user/a/b``), or None."""
        guardian = self._guardian
        if guardian is None or not path.startswith("/"):
            return None
        parts = path.strip("/").split("/")
        if parts[0] != guardian.name:
            return None
        cell: Cell | None = guardian
        for part in parts[1:]:
            cell = cell.children.get(part) if cell is not None else None
        return cell.ref if cell is not None and cell.accepting else None

    def snapshot(self) -> ActorSnapshot:
        """Return the whole tree as it is now, from ``/user`` down."""
        if self._guardian is None:
            raise ActorError(f"actor system {self.name!r} has not started")
        return self._guardian.snapshot()

    # ------------------------------------------------------------------- events

    @asynccontextmanager
    async def events(self, buffer: int = 1000) -> AsyncIterator[Subscription]:
        """Subscribe to lifecycle events for the duration of the block.

        Yields an async iterator of ``ActorEvent``. It holds at most ``buffer``
        events (1000 by default); a subscriber that falls behind loses its oldest
        events (counted in ``dropped``) rather than slowing the actors. Iteration
        ends when the system exits.
        """
        subscription = Subscription(buffer)
        if self._bus.closed:
            subscription.close()  # nothing more will come: end at once
        self._bus.subscriptions.append(subscription)
        try:
            yield subscription
        finally:
            self._bus.subscriptions.remove(subscription)

    @property
    def _listening(self) -> bool:
        """True while at least one event subscription is open."""
        return bool(self._bus.subscriptions)

    def _publish(self, event: ActorEvent) -> None:
        """Hand ``event`` to every subscriber. Never blocks."""
        if self._bus.subscriptions:
            self._bus.publish(event)

    def _dead_letter(self, cell: Cell, message: Any, reason: str) -> None:
        """Count a message nobody will process, and publish it.

        A waiting ``ask`` among them fails at once with ``ActorStopped``.

        Raises:
            ActorError: The system has exited (nobody could see the dead letter).
        """
        if type(message) is Ask:
            message.slot.fail(ActorStopped(f"{cell.path} is not running ({reason})"))
            message = message.message
        if self._state == "closed":
            raise ActorError(
                f"actor system {self.name!r} has exited: cannot deliver to {cell.path}"
            )
        self._dead_letters += 1
        if self._bus.subscriptions:
            self._bus.publish(
                DeadLetter(path=cell.path, message=message, reason=reason)
            )

    def statistics(self) -> SystemStatistics:
        """Return the system's counters."""
        actors = 0
        stack = [self._guardian] if self._guardian is not None else []
        while stack:
            cell = stack.pop()
            if cell.accepting:
                actors += 1
            stack.extend(cell.children.values())
        return SystemStatistics(
            actors=actors,
            dead_letters=self._dead_letters,
            subscribers=len(self._bus.subscriptions),
            dropped_events=sum(s.dropped for s in self._bus.subscriptions),
        )
