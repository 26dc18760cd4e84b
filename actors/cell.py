"""The runtime side of one actor: its task, mailbox, lifecycle and supervision.

An actor's ``Cell`` lives as long as its ``ActorRef`` is meaningful, across restarts:
one task runs incarnation after incarnation (a fresh instance each time) until the
actor ends for good. The instance is what the user wrote; the cell is everything
the runtime keeps around it.

Supervision decisions are made by the parent's *cell*, not by the parent's
``receive``: a parent busy awaiting inside ``receive`` (perhaps an ``ask`` to the
very child that crashed) still restarts its children on time.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
import types
from collections import deque
from typing import TYPE_CHECKING, Any, Final

import anyio

from .actor import Actor
from .context import current_cell
from .errors import (
    ActorCrashed,
    ActorError,
    ActorKilled,
    ActorStopped,
    ExpectedCrash,
    MailboxFull,
)
from .events import (
    Crashed,
    Escalated,
    Restarted,
    Started,
    Stopped,
    Terminated,
)
from .latch import Latch
from .mailbox import Mailbox
from .ref import ActorRef
from .reply import Ask
from .snapshot import ActorSnapshot, ActorState
from .supervision import (
    Backoff,
    Overflow,
    RestartType,
    RestartWindow,
    Supervision,
    restart_group,
    validate_spawn_options,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .system import ActorSystem
    from .timers import Timer

__all__ = ["Cell"]

logger = logging.getLogger("actors")

#: Messages handled per wake-up before the actor yields to others.
BATCH: Final = 256

_NOTHING: Final = object()


class _GroupRestart:
    """The interruption a sibling's group restart (one_for_all, rest_for_one) sends."""


_GROUP_RESTART: Final = _GroupRestart()


class _HardStop:
    """The interruption that ends a stop whose grace period ran out."""


_HARD_STOP: Final = _HardStop()

_receive_checked: dict[type[Any], None] = {}


class DeathRecord:
    """One crash, kept by the system; its cell marks it restarted or ended later.

    Mutable and slotted, not an ``ActorDeath``: what became of the actor is
    only known after the crash, and readers get frozen copies.
    """

    __slots__ = ("actor_class", "cause", "died_at", "ended", "path", "restarted")

    def __init__(self, path: str, actor_class: str, cause: str) -> None:
        self.path = path
        self.actor_class = actor_class
        self.cause = cause
        self.died_at = time.time()
        self.restarted = False
        self.ended = False


def _check_actor_class(instance: object, factory: Callable[..., Any]) -> None:
    cls = type(instance)
    if cls in _receive_checked:
        return
    if not isinstance(instance, Actor):
        raise ActorError(
            f"factory {factory!r} returned {instance!r}, which is not an Actor"
        )
    for hook in ("on_start", "receive", "on_stop"):
        if not inspect.iscoroutinefunction(getattr(cls, hook)):
            raise ActorError(f"{cls.__qualname__}.{hook} must be an async def")
    _receive_checked[cls] = None


def _has_on_stop(instance: Actor | None) -> bool:
    return instance is not None and type(instance).on_stop is not Actor.on_stop


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "it stopped"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(name) and "/" not in name and name[0] != "$"


_DEFAULT_SUPERVISION: Final = Supervision()


