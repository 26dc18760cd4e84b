"""The errors the ``sz`` package raises; ``SzError`` is the root of them all."""

from __future__ import annotations

__all__ = ["JobFailed", "NoHealthyHandler", "Overloaded", "SzError", "UnknownTask"]


class SzError(Exception):
    """Root of every error the scheduler raises."""


class UnknownTask(SzError, KeyError):
    """No handler is registered for the task named.

    Raised by ``schedule`` and ``run_now`` at call time, never at fire time.
    """

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class JobFailed(SzError):
    """A job ended without success; the handler's exception is the ``__cause__``.

    Attributes:
        outcome: The job's final outcome (``failure``, ``timeout``,
            ``no_healthy_handler``, ``abandoned``, ...).
    """

    def __init__(self, message: str, *, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class NoHealthyHandler(JobFailed):
    """No healthy handler served the job's task before its deadline."""


class Overloaded(SzError):
    """Too many jobs wait already: new work is refused until the queues drain.

    Raised by ``run_now`` and ``schedule`` while the jobs waiting for a handler
    or a governor are past ``governors.backpressure.high_water``, and until they
    fall to ``low_water``.

    Attributes:
        retry_after: Seconds after which trying again is likely to succeed.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
