"""The retry rule: whether a job that ended without success gets another attempt.

One pure function, ``next_attempt``, for both places an attempt ends without
success: the dispatcher (a handler failed, timed out, or went down mid-job) and
the scheduler's take-up after a restart (the process stopped mid-job). It also
names the reason each history row carries. Nothing here blocks or reads a clock.
"""

from __future__ import annotations

from typing import cast

import attrs

from .jobs import Reason
from .validators import int_at_least

__all__ = ["LOST_JOB_RETRIES", "Retry", "next_attempt", "retry_reason"]

#: Further attempts for a job lost because its handler went down mid-job, on top of
#: the handler's own ``retries``; the next attempt starts at once, on whichever
#: healthy handler is picked for it (possibly the restarted one).
LOST_JOB_RETRIES = 3


@attrs.frozen(kw_only=True)
class Retry:
    """What follows an attempt that ended without success.

    Attributes:
        attempt: The number of the next attempt (the ended one's plus 1), or
            None: the ended attempt is the job's last (its row is final).
        reason: The reason on the ended attempt's row, which the next attempt
            carries too: ``retry_after_<why>`` when there is one; else
            ``interrupted_by_restart`` for a job the process stopped mid-attempt,
            None otherwise.
    """

    attempt: int | None = attrs.field(
        validator=attrs.validators.optional(int_at_least(2))
    )
    reason: Reason | None


def next_attempt(
    attempt: int, retries: int | None, *, lost: bool = False, why: str | None = None
) -> Retry:
    """Whether attempt number ``attempt`` of a job is followed by another, and why.

    A job whose handler reported a failure or a timeout (``lost`` False, the
    default) is tried again while ``attempt`` is at most the handler's
    ``retries``: reason ``retry_after_failure``. A job lost with its handler
    (``lost`` True) gets ``LOST_JOB_RETRIES`` attempts more than that: reason
    ``retry_after_<why>``. When it ends, a job the process stopped mid-attempt
    (``why`` ``restart``) says ``interrupted_by_restart``; others say nothing.

    Args:
        attempt: The number of the attempt that ended, from 1.
        retries: The retries its handler allows; None when no handler may
            serve the task at all (then there is no next attempt).
        lost: True if the handler went down mid-job rather than report; False
            (the default) for a failure or a timeout.
        why: How a lost job was lost: ``crash`` (also when None, the default),
            ``worker_lost``, ``worker_left``, ``message_lost``, or ``restart``.
            Unused unless ``lost``.

    Returns:
        The next attempt's number (or None) and the reason for the rows.
    """
    if not lost:
        if retries is not None and attempt <= retries:
            return Retry(attempt=attempt + 1, reason="retry_after_failure")
        return Retry(attempt=None, reason=None)
    if retries is not None and attempt <= retries + LOST_JOB_RETRIES:
        return Retry(attempt=attempt + 1, reason=retry_reason(why))
    return Retry(
        attempt=None, reason="interrupted_by_restart" if why == "restart" else None
    )


def retry_reason(why: str | None) -> Reason:
    """The reason of the retry of a job lost with its handler, for how it was lost.

    A handler's own loss has no cause (``crash``); the broker's are
    ``worker_lost``, ``worker_left`` and ``message_lost``; the take-up's
    ``restart``. The reason is built, not written out, so
    tests/sz/test_reasons.py checks that each cause has its ``Reason``.
    """
    return cast("Reason", f"retry_after_{why or 'crash'}")
