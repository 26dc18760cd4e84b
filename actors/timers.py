"""One timer task per actor system: ``send_after`` and ``every`` cost no task each."""

from __future__ import annotations

import heapq
import itertools
import math
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

    from .clock import Clock

__all__ = ["Timer", "TimerService"]


class Timer:
    """A pending ``send_after`` or ``every``; ``cancel()`` stops it for good."""

    __slots__ = ("_fire", "_on_done", "_service", "cancelled", "deadline", "interval")

    def __init__(
        self,
        service: TimerService,
        deadline: float,
        interval: float | None,
        fire: Callable[[], None],
        on_done: Callable[[Timer], None] | None,
    ) -> None:
        self._service = service
        self.deadline = deadline
        self.interval = interval
        self._fire = fire
        self._on_done = on_done
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the timer; a message it already sent stays sent. Idempotent."""
        if not self.cancelled:
            self.cancelled = True
            if self._on_done is not None:
                self._on_done(self)
            self._service._cancelled_one()


class TimerService:
    """Fires timers in deadline order from a single task reading the system clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._sleep: anyio.CancelScope | None = None
        self._cancelled = 0

    def schedule(
        self,
        delay: float,
        interval: float | None,
        fire: Callable[[], None],
        on_done: Callable[[Timer], None] | None = None,
    ) -> Timer:
        """Fire ``fire`` after ``delay`` seconds, then every ``interval`` if given.

        ``on_done(timer)`` is called once the timer will fire no more.
        """
        if not delay >= 0 or math.isinf(delay):
            raise ValueError(f"delay must be a finite number >= 0, got {delay!r}")
        if interval is not None and (not interval > 0 or math.isinf(interval)):
            raise ValueError(f"interval must be a finite number > 0, got {interval!r}")
        timer = Timer(self, self._clock.now() + delay, interval, fire, on_done)
        self._push(timer)
        return timer

    def _push(self, timer: Timer) -> None:
        heap = self._heap
        earliest = heap[0][0] if heap else math.inf
        heapq.heappush(heap, (timer.deadline, next(self._seq), timer))
        if timer.deadline < earliest and self._sleep is not None:
            self._sleep.cancel()

    def _cancelled_one(self) -> None:
        # Cancelled timers stay in the heap until due; with many of them (every ask
        # has a deadline timer), rebuild the heap rather than let it grow.
        self._cancelled += 1
        heap = self._heap
        if self._cancelled > 1024 and self._cancelled * 2 > len(heap):
            heap[:] = [entry for entry in heap if not entry[2].cancelled]
            heapq.heapify(heap)
            self._cancelled = 0

    async def run(self) -> None:
        """Fire due timers until cancelled."""
        heap = self._heap
        clock = self._clock
        while True:
            now = clock.now()
            while heap and heap[0][0] <= now:
                _, _, timer = heapq.heappop(heap)
                if timer.cancelled:
                    self._cancelled = max(0, self._cancelled - 1)
                    continue
                if timer.interval is None:
                    timer.cancelled = True
                    if timer._on_done is not None:
                        timer._on_done(timer)
                else:
                    timer.deadline += timer.interval
                    heapq.heappush(heap, (timer.deadline, next(self._seq), timer))
                timer._fire()
            with anyio.CancelScope() as self._sleep:
                if heap:
                    await clock.sleep_until(heap[0][0])
                else:
                    await anyio.sleep_forever()
            self._sleep = None
