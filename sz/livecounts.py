"""How many jobs are live and how many handlers are up, read without a message.

``sz.jobs()`` and ``sz.handlers()`` ask the dispatcher, and an ask waits
behind every message in its mailbox: under load, hundreds of jobs' submissions
and reports, several milliseconds. A dashboard polling its counts would wait
that long on each poll, and add a message to the queue it measures. The
counts are read here from the ``DispatcherState`` the scheduler owns, as the
scheduler already reads its waiting jobs for backpressure: in one synchronous
pass on the scheduler's event loop, so between two of the dispatcher's
messages, never in the middle of one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .dispatcher import DispatcherState

__all__ = ["UP", "LiveCounts", "live_counts"]

#: The handler health states in which a handler takes jobs.
UP = frozenset({"healthy", "degraded"})


@attrs.frozen(kw_only=True)
class LiveCounts:
    """The live jobs by state, and the handlers: ``ScheduleZero.live_counts()``.

    The counts ``sz.jobs()`` and ``sz.handlers()`` would give if the
    dispatcher answered at this moment. A job submitted but still in the
    dispatcher's mailbox is in none of them yet.

    Attributes:
        held: Jobs held until they are due (fires taken ahead of their time,
            retries waiting out their backoff).
        waiting: Jobs waiting for a handler or a governor.
        running: Jobs running on a handler.
        retrying: Of the held, waiting and running jobs, those on an attempt
            after their first.
        handlers: Every handler the dispatcher knows, local and remote.
        handlers_up: Of those, the ones healthy or degraded (taking jobs).
    """

    held: int = attrs.field(validator=attrs.validators.ge(0))
    waiting: int = attrs.field(validator=attrs.validators.ge(0))
    running: int = attrs.field(validator=attrs.validators.ge(0))
    retrying: int = attrs.field(validator=attrs.validators.ge(0))
    handlers: int = attrs.field(validator=attrs.validators.ge(0))
    handlers_up: int = attrs.field(validator=attrs.validators.ge(0))


def live_counts(state: DispatcherState, now: float) -> LiveCounts:
    """Count ``state``'s live jobs and up handlers at ``now`` (the system's clock).

    Not a checkpoint; changes nothing (a handler's trial past its deadline is
    left for the dispatcher to judge: its state reads ``unhealthy`` either way).
    """
    held = len(state.held)
    retrying = sum(submit.attempt > 1 for _, _, submit in state.held)
    waiting = 0
    for queue in state.waiting.values():
        waiting += len(queue)
        retrying += sum(pending.attempt > 1 for pending in queue)
    running = 0
    for entry in state.in_flight.values():
        if not entry.cancelled:  # its row is written: ended, as sz.jobs() says
            running += 1
            retrying += entry.attempt > 1
    return LiveCounts(
        held=held,
        waiting=waiting,
        running=running,
        retrying=retrying,
        handlers=len(state.handlers),
        handlers_up=sum(
            handler.tracker.peek_state(now) in UP for handler in state.handlers.values()
        ),
    )
