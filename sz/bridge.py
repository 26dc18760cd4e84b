"""The APScheduler bridge: schedules live in APScheduler 4, fires leave it at once.

It owns all that ScheduleZero asks of APScheduler: triggers built from names,
crontabs or objects; schedules added, paused, resumed and removed (a fire taken
ahead of its time is cancelled when its schedule is withdrawn); the hold-back of
the schedules of a task no handler serves; schedules shown as ``Schedule``, so
APScheduler's own types stay inside; and the sink of ScheduleZero's data store,
which turns each due fire into an accepted job for the dispatcher, or records
why it was skipped. ``ScheduleZero`` (``sz.scheduler``) is the facade in front.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import math
import pickle
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio
import attrs
from apscheduler import (
    AsyncScheduler,
    CoalescePolicy,
    ConflictPolicy,
    ScheduleLookupError,
    SchedulerRole,
)
from apscheduler.triggers.calendarinterval import CalendarIntervalTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from actors import ActorSystem, lowlevel

from .dispatcher import Submit
from .errors import StoreError, SzError
from .jobs import Attempt, Job, Reason
from .storable import check_storable, check_value
from .store import COALESCE_POLICIES, PostgresDatabase, ScheduleStore
from .store.shared import NodeHistory, SharedScheduleStore
from .takeup import SchedulePolicy

if TYPE_CHECKING:
    from contextlib import AsyncExitStack
    from types import TracebackType

    import apscheduler
    from apscheduler.abc import Trigger

    from .store import Database, Verdict
    from .store.history import HistoryBackend
    from .takeup import Coalesce

#: Takes up the last run's unfinished jobs given each schedule's policy (by id)
#: and the time of the restart; returns the schedules whose downtime fires are
#: folded into a job it took up.
TakeUp = Callable[[Mapping[str, SchedulePolicy], datetime], Iterable[str]]

__all__ = [
    "HELD_BACK",
    "HELD_SINCE",
    "MAX_MISFIRE_GRACE",
    "MAX_SKIPPED_ROWS",
    "Bridge",
    "Schedule",
    "ScheduleNotFound",
    "TakeUp",
    "check_misfire_grace",
    "check_zone",
    "make_trigger",
    "show_schedule",
    "split_arguments",
    "upcoming_fires",
]

# The facade's logger, as before the bridge had a module of its own: logging
# set up for "sz.scheduler" still sees the hold-back's messages.
logger = logging.getLogger("sz.scheduler")

#: The metadata key marking a schedule paused because no handler of its task
#: was in service (``Schedule.paused_reason == "no_healthy_handler"``).
HELD_BACK = "held_back"

#: The metadata key saying when a schedule's hold-back began (ISO 8601, UTC),
#: for the line that sums up the fires it skipped.
HELD_SINCE = "held_since"

#: The most ``skipped`` rows one release of a held-back schedule writes (its
#: earliest fires): a minutely schedule held back for a year would otherwise
#: write half a million at once. Its log line counts the fires left out.
MAX_SKIPPED_ROWS = 10_000

#: The namespace of the job ids of skipped fires: the same schedule and fire
#: time always make the same id.
_SKIPPED_IDS = uuid.UUID("6d0b3c51-52a7-4c1e-9b53-7a2f0e8c4d19")

#: Seconds before its fire time that a fire is taken from its schedule, accepted
#: and committed; the dispatcher holds it until it is due. A burst of fires due
#: at one instant (cron on the minute) is then mostly prepared before it, and a
#: fire's commit is off its path. Pausing or removing the schedule before the
#: fire is due cancels it (``cancelled``).
LOOKAHEAD = 0.25

#: How long the schedule loop lets due fires gather before it takes them in one
#: pass (each is still taken ``LOOKAHEAD - GATHER`` ahead of its time).
GATHER = 0.02

#: How long a paused or removed schedule's held fires are watched for.
_WITHDRAWN_FOR = timedelta(seconds=1)

#: A fire due further ahead than this lets its acceptance wait for company (the
#: store's thread holds such writes up to 20 ms).
LAZY_COMMIT_MARGIN = 0.1


#: The longest ``misfire_grace_time`` a schedule may have, in seconds: a year
#: (366 days). A fire that late is as good as never; None means no limit.
MAX_MISFIRE_GRACE = 366 * 86_400.0


class ScheduleNotFound(SzError, KeyError):
    """No schedule has that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@attrs.frozen(kw_only=True)
class Schedule:
    """A schedule as ScheduleZero shows it (APScheduler's own type stays inside).

    Attributes:
        id: The schedule's id.
        task: The task it runs.
        trigger: A description of when it fires.
        args: Positional arguments for each job.
        kwargs: Keyword arguments for each job.
        paused: True while paused.
        next_fire_time: When it fires next (UTC), or None.
        affinity: The affinity key of its jobs, or None.
        coalesce: Fires that came due together (after a pause of the process):
            ``latest`` runs the last, ``earliest`` the first, ``all`` each; the
            others are recorded as ``coalesced``.
        paused_reason: Why it is paused: ``requested`` (``pause``), or
            ``no_healthy_handler`` (no handler of its task takes jobs: it resumes
            by itself when one does); None while it runs.
    """

    id: str
    task: str
    trigger: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    paused: bool
    next_fire_time: datetime | None
    affinity: str | None = None
    coalesce: str = "latest"
    paused_reason: str | None = None


