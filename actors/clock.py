"""Where the runtime reads time and sleeps: swappable so tests need not wait."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Clock", "RealClock"]


class Clock(Protocol):
    """The runtime's source of time for timers, backoff and restart intensity.

    ``ask`` timeouts are not read from it: they are the caller's deadline on the
    event loop's own clock.
    """

    def now(self) -> float:
        """Return the current time in seconds (an arbitrary epoch, monotonic)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until ``now() >= deadline``. A checkpoint; cancellable."""
        ...


class RealClock:
    """The event loop's clock (``anyio.current_time``): the default.

    It reads the clock of the backend that first asks it the time (looked up once:
    ``anyio.current_time`` finds the backend anew on every call, a few
    microseconds each, and the dispatcher reads the time for every job). Give each
    actor system a clock of its own, as the default does.
    """

    __slots__ = ("_read",)

    def __init__(self) -> None:
        self._read: Callable[[], float] | None = None

    def now(self) -> float:
        """Return the event loop's current time."""
        read = self._read
        if read is None:
            read = self._read = (
                anyio.lowlevel.current_token().backend_class.current_time
            )
        return read()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the event loop's clock reaches ``deadline``."""
        await anyio.sleep_until(deadline)
