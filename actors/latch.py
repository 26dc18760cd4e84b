"""``Latch``: a one-way flag to wait on, whose event exists only while awaited."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Latch"]


class Latch:
    """Set once, waited on by any number of tasks.

    An idle actor holds several of these; an ``anyio.Event`` costs about a kilobyte,
    so one is made only when somebody actually waits on an unset latch.
    """

    __slots__ = ("_event", "_new_event", "_set")

    def __init__(self, new_event: Callable[[], anyio.Event] = anyio.Event) -> None:
        self._set = False
        self._event: anyio.Event | None = None
        self._new_event = new_event

    def set(self) -> None:
        """Set the latch and wake every waiter. Idempotent."""
        if not self._set:
            self._set = True
            if self._event is not None:
                # Waiters hold the event; the latch need not keep it alive.
                self._event.set()
                self._event = None

    def is_set(self) -> bool:
        """Return True once ``set`` was called."""
        return self._set

    async def wait(self) -> None:
        """Wait until the latch is set. A checkpoint."""
        if self._set:
            await anyio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = self._new_event()
        await self._event.wait()
