"""What a run records while it runs: its jobs, schedules, faults and samples.

One ``RunRecord`` per run, written by its steps, its handlers and its sampler
(all on the run's event loop) and read at the end by the checks. It never
asks the scheduler anything: it keeps what the run itself did.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ..handles import call_when_done
from .result import MetricSample, TimelineEvent
from .stalls import cpu_wait_within

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..handles import JobHandle

__all__ = ["FaultMark", "RunRecord", "ScheduleRecord"]


@attrs.define
class ScheduleRecord:
    """A schedule the run created, and the windows in which it was due to fire.

    Attributes:
        id: The schedule's id.
        task: Its task.
        trigger: The trigger as ``ScheduleZero.schedule`` took it (a name or a
            crontab line).
        fields: The trigger's fields.
        grace: Its ``misfire_grace_time``, or None.
        created_at: When ``schedule`` returned.
        deleted_at: When ``unschedule`` was called, or None.
        paused: ``(from, until)`` windows in which it was paused; ``until`` is
            None while it still is.
    """

    id: str
    task: str
    trigger: str
    fields: dict[str, Any]
    grace: float | None
    created_at: datetime
    deleted_at: datetime | None = None
    paused: list[tuple[datetime, datetime | None]] = attrs.Factory(list)

    @property
    def is_paused(self) -> bool:
        """Whether it is paused now."""
        return bool(self.paused) and self.paused[-1][1] is None


@attrs.frozen(kw_only=True)
class FaultMark:
    """A fault the run injected, for ``recovery_time``.

    Attributes:
        offset: Seconds since the run began.
        kind: The fault's kind.
        name: The step's name.
    """

    offset: float
    kind: str
    name: str


class RunRecord:
    """Everything one run did, as it did it.

    Args:
        started_at: When the run began (UTC).
        on_event: Told of each moment as it is added to the timeline (on the
            event loop, quickly), or None (the default).
    """

    def __init__(
        self,
        started_at: datetime,
        on_event: Callable[[TimelineEvent], None] | None = None,
    ) -> None:
        self.started_at = started_at
        self.on_event = on_event
        self._t0 = anyio.current_time()
        self.timeline: list[TimelineEvent] = []
        #: Every job the run's actions had accepted, by id, in order; an id
        #: twice where a caller's job id was submitted twice (one job, two
        #: handles): ``submitted_ids`` is each once. A list of ids alone: it
        #: holds every job of a run (the soak's memory trend measures it too),
        #: and an append is the least a job can cost the run at full pace.
        self.submitted: list[str] = []
        #: Submitted jobs not yet seen ended (``jobs_pending``): counted down
        #: as each ends, since looking at every open job's handle at each
        #: sample cost a run at full pace a tenth of its throughput.
        self._open = 0
        #: ``_ended`` bound once: a bound method made per job is an object
        #: more per job for the garbage collector to count.
        self._on_end = self._ended
        #: Jobs refused before they were accepted (``Overloaded``).
        self.refused = 0
        #: Successful calls of the run's own handler functions, by job id.
        self.executions: Counter[str] = Counter()
        #: Calls that raised, by job id.
        self.failed_calls: Counter[str] = Counter()
        #: Job ids the checks must treat as submitted though no action
        #: submitted them (tests feed bookkeeping here; see ``claim_submitted``).
        self.schedules: dict[str, ScheduleRecord] = {}
        self.created = 0
        self.creating = 0.0
        self.deleted = 0
        self.deleting = 0.0
        self.faults: list[FaultMark] = []
        #: Supervisors that gave up (``Escalated`` events): (path, child, error).
        self.escalations: list[tuple[str, str, str]] = []
        self.samples: dict[str, list[tuple[float, float]]] = {}
        #: The event loop thread's total wait for a CPU, read at each sample:
        #: ``(earliest, latest, seconds)``, read between those offsets (see
        #: ``stalls.cpu_wait_within``). Empty where the system does not count it.
        self.cpu_waits: list[tuple[float, float, float]] = []
        self.current_step = ""
        #: The scenario's ``warmup`` (seconds, or a top-level step's name), or
        #: None: no warm-up. Its end is the timeline's ``warmup_end`` event.
        self.warmup: float | str | None = None
        #: Every steady-state evaluation: (offset, condition, held).
        self.steady_state_checks: list[tuple[float, str, bool]] = []
        #: When the last fault ended (its chaos step returned), or None.
        self.last_fault_end: float | None = None

    def offset(self) -> float:
        """Seconds since the run began (on the event loop's clock)."""
        return anyio.current_time() - self._t0

    def at(self, moment: datetime) -> float:
        """The offset of the wall-clock time ``moment`` (``wall``'s inverse)."""
        return (moment - self.started_at).total_seconds()

    def machine_stall(self, since: datetime, until: datetime) -> float:
        """Seconds the machine surely kept the loop from a CPU in this span."""
        return cpu_wait_within(self.cpu_waits, self.at(since), self.at(until))

    def wall(self, offset: float) -> datetime:
        """The wall-clock time ``offset`` seconds into the run."""
        return self.started_at + timedelta(seconds=offset)

    def event(self, event: str, name: str = "", **detail: Any) -> TimelineEvent:
        """Add a moment to the timeline, now; return it."""
        offset = self.offset()
        entry = TimelineEvent(
            at=self.wall(offset),
            offset=offset,
            event=event,
            name=name,
            detail=detail,
        )
        self.timeline.append(entry)
        if self.on_event is not None:
            self.on_event(entry)
        return entry

    def warmup_end(self) -> float | None:
        """Where trends start: the offset the warm-up ended at.

        None without a warm-up (trends read every sample); infinity while it
        goes on (no sample counts yet).
        """
        if self.warmup is None:
            return None
        for entry in self.timeline:
            if entry.event == "warmup_end":
                return entry.offset
        return math.inf

    def sample(self, metric: str, value: float, offset: float | None = None) -> None:
        """Keep one sample of a metric, now unless ``offset`` says when."""
        at = self.offset() if offset is None else offset
        self.samples.setdefault(metric, []).append((at, float(value)))

    def submitted_job(self, handle: JobHandle) -> None:
        """A job the run's action had accepted."""
        self.submitted.append(handle.id)
        self._open += 1
        # A handle that never sees its job end stays open, as it did when
        # each sample looked at the handle itself.
        call_when_done(handle, self._on_end)

    def _ended(self) -> None:
        self._open -= 1

    def claim_submitted(self, job_id: str) -> None:
        """Count ``job_id`` as submitted by the run, though no action submitted it.

        For tests of ``no_lost_jobs``: a job the scheduler never saw then has
        no final row, as a job dropped without a trace would not.
        """
        self.submitted.append(job_id)

    def submitted_ids(self) -> list[str]:
        """Every job id the run submitted (or claimed), each once, in order."""
        return list(dict.fromkeys(self.submitted))

    def pending_submitted(self) -> int:
        """Submitted jobs not yet seen ended. Not a checkpoint; O(1)."""
        return self._open

    def all_samples(self) -> tuple[MetricSample, ...]:
        """Every sample, for the result."""
        return tuple(
            MetricSample(metric=metric, offset=offset, value=value)
            for metric, series in self.samples.items()
            for offset, value in series
        )
