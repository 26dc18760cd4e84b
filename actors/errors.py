"""The errors the actor runtime raises; ``ActorError`` is the root of them all."""

from __future__ import annotations

__all__ = ["ActorCrashed", "ActorError", "ActorStopped", "AskTimeout", "MailboxFull"]


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


class ActorKilled(ActorError):
    """The crash reason of an actor ended by ``ActorRef.kill()``."""
