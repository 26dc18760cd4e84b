"""Where the runtime reads time and sleeps: swappable so tests need not wait."""

from __future__ import annotations

from typing import Protocol

import anyio

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
    """The event loop's clock (``anyio.current_time``): the default."""

    def now(self) -> float:
        """Return the event loop's current time."""
        return anyio.current_time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the event loop's clock reaches ``deadline``."""
        await anyio.sleep_until(deadline)