@attrs.frozen(kw_only=True)
class _ScheduleRequest:
    """A schedule to add, kept until APScheduler runs if it does not yet."""

    task_id: str
    trigger: Any  # an APScheduler Trigger
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    id: str
    paused: bool
    misfire_grace_time: float | None
    affinity: str | None
    coalesce: str
    #: What the caller asked for, as a digest (None: a trigger object, which
    #: cannot be compared): the same again keeps the stored schedule.
    definition: str | None = None


def _definition(
    task_id: str, trigger: str, fields: Mapping[str, Any], *rest: Any
) -> str | None:
    """A digest of a schedule as asked for, to tell a re-added one unchanged.

    Of what the caller gave (trigger name and fields, arguments, options), not
    of the trigger built from it: an interval trigger built again starts now.
    """
    try:
        given = pickle.dumps((task_id, trigger, sorted(fields.items()), *rest))
    except Exception:  # an odd field value: compared by nothing, replaced
        return None
    return hashlib.sha256(given).hexdigest()


_TRIGGERS: dict[str, Callable[..., Trigger]] = {
    "cron": CronTrigger,
    "interval": IntervalTrigger,
    "date": DateTrigger,
    "calendarinterval": CalendarIntervalTrigger,
}


def make_trigger(trigger: str | Trigger, fields: Mapping[str, Any]) -> Trigger:
    """Build an APScheduler trigger from a name and fields, a crontab, or as given.

    Values out of range are refused here, where a call or a config file names
    them, never when the trigger first fires: an unknown time zone, an interval
    of zero or less (also one that rounds to zero microseconds), and one so
    long that its second fire would fall past the year 9999 (or that does not
    fit a ``timedelta`` at all).

    Raises:
        SzError: A bad trigger; the message names what is wrong with it.
    """
    if not isinstance(trigger, str):
        if fields:
            raise SzError(
                f"trigger fields {sorted(fields)} given with a trigger object"
            )
        _check_second_fire(repr(trigger), trigger)
        return trigger
    zone = fields.get("timezone")
    if isinstance(zone, str):
        check_zone(zone)
    if " " in trigger.strip():
        extra = sorted(set(fields) - {"timezone", "start_time", "end_time"})
        if extra:
            raise SzError(f"crontab {trigger!r} takes no trigger fields {extra}")
        try:
            return CronTrigger.from_crontab(trigger, **fields)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SzError(f"bad crontab {trigger!r}: {exc}") from None
    kind = _TRIGGERS.get(trigger)
    if kind is None:
        raise SzError(
            f"unknown trigger {trigger!r}: expected one of {', '.join(_TRIGGERS)}, "
            f"a crontab string, or a trigger object"
        )
    described = f"{trigger} trigger {dict(fields)!r}"
    built: Trigger
    try:
        if kind is CalendarIntervalTrigger and "start_date" not in fields:
            built = _calendar_from_now(fields)
        else:
            built = kind(**fields)
    except (TypeError, ValueError) as exc:
        raise SzError(f"bad {described}: {exc}") from None
    except OverflowError:
        raise SzError(f"bad {described}: {_TOO_LONG}") from None
    _check_second_fire(described, built)
    return built


_TOO_LONG = "the interval is too long: its second fire would fall past the year 9999"


def check_zone(name: str) -> None:
    """Check that ``name`` is a time zone a trigger can use (``local`` is one).

    Reads the zone's file the first time (``zoneinfo`` keeps it after that).

    Raises:
        SzError: No time zone has that name.
    """
    if name == "local":
        return
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SzError(
            f"unknown time zone {name!r}: expected an IANA name such as "
            f"'Europe/Paris' or 'UTC', or 'local'"
        ) from None


def _check_second_fire(described: str, trigger: Trigger) -> None:
    """Refuse an interval whose second fire cannot be computed.

    APScheduler would raise ``OverflowError`` from inside its schedule loop,
    long after the schedule was accepted.
    """
    try:
        if isinstance(trigger, IntervalTrigger):
            interval = timedelta(
                weeks=trigger.weeks,
                days=trigger.days,
                hours=trigger.hours,
                minutes=trigger.minutes,
                seconds=trigger.seconds,
                microseconds=trigger.microseconds,
            )
            _ = trigger.start_time + interval  # only whether it overflows
        elif isinstance(trigger, CalendarIntervalTrigger):
            probe = copy.deepcopy(trigger)
            probe.next()
            probe.next()
    except OverflowError:
        raise SzError(f"bad {described}: {_TOO_LONG}") from None


