"""How late the scheduler's event loop runs: a sleep that measures its own delay."""

from __future__ import annotations

from collections import deque

import anyio

__all__ = ["LoopLag"]


class LoopLag:
    """Samples the lag of the event loop it runs on, every ``interval`` seconds.

    A task that asks to sleep ``interval`` seconds wakes some time after: what
    ran on the loop meanwhile (a long callback, a garbage collection, a flood
    of ready tasks) made it late. That lateness is the lag every timer and
    every job on the loop suffers at that moment.

    Args:
        interval: Seconds between samples, 0.5 by default.
        window: Seconds the worst sample is remembered, 60 by default.
    """

    def __init__(self, interval: float = 0.5, window: float = 60.0) -> None:
        self.interval = interval
        self._samples: deque[float] = deque(maxlen=max(1, round(window / interval)))

    @property
    def latest(self) -> float | None:
        """The last sample's lag in seconds; None before the first."""
        return self._samples[-1] if self._samples else None

    @property
    def worst(self) -> float | None:
        """The largest lag of the window, in seconds; None before the first."""
        return max(self._samples) if self._samples else None

    async def run(self) -> None:
        """Sample until cancelled; run it in the loop to measure."""
        while True:
            start = anyio.current_time()
            await anyio.sleep(self.interval)
            self._samples.append(max(0.0, anyio.current_time() - start - self.interval))
