"""The errors the actor runtime raises; ``ActorError`` is the root of them all."""

from __future__ import annotations

__all__ = [
    "ActorCrashed",
    "ActorError",
    "ActorStopped",
    "AskTimeout",
    "ExpectedCrash",
    "MailboxFull",
]


class ActorError(Exception):
    """Root of every error raised by the actor runtime, and the error for bad use."""


class AskTimeout(ActorError, TimeoutError):
    """An ``ask`` got no reply within its timeout."""


class ActorCrashed(ActorError):
    """The actor raised while processing this very message.

    The exception it raised is this error's ``__cause__``.
    """


class ActorStopped(ActorError):
    """The actor stopped, or was killed, before it replied."""


class MailboxFull(ActorError):
    """The mailbox is at capacity and its overflow policy refuses the message."""


class ExpectedCrash(Exception):
    """Raise (or subclass) it to crash an actor on purpose: a lost connection, say.

    It is a crash like any other (counted, published as ``Crashed``, restarted as
    the actor's restart type and its parent's supervision say), but logged as one
    WARNING line with its message, not an ERROR with a traceback: the actor knows
    why it ends, and the operator needs the reason, not the stack. Not an
    ``ActorError``: the runtime never raises it.
    """


class ActorKilled(ActorError):
    """The crash reason of an actor ended by ``ActorRef.kill()``.

    Attributes:
        own: True when the actor killed itself (a kill called from its own
            code): a failure of its own, like any crash. False for a kill from
            anyone else, which a parent may choose not to count against its
            intensity (``Supervision.count_kills``).
    """

    def __init__(self, *args: object, own: bool = False) -> None:
        super().__init__(*args)
        self.own = own
