"""``Actor``: subclass it, and the runtime gives it a mailbox, a ref and a parent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from .errors import ActorError
from .supervision import Backoff, Overflow, RestartType, Supervision

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .cell import Cell
    from .ref import ActorRef
    from .system import ActorSystem
    from .timers import Timer

__all__ = ["Actor"]


class Actor:
    """Base class of every actor: override ``on_start``, ``receive`` and ``on_stop``.

    An instance handles one message at a time. On a restart the runtime throws the
    instance away and calls the factory again, so state lives in attributes set by
    ``on_start`` and is fresh after every restart.
    """

    #: How this actor treats its children when one exits (see ``Supervision``).
    supervision: ClassVar[Supervision] = Supervision()

    _cell: Cell | None = None

    async def on_start(self) -> None:
        """Set up this incarnation: runs before the first message, and on restarts."""

    async def receive(self, message: Any) -> Any:
        """Handle one message; what it returns answers an ``ask``.

        The default handles nothing: the message goes to dead letters as
        ``"unhandled"``.
        """
        cell = self._runtime()
        cell.system._dead_letter(cell, message, "unhandled")

    async def on_stop(self) -> None:
        """Release what ``on_start`` took.

        Runs whenever an incarnation ends (a stop, a crash, a kill, a restart),
        after the children have stopped, within the system's ``shutdown_timeout``.
        """

    # ------------------------------------------------------------- the runtime

    def _runtime(self) -> Cell:
        cell = self._cell
        if cell is None:
            raise ActorError(
                f"{type(self).__qualname__} is not running yet: the runtime attaches "
                f"an actor after its factory returns, so use on_start, not __init__"
            )
        return cell

    @property
    def ref(self) -> ActorRef:
        """This actor's own ref."""
        return self._runtime().ref

    @property
    def parent(self) -> ActorRef | None:
        """The parent's ref (the ``/user`` guardian for top-level actors)."""
        parent = self._runtime().parent
        return parent.ref if parent is not None else None

    @property
    def system(self) -> ActorSystem:
        """The actor system this actor lives in."""
        return self._runtime().system

    @property
    def children(self) -> list[ActorRef]:
        """The living children, in start order."""
        return [child.ref for child in self._runtime().children.values()]

    async def stop(self) -> None:
        """End this actor normally once the current message is done.

        A checkpoint. A ``permanent`` actor is restarted after it; others are not.
        """
        self._runtime().request_finish()
        await anyio.lowlevel.checkpoint()

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
        """Start a child of this actor; the arguments are ``ActorSystem.spawn``'s."""
        return await self._runtime().spawn_child(
            factory,
            args,
            name=name,
            capacity=capacity,
            overflow=overflow,
            restart=restart,
            backoff=backoff,
        )

    def start_task(
        self, func: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> None:
        """Run ``func(*args)`` in a task of its own, bound to this incarnation.

        For work that must not hold up the mailbox (a handler running several jobs
        at once, a socket reader). Not a checkpoint. The task is cancelled when the
        incarnation ends, and the actor waits for it before ``on_stop``; an
        exception escaping it crashes the actor like one from ``receive``.

        Raises:
            ActorError: The actor is not running (called from ``__init__``, or
                after it ended).
        """
        cell = self._runtime()
        label = name or getattr(func, "__qualname__", "task")
        cell.start_task(func, args, f"{cell.path} {label}")

    def watch(self, ref: ActorRef) -> None:
        """Receive ``Terminated`` when ``ref``'s actor ends for good.

        Watching an actor that has already ended delivers ``Terminated`` at once.
        Watches end with this incarnation.
        """
        self._runtime().watch(ref._cell)

    def unwatch(self, ref: ActorRef) -> None:
        """Stop watching ``ref``."""
        self._runtime().unwatch(ref._cell)

    def send_after(self, delay: float, message: Any) -> Timer:
        """Tell this actor ``message`` in ``delay`` seconds (on the system clock).

        Cancelled when this incarnation ends; ``Timer.cancel()`` cancels it sooner.
        """
        return self._runtime().start_timer(delay, None, message)

    def every(self, interval: float, message: Any) -> Timer:
        """Tell this actor ``message`` every ``interval`` seconds, first after one.

        Cancelled when this incarnation ends; ``Timer.cancel()`` cancels it sooner.
        """
        return self._runtime().start_timer(interval, interval, message)
