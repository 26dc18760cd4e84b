"""``ActorRef``: the only handle anyone holds on an actor."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, final

import anyio

from .context import current_cell
from .errors import ActorError, ActorKilled
from .reply import Ask, ReplySlot

if TYPE_CHECKING:
    from .cell import Cell

__all__ = ["ActorRef"]


@final
class ActorRef:
    """A stable address of one actor, valid across its restarts.

    Messages sent to an actor that has ended go to dead letters: they are counted
    and published as ``DeadLetter`` events, never dropped silently.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    @property
    def path(self) -> str:
        """Where the actor lives, such as ``/user/handlers/send_email``."""
        return self._cell.path

    @property
    def name(self) -> str:
        """The last part of ``path``."""
        return self._cell.name

    @property
    def is_alive(self) -> bool:
        """True until the actor ends for good; also while it waits to restart."""
        return self._cell.accepting

    def child(self, name: str) -> ActorRef | None:
        """The living child called ``name``, or None.

        A ``Supervisor``'s children are reached this way by the names of their
        ``Child`` entries, without spelling out paths. Looked up anew on each
        call: when the parent restarts (or restarts a group of its children),
        the children are new actors with new refs, and a ref taken before points
        at one that has ended; ``watch`` it to notice.
        """
        found = self._cell.children.get(name)
        return found.ref if found is not None and found.accepting else None

    def children(self) -> dict[str, ActorRef]:
        """The living children by name, in start order (looked up as ``child``)."""
        return {
            name: cell.ref
            for name, cell in self._cell.children.items()
            if cell.accepting
        }

    def tell(self, message: Any) -> None:
        """Send ``message`` without waiting. Not a checkpoint; never blocks.

        Raises:
            MailboxFull: The mailbox is full and its overflow policy is ``"block"``
                or ``"fail"``.
            ActorError: The actor's system has exited.
        """
        cell = self._cell
        mailbox = cell.mailbox
        queue = mailbox.queue
        if len(queue) < mailbox.limit:  # the fast path: room, and nobody waiting
            queue.append(message)
            if mailbox._consumer is not None:
                mailbox.wake()
        elif cell.accepting:
            mailbox.put_nowait(message)  # the overflow policy decides
        else:
            cell.system._dead_letter(cell, message, "stopped")

    async def send(self, message: Any) -> None:
        """Send ``message``, waiting for mailbox room under the ``"block"`` policy.

        A checkpoint. Cancelled while waiting, the message is not sent.

        Raises:
            MailboxFull: The mailbox is full and its policy is ``"fail"``.
            ActorError: The actor's system has exited.
        """
        cell = self._cell
        if not cell.accepting or not await cell.mailbox.put(message):
            cell.system._dead_letter(cell, message, "stopped")
            await anyio.lowlevel.checkpoint()

    async def ask(self, message: Any, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
        """Send ``message`` and wait for what ``receive`` returns for it.

        A checkpoint. Waits for mailbox room like ``send``, within the same timeout.
        Cancelled, or timed out, the message may still be processed; its reply is
        then discarded.

        Args:
            message: The message.
            timeout: Seconds to wait for the reply, 5.0 by default; must be > 0.

        Returns:
            What the actor's ``receive`` returned.

        Raises:
            AskTimeout: No reply within ``timeout``.
            ActorCrashed: ``receive`` raised processing this message (the exception
                is the ``__cause__``).
            ActorStopped: The actor ended, or was killed, before replying.
            MailboxFull: The overflow policy refused or dropped the message.
            ActorError: An actor asked itself (that could only time out), or the
                system has exited.
        """
        cell = self._cell
        if not timeout > 0 or math.isnan(timeout):
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        if current_cell.get() is cell:
            raise ActorError(f"{cell.path} asked itself: the reply could never come")
        system = cell.system
        slot = ReplySlot(system._new_event)
        envelope = Ask(message, slot)
        # The system's deadline task fails the slot when time is up: far cheaper
        # than a cancel scope per ask, which would cost more than the round trip.
        deadlines = system._ask_deadlines
        deadlines.add(slot, timeout, cell.path)
        try:
            if not cell.accepting:
                system._dead_letter(cell, envelope, "stopped")
            else:
                mailbox = cell.mailbox
                if len(mailbox.queue) < mailbox.limit:
                    mailbox.queue.append(envelope)
                    if mailbox._consumer is not None:
                        mailbox.wake()
                else:
                    # Rare: wait for room (within the timeout), or overflow.
                    with anyio.move_on_after(timeout):
                        if not await mailbox.put(envelope):
                            system._dead_letter(cell, envelope, "stopped")
            return await slot.wait()
        finally:
            deadlines.answered()

    async def stop(self) -> None:
        """Stop the actor for good: its current message finishes, then ``on_stop``.

        A checkpoint. Returns once the actor has ended (children first); an actor
        that does not finish within the system's ``shutdown_timeout`` is cut short.
        Called by the actor on its own ref, it returns at once and the actor ends
        after the current message. Stopping an ended actor does nothing.
        """
        await self._cell.stop_for_good("stopped")
        await anyio.lowlevel.checkpoint()

    async def kill(self, reason: str = "killed") -> None:
        """Crash the actor now, even mid-``receive``: it is cancelled, not asked.

        A checkpoint. Counts as a crash with ``ActorKilled(reason)``, so the
        supervisor restarts it as its restart type says. Returns once the current
        incarnation is over. An actor waiting to restart, or spawned and not yet
        started, is left alone, and this returns at once.
        """
        cell = self._cell
        cell.system._check_running()
        parked = cell._parked
        # Only an incarnation cut short (or already going down) ends soon: the
        # latch of one not yet begun is set when that one ends, perhaps never.
        own = current_cell.get() is cell
        if (cell.fail(ActorKilled(reason, own=own)) or cell.going_down()) and not own:
            await parked.wait()
        await anyio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        state = "alive" if self._cell.accepting else "ended"
        return f"<ActorRef {self._cell.path} ({state})>"

    def __reduce__(self) -> Any:
        raise ActorError("an ActorRef cannot be pickled: it is local to its system")