def _calendar_from_now(fields: Mapping[str, Any]) -> Trigger:
    """A calendar interval whose first fire is in the future, as cron's is.

    APScheduler starts it today, so a time of day already past would fire at once;
    start it on the day of its first fire still to come instead.
    """
    now = datetime.now(UTC)
    probe = CalendarIntervalTrigger(**fields)
    for _ in range(10_000):
        fire = probe.next()
        if fire is None or fire > now:
            break
    if fire is None:
        return CalendarIntervalTrigger(**fields)
    return CalendarIntervalTrigger(**fields, start_date=fire.date())


def check_misfire_grace(value: object) -> float | None:
    """``misfire_grace_time`` in seconds, checked: from 0 to ``MAX_MISFIRE_GRACE``.

    ``value`` is seconds, a ``timedelta``, or None (no limit).

    Raises:
        SzError: Not a number, negative, not finite, or over a year.
    """
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise SzError(
            f"misfire_grace_time must be a finite number of seconds >= 0 "
            f"(or None: no limit), got {value!r}"
        )
    if seconds > MAX_MISFIRE_GRACE:
        raise SzError(
            f"misfire_grace_time must be at most {MAX_MISFIRE_GRACE:,.0f} s "
            f"(a year; None for no limit), got {value!r}"
        )
    return seconds