class Cell:
    """One actor's runtime state; the target behind every ``ActorRef`` to it."""

    __slots__ = (
        "_abandoned",
        "_aftermath",
        "_backoff_scope",
        "_bursting",
        "_consecutive",
        "_death",
        "_decision",
        "_finishing",
        "_first",
        "_group_lock",
        "_interrupt",
        "_next_child",
        "_orchestrations",
        "_parked",
        "_restart_delay",
        "_scope",
        "_settled",
        "_start_error",
        "_system_lane",
        "_tasks",
        "_timers",
        "_up_since",
        "_verdict",
        "_verdict_error",
        "_watchers",
        "_watching",
        "_window",
        "accepting",
        "args",
        "backoff",
        "children",
        "control",
        "current",
        "end_error",
        "end_reason",
        "ended",
        "factory",
        "failures",
        "incarnation",
        "instance",
        "last_error",
        "mailbox",
        "name",
        "parent",
        "path",
        "processed",
        "ref",
        "restart_type",
        "restarts",
        "started_at",
        "state",
        "stop_request",
        "supervision",
        "system",
    )

    def __init__(
        self,
        system: ActorSystem,
        parent: Cell | None,
        name: str,
        factory: Callable[..., Actor],
        args: tuple[Any, ...],
        *,
        restart: RestartType,
        backoff: Backoff | None,
        capacity: int,
        overflow: Overflow,
    ) -> None:
        self.system = system
        self.parent = parent
        self.name = name
        self.path: str = f"{parent.path}/{name}" if parent is not None else f"/{name}"
        self.factory = factory
        self.args = args
        self.restart_type: RestartType = restart
        self.backoff = backoff
        self.mailbox = Mailbox(capacity, overflow, self._overflowed, system._new_event)
        self.ref = ActorRef(self)
        #: Children by name; insertion order is start order.
        self.children: dict[str, Cell] = {}
        self.state: ActorState = "starting"
        self.instance: Actor | None = None
        self.supervision = _DEFAULT_SUPERVISION
        # Counters over every incarnation.
        self.processed = 0
        self.failures = 0
        self.restarts = 0
        self.last_error: BaseException | None = None
        self.started_at: float | None = None
        #: The system's record of this actor's latest crash, until it is
        #: restarted or ends for good (which the record then says).
        self._death: DeathRecord | None = None
        # Restart bookkeeping.
        self._up_since = 0.0
        self._consecutive = 0
        #: Consecutive restarts of this actor beyond its parent's intensity.
        self._bursting = 0
        self._window: RestartWindow | None = None
        self._orchestrations: set[anyio.CancelScope] | None = None
        # Tasks started by the instance (start_task): scope -> ended latch.
        self._tasks: dict[anyio.CancelScope, Latch] | None = None
        self._group_lock: anyio.Lock | None = None
        # The system lane: notifications that overtake user messages.
        self._system_lane: deque[Any] | None = None
        #: True when the message loop must look at the system lane or a stop request.
        self.control = False
        self.stop_request: str | None = None
        self._interrupt: BaseException | _GroupRestart | _HardStop | None = None
        self._scope: anyio.CancelScope | None = None
        self.current: Any = _NOTHING
        self._next_child = 0
        # Made on first use: most actors never watch, get watched, or set timers.
        self._timers: set[Timer] | None = None
        self._watchers: set[Cell] | None = None
        self._watching: set[Cell] | None = None
        #: False once the actor has ended for good: refs then dead-letter.
        self.accepting = True
        self.ended = Latch(self.system._new_event)
        #: How the actor ended for good (``Terminated.reason``), once it has.
        self.end_reason = ""
        self.end_error: BaseException | None = None
        # The current start attempt finished (either way); the current incarnation
        # is over; a parked cell was told what to do next.
        self._settled = Latch(self.system._new_event)
        self._parked = Latch(self.system._new_event)
        self._decision = Latch(self.system._new_event)
        self._verdict = "restart"
        self._verdict_error: BaseException | None = None
        self._backoff_scope: anyio.CancelScope | None = None
        self._aftermath: anyio.CancelScope | None = None
        self._abandoned = False
        self._finishing = False
        self.incarnation = 0
        self._restart_delay = 0.0
        self._start_error: BaseException | None = None
        self._first = True

    def __repr__(self) -> str:
        return f"<Cell {self.path} {self.state}>"

    # ------------------------------------------------------------------ sending

    def deliver_system(self, message: Any) -> None:
        """Queue a runtime notification (``Terminated``) ahead of user messages."""
        if not self.accepting:
            self.system._dead_letter(self, message, "stopped")
            return
        if self._system_lane is None:
            self._system_lane = deque()
        self._system_lane.append(message)
        self.control = True
        self.mailbox.wake()

    def _overflowed(self, message: Any) -> None:
        if type(message) is Ask:
            message.slot.fail(
                MailboxFull(f"{self.path}: message dropped, mailbox full")
            )
        self.system._dead_letter(self, message, "mailbox_full")

    # ---------------------------------------------------------------- spawning

    async def spawn_child(
        self,
        factory: Callable[..., Actor],
        args: tuple[Any, ...],
        *,
        name: str | None,
        capacity: int,
        overflow: Overflow,
        restart: RestartType,
        backoff: Backoff | None,
    ) -> ActorRef:
        """Create a child, start it, and return its ref once ``on_start`` is done."""
        system = self.system
        system._check_running()
        try:
            validate_spawn_options(
                capacity=capacity, overflow=overflow, restart=restart, backoff=backoff
            )
        except ValueError as exc:
            raise ActorError(f"spawn under {self.path}: {exc}") from None
        if not callable(factory):
            raise ActorError(
                f"spawn under {self.path}: factory {factory!r} is not callable"
            )
        if not self.accepting or self.state in ("stopping", "stopped", "failed"):
            raise ActorError(f"cannot spawn under {self.path}: it is {self.state}")
        if name is None:
            self._next_child += 1
            name = f"${self._next_child}"
        elif not _valid_name(name):
            raise ActorError(
                f"actor name must be a non-empty string without '/' that does not "
                f"start with '$', got {name!r}"
            )
        if name in self.children:
            raise ActorError(f"{self.path} already has a child named {name!r}")
        child = Cell(
            system,
            self,
            name,
            factory,
            args,
            restart=restart,
            backoff=backoff,
            capacity=capacity,
            overflow=overflow,
        )
        self.children[name] = child
        system._task_group.start_soon(child.run, name=f"actor {child.path}")
        await child._settled.wait()
        if child._start_error is not None:
            raise ActorCrashed(f"{child.path} failed to start") from child._start_error
        return child.ref

    # ------------------------------------------------------------------ the task

    async def run(self) -> None:
        """Run incarnation after incarnation until the actor ends for good.

        Every phase runs in a shielded scope: cancelling the code around
        ``async with ActorSystem()`` must not cut actors short, since the system
        stops them in order on its way out. Only the runtime's own scopes cancel an
        actor (kill, hard stop, and ``abandon`` as the exit's last resort). One
        scope per phase, not one for the task's whole life, keeps an idle actor to
        a single scope.
        """
        current_cell.set(self)
        reason = "shutdown"
        error: BaseException | None = None
        live = self.system._live
        live.add(self)
        try:
            while not self.is_abandoned():
                crash = await self._incarnation()
                if self.is_abandoned():
                    break
                instance = self._release()
                if self.stop_request is not None and not (
                    self.children or self._tasks or _has_on_stop(instance)
                ):
                    # A final stop with nothing to await: no scope to pay for.
                    self._settled.set()
                    self._parked.set()
                    reason, error = self.stop_request, None
                    break
                with self.system._new_scope(shield=True) as self._aftermath:
                    await self._end_instance(instance)
                    self._settled.set()
                    self._parked.set()
                    reason, error = await self._next(crash)
                self._aftermath = None
                if reason != "restart":
                    break
        finally:
            live.discard(self)
            self._finalize(reason, error)

    def is_abandoned(self) -> bool:
        """True once the exit gave up on this actor (read anew after every await)."""
        return self._abandoned

    def abandon(self) -> None:
        """Cancel whatever the actor is doing and end it: the exit's last resort."""
        self._abandoned = True
        for scope in (self._scope, self._aftermath):
            if scope is not None:
                scope.cancel()

    async def _next(
        self, crash: BaseException | None
    ) -> tuple[str, BaseException | None]:
        """After an incarnation: ``("restart", None)`` or the final reason."""
        stop_request = self.stop_request
        if stop_request is not None:
            return stop_request, None
        interrupt = self._interrupt
        if interrupt is _HARD_STOP:
            return "stopped", None
        if interrupt is _GROUP_RESTART:
            return await self._park_for_parent()
        if self._first:
            # A first start that failed fails the spawn instead of being restarted.
            self._start_error = crash or ActorStopped(
                f"{self.path} stopped during start"
            )
            return "failed", crash
        if crash is None:  # it ended itself with self.stop()
            if self.restart_type != "permanent":
                return "finished", None
        elif self.restart_type == "temporary":
            return "failed", crash
        if self.parent is None:
            if crash is not None:
                self.system._fatal(crash)
                return "failed", crash
            return "finished", None
        return await self._ask_parent(crash)

    async def _incarnation(self) -> BaseException | None:
        """Create an instance and run it; return its crash, or None if it stopped."""
        self.incarnation += 1
        self._interrupt = None
        self._finishing = False
        self.control = self.stop_request is not None
        # Whoever decided this restart may already wait on the next _settled.
        if self._settled.is_set():
            self._settled = Latch(self.system._new_event)
        if self._parked.is_set():
            self._parked = Latch(self.system._new_event)
        self.state = "starting" if self._first else "restarting"
        crash: BaseException | None = None
        with self.system._new_scope(shield=True) as scope:
            self._scope = scope
            try:
                instance = self.factory(*self.args)
                _check_actor_class(instance, self.factory)
                instance._cell = self
                self.instance = instance
                self.supervision = instance.supervision
                await instance.on_start()
                await self._started()
                await self._message_loop(instance)
            except Exception as exc:
                crash = exc
        self._scope = None  # a kill or a hard stop has nothing left to cut short
        interrupt = self._pending_interrupt()
        if isinstance(interrupt, BaseException):
            crash = interrupt  # kill or escalation: the reason we cancelled it
        message, self.current = self.current, _NOTHING
        final = self.stop_request is not None or interrupt is _HARD_STOP
        self.state = "stopping" if final else "restarting"
        if crash is not None:
            self._record_crash(crash, message)
        elif message is not _NOTHING:
            self._lost_in_flight(message)
        return crash

    def _pending_interrupt(self) -> BaseException | _GroupRestart | _HardStop | None:
        # A method, so that type checkers do not assume it unchanged across awaits.
        return self._interrupt

    def _must_leave(self) -> bool:
        return self.stop_request is not None or self._finishing

    async def _started(self) -> None:
        self.state = "running"
        self.started_at = time.time()
        # Read by the backoffs' reset_after (the child's and the parent's).
        self._up_since = self.system._clock.now()
        self._settled.set()
        system = self.system
        if self._first:
            self._first = False
            if system._listening:
                system._publish(Started(path=self.path))
        else:
            self.restarts += 1
            system._restart_times.append(system._clock.now())
            death = self._death
            if death is not None:
                death.restarted = True
                self._death = None
            if system._listening:
                system._publish(
                    Restarted(
                        path=self.path,
                        restarts=self.restarts,
                        delay=self._restart_delay,
                    )
                )

    async def _message_loop(self, instance: Actor) -> None:
        """Process messages until a stop request; raises what ``receive`` raises."""
        mailbox = self.mailbox
        queue = mailbox.queue
        senders = mailbox._senders
        receive = instance.receive
        checkpoint = anyio.lowlevel.checkpoint
        while True:
            if self.control:
                if self._must_leave():
                    return
                lane = self._system_lane
                while lane:
                    message = lane.popleft()
                    self.current = message
                    await receive(message)
                    self.processed += 1
                self.current = _NOTHING
                self.control = self._must_leave()
                continue
            if not queue:
                await mailbox.wait_nonempty()
                continue
            budget = BATCH
            while queue and budget and not self.control:
                message = queue.popleft()
                if senders:
                    mailbox.took()
                self.current = message
                if type(message) is Ask:
                    reply = await receive(message.message)
                    if reply is not None and isinstance(reply, types.CoroutineType):
                        self._bad_reply(reply)
                    message.slot.set(reply)
                else:
                    reply = await receive(message)
                    if reply is not None and isinstance(reply, types.CoroutineType):
                        self._bad_reply(reply)
                self.processed += 1
                budget -= 1
            self.current = _NOTHING
            if not budget:
                await checkpoint()  # a long run of messages must not starve others

    def _bad_reply(self, reply: types.CoroutineType[Any, Any, Any]) -> None:
        reply.close()
        raise ActorError(
            f"{self.path}: receive returned a coroutine ({reply.__qualname__}); "
            f"an await is missing"
        )

    def _record_crash(self, crash: BaseException, message: Any) -> None:
        self.failures += 1
        self.last_error = crash
        death = DeathRecord(self.path, self._class_name(), repr(crash))
        self.system._deaths.append(death)
        self._death = death
        if message is _NOTHING:
            message = None
        elif type(message) is Ask:
            if isinstance(crash, ActorKilled):
                message.slot.fail(
                    ActorStopped(f"{self.path} was killed before replying")
                )
            else:
                error = ActorCrashed(
                    f"{self.path} crashed processing {message.message!r}"
                )
                error.__cause__ = crash
                message.slot.fail(error)
            message = message.message
        if isinstance(crash, ExpectedCrash):
            logger.warning("%s ended: %s", self.path, crash)
        elif not isinstance(crash, ActorKilled):
            logger.error("%s crashed", self.path, exc_info=crash)
        self.system._publish(Crashed(path=self.path, error=crash, message=message))

    def _lost_in_flight(self, message: Any) -> None:
        """A message cut short by a hard stop or a sibling's restart: a dead letter."""
        self.system._dead_letter(self, message, "interrupted")

    def _release(self) -> Actor | None:
        """Drop what the ending instance held that needs no await; return it."""
        self._drop_timers_and_watches()
        if self._system_lane:
            for message in self._system_lane:
                self.system._dead_letter(self, message, "stopped")
            self._system_lane.clear()
        instance, self.instance = self.instance, None
        if self._window is not None:
            self._window.clear()
        for orchestration in list(self._orchestrations or ()):
            orchestration.cancel()
        for scope in list(self._tasks or ()):
            scope.cancel()
        return instance

    async def _end_instance(self, instance: Actor | None) -> None:
        """Wait out its tasks, stop the children (last first), then ``on_stop``."""
        for ended in list((self._tasks or {}).values()):
            await ended.wait()
        if self.children:
            # Not cut short by this actor's own grace: each child has its own.
            await self.stop_children(
                "shutdown" if self.system._shutting_down else "stopped"
            )
        if _has_on_stop(instance):
            assert instance is not None
            with anyio.CancelScope() as scope:
                deadline = self.system._deadlines.schedule(
                    self.system._shutdown_timeout, None, scope.cancel
                )
                try:
                    await instance.on_stop()
                except Exception as exc:
                    self.last_error = exc
                    logger.error("%s: on_stop raised", self.path, exc_info=exc)
                finally:
                    deadline.cancel()
            self._drop_timers_and_watches()  # what on_stop armed dies with it

    async def stop_children(self, reason: str) -> None:
        """Stop every child for good, the last started first, each in its grace."""
        while self.children:
            child = next(reversed(self.children.values()))
            await child.stop_for_good(reason)
            self.children.pop(child.name, None)

    # ------------------------------------------------------------- supervision

    def _decide(self, verdict: str, error: BaseException | None = None) -> None:
        """Tell this parked actor what comes next: ``"restart"`` or a final reason.

        The first word stands: a stop arriving after the parent gave up on the
        actor must not turn its ``"failed"`` into ``"stopped"``.
        """
        if self._decision.is_set():
            return
        self._verdict = verdict
        self._verdict_error = error
        self._decision.set()

    async def _park_for_parent(self) -> tuple[str, BaseException | None]:
        """Wait, with no instance, for the parent to say restart or stop."""
        await self._decision.wait()
        self._decision = Latch(self.system._new_event)
        if self.stop_request is not None and self._verdict != "failed":
            return self.stop_request, None
        return self._verdict, self._verdict_error

    async def _ask_parent(
        self, crash: BaseException | None
    ) -> tuple[str, BaseException | None]:
        parent = self.parent
        assert parent is not None
        if not parent.accepting or parent.state in ("stopping", "stopped", "failed"):
            return "stopped", None
        now = self.system._clock.now()
        if now - self._up_since >= (self.backoff.reset_after if self.backoff else 0):
            self._consecutive = 0
        if parent.supervision.strategy != "one_for_one":
            parent._start_group_restart(self, crash)
            return await self._park_for_parent()
        strained = parent._strained(self, now, crash)
        if strained is None:
            parent._give_up(self, crash)
            return "failed", crash
        delay = (
            parent._strained_delay(self, now, crash) if strained else self._next_delay()
        )
        if delay > 0:
            with anyio.CancelScope() as self._backoff_scope:
                await self.system._clock.sleep_until(now + delay)
            self._backoff_scope = None
            if self.stop_request is not None:
                return self.stop_request, None
        self._restart_delay = delay
        return "restart", None

    def _next_delay(self) -> float:
        if self.backoff is None:
            return 0.0
        delay = self.backoff.delay(self._consecutive, self.system._random)
        self._consecutive += 1
        return delay

    def _allow_restart(self, now: float) -> bool:
        if self._window is None:
            self._window = RestartWindow()
        return self._window.allow(now, self.supervision)

    def _strained(
        self, child: Cell, now: float, crash: BaseException | None
    ) -> bool | None:
        """Whether ``child``'s restart now is beyond the intensity (None: give up).

        Beyond it, a parent with ``past_intensity`` backs off. A child it backed
        off stays in its burst until it has stayed up ``reset_after``, even
        once its slower restarts fit the window again: else a crash loop would
        alternate a restart at once with one at the longest delay. A kill from
        outside, when ``count_kills`` is off, is never beyond it (and leaves the
        window and the burst as they were).
        """
        if (
            not self.supervision.count_kills
            and isinstance(crash, ActorKilled)
            and not crash.own
        ):
            return False
        allowed = self._allow_restart(now)
        past = self.supervision.past_intensity
        if past is None:
            return None if not allowed else False
        if now - child._up_since >= past.reset_after:
            child._bursting = 0
        return not allowed or child._bursting > 0

    def _strained_delay(
        self, child: Cell, now: float, crash: BaseException | None
    ) -> float:
        """The wait before restarting ``child`` beyond this actor's intensity.

        The larger of the child's own backoff and ``past_intensity``'s, which
        grows with each consecutive restart beyond the intensity.
        """
        past = self.supervision.past_intensity
        assert past is not None
        delay = max(
            child._next_delay(), past.delay(child._bursting, self.system._random)
        )
        child._bursting += 1
        if child._bursting == 1:  # the first of its burst: once, not every time
            supervision = self.supervision
            logger.warning(
                "%s: more than %d restarts within %g s, beyond its intensity: "
                "restarting %s (%s) in %.3g s, and backing off while it lasts",
                self.path,
                supervision.max_restarts,
                supervision.within,
                child.path,
                _describe(crash),
                delay,
            )
        return delay

    def _give_up(self, child: Cell, crash: BaseException | None) -> None:
        """Stop restarting ``child`` and fail this actor with its error."""
        error = (
            crash if crash is not None else ActorError(f"{child.path} kept stopping")
        )
        self.system._publish(Escalated(path=self.path, child=child.path, error=error))
        self.fail(error)

    def fail(self, error: BaseException) -> bool:
        """Crash this actor with ``error`` wherever it is (kill, escalation).

        An actor between incarnations (restarting, or spawned and not yet
        started) has nothing to crash: no-op. Returns whether it had.
        """
        if self._scope is None:
            return False
        if self._interrupt is None:
            self._interrupt = error
        self._scope.cancel()
        return True

    def going_down(self) -> bool:
        """True while an incarnation that ended is being wound up (``on_stop``)."""
        return self._aftermath is not None

    def _start_group_restart(self, child: Cell, crash: BaseException | None) -> None:
        self.system._start_task(
            self._group_restart,
            f"restart under {self.path}",
            child,
            child.incarnation,
            crash,
        )

    async def _group_restart(
        self, failed: Cell, incarnation: int, crash: BaseException | None
    ) -> None:
        """Restart ``failed`` and, by the strategy, its siblings (in start order).

        Runs in a task of its own so that neither this actor's ``receive`` nor the
        failed child waits on the other. Cancelled when this actor goes down: its
        teardown then stops the children itself.
        """
        with anyio.CancelScope() as scope:
            if self._orchestrations is None:
                self._orchestrations = set()
            self._orchestrations.add(scope)
            try:
                if self._group_lock is None:
                    self._group_lock = anyio.Lock()
                async with self._group_lock:
                    await self._restart_group_locked(failed, incarnation, crash)
            finally:
                self._orchestrations.discard(scope)

    async def _restart_group_locked(
        self, failed: Cell, incarnation: int, crash: BaseException | None
    ) -> None:
        if (
            self.children.get(failed.name) is not failed
            or failed.incarnation != incarnation
            or failed._decision.is_set()
        ):
            return  # already restarted with an earlier group, or gone
        now = self.system._clock.now()
        strained = self._strained(failed, now, crash)
        if strained is None:
            failed._decide("failed", crash)
            self._give_up(failed, crash)
            return
        group = restart_group(
            self.supervision.strategy, list(self.children.values()), failed
        )
        for sibling in reversed(group):
            if sibling is failed:
                continue
            if sibling.restart_type == "temporary":
                # Taken down with the group, but never restarted (as in OTP).
                await sibling.stop_for_good("stopped")
            else:
                await sibling._interrupt_for_group()
        delay = (
            self._strained_delay(failed, now, crash)
            if strained
            else failed._next_delay()
        )
        if delay > 0:
            await self.system._clock.sleep_until(now + delay)
        for member in group:
            if self.children.get(member.name) is not member or member.ended.is_set():
                continue
            await member._parked.wait()
            member._restart_delay = delay
            member._settled = settled = Latch(self.system._new_event)
            member._decide("restart")
            await settled.wait()

    async def _interrupt_for_group(self) -> None:
        """Take this actor down so that its parent can restart it with a sibling."""
        if self.ended.is_set():
            return
        if not self._parked.is_set():
            if self._interrupt is None:
                self._interrupt = _GROUP_RESTART
            if self._scope is not None:
                self._scope.cancel()
        await self._parked.wait()

    # ------------------------------------------------------------------ stopping

    def request_stop(self, reason: str) -> None:
        """Ask the actor to end for good after its current message. Never blocks."""
        if self.stop_request is not None or self.ended.is_set():
            return
        self.stop_request = reason
        self.control = True
        self.mailbox.wake()
        if self._backoff_scope is not None:
            self._backoff_scope.cancel()  # no need to wait out a backoff to stop
        if self._parked.is_set():
            self._decide(reason)

    async def stop_for_good(self, reason: str) -> None:
        """Stop the actor and wait until it has ended; cut it short if it dawdles."""
        # Mid-message or mid-on_start: what the grace period may have to cut short.
        busy = self._scope is not None and (
            self.current is not _NOTHING or self.state != "running"
        )
        self.request_stop(reason)
        if current_cell.get() is self or self.ended.is_set():
            await anyio.lowlevel.checkpoint()
            return
        if not busy:  # idle: nothing to cut short; children and on_stop have theirs
            await self.ended.wait()
            return
        deadline = self.system._deadlines.schedule(
            self.system._shutdown_timeout, None, self._hard_stop
        )
        try:
            await self.ended.wait()
        finally:
            deadline.cancel()

    def _hard_stop(self) -> None:
        """The grace period of a stop ran out: cancel whatever the actor is doing."""
        if not self.ended.is_set():
            self._interrupt = _HARD_STOP
            if self._scope is not None:
                self._scope.cancel()

    def request_finish(self) -> None:
        """The actor asked to end itself (``self.stop()``): a normal exit."""
        self._finishing = True
        self.control = True
        self.mailbox.wake()

    def _finalize(self, reason: str, error: BaseException | None) -> None:
        """The actor has ended for good: settle everything that waits on it."""
        if self.ended.is_set():
            return
        self.accepting = False
        self.instance = None
        if self.current is not _NOTHING:  # only when the task itself was cancelled
            message, self.current = self.current, _NOTHING
            self._lost_in_flight(message)
        for child in list(self.children.values()):
            child.request_stop(reason)
        self.end_reason = reason
        self.end_error = error
        death = self._death
        if death is not None:
            death.ended = True
            self._death = None
        self.state = "failed" if reason == "failed" else "stopped"
        for message in self.mailbox.close():
            self.system._dead_letter(self, message, "stopped")
        self._drop_timers_and_watches()
        parent = self.parent
        if parent is not None and parent.children.get(self.name) is self:
            del parent.children[self.name]
        watchers, self._watchers = self._watchers, None
        if watchers:
            notice = Terminated(ref=self.ref, reason=reason, error=error)
            for watcher in watchers:
                if watcher._watching is not None:
                    watcher._watching.discard(self)
                watcher.deliver_system(notice)
        self._settled.set()
        self._parked.set()
        self.ended.set()
        if self.system._listening:
            self.system._publish(Stopped(path=self.path, reason=reason, error=error))

    # --------------------------------------------------------------------- tasks

    def start_task(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], name: str
    ) -> None:
        """Run ``func(*args)`` beside the actor, for as long as this incarnation.

        The task is cancelled when the incarnation ends (stop, crash, kill,
        restart), and the actor waits for it to finish before ``on_stop``. An
        exception escaping the task crashes the actor, as if ``receive`` raised it.
        """
        if self.instance is None or self._scope is None:
            raise ActorError(f"{self.path} is not running: it cannot start a task")
        if self._tasks is None:
            self._tasks = {}
        tasks = self._tasks
        scope = self.system._new_scope(shield=True)
        ended = Latch(self.system._new_event)
        tasks[scope] = ended

        async def bound() -> None:
            # Not the actor's own task: it may ask its actor like anyone else.
            current_cell.set(None)
            try:
                with scope:
                    await func(*args)
            except Exception as exc:
                self.fail(exc)
            finally:
                tasks.pop(scope, None)
                ended.set()

        self.system._task_group.start_soon(bound, name=name)

    # ------------------------------------------------------------------- watches

    def _drop_timers_and_watches(self) -> None:
        """Cancel this incarnation's timers and end the watches it made."""
        timers, self._timers = self._timers, None
        for timer in list(timers or ()):
            timer.cancel()
        watching, self._watching = self._watching, None
        for target in watching or ():
            if target._watchers is not None:
                target._watchers.discard(self)

    def watch(self, target: Cell) -> None:
        """Deliver ``Terminated`` to this actor when ``target`` ends for good."""
        if target.ended.is_set():
            self.deliver_system(
                Terminated(
                    ref=target.ref, reason=target.end_reason, error=target.end_error
                )
            )
            return
        if target._watchers is None:
            target._watchers = set()
        target._watchers.add(self)
        if self._watching is None:
            self._watching = set()
        self._watching.add(target)

    def unwatch(self, target: Cell) -> None:
        """Stop watching ``target``; a ``Terminated`` already queued stays queued."""
        if target._watchers is not None:
            target._watchers.discard(self)
        if self._watching is not None:
            self._watching.discard(target)

    # -------------------------------------------------------------------- timers

    def start_timer(self, delay: float, interval: float | None, message: Any) -> Timer:
        """Tell this actor ``message`` after ``delay``, then every ``interval``."""
        if math.isnan(delay):
            raise ValueError("delay must be a number")
        ref = self.ref

        def fire() -> None:
            try:
                ref.tell(message)
            except MailboxFull:
                self.system._dead_letter(self, message, "mailbox_full")

        if self._timers is None:
            self._timers = set()
        timer = self.system._timers.schedule(
            delay, interval, fire, self._timers.discard
        )
        self._timers.add(timer)
        return timer

    # -------------------------------------------------------------- introspection

    def _class_name(self) -> str:
        instance_cls = type(self.instance) if self.instance is not None else None
        if instance_cls is None:
            factory = self.factory
            name = getattr(factory, "__qualname__", None) or type(factory).__qualname__
            return str(name)
        return instance_cls.__qualname__

    def snapshot(self) -> ActorSnapshot:
        """Return this actor's snapshot, with its children's."""
        error = self.last_error
        return ActorSnapshot(
            path=self.path,
            actor_class=self._class_name(),
            state=self.state,
            mailbox_depth=len(self.mailbox.queue),
            mailbox_capacity=self.mailbox.capacity,
            processed=self.processed,
            failures=self.failures,
            restarts=self.restarts,
            last_error=repr(error) if error is not None else None,
            started_at=self.started_at,
            supervision=self.supervision,
            window_restarts=self._window.count(
                self.system._clock.now(), self.supervision
            )
            if self._window is not None
            else 0,
            children=tuple(child.snapshot() for child in list(self.children.values())),
        )
