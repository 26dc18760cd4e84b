"""What becomes of the jobs of a schedule taken up after a restart.

A job accepted and never finished (the process was killed, or stopped while the
job was in hand) is taken up at the next start. One taken up hours late must
still honour its schedule's ``misfire_grace_time``, and the jobs of one
schedule taken up together, with the fires that came due while the process was
down, are one round for its ``coalesce`` policy: a ``latest`` schedule runs one
job, not each taken-up job and then its downtime fire too. One pure function,
``take_up_verdicts``, passes the verdicts; nothing here blocks or reads a clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Coalesce", "SchedulePolicy", "TakeUpVerdict", "take_up_verdicts"]

#: A schedule's ``coalesce`` policy.
Coalesce = Literal["latest", "earliest", "all"]

#: ``kept``: taken up as before (retried per the retry rule); ``missed``: past
#: the schedule's misfire grace; ``coalesced``: folded into another job or fire
#: of the same round.
TakeUpVerdict = Literal["kept", "missed", "coalesced"]


@attrs.frozen(kw_only=True)
class SchedulePolicy:
    """What take-up needs to know of a schedule, read as the process starts.

    Attributes:
        grace: Its ``misfire_grace_time``; None (no limit) by default.
        coalesce: Its ``coalesce`` policy: ``latest``, ``earliest`` or ``all``
            (the default).
        fires_due: True if a fire that came due while the process was down will
            be taken as the schedule loop starts (the schedule is not paused,
            and a fire not taken before the restart is at or before now);
            False by default.
    """

    grace: timedelta | None = None
    coalesce: Coalesce = "all"
    fires_due: bool = False


def take_up_verdicts(
    scheduled: Sequence[datetime], policy: SchedulePolicy, now: datetime
) -> list[TakeUpVerdict]:
    """The verdict on each taken-up job of one schedule, in the order given.

    A job whose fire time plus the grace is before ``now`` is ``missed``. Among
    the others: ``all`` keeps each; ``latest`` keeps the latest, unless a fire
    that came due while down will run (``fires_due``): it is later than every
    taken-up job, so then each is ``coalesced`` into it; ``earliest`` keeps the
    earliest (the fires that came due while down are then folded into it by the
    caller) and coalesces the others. Ties keep the first given.

    Args:
        scheduled: The fire time of each taken-up job of the schedule.
        policy: The schedule's grace, coalesce policy and downtime fires.
        now: The time of the restart.

    Returns:
        One verdict per entry of ``scheduled``, in its order.
    """
    verdicts: list[TakeUpVerdict] = ["missed"] * len(scheduled)
    grace = policy.grace
    alive = [
        index
        for index, when in enumerate(scheduled)
        if grace is None or when + grace >= now
    ]
    if not alive:
        return verdicts
    if policy.coalesce == "all":
        kept = set(alive)
    elif policy.coalesce == "earliest":
        kept = {min(alive, key=lambda index: scheduled[index])}
    elif policy.fires_due:
        kept = set()
    else:
        kept = {max(alive, key=lambda index: scheduled[index])}
    for index in alive:
        verdicts[index] = "kept" if index in kept else "coalesced"
    return verdicts
