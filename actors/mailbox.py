"""A bounded mailbox with an overflow policy, shared by all incarnations of an actor."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .errors import MailboxFull
from .supervision import Overflow

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Mailbox", "MailboxStatistics"]


@attrs.frozen(kw_only=True)
class MailboxStatistics:
    """Counters of one mailbox.

    Attributes:
        depth: Messages waiting now (not counting the one being processed).
        capacity: The most messages that may wait.
        overflow: The overflow policy.
        blocked_senders: ``send`` calls waiting for room now.
        dropped: Messages dropped by the overflow policy so far.
    """

    depth: int
    capacity: int
    overflow: Overflow
    blocked_senders: int
    dropped: int


class Mailbox:
    """Messages waiting for one actor, at most ``capacity`` of them.

    ``capacity`` counts the messages waiting, not the one being processed. The
    consumer takes messages straight from ``queue`` (no copy into a batch), so the
    count stays exact while it drains. What a full mailbox does with one more
    message is its ``overflow`` policy: ``"block"`` (``put`` waits,
    ``put_nowait`` raises ``MailboxFull``), ``"fail"`` (both raise), ``"drop_newest"``
    (the incoming message is dropped) or ``"drop_oldest"`` (the oldest waiting one
    is dropped). Dropped messages are handed to ``on_drop``.
    """

    __slots__ = (
        "_consumer",
        "_new_event",
        "_reserved",
        "_senders",
        "capacity",
        "closed",
        "dropped",
        "limit",
        "on_drop",
        "overflow",
        "queue",
    )

    def __init__(
        self,
        capacity: int,
        overflow: Overflow,
        on_drop: Callable[[Any], None],
        new_event: Callable[[], anyio.Event] = anyio.Event,
    ) -> None:
        self.queue: deque[Any] = deque()
        self.capacity = capacity
        self.overflow = overflow
        self.on_drop = on_drop
        self._new_event = new_event
        self.closed = False
        self.dropped = 0
        self._consumer: anyio.Event | None = None
        # A list, not a deque: blocked senders are rare and an empty deque is 600 bytes.
        self._senders: list[anyio.Event] = []
        self._reserved = 0  # places kept for blocked senders that were woken
        #: A message may be queued without further ado while ``len(queue) < limit``:
        #: one comparison on the ``tell`` fast path instead of four.
        self.limit = capacity

    def put_nowait(self, message: Any) -> None:
        """Add ``message`` now, or apply the overflow policy. Never blocks.

        Raises:
            MailboxFull: The mailbox is full and the policy is ``"block"`` or
                ``"fail"``.
        """
        queue = self.queue
        # Blocked senders (only under "block") queue ahead of anyone arriving now.
        if len(queue) + self._reserved >= self.capacity or self._senders:
            self._overflow(message)
            return
        queue.append(message)
        if self._consumer is not None:
            self._consumer.set()
            self._consumer = None

    async def put(self, message: Any) -> bool:
        """Add ``message``, waiting for room under the ``"block"`` policy.

        A checkpoint. Blocked senders get room in the order they blocked. Returns
        False, without adding it, if the mailbox was closed while waiting. Cancelled
        while waiting, the message is not added.

        Raises:
            MailboxFull: The mailbox is full and the policy is ``"fail"``.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        queue = self.queue
        if self.overflow == "block" and (
            self._senders or len(queue) + self._reserved >= self.capacity
        ):
            waiter = self._new_event()
            self._senders.append(waiter)
            self._update_limit()
            try:
                await waiter.wait()
            except BaseException:
                if waiter in self._senders:
                    self._senders.remove(waiter)
                elif not self.closed:
                    self._reserved -= 1  # woken, then cancelled: pass the place on
                    self._hand_over()
                self._update_limit()
                raise
            if self.closed:
                return False
            self._reserved -= 1  # the place the consumer kept for us
            self._update_limit()
            queue.append(message)
            if self._consumer is not None:
                self._consumer.set()
                self._consumer = None
        else:
            self.put_nowait(message)
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return True

    def _overflow(self, message: Any) -> None:
        policy = self.overflow
        if policy == "drop_newest":
            self.dropped += 1
            self.on_drop(message)
        elif policy == "drop_oldest":
            self.dropped += 1
            self.on_drop(self.queue.popleft())
            self.queue.append(message)
            if self._consumer is not None:
                self._consumer.set()
                self._consumer = None
        else:
            raise MailboxFull(
                f"mailbox full ({self.capacity} messages waiting, overflow={policy!r})"
            )

    def took(self) -> None:
        """The consumer took a message: keep its place for the first blocked sender.

        The place is reserved, so that a ``tell`` arriving before the woken sender
        runs cannot take it.
        """
        self._hand_over()

    def _hand_over(self) -> None:
        """Keep a free place for the first blocked sender and wake it."""
        if self._senders and len(self.queue) + self._reserved < self.capacity:
            self._reserved += 1
            self._senders.pop(0).set()
            self._update_limit()

    async def wait_nonempty(self) -> None:
        """Wait until a message arrives or ``wake`` is called. A checkpoint."""
        if self.queue:
            await anyio.lowlevel.checkpoint()
            return
        self._consumer = waiter = self._new_event()
        try:
            await waiter.wait()
        finally:
            if self._consumer is waiter:
                self._consumer = None

    def _update_limit(self) -> None:
        if self.closed or self._senders:
            self.limit = 0  # closed, or blocked senders go first: take the slow path
        else:
            self.limit = self.capacity - self._reserved

    def wake(self) -> None:
        """Wake the consumer whether or not a message arrived."""
        if self._consumer is not None:
            self._consumer.set()
            self._consumer = None

    def close(self) -> list[Any]:
        """Refuse further messages; return those still waiting, oldest first."""
        self.closed = True
        left = list(self.queue)
        self.queue.clear()
        while self._senders:
            self._senders.pop(0).set()
        self._reserved = 0
        self.limit = 0
        self.wake()
        return left

    def statistics(self) -> MailboxStatistics:
        """Return the mailbox's counters."""
        return MailboxStatistics(
            depth=len(self.queue),
            capacity=self.capacity,
            overflow=self.overflow,
            blocked_senders=len(self._senders),
            dropped=self.dropped,
        )
