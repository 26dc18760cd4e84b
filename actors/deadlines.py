"""Ask deadlines: one task per system expires every ``ask`` that ran out of time.

An ask costs a few microseconds of bookkeeping here, against ten or more for a
cancel scope of its own. Asks with the same timeout expire in the order they were
made, so each distinct timeout keeps a FIFO and no heap is needed; an answered ask
is not removed (that would cost a search) but skipped when its turn comes.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import anyio

from .errors import AskTimeout

if TYPE_CHECKING:
    from .reply import ReplySlot

__all__ = ["AskDeadlines"]


class AskDeadlines:
    """Fails each registered reply slot with ``AskTimeout`` once its time is up.

    Time is the event loop's (``anyio.current_time``): an ask's timeout is its
    caller's deadline, not something a test clock should stretch.
    """

    def __init__(self) -> None:
        self._queues: dict[float, deque[tuple[float, ReplySlot, str]]] = {}
        self._waiting = 0  # registered and not yet answered or expired
        self._sleep: anyio.CancelScope | None = None

    def add(self, slot: ReplySlot, timeout: float, path: str) -> None:
        """Fail ``slot`` with ``AskTimeout`` in ``timeout`` seconds, if still open."""
        deadline = anyio.current_time() + timeout
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
            if self._sleep is not None:
                self._sleep.cancel()  # a new, possibly earlier, head to sleep until
        queue.append((deadline, slot, path))
        self._waiting += 1
        if len(queue) > 1024 and len(queue) > 4 * self._waiting:
            # Mostly answered asks waiting for their turn: drop them now.
            self._queues[timeout] = deque(entry for entry in queue if not entry[1].done)

    def answered(self) -> None:
        """One registered ask got its outcome (reply, error, or cancellation)."""
        self._waiting -= 1

    async def run(self) -> None:
        """Expire asks until cancelled."""
        queues = self._queues
        while True:
            now = anyio.current_time()
            earliest = math.inf
            for timeout, queue in list(queues.items()):
                while queue and queue[0][0] <= now:
                    _, slot, path = queue.popleft()
                    if not slot.done:
                        slot.fail(
                            AskTimeout(f"no reply from {path} within {timeout} s")
                        )
                while queue and queue[0][1].done:
                    queue.popleft()
                if queue:
                    earliest = min(earliest, queue[0][0])
                else:
                    del queues[timeout]
            with anyio.CancelScope() as self._sleep:
                await anyio.sleep_until(earliest)
            self._sleep = None
