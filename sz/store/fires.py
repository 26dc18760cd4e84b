"""What happens to each fire: run it, or record it as coalesced or missed.

ScheduleZero adds its schedules to APScheduler with ``CoalescePolicy.all``, so the
store sees every fire time that came due, and applies the schedule's own policy
here (kept in its metadata as ``coalesce``), where it can say what it skipped:
APScheduler's own ``latest`` and ``earliest`` drop fires without a trace. A fire
past its start deadline (the schedule's misfire grace) is ``missed``.

APScheduler computes the fires of one schedule one after another, then the next
schedule's: the fires of a schedule are complete when a fire of another schedule
arrives, or when the round ends (``release_schedules``); ``round_done`` is then
told, so that what a round skipped is logged in one line, not one per fire.

After a restart, a job of an ``earliest`` schedule taken up and run again is the
earliest of its round: the fires that came due while the process was down are
folded into it (``fold``), coalesced in the schedule's first round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from apscheduler import Job

__all__ = ["COALESCE_POLICIES", "FireSink", "Fires", "RoundDone", "Verdict"]

logger = logging.getLogger("sz.store")

#: ``due``: run it; ``coalesced``: folded into another fire of the same round;
#: ``missed``: past its start deadline.
Verdict = Literal["due", "coalesced", "missed"]

#: Called for every fire with its verdict. Must not raise, must not block.
FireSink = Callable[[Job, Verdict], None]

#: Called with a schedule's id once every fire of its round has had its verdict
#: (so that what a round skipped can be told in one line, not one per fire).
#: Must not raise, must not block.
RoundDone = Callable[[str], None]

COALESCE_POLICIES = ("latest", "earliest", "all")


class Fires:
    """Collects the fires of the schedule being processed, then passes verdicts."""

    __slots__ = ("_fires", "_folds", "_schedule", "round_done", "sink")

    def __init__(self, sink: FireSink, round_done: RoundDone | None = None) -> None:
        self.sink = sink
        self.round_done = round_done
        self._schedule: str | None = None
        self._fires: list[Job] = []
        #: Per schedule, fires at or before this time (before jitter) are
        #: ``coalesced`` in its next flush, whatever its policy; then it goes.
        self._folds: dict[str, datetime] = {}

    def fold(self, schedule_id: str, until: datetime) -> None:
        """Coalesce the schedule's fires up to ``until`` in its next round.

        For fires folded into a job taken up after a restart: those at or before
        ``until`` (their time before jitter) are ``coalesced``; fires after it in
        that round (taken ahead of their time) follow the schedule's policy.
        Rounds after the next one are not affected.
        """
        self._folds[schedule_id] = until

    def unfold(self, schedule_id: str) -> None:
        """Forget the schedule's fold, if any (it was replaced or removed)."""
        self._folds.pop(schedule_id, None)

    def add(self, job: Job) -> None:
        """A fire (or a job of no schedule, which is due at once)."""
        if job.schedule_id is None:
            self.flush()
            self._emit(job, self._deadline_verdict(job, datetime.now(UTC)))
            return
        if job.schedule_id != self._schedule:
            self.flush()
            self._schedule = job.schedule_id
        self._fires.append(job)

    def discard(self) -> None:
        """Forget the current schedule's fires without a verdict.

        For a pass that ends without its release (the scheduler stopping): on
        a shared store its fires are taken again once the lease runs out.
        """
        self._fires, self._schedule = [], None

    def flush(self) -> None:
        """The current schedule's fires are complete: pass a verdict on each."""
        fires, self._fires, self._schedule = self._fires, [], None
        if not fires:
            return
        self._judge(fires)
        if self.round_done is not None:
            schedule_id = fires[0].schedule_id or ""
            try:
                self.round_done(schedule_id)
            except Exception:
                # As for a fire (``_emit``): never into APScheduler's loop.
                logger.exception("ending the round of schedule %s failed", schedule_id)

    def _judge(self, fires: list[Job]) -> None:
        """Pass a verdict on each fire of one schedule's round."""
        if self._folds:
            fires = self._fold(fires)
            if not fires:
                return
        policy = fires[0].metadata.get("coalesce", "all")
        if len(fires) == 1 or policy == "all":
            kept, skipped = fires, []
        elif policy == "earliest":
            kept, skipped = fires[:1], fires[1:]
        else:
            kept, skipped = fires[-1:], fires[:-1]
        for job in skipped:
            self._emit(job, "coalesced")
        now = datetime.now(UTC)
        for job in kept:
            self._emit(job, self._deadline_verdict(job, now))

    def _fold(self, fires: list[Job]) -> list[Job]:
        """Coalesce the fires folded into a job taken up; return the others."""
        until = self._folds.pop(fires[0].schedule_id or "", None)
        if until is None:
            return fires
        left: list[Job] = []
        for job in fires:
            fire = job.scheduled_fire_time
            if fire is not None and fire - job.jitter <= until:
                self._emit(job, "coalesced")
            else:
                left.append(job)
        return left

    @staticmethod
    def _deadline_verdict(job: Job, now: datetime) -> Verdict:
        if job.start_deadline is not None and job.start_deadline < now:
            return "missed"
        return "due"

    def _emit(self, job: Job, verdict: Verdict) -> None:
        try:
            self.sink(job, verdict)
        except Exception:
            # APScheduler awaits add_job in its schedule loop without handling
            # errors: an exception here would stop every schedule.
            logger.exception("handing over job %s failed", job.id)
