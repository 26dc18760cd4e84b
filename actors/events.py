"""Lifecycle events published by an ``ActorSystem``, and their subscriptions."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import attrs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = [
    "ActorEvent",
    "Crashed",
    "DeadLetter",
    "Escalated",
    "Restarted",
    "Started",
    "Stopped",
    "Terminated",
]


@attrs.frozen(kw_only=True)
class Terminated:
    """Delivered to a watcher when the watched actor has stopped for good.

    Attributes:
        ref: The actor that stopped (an ``ActorRef``).
        reason: ``"stopped"`` (stopped by someone's ``stop()``), ``"finished"`` (it
            ended itself with ``self.stop()``), ``"failed"`` (it crashed and was not
            restarted, or its parent gave up on it) or ``"shutdown"`` (the system
            ended).
        error: The exception that ended it, when ``reason`` is ``"failed"``.
    """

    ref: Any
    reason: str
    error: BaseException | None = None


@attrs.frozen(kw_only=True)
class ActorEvent:
    """Base of every lifecycle event; ``path`` names the actor it is about."""

    path: str


@attrs.frozen(kw_only=True)
class Started(ActorEvent):
    """An actor's first ``on_start`` finished."""


@attrs.frozen(kw_only=True)
class Stopped(ActorEvent):
    """An actor ended for good; ``reason`` is as in ``Terminated``."""

    reason: str
    error: BaseException | None = None


@attrs.frozen(kw_only=True)
class Crashed(ActorEvent):
    """An actor raised (or was killed); ``message`` is the one it was processing.

    ``message`` is None when the crash happened outside ``receive``.
    """

    error: BaseException
    message: Any = None


@attrs.frozen(kw_only=True)
class Restarted(ActorEvent):
    """An actor came back in place: a fresh instance after ``delay`` seconds."""

    restarts: int
    delay: float


@attrs.frozen(kw_only=True)
class Escalated(ActorEvent):
    """The supervisor at ``path`` gave up on ``child`` and failed with ``error``."""

    child: str
    error: BaseException


@attrs.frozen(kw_only=True)
class DeadLetter(ActorEvent):
    """A message that no actor will process; ``path`` is where it was sent.

    ``reason`` is ``"stopped"`` (the actor had ended), ``"mailbox_full"`` (dropped
    by the overflow policy) or ``"unhandled"`` (``receive`` did not handle it).
    """

    message: Any
    reason: str


class Subscription:
    """One subscriber's bounded buffer; when full it drops its oldest event."""

    __slots__ = ("_buffer", "_closed", "_wakeup", "dropped")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"buffer must be >= 1, got {size}")
        self._buffer: deque[ActorEvent] = deque(maxlen=size)
        self._wakeup: anyio.Event | None = None
        self._closed = False
        #: Events dropped because this subscriber fell behind.
        self.dropped = 0

    def push(self, event: ActorEvent) -> None:
        """Buffer ``event`` without blocking, dropping the oldest one if full."""
        buffer = self._buffer
        if len(buffer) == buffer.maxlen:
            self.dropped += 1
        buffer.append(event)
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def close(self) -> None:
        """End the iteration once the buffered events are consumed."""
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def __aiter__(self) -> AsyncIterator[ActorEvent]:
        return self

    async def __anext__(self) -> ActorEvent:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
        await anyio.lowlevel.checkpoint()
        return self._buffer.popleft()


class EventBus:
    """Fans events out to subscriptions; costs nothing while nobody listens."""

    __slots__ = ("closed", "subscriptions")

    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []
        self.closed = False

    def publish(self, event: ActorEvent) -> None:
        """Hand ``event`` to every subscriber without blocking."""
        for subscription in self.subscriptions:
            subscription.push(event)

    def close(self) -> None:
        """End every subscription, and those opened from now on."""
        self.closed = True
        for subscription in self.subscriptions:
            subscription.close()
