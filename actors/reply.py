"""The one-shot slot an ``ask`` waits on, and the envelope that carries it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Ask", "ReplySlot"]


class ReplySlot:
    """Holds one reply or one error; the first to arrive wins, later ones are ignored.

    Cheaper than a stream per ask: one event, set once.
    """

    __slots__ = ("_event", "done", "error", "value")

    def __init__(self, new_event: Callable[[], anyio.Event] = anyio.Event) -> None:
        self._event = new_event()
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any) -> None:
        """Deliver the reply, unless something was delivered already."""
        if not self.done:
            self.done = True
            self.value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        """Deliver an error, unless something was delivered already."""
        if not self.done:
            self.done = True
            self.error = error
            self._event.set()

    async def wait(self) -> Any:
        """Wait for the reply and return it, or raise the error. A checkpoint."""
        await self._event.wait()
        if self.error is not None:
            raise self.error
        return self.value


class Ask:
    """A message in a mailbox that someone is waiting to hear back about."""

    __slots__ = ("message", "slot")

    def __init__(self, message: Any, slot: ReplySlot) -> None:
        self.message = message
        self.slot = slot

    def __repr__(self) -> str:
        return f"Ask({self.message!r})"
