"""Holding a rate: the ``n``-th of a run of events is due ``n / rate`` s after it began.

Sleeping ``1 / rate`` between events drifts: each sleep wakes late, and the
lateness adds up (at 5,000 a second a 50 µs wake-up lag alone costs a fifth
of the rate). ``Pacer`` computes every due time from the start instead, and
releases every event already due at once, so a late wake-up is caught up and
the rate over the run holds.
"""

from __future__ import annotations

import math

import anyio

__all__ = ["Pacer"]


class Pacer:
    """Releases ``count`` events at ``rate`` a second, by deadline.

    Args:
        count: How many events.
        rate: Events a second; None for as fast as the caller goes (a
            checkpoint every ``batch`` events, so that the loop breathes).
        batch: Events released between checkpoints when unpaced, 64 by default.
    """

    def __init__(self, count: int, rate: float | None, *, batch: int = 64) -> None:
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a number > 0, got {rate!r}")
        self.count = count
        self.rate = rate
        self.batch = batch
        self.released = 0

    async def due(self) -> int:
        """Wait until the next event is due; return how many are due now (>= 1).

        A checkpoint. Returns 0 once all ``count`` were released. The caller
        releases that many events and calls again.
        """
        left = self.count - self.released
        if left <= 0:
            return 0
        if self.rate is None:
            await anyio.lowlevel.checkpoint()
            n = min(left, self.batch)
            self.released += n
            return n
        if self.released == 0:
            self._start = anyio.current_time()
            self.released = 1
            await anyio.lowlevel.checkpoint()
            return 1
        # The next event (index ``released``) is due at start + released / rate.
        await anyio.sleep_until(self._start + self.released / self.rate)
        elapsed = anyio.current_time() - self._start
        # Every event whose time has come, the next one at least.
        due_now = min(left, max(1, math.floor(elapsed * self.rate) + 1 - self.released))
        self.released += due_now
        return due_now