def split_arguments(
    args: Sequence[Any] | Mapping[str, Any] | None, kwargs: Mapping[str, Any] | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args`` may be positional (a sequence) or keywords (a mapping)."""
    keywords = dict(kwargs or {})
    if isinstance(args, Mapping):
        return (), {**args, **keywords}
    if isinstance(args, str | bytes):
        raise SzError(f"args must be a sequence or a mapping, got {args!r}")
    return tuple(args or ()), keywords


@attrs.define
class _Tally:
    """What one round of a schedule skipped so far: summed up in one log line."""

    task: str
    policy: str
    coalesced: int = 0
    missed: int = 0
    #: The earliest and latest fire missed.
    first_missed: datetime | None = None
    last_missed: datetime | None = None
    #: The fire the round kept (run or missed), into which the others coalesced.
    kept: datetime | None = None

    def add(self, verdict: Verdict, fire: datetime) -> None:
        if verdict == "coalesced":
            self.coalesced += 1
            return
        if verdict == "missed":
            self.missed += 1
            if self.first_missed is None or fire < self.first_missed:
                self.first_missed = fire
            if self.last_missed is None or fire > self.last_missed:
                self.last_missed = fire
        self.kept = fire

    def log(self, schedule_id: str) -> None:
        parts: list[str] = []
        if self.coalesced:
            into = f" into the fire at {self.kept.isoformat()}" if self.kept else ""
            parts.append(
                f"{self.coalesced:,} fires coalesced{into} (coalesce={self.policy})"
            )
        if self.missed:
            assert self.first_missed is not None
            assert self.last_missed is not None
            parts.append(
                f"{self.missed:,} fires missed, past their misfire_grace_time "
                f"(from {self.first_missed.isoformat()} "
                f"to {self.last_missed.isoformat()})"
            )
        logger.info(
            "schedule %s: %s",
            schedule_id,
            "; ".join(parts),
            extra={
                "schedule_id": schedule_id,
                "task": self.task,
                "coalesced": self.coalesced,
                "missed": self.missed,
            },
        )


class Bridge:
    """APScheduler behind ``ScheduleZero``: its schedules, and the fires they make.

    Made with the scheduler: schedules added before it runs wait here. Each run
    ``attach``es it to the run's actor system and history backend, ``start``s
    APScheduler on ScheduleZero's data store, and ``detach``es it once stopped.

    Args:
        default_wait: How long a job of a task may wait for a handler, when its
            fire has no start deadline.
        submit: Gives an accepted job to the dispatcher; never waits.
        durable: Whether schedules are kept in a file (pickled, trigger and
            all), False by default: a trigger object must then pickle too.
    """

    def __init__(
        self,
        *,
        default_wait: Callable[[str], float],
        submit: Callable[[Submit], None],
        durable: bool = False,
        check_arguments: Callable[[str, tuple[Any, ...], dict[str, Any]], None] = (
            lambda _task, _args, _kwargs: None
        ),
    ) -> None:
        self._default_wait = default_wait
        self._submit = submit
        self._durable = durable
        #: Raises SzError for arguments the task's functions cannot take.
        self._check_arguments = check_arguments
        #: The tasks APScheduler knows (remote ones are added as scheduled).
        self._known_tasks: set[str] = set()
        self._early: list[_ScheduleRequest] = []
        #: Schedules paused or removed in the last second: (when, reason).
        self._withdrawn: dict[str, tuple[datetime, Reason]] = {}
        #: Time zones (by name; None for the local one) already read from disk.
        self._zones: set[str | None] = set()
        self._system: ActorSystem | None = None
        #: Where the sink records fires; None when not running.
        self._backend: HistoryBackend | None = None
        self._scheduler: AsyncScheduler | None = None
        self._store: ScheduleStore | None = None
        self._holding = anyio.Lock()
        #: Per schedule, what its round being judged skipped so far.
        self._tallies: dict[str, _Tally] = {}

    # ---------------------------------------------------------------- lifecycle

    def attach(self, system: ActorSystem, backend: HistoryBackend) -> None:
        """Run in ``system`` (the hold-back's tasks) and record fires in ``backend``."""
        self._system = system
        self._backend = backend

    async def start(
        self,
        stack: AsyncExitStack,
        *,
        file: Database | None,
        tasks: set[str],
        take_up: TakeUp | None = None,
    ) -> None:
        """Start APScheduler on ScheduleZero's data store, then apply early schedules.

        APScheduler is entered on ``stack``, so it stops when the stack closes,
        before what was entered earlier. Schedules the last run held back are
        resumed (their handlers start afresh in this run).

        Args:
            stack: The scheduler's run.
            file: The store's database, None for memory.
            tasks: The tasks the handlers of this process serve.
            take_up: Called once the schedules are read and before the schedule
                loop starts (None, the default: not called), with each
                schedule's ``SchedulePolicy`` by id and the time of the
                restart; it takes up the jobs the last run left unfinished and
                returns the ids of the schedules whose fires that came due while
                the process was down are folded into a job it took up: those
                fires, up to that time, are recorded as ``coalesced``.
        """
        store: ScheduleStore
        if isinstance(self._backend, NodeHistory):
            # A node of several: schedules live in the shared database.
            assert isinstance(file, PostgresDatabase)
            store = SharedScheduleStore(
                file=file,
                history=self._backend,
                sink=self._on_fire,
                round_done=self._round_done,
                lookahead=LOOKAHEAD,
                gather=GATHER,
            )
        else:
            store = ScheduleStore(
                file=file,
                sink=self._on_fire,
                round_done=self._round_done,
                release_events=False,
                lookahead=LOOKAHEAD,
                gather=GATHER,
                wake_only=True,
            )
        # Only the scheduling role: ScheduleZero's jobs never enter APScheduler's
        # job layer, so its job loop would only poll an empty queue.
        scheduler = AsyncScheduler(data_store=store, role=SchedulerRole.scheduler)
        await scheduler.__aenter__()
        stack.push_async_exit(partial(_leave_apscheduler, scheduler, file))
        self._scheduler = scheduler
        self._store = store
        self._known_tasks = set()
        for task in tasks:
            await scheduler.configure_task(task, func=_handed_over)
            self._known_tasks.add(task)
        if take_up is not None:
            # Before the loop starts: the jobs taken up and the fires that came
            # due while down are judged as one round.
            now = datetime.now(UTC)
            policies = {
                schedule.id: SchedulePolicy(
                    grace=schedule.misfire_grace_time,
                    coalesce=_coalesce_of(schedule),
                    fires_due=store.fire_due(schedule.id, now),
                )
                for schedule in await scheduler.get_schedules()
            }
            for schedule_id in take_up(policies, now):
                store.fold(schedule_id, now)
        await scheduler.start_in_background()
        # Held back by the last run: its handlers start afresh in this one.
        for schedule in await scheduler.get_schedules():
            if schedule.metadata.get(HELD_BACK):
                await self._release_held(schedule.id)
        early, self._early = self._early, []
        for request in early:
            await self._add_schedule(request)

    async def take_over(self, take_up: TakeUp) -> None:
        """Take up jobs of another node taken over, as after a restart.

        ``take_up`` gets each schedule's policy; no fire of this node came due
        while the other was down (its schedules fire wherever they are
        claimed), so none is folded into a job taken up.
        """
        scheduler = self._running_scheduler()
        policies = {
            schedule.id: SchedulePolicy(
                grace=schedule.misfire_grace_time,
                coalesce=_coalesce_of(schedule),
                fires_due=False,
            )
            for schedule in await scheduler.get_schedules()
        }
        take_up(policies, datetime.now(UTC))

    def detach(self) -> None:
        """The run has ended: forget its system, backend, APScheduler and store."""
        self._system = self._scheduler = None
        self._backend = self._store = None

    # ----------------------------------------------------------------- schedules

    async def schedule(
        self,
        task_id: str,
        trigger: str | Trigger,
        *,
        args: Sequence[Any] | Mapping[str, Any] | None,
        kwargs: Mapping[str, Any] | None,
        id: str | None,
        paused: bool,
        misfire_grace_time: float | None,
        affinity: str | None,
        coalesce: str,
        trigger_fields: Mapping[str, Any],
    ) -> str:
        """Add (or replace) a schedule, or keep it until APScheduler runs; its id.

        As ``ScheduleZero.schedule``, whose checks of the task and the load come
        first.

        Raises:
            SzError: A bad trigger, coalesce policy or misfire grace time, or
                arguments the task's local handlers cannot take or the store
                cannot keep (the message names which).
        """
        if coalesce not in COALESCE_POLICIES:
            raise SzError(
                f"coalesce must be one of {', '.join(COALESCE_POLICIES)}, "
                f"got {coalesce!r}"
            )
        grace = check_misfire_grace(misfire_grace_time)
        built = await self._build_trigger(trigger, trigger_fields)
        positional, keywords = split_arguments(args, kwargs)
        self._check_arguments(task_id, positional, keywords)
        # Before anything is added: the file store pickles the whole schedule.
        check_storable(positional, keywords)
        if self._durable and not isinstance(trigger, str):
            # A trigger of one's own may be memory-only; the file pickles it.
            check_value("the trigger", built)
        request = _ScheduleRequest(
            task_id=task_id,
            trigger=built,
            args=positional,
            kwargs=keywords,
            id=id or uuid.uuid4().hex,
            paused=paused,
            misfire_grace_time=grace,
            affinity=affinity,
            coalesce=coalesce,
            definition=(
                _definition(
                    task_id,
                    trigger,
                    trigger_fields,
                    positional,
                    keywords,
                    paused,
                    grace,
                    affinity,
                    coalesce,
                )
                if isinstance(trigger, str) and id is not None
                else None
            ),
        )
        if self._scheduler is None:
            self._early.append(request)
            return request.id
        return await self._add_schedule(request)

    async def _build_trigger(
        self, trigger: str | Trigger, fields: Mapping[str, Any]
    ) -> Trigger:
        """Build the trigger; in a thread the first time for each time zone.

        A trigger reads its time zone's file from disk the first time that zone
        is used (the event loop must not wait on the disk); after that the zone is
        cached and a trigger builds in microseconds, on the loop.
        """
        zone = fields.get("timezone")
        named = isinstance(zone, str | None)  # else a time zone object: in memory
        if not isinstance(trigger, str) or not named or zone in self._zones:
            return make_trigger(trigger, fields)
        built = await anyio.to_thread.run_sync(make_trigger, trigger, fields)
        self._zones.add(zone)
        return built

    async def _add_schedule(self, request: _ScheduleRequest) -> str:
        assert self._scheduler is not None
        if request.definition is not None:
            try:
                stored = await self._scheduler.get_schedule(request.id)
            except ScheduleLookupError:
                pass
            else:
                if stored.metadata.get("definition") == request.definition:
                    # Unchanged (a restart adding its config's schedules again):
                    # keep its fire times, and a pause made since.
                    return request.id
        self._withdrawn.pop(request.id, None)
        if request.task_id not in self._known_tasks:
            # A task only remote workers serve: APScheduler learns of it here.
            await self._scheduler.configure_task(request.task_id, func=_handed_over)
            self._known_tasks.add(request.task_id)
        # APScheduler hands every due fire to the store (``all``), which applies
        # the schedule's own policy and records what it skips.
        return await self._scheduler.add_schedule(
            request.task_id,
            request.trigger,
            id=request.id,
            args=request.args,
            kwargs=request.kwargs,
            paused=request.paused,
            misfire_grace_time=request.misfire_grace_time,
            coalesce=CoalescePolicy.all,
            metadata={
                "coalesce": request.coalesce,
                "affinity": request.affinity,
                "definition": request.definition,
            },
            conflict_policy=ConflictPolicy.replace,
        )

    async def stop_fires(self) -> None:
        """Take no fire from now on: APScheduler's schedule loop ends.

        Its store stays open (schedules can still be read and changed) until the
        run's stack closes.
        """
        if self._scheduler is not None:
            await self._scheduler.stop()

    def _running_scheduler(self) -> AsyncScheduler:
        if self._scheduler is None:
            raise SzError("the scheduler is not running")
        return self._scheduler

    async def unschedule(self, id: str) -> None:
        """Remove a schedule (as ``ScheduleZero.unschedule``)."""
        await self._running_scheduler().remove_schedule(id)
        self._withdraw(id, "schedule_removed")

    def _withdraw(self, id: str, reason: Reason) -> None:
        """Mark a schedule's fires taken ahead of time as not to run."""
        now = datetime.now(UTC)
        # Only fires taken before now and due within LOOKAHEAD can be held: an
        # entry older than a second has nothing left to stop. Entries are in
        # the order they were made (re-made ones move to the end), so the old
        # ones are at the front.
        withdrawn = self._withdrawn
        withdrawn.pop(id, None)
        for old in list(itertools.islice(withdrawn, 64)):
            if now - withdrawn[old][0] <= _WITHDRAWN_FOR:
                break
            del withdrawn[old]
        withdrawn[id] = (now, reason)

    def withdrawn_why(self, schedule_id: str) -> Reason | None:
        """Why the schedule's fires taken ahead of time must not run, or None."""
        entry = self._withdrawn.get(schedule_id)
        return entry[1] if entry is not None else None

    def on_served(self, task: str, served: bool) -> None:
        """The dispatcher's word that ``task`` lost, or regained, every handler."""
        if self._system is not None:
            lowlevel.task_group(self._system).start_soon(self._hold_back, task, served)

    async def _hold_back(self, task: str, served: bool) -> None:
        """Pause ``task``'s running schedules while no handler takes its jobs.

        Their fires would only wait and end as ``no_healthy_handler``. Resumed
        from now once a handler takes jobs again (a trial job of a handler past
        its cool-down counts), with a ``skipped`` row for each fire that fell
        meanwhile; schedules paused on request stay paused. The schedule itself
        carries the mark (``HELD_BACK`` in its metadata, with ``HELD_SINCE``), so
        a restart, whose handlers start afresh, resumes it.
        """
        async with self._holding:
            try:
                scheduler = self._running_scheduler()
                for schedule in await scheduler.get_schedules():
                    if schedule.task_id != task:
                        continue
                    if not served and not schedule.paused:
                        await self._mark_held(schedule, held=True)
                        self._withdraw(schedule.id, "no_healthy_handler")
                        logger.warning(
                            "schedule %s paused: no healthy handler of %s",
                            schedule.id,
                            task,
                        )
                    elif served and schedule.metadata.get(HELD_BACK):
                        await self._release_held(schedule.id)
            except (SzError, RuntimeError):
                return  # stopping (APScheduler's own word): nothing to pause
            except Exception:
                logger.exception("holding back the schedules of %s failed", task)

    async def _mark_held(self, schedule: Any, *, held: bool, **changes: Any) -> None:
        """Store ``schedule`` with its hold-back mark set or cleared (and changes)."""
        assert self._store is not None
        metadata = dict(schedule.metadata)
        if held:
            metadata[HELD_BACK] = True
            metadata[HELD_SINCE] = datetime.now(UTC).isoformat()
            changes.setdefault("paused", True)
        else:
            metadata.pop(HELD_BACK, None)
            metadata.pop(HELD_SINCE, None)
        await self._store.add_schedule(
            attrs.evolve(schedule, metadata=metadata, **changes),
            ConflictPolicy.replace,
        )

    async def _release_held(self, schedule_id: str) -> None:
        """Resume a held-back schedule from now, and clear its mark.

        Each fire that fell while it was held back gets its ``skipped`` row
        first (``_skip_held``), so that a crash before the schedule is stored
        resumed leaves it held, to be released again at the next start.
        """
        try:
            schedule = await self._running_scheduler().get_schedule(schedule_id)
        except ScheduleLookupError:
            return  # removed meanwhile
        # What APScheduler's ``unpause_schedule(resume_from="now")`` does, with
        # the trigger stepped (a copy) once: for the rows, and to resume.
        trigger, next_fire = self._skip_held(schedule, datetime.now(UTC))
        await self._mark_held(
            schedule,
            held=False,
            paused=False,
            trigger=trigger,
            next_fire_time=next_fire,
        )
        self._withdrawn.pop(schedule_id, None)
        logger.info(
            "schedule %s resumed: no longer held back for want of a handler of %s",
            schedule_id,
            schedule.task_id,
        )

    def _skip_held(self, schedule: Any, until: datetime) -> tuple[Any, datetime | None]:
        """Record a ``skipped`` row for each fire the hold-back made it skip.

        Those are its fires from its next fire not taken to ``until``; a fire
        recorded before a crash (the store's latest fire taken) is not recorded
        again. At most ``MAX_SKIPPED_ROWS``, the earliest; one WARNING line sums
        them up. The stored trigger is left as it is.

        Returns:
            A copy of its trigger stepped past ``until``, and its first fire at or
            after ``until`` (None if it fires no more).
        """
        fire: datetime | None = schedule.next_fire_time
        if fire is None or fire >= until:
            return schedule.trigger, fire
        backend, store = self._backend, self._store
        assert backend is not None
        assert store is not None
        taken = store.taken(schedule.id)
        trigger = copy.deepcopy(schedule.trigger)
        recorded = left_out = 0
        while fire is not None and fire < until:
            if taken is not None and fire <= taken:
                pass  # recorded by a release that a crash cut short
            elif recorded < MAX_SKIPPED_ROWS:
                backend.skip(_skipped_row(schedule, fire, until), fire)
                recorded += 1
            else:
                # Counted, not recorded; APScheduler's own resume would step
                # the trigger this far too.
                left_out += 1
            fire = trigger.next()
        if recorded or left_out:
            since = schedule.metadata.get(HELD_SINCE)
            logger.warning(
                "schedule %s: %s fires skipped while no healthy handler served "
                "task %s (from %s to %s)%s",
                schedule.id,
                f"{recorded + left_out:,}",
                schedule.task_id,
                since if isinstance(since, str) else "?",
                until.isoformat(),
                f"; {left_out:,} of them not recorded (at most "
                f"{MAX_SKIPPED_ROWS:,} rows per release)"
                if left_out
                else "",
                extra={
                    "schedule_id": schedule.id,
                    "task": schedule.task_id,
                    "skipped": recorded + left_out,
                    "recorded": recorded,
                },
            )
        return trigger, fire

    async def pause(self, id: str) -> None:
        """Pause a schedule (as ``ScheduleZero.pause``).

        Raises:
            ScheduleNotFound: No schedule has that id.
        """
        try:
            await self._running_scheduler().pause_schedule(id)
        except ScheduleLookupError:
            raise ScheduleNotFound(f"no schedule with id {id!r}") from None
        self._withdraw(id, "schedule_paused")
        # Paused on request now: it stays so when its handlers come back. The
        # fires its hold-back skipped until now get their rows.
        schedule = await self._running_scheduler().get_schedule(id)
        if schedule.metadata.get(HELD_BACK):
            trigger, next_fire = self._skip_held(schedule, datetime.now(UTC))
            await self._mark_held(
                schedule, held=False, trigger=trigger, next_fire_time=next_fire
            )

    async def resume(self, id: str) -> None:
        """Resume a paused schedule from now on (as ``ScheduleZero.resume``).

        A schedule held back for want of a handler resumes as when one comes
        back: each fire it skipped gets its row.

        Raises:
            ScheduleNotFound: No schedule has that id.
        """
        scheduler = self._running_scheduler()
        try:
            schedule = await scheduler.get_schedule(id)
            if schedule.metadata.get(HELD_BACK):
                await self._release_held(id)
                return
            await scheduler.unpause_schedule(id, resume_from="now")
        except ScheduleLookupError:
            raise ScheduleNotFound(f"no schedule with id {id!r}") from None
        self._withdrawn.pop(id, None)

    async def schedules(self) -> list[Schedule]:
        """Every schedule, with its next fire time."""
        found = await self._running_scheduler().get_schedules()
        return [self._show(schedule) for schedule in found]

    async def get_schedule(self, id: str) -> Schedule:
        """One schedule.

        Raises:
            ScheduleNotFound: No schedule has that id.
        """
        try:
            found = await self._running_scheduler().get_schedule(id)
        except ScheduleLookupError:
            raise ScheduleNotFound(f"no schedule with id {id!r}") from None
        return self._show(found)

    async def upcoming(self, id: str, n: int) -> list[datetime]:
        """A schedule's next ``n`` fire times (as ``ScheduleZero.upcoming``).

        Raises:
            ScheduleNotFound: No schedule has that id.
        """
        try:
            found = await self._running_scheduler().get_schedule(id)
        except ScheduleLookupError:
            raise ScheduleNotFound(f"no schedule with id {id!r}") from None
        return upcoming_fires(found, n)

    def _show(self, schedule: Any) -> Schedule:
        return show_schedule(schedule)

    # --------------------------------------------------------------------- fires

    def _on_fire(self, fired: apscheduler.Job, verdict: Verdict) -> None:
        """The store's sink: accept a due fire and dispatch it, or record its skip.

        Called from APScheduler's schedule loop: never waits, never raises.
        """
        backend = self._backend
        if backend is None:
            return
        now = datetime.now(UTC)
        scheduled = fired.scheduled_fire_time or now
        if verdict != "due":
            # A coalesce policy's reason is built: tests/sz/test_reasons.py
            # checks that each policy has its Reason.
            reason: Reason = (
                "misfire_grace_time"
                if verdict == "missed"
                else cast("Reason", f"coalesce_{fired.metadata.get('coalesce')}")
            )
            # Straight to the backend, not through the history actor: in one
            # queue with the kept fire's acceptance, so that a crash cannot keep
            # the fire taken and lose the record of the fires skipped for it.
            skipped = Attempt(
                job_id=fired.id.hex,
                schedule_id=fired.schedule_id,
                task=fired.task_id,
                handler=None,
                scheduled_at=scheduled,
                started_at=None,
                finished_at=now,
                duration=None,
                outcome=verdict,
                error=None,
                attempt=1,
                final=True,
                reason=reason,
            )
            backend.skip(skipped, scheduled - fired.jitter)
            # Told in one line per schedule and round (``_round_done``), not
            # one per fire: a minutely schedule down for a week skips 10,000.
            self._tally(fired).add(verdict, scheduled)
            return
        if self._tallies:
            tally = self._tallies.get(fired.schedule_id or "")
            if tally is not None:
                tally.kept = scheduled
        deadline = fired.start_deadline
        wait = (
            max(0.0, (deadline - now).total_seconds())
            if deadline is not None
            else self._default_wait(fired.task_id)
        )
        affinity = fired.metadata.get("affinity")
        # Positional: once per fire (STYLE rule 4's exception).
        job = Job(
            fired.task_id,
            scheduled,
            fired.id.hex,
            tuple(fired.args),
            fired.kwargs,
            fired.schedule_id,
            affinity if isinstance(affinity, str) else None,
            wait,
        )
        # A fire taken well ahead of its time can share its commit with others.
        early = (scheduled - now).total_seconds() > LAZY_COMMIT_MARGIN
        backend.accept(
            job,
            partial(self._submit, Submit(job, None, 1, None, True)),  # hold=True
            scheduled - fired.jitter,
            urgent=not early,
            failed=partial(_fire_lost, job),
        )

    def _tally(self, fired: apscheduler.Job) -> _Tally:
        schedule_id = fired.schedule_id or ""
        tally = self._tallies.get(schedule_id)
        if tally is None:
            tally = self._tallies[schedule_id] = _Tally(
                task=fired.task_id, policy=str(fired.metadata.get("coalesce", "all"))
            )
        return tally

    def _round_done(self, schedule_id: str) -> None:
        """The store's word that a schedule's round is judged: sum up its skips."""
        if self._tallies:
            tally = self._tallies.pop(schedule_id, None)
            if tally is not None:
                tally.log(schedule_id)


def upcoming_fires(schedule: apscheduler.Schedule, n: int) -> list[datetime]:
    """A stored schedule's next ``n`` fire times; none while it is paused.

    Stepped on a copy of its trigger (a trigger is an iterator: the stored one
    must not move), from its next fire time: the trigger's next step is the
    fire after that one. Fewer than ``n`` if the trigger ends first.
    """
    fire = schedule.next_fire_time
    if schedule.paused or fire is None:
        return []
    fires = [fire]
    trigger = copy.deepcopy(schedule.trigger)
    while len(fires) < n:
        following = trigger.next()
        if following is None:
            break
        fires.append(following)
    return fires


def _coalesce_of(schedule: apscheduler.Schedule) -> Coalesce:
    """The schedule's own coalesce policy, as the store applies it to its fires."""
    match schedule.metadata.get("coalesce", "all"):
        case "latest":
            return "latest"
        case "earliest":
            return "earliest"
        case _:
            return "all"


def _skipped_row(schedule: Any, fire: datetime, now: datetime) -> Attempt:
    """The final row of a fire its schedule's hold-back skipped.

    Its job id follows from the schedule and the fire time, the same in any run.
    """
    return Attempt(
        job_id=uuid.uuid5(
            _SKIPPED_IDS, f"{schedule.id}@{fire.astimezone(UTC).isoformat()}"
        ).hex,
        schedule_id=schedule.id,
        task=schedule.task_id,
        handler=None,
        scheduled_at=fire,
        started_at=None,
        finished_at=now,
        duration=None,
        outcome="skipped",
        error=None,
        attempt=1,
        final=True,
        reason="no_healthy_handler",
    )


async def _leave_apscheduler(
    scheduler: AsyncScheduler,
    file: Database | None,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    """Leave APScheduler's ``async with``, untangling what it raises.

    Cancelled while it stops (the actor system failing past ``/user``), its exit
    raised a cancellation whose ``__context__`` was itself: ``contextlib``'s exit
    stack walks that chain to its end, and looped for ever (asyncio). A chain
    that comes back on itself is cut where it does.

    Its schedule loop ends with the store's error when the store was lost (a
    file deleted, a node fenced out): that was logged and told to the owner
    (``wait_store_lost``) already, so stopping does not raise it again.
    """
    try:
        await scheduler.__aexit__(exc_type, exc, tb)
    except BaseException as error:
        untangle_context(error)
        if file is not None and file.lost is not None:
            if isinstance(error, StoreError):
                return
            if isinstance(error, BaseExceptionGroup):
                _, rest = error.split(StoreError)
                if rest is None:
                    return
        raise


def untangle_context(error: BaseException) -> None:
    """Cut ``error``'s ``__context__`` chain where it comes back on itself."""
    seen = [error]
    current = error
    while current.__context__ is not None:
        following = current.__context__
        if any(following is earlier for earlier in seen):
            current.__context__ = None
            return
        seen.append(following)
        current = following


def _fire_lost(job: Job, error: BaseException) -> None:
    """A due fire the store could not accept (a full disk): it never runs."""
    logger.error(
        "fire of schedule %r at %s not accepted, it will not run: %s",
        job.schedule_id,
        job.scheduled_at.isoformat(),
        error,
    )


def _handed_over() -> None:
    """APScheduler's function for every task, never called.

    ScheduleZero's store hands each fire to the dispatcher; no job reaches
    APScheduler's job layer, which would call this.
    """
    raise SzError("a ScheduleZero job reached APScheduler's job layer")


def show_schedule(schedule: Any) -> Schedule:
    """APScheduler's schedule as ScheduleZero shows it (also read from a store file)."""
    return Schedule(
        id=schedule.id,
        task=schedule.task_id,
        trigger=repr(schedule.trigger),
        args=tuple(schedule.args),
        kwargs=dict(schedule.kwargs),
        paused=schedule.paused,
        next_fire_time=schedule.next_fire_time,
        affinity=schedule.metadata.get("affinity"),
        coalesce=schedule.metadata.get("coalesce", "latest"),
        paused_reason=(
            None
            if not schedule.paused
            else "no_healthy_handler"
            if schedule.metadata.get(HELD_BACK)
            else "requested"
        ),
    )
