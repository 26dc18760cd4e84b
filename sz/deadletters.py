"""The latest dead letters of the scheduler's actor system, kept for a look later.

The actor system publishes each message no actor will process as a
``DeadLetter`` event, and counts them; it keeps none. A dashboard asking "what
went to dead letters lately?" needs the messages themselves, so the scheduler
subscribes for its whole run and keeps the latest ``DEAD_LETTERS`` here, each
described as text: a kept message would keep alive whatever it holds (a job's
arguments, a future).
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from actors import DeadLetter

from .jobs import bounded_repr

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from actors import ActorSystem

__all__ = ["DEAD_LETTERS", "DeadLetterLog", "RecentDeadLetter"]

#: How many dead letters the scheduler keeps, the latest: older ones fall off.
DEAD_LETTERS = 1000

#: The longest description of a dead letter's message, in characters.
MAX_MESSAGE_TEXT = 500


@attrs.frozen(kw_only=True)
class RecentDeadLetter:
    """A message no actor processed, as ``ScheduleZero.dead_letters()`` shows it.

    Attributes:
        at: When it went to dead letters (UTC).
        path: The actor it was sent to.
        reason: ``stopped`` (the actor had ended), ``mailbox_full`` (dropped by
            its overflow policy), ``unhandled`` (``receive`` did not handle it)
            or ``interrupted`` (the message its actor crashed on).
        message_type: The message's class, qualified by its module.
        message: The message's ``repr``, bounded (``MAX_MESSAGE_TEXT``).
    """

    at: datetime
    path: str
    reason: str
    message_type: str
    message: str


def describe_message(message: Any) -> str:
    """A message's bounded ``repr``; a placeholder if its ``repr`` raises."""
    return bounded_repr(message, MAX_MESSAGE_TEXT)


class DeadLetterLog:
    """The latest dead letters of one actor system, newest last.

    Args:
        size: How many to keep, ``DEAD_LETTERS`` by default.
    """

    def __init__(self, size: int = DEAD_LETTERS) -> None:
        self.entries: deque[RecentDeadLetter] = deque(maxlen=size)

    def add(self, letter: DeadLetter) -> None:
        """Keep ``letter``, described; the oldest kept falls off when full."""
        kind = type(letter.message)
        self.entries.append(
            RecentDeadLetter(
                at=datetime.now(UTC),
                path=letter.path,
                reason=letter.reason,
                message_type=f"{kind.__module__}.{kind.__qualname__}",
                message=describe_message(letter.message),
            )
        )

    def latest(self, limit: int) -> list[RecentDeadLetter]:
        """Up to ``limit`` of them, newest first."""
        entries = self.entries
        count = min(limit, len(entries))
        return [entries[-1 - index] for index in range(count)]

    async def collect(
        self,
        system: ActorSystem,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep ``system``'s dead letters until it exits.

        Subscribed once started (``task_group.start``), so none published after
        that is missed; a burst beyond the subscription's buffer loses its
        oldest events, as any subscriber's does.
        """
        async with system.events(buffer=self.entries.maxlen or DEAD_LETTERS) as events:
            task_status.started()
            async for event in events:
                if isinstance(event, DeadLetter):
                    self.add(event)
