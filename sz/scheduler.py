"""``ScheduleZero``: the front door: handlers, schedules, jobs, health and history.

APScheduler 4 decides *when*: each schedule lives in it, kept by ScheduleZero's
own data store, whose ``add_job`` hands every fire to the dispatcher (APScheduler's
job layer never sees it). Everything after that — which handler, how fast,
retries, the record of what happened — is ScheduleZero's, done by actors in one
supervision tree that ``sz.system`` exposes. With a store file, schedules, accepted
jobs and history survive the process; a job accepted but never finished is taken
up again at the next start.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, overload

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

from actors import (
    ActorError,
    ActorRef,
    ActorSystem,
    Backoff,
    Child,
    MailboxFull,
    Supervision,
    Supervisor,
    lowlevel,
)

from .config import Config, load_config
from .dispatcher import (
    LOST_JOB_RETRIES,
    DispatcherActor,
    DispatcherState,
    GovernorsQuery,
    HandlersQuery,
    HandlerStatus,
    Register,
    Submit,
)
from .errors import JobFailed, NoHealthyHandler, Overloaded, SzError, UnknownTask
from .governors import AdaptivePolicy, Backpressure, Governor, GovernorStatus, Limit
from .handlers import HandlerActor, HandlerSpec
from .health import HealthPolicy
from .history import HistoryActor, log_attempt
from .jobs import Attempt, HistoryQuery, Job, JobFuture, Reason
from .remote import BrokerActor, BrokerSettings, BrokerStats, WorkersQuery
from .store import COALESCE_POLICIES, ScheduleStore, SqliteFile, StoreError, Verdict
from .store.history import FileHistory, HistoryBackend, MemoryHistory, Unfinished

if TYPE_CHECKING:
    from types import TracebackType

    import apscheduler
    from apscheduler.abc import Trigger

__all__ = ["Schedule", "ScheduleNotFound", "ScheduleZero"]

logger = logging.getLogger("sz.scheduler")

#: The metadata key marking a schedule paused because no handler of its task
#: was in service (``Schedule.paused_reason == "no_healthy_handler"``).
HELD_BACK = "held_back"

#: A handler's mailbox holds its concurrency's worth of jobs plus this many
#: messages (health, queries, control).
HANDLER_MAILBOX = 1000

#: The wait before the broker restarts after a crash: 50 ms, doubling to 5 s.
BROKER_BACKOFF = Backoff(min=0.05, max=5.0, factor=2.0, jitter=0.2, reset_after=30.0)

#: History rows kept in memory (the durable store keeps more).
HISTORY_ROWS = 100_000

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


def store_path(url: str | None) -> Path | None:
    """The file of a ``sqlite:///path`` URL; None for memory.

    ``sqlite:///jobs.db`` is relative to the working directory,
    ``sqlite:////var/lib/sz/jobs.db`` absolute.

    Raises:
        StoreError: Not ``memory`` nor a ``sqlite:///`` URL.
    """
    if url is None or url == "memory":
        return None
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise StoreError(
            f"store url {url!r}: expected 'memory' or 'sqlite:///path/to/file.db'"
        )
    return Path(url[len(prefix) :])


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


_TRIGGERS: dict[str, Callable[..., Trigger]] = {
    "cron": CronTrigger,
    "interval": IntervalTrigger,
    "date": DateTrigger,
    "calendarinterval": CalendarIntervalTrigger,
}


def make_trigger(trigger: str | Trigger, fields: Mapping[str, Any]) -> Trigger:
    """Build an APScheduler trigger from a name and fields, a crontab, or as given."""
    if not isinstance(trigger, str):
        if fields:
            raise SzError(
                f"trigger fields {sorted(fields)} given with a trigger object"
            )
        return trigger
    if " " in trigger.strip():
        extra = sorted(set(fields) - {"timezone", "start_time", "end_time"})
        if extra:
            raise SzError(f"crontab {trigger!r} takes no trigger fields {extra}")
        try:
            return CronTrigger.from_crontab(trigger, **fields)
        except (TypeError, ValueError) as exc:
            raise SzError(f"bad crontab {trigger!r}: {exc}") from None
    kind = _TRIGGERS.get(trigger)
    if kind is None:
        raise SzError(
            f"unknown trigger {trigger!r}: expected one of {', '.join(_TRIGGERS)}, "
            f"a crontab string, or a trigger object"
        )
    try:
        if kind is CalendarIntervalTrigger and "start_date" not in fields:
            return _calendar_from_now(fields)
        return kind(**fields)
    except (TypeError, ValueError) as exc:
        raise SzError(f"bad {trigger} trigger {dict(fields)!r}: {exc}") from None


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


class ScheduleZero:
    """The scheduler: register handlers, add schedules, run jobs, read what happened.

    Use it as ``async with sz:`` (or ``await sz.start()`` / ``await sz.stop()``),
    under asyncio or trio. Handlers are registered before it starts; schedules may
    be added before (applied at start) or after.

    Args:
        config: The configuration, defaults if None.
        name: The actor system's name, ``"sz"`` by default.
        store: Where schedules, jobs and history live: ``"memory"`` or
            ``"sqlite:///path.db"``; the config's ``store.url`` if None.
        broker: Accept remote workers (``ZMQHandler``, ``sz worker``) as set
            here; by default, as ``handlers.zmq`` says when ``scheduler.mode``
            is ``distributed``, else not at all.

    Raises:
        StoreError: ``store`` is not a store URL.
        SzError: A CURVE key file of the config cannot be read.
    """

    def __init__(
        self,
        *,
        config: Config | None = None,
        name: str = "sz",
        store: str | None = None,
        broker: BrokerSettings | None = None,
    ) -> None:
        self.config = config if config is not None else Config()
        if broker is None and self.config.scheduler.mode == "distributed":
            broker = BrokerSettings.from_config(self.config.handlers.zmq)
        #: How remote workers are accepted, or None: local handlers only.
        self.broker_settings = broker
        self.name = name
        self.store_path = store_path(
            store if store is not None else self.config.store.url
        )
        self._specs: dict[str, HandlerSpec] = {}
        #: Rates of handlers registered with ``rate=``, by handler id.
        self._rates: dict[str, Limit] = {}
        self._tasks: set[str] = set()  # the tasks the handlers serve
        #: The tasks APScheduler knows (remote ones are added as scheduled).
        self._known_tasks: set[str] = set()
        self._early: list[_ScheduleRequest] = []
        #: Schedules paused or removed in the last second: (when, reason).
        self._withdrawn: dict[str, tuple[datetime, Reason]] = {}
        #: Time zones (by name; None for the local one) already read from disk.
        self._zones: set[str | None] = set()
        self._backend: HistoryBackend = MemoryHistory(HISTORY_ROWS)
        self._stack: AsyncExitStack | None = None
        self._system: ActorSystem | None = None
        self._new_event: Callable[[], anyio.Event] = anyio.Event
        self._scheduler: AsyncScheduler | None = None
        self._dispatcher: ActorRef | None = None
        self._history: ActorRef | None = None
        self._broker: ActorRef | None = None
        self._state: DispatcherState | None = None
        self._holding = anyio.Lock()
        self._store: ScheduleStore | None = None

    @classmethod
    def from_config(cls, path: str, *, store: str | None = None) -> ScheduleZero:
        """Build a scheduler from ``config.yaml``, registering its built-in handlers.

        ``store`` overrides the config's ``store.url``.

        Raises:
            ConfigError: The file is missing or invalid (the message names the key).
            SzError: A listed module or method cannot be imported.
        """
        config = load_config(path)
        sz = cls(config=config, store=store)
        for entry in config.handlers.builtin:
            try:
                module = importlib.import_module(entry.module)
            except ImportError as exc:
                raise SzError(
                    f"handlers.builtin: cannot import {entry.module}: {exc}"
                ) from None
            for method in entry.methods:
                func = getattr(module, method, None)
                if not callable(func):
                    raise SzError(
                        f"handlers.builtin: {entry.module}.{method} is not a function"
                    )
                limits = config.governors.per_handler_limits.get(method)
                concurrency = limits.concurrent if limits and limits.concurrent else 1
                sz.handler(func, name=method, concurrency=concurrency)
        return sz

    # ---------------------------------------------------------------- handlers

    @overload
    def handler(self, func: Callable[..., Any], /) -> Callable[..., Any]: ...

    @overload
    def handler(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        concurrency: int = 1,
        timeout: float | None = None,
        retries: int = 0,
        rate: float | None = None,
        burst: int | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    @overload
    def handler(
        self,
        func: Callable[..., Any],
        /,
        *,
        name: str | None = None,
        concurrency: int = 1,
        timeout: float | None = None,
        retries: int = 0,
        rate: float | None = None,
        burst: int | None = None,
    ) -> Callable[..., Any]: ...

    def handler(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        concurrency: int = 1,
        timeout: float | None = None,
        retries: int = 0,
        rate: float | None = None,
        burst: int | None = None,
    ) -> Any:
        """Register a function as a handler of the task ``name`` (its own name).

        Usable bare (``@sz.handler``) or with options
        (``@sz.handler(name=..., concurrency=5, timeout=30, retries=2)``).
        ``rate`` caps the jobs it starts per second (a token bucket of ``burst``
        tokens, one second's worth by default): a job over it waits for a token,
        and its history row says how long (``waited``, reason ``rate_limited``). Async
        functions run on the event loop; sync ones in worker threads. Registering
        several functions under one name makes several handlers of that task
        (``task``, ``task#2``, ...), among which the dispatcher spreads its jobs.
        Returns the function unchanged.

        Raises:
            SzError: The scheduler has started, or an option is bad.
        """

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            if self._system is not None:
                raise SzError("register handlers before the scheduler starts")
            task = name or function.__name__
            handler_id, n = task, 1
            while handler_id in self._specs:
                n += 1
                handler_id = f"{task}#{n}"
            try:
                spec = HandlerSpec(
                    name=handler_id,
                    task=task,
                    func=function,
                    concurrency=concurrency,
                    timeout=timeout,
                    retries=retries,
                )
            except ValueError as exc:
                raise SzError(f"handler {task!r}: {exc}") from None
            if rate is not None or burst is not None:
                if rate is None or not rate > 0:
                    raise SzError(f"handler {task!r}: rate must be a number > 0")
                if burst is not None and not burst >= 1:
                    raise SzError(f"handler {task!r}: burst must be at least 1")
                self._rates[handler_id] = Limit(rate=float(rate), burst=burst)
            self._specs[handler_id] = spec
            self._tasks.add(task)
            return function

        return register(func) if func is not None else register

    # ---------------------------------------------------------------- lifecycle

    @property
    def system(self) -> ActorSystem:
        """The actor system: spawn your own actors beside the scheduler's."""
        if self._system is None:
            raise SzError("the scheduler is not running")
        return self._system

    async def start(self) -> None:
        """Open the store, start the actors and APScheduler.

        Then jobs the last run accepted and never finished are taken up, and
        schedules added before start are applied.

        Raises:
            StoreError: The store's file cannot be used (the message says why).
        """
        if self._stack is not None:
            raise SzError("the scheduler is already running")
        for index, entry in enumerate(self.config.schedules):
            try:
                self._check_task(entry.task)
            except SzError as exc:
                raise SzError(f"schedules[{index}] ({entry.id}): {exc}") from None
        async with AsyncExitStack() as stack:
            file: SqliteFile | None = None
            if self.store_path is not None:
                file = SqliteFile(self.store_path)
                await file.open()
                stack.push_async_callback(file.close)
                self._backend = FileHistory(file)
            else:
                self._backend = MemoryHistory(HISTORY_ROWS)
            system = await stack.enter_async_context(ActorSystem(self.name))
            self._system = system
            self._new_event = lowlevel.event_factory(system)
            self._history = await system.spawn(
                HistoryActor,
                self._backend,
                float(self.config.reporting.metrics.retention_days),
                name="history",
                restart="permanent",
                capacity=100_000,
            )
            state = DispatcherState(
                policy=HealthPolicy(heartbeat_timeout=None),
                withdrawn=self._withdrawn_why,
                governor=self._governor(),
                on_served=self._on_served,
            )
            self._state = state
            specs = [self._configured(spec) for spec in self._specs.values()]
            self._dispatcher = await system.spawn(
                DispatcherActor,
                state,
                self._history,
                name="dispatcher",
                restart="permanent",
                capacity=100_000,
            )
            await system.spawn(
                Supervisor,
                [
                    # Room for every job it may run at once: the dispatcher sends
                    # up to ``concurrency`` at a time and must never find it full.
                    Child(
                        HandlerActor,
                        spec,
                        name=spec.name,
                        capacity=spec.concurrency + HANDLER_MAILBOX,
                    )
                    for spec in specs
                ],
                Supervision(max_restarts=10, within=10.0),
                name="handlers",
            )
            for spec in specs:
                ref = system.lookup(f"/user/handlers/{spec.name}")
                assert ref is not None
                self._dispatcher.tell(
                    Register(
                        name=spec.name,
                        task=spec.task,
                        ref=ref,
                        concurrency=spec.concurrency,
                        retries=spec.retries,
                    )
                )
            if self.broker_settings is not None:
                await self._spawn_broker(system, state)
            for unfinished in await self._backend.unfinished():
                self._take_up(unfinished)
            store = ScheduleStore(
                file=file,
                sink=self._on_fire,
                release_events=False,
                lookahead=LOOKAHEAD,
                gather=GATHER,
                wake_only=True,
            )
            # Only the scheduling role: ScheduleZero's jobs never enter APScheduler's
            # job layer, so its job loop would only poll an empty queue.
            scheduler = await stack.enter_async_context(
                AsyncScheduler(data_store=store, role=SchedulerRole.scheduler)
            )
            self._scheduler = scheduler
            self._store = store
            self._known_tasks = set()
            for task in self._tasks:
                await scheduler.configure_task(task, func=_handed_over)
                self._known_tasks.add(task)
            await scheduler.start_in_background()
            # Held back by the last run: its handlers start afresh in this one.
            for schedule in await scheduler.get_schedules():
                if schedule.metadata.get(HELD_BACK):
                    await self._release_held(schedule.id)
            early, self._early = self._early, []
            for request in early:
                await self._add_schedule(request)
            await self._add_config_schedules()
            self._stack = stack.pop_all()

    async def _spawn_broker(self, system: ActorSystem, state: DispatcherState) -> None:
        """Start the broker under a supervisor that never gives up on it.

        A broker that cannot bind again at once (its port not yet released)
        retries, paced by its backoff, rather than take the scheduler down.

        Raises:
            SzError: It cannot start (the endpoint cannot be bound, say).
        """
        assert self.broker_settings is not None
        assert self._dispatcher is not None
        try:
            await system.spawn(
                Supervisor,
                [
                    Child(
                        BrokerActor,
                        self.broker_settings,
                        self._dispatcher,
                        state,
                        name="broker",
                        restart="permanent",
                        backoff=BROKER_BACKOFF,
                        capacity=10_000,
                    )
                ],
                Supervision(max_restarts=2**62, within=1.0),
                name="remote",
            )
        except ActorError as exc:
            cause: BaseException = exc
            while cause.__cause__ is not None:
                cause = cause.__cause__
            raise SzError(f"the broker cannot start: {cause}") from None
        self._broker = system.lookup("/user/remote/broker")

    async def _add_config_schedules(self) -> None:
        """Add (or replace) the config's ``schedules``.

        Raises:
            SzError: One names a task no handler serves, or a bad crontab line
                (the message names the schedule).
        """
        for index, entry in enumerate(self.config.schedules):
            when: dict[str, Any] = (
                {"trigger": entry.cron}
                if entry.cron is not None
                else {"trigger": "interval", **(entry.interval or {})}
            )
            try:
                await self.schedule(
                    entry.task,
                    id=entry.id,
                    args=dict(entry.args or {}),
                    paused=entry.paused,
                    **when,
                )
            except SzError as exc:
                raise SzError(f"schedules[{index}] ({entry.id}): {exc}") from None

    async def stop(self) -> None:
        """Stop APScheduler, then every actor (in order). Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                await stack.aclose()
            finally:
                self._system = self._scheduler = None
                self._dispatcher = self._history = self._broker = None
                self._store = self._state = None

    async def __aenter__(self) -> ScheduleZero:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ----------------------------------------------------------------- schedules

    def _check_task(self, task_id: str) -> None:
        if task_id not in self._tasks and self.broker_settings is None:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise UnknownTask(f"no handler for task {task_id!r} (registered: {known})")

    async def schedule(
        self,
        task_id: str,
        trigger: str | Trigger = "cron",
        *,
        args: Sequence[Any] | Mapping[str, Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        id: str | None = None,
        paused: bool = False,
        misfire_grace_time: float | None = None,
        affinity: str | None = None,
        coalesce: str = "latest",
        **trigger_fields: Any,
    ) -> str:
        """Add (or replace) a schedule; return its id.

        ``trigger`` is ``"cron"``, ``"interval"``, ``"date"`` or
        ``"calendarinterval"`` with its fields as keywords (``hour=9``,
        ``minutes=30``, ``run_time=...``), a crontab string (``"*/5 * * * *"``), or
        an APScheduler trigger object. ``args`` may be a sequence (positional) or a
        mapping (keyword arguments). ``misfire_grace_time`` (seconds) bounds how
        late a fire may start before it is recorded as ``missed``; ``coalesce``
        (``latest``, ``earliest`` or ``all``) says which of several fires due at
        once (after the process was down) run, the others being recorded as
        ``coalesced``.

        Raises:
            UnknownTask: No handler serves ``task_id``.
            SzError: A bad trigger or bad arguments.
            Overloaded: Too many jobs wait already (``retry_after`` says when to
                try again).
        """
        self._check_task(task_id)
        self._check_load()
        if coalesce not in COALESCE_POLICIES:
            raise SzError(
                f"coalesce must be one of {', '.join(COALESCE_POLICIES)}, "
                f"got {coalesce!r}"
            )
        built = await self._build_trigger(trigger, trigger_fields)
        positional, keywords = split_arguments(args, kwargs)
        request = _ScheduleRequest(
            task_id=task_id,
            trigger=built,
            args=positional,
            kwargs=keywords,
            id=id or uuid.uuid4().hex,
            paused=paused,
            misfire_grace_time=misfire_grace_time,
            affinity=affinity,
            coalesce=coalesce,
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
            metadata={"coalesce": request.coalesce, "affinity": request.affinity},
            conflict_policy=ConflictPolicy.replace,
        )

    def _running_scheduler(self) -> AsyncScheduler:
        if self._scheduler is None:
            raise SzError("the scheduler is not running")
        return self._scheduler

    async def unschedule(self, id: str) -> None:
        """Remove a schedule. Removing one that does not exist does nothing.

        A fire already taken ahead of its time (``LOOKAHEAD``) and not yet due
        is cancelled (a final ``cancelled`` row, reason ``schedule_removed``).
        """
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

    def _on_served(self, task: str, served: bool) -> None:
        """The dispatcher's word that ``task`` lost, or regained, every handler."""
        if self._system is not None:
            lowlevel.task_group(self._system).start_soon(self._hold_back, task, served)

    async def _hold_back(self, task: str, served: bool) -> None:
        """Pause ``task``'s running schedules while no handler takes its jobs.

        Their fires would only wait and end as ``no_healthy_handler``. Resumed
        from now once a handler takes jobs again (a trial job of a handler past
        its cool-down counts); schedules paused on request stay paused. The
        schedule itself carries the mark (``HELD_BACK`` in its metadata), so a
        restart, whose handlers start afresh, resumes it.
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
                        logger.info(
                            "schedule %s resumed: %s has a handler", schedule.id, task
                        )
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
            changes.setdefault("paused", True)
        else:
            metadata.pop(HELD_BACK, None)
        await self._store.add_schedule(
            attrs.evolve(schedule, metadata=metadata, **changes),
            ConflictPolicy.replace,
        )

    async def _release_held(self, schedule_id: str) -> None:
        """Resume a held-back schedule from now, and clear its mark."""
        scheduler = self._running_scheduler()
        try:
            await scheduler.unpause_schedule(schedule_id, resume_from="now")
            await self._mark_held(await scheduler.get_schedule(schedule_id), held=False)
        except ScheduleLookupError:
            return  # removed meanwhile
        self._withdrawn.pop(schedule_id, None)

    def _withdrawn_why(self, schedule_id: str) -> Reason | None:
        entry = self._withdrawn.get(schedule_id)
        return entry[1] if entry is not None else None

    async def pause(self, id: str) -> None:
        """Pause a schedule: it does not fire until resumed.

        A fire already taken ahead of its time and not yet due is cancelled (a
        final ``cancelled`` row, reason ``schedule_paused``).

        Raises:
            ScheduleNotFound: No schedule has that id.
        """
        try:
            await self._running_scheduler().pause_schedule(id)
        except ScheduleLookupError:
            raise ScheduleNotFound(f"no schedule with id {id!r}") from None
        self._withdraw(id, "schedule_paused")
        # Paused on request now: it stays so when its handlers come back.
        await self._clear_held_mark(id)

    async def resume(self, id: str) -> None:
        """Resume a paused schedule from now on (fires missed while paused are skipped).

        Raises:
            ScheduleNotFound: No schedule has that id.
        """
        try:
            await self._running_scheduler().unpause_schedule(id, resume_from="now")
        except ScheduleLookupError:
            raise ScheduleNotFound(f"no schedule with id {id!r}") from None
        self._withdrawn.pop(id, None)
        await self._clear_held_mark(id)

    async def _clear_held_mark(self, id: str) -> None:
        schedule = await self._running_scheduler().get_schedule(id)
        if schedule.metadata.get(HELD_BACK):
            await self._mark_held(schedule, held=False)

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

    def _show(self, schedule: Any) -> Schedule:
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

    # ---------------------------------------------------------------------- jobs

    def _on_fire(self, fired: apscheduler.Job, verdict: Verdict) -> None:
        """The store's sink: accept a due fire and dispatch it, or record its skip.

        Called from APScheduler's schedule loop: never waits, never raises.
        """
        history = self._history
        if history is None:
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
            self._backend.skip(skipped, scheduled - fired.jitter)
            log_attempt(skipped)
            return
        deadline = fired.start_deadline
        wait = (
            max(0.0, (deadline - now).total_seconds())
            if deadline is not None
            else self._default_wait(fired.task_id)
        )
        affinity = fired.metadata.get("affinity")
        job = Job(
            id=fired.id.hex,
            task=fired.task_id,
            args=tuple(fired.args),
            kwargs=fired.kwargs,
            schedule_id=fired.schedule_id,
            scheduled_at=scheduled,
            affinity=affinity if isinstance(affinity, str) else None,
            wait=wait,
        )
        # A fire taken well ahead of its time can share its commit with others.
        early = (scheduled - now).total_seconds() > LAZY_COMMIT_MARGIN
        self._backend.accept(
            job,
            partial(self._submit, Submit(job=job, hold=True)),
            scheduled - fired.jitter,
            urgent=not early,
        )

    def _submit(self, submit: Submit) -> None:
        """Give an accepted job to the dispatcher; if it is full, reject the job.

        The dispatcher holds 100,000 jobs before it refuses more: past that, a
        job ends at once as ``rejected`` rather than wait without bound.
        """
        dispatcher, history = self._dispatcher, self._history
        if dispatcher is None or history is None:
            return  # stopping: the job stays accepted and is taken up next start
        try:
            dispatcher.tell(submit)
        except MailboxFull:
            job = submit.job
            history.tell(
                Attempt.of(
                    job,
                    submit.attempt,
                    "rejected",
                    final=True,
                    reason="dispatcher_full",
                )
            )
            if submit.future is not None:
                submit.future.resolve("rejected", None, None)
        except ActorError:
            # The actor system has ended (the store committed this job as the
            # scheduler stopped): it stays accepted and is taken up next start.
            return

    def _take_up(self, unfinished: Unfinished) -> None:
        """A job the last run accepted and never finished: retry it or abandon it.

        Its interrupted attempt is recorded as ``abandoned``; the next one follows
        while the task's handlers allow that many attempts (their ``retries`` plus
        the retries of a job lost with its handler), as for a job whose handler
        died mid-job.
        """
        history = self._history
        assert history is not None
        job, interrupted = unfinished.job, unfinished.attempts + 1
        retries = max(
            (spec.retries for spec in self._specs.values() if spec.task == job.task),
            # A remote worker may serve it (they have no retries of their own).
            default=0 if self.broker_settings is not None else None,
        )
        again = retries is not None and interrupted <= retries + LOST_JOB_RETRIES
        history.tell(
            Attempt.of(
                job,
                interrupted,
                "abandoned",
                final=not again,
                reason="retry_after_restart" if again else "interrupted_by_restart",
            )
        )
        if again:
            self._submit(
                Submit(
                    job=job,
                    attempt=interrupted + 1,
                    reason="retry_after_restart",
                    hold=True,
                )
            )

    async def run_now(
        self,
        task_id: str,
        *,
        args: Sequence[Any] | Mapping[str, Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the roadmap's API
        affinity: str | None = None,
    ) -> Any:
        """Run one job now, through the dispatcher and the history; return its result.

        ``timeout`` bounds how long this call waits (and how long the job may wait
        for a healthy handler); the handler's own ``timeout`` bounds each attempt.

        Raises:
            UnknownTask: No handler serves ``task_id``.
            JobFailed: The job ended without success (``__cause__`` is the handler's
                exception); ``NoHealthyHandler`` if no healthy handler took it.
            TimeoutError: ``timeout`` passed first (the job itself goes on).
            Overloaded: Too many jobs wait already (``retry_after`` says when to
                try again).
        """
        if task_id not in self._tasks:
            self._check_task(task_id)
        if self._dispatcher is None:
            raise SzError("the scheduler is not running")
        state = self._state
        if state is not None and state.governor.backpressure is not None:
            self._check_load()
        positional: tuple[Any, ...]
        keywords: dict[str, Any]
        if args is None and kwargs is None:
            positional, keywords = (), {}
        else:
            positional, keywords = split_arguments(args, kwargs)
        future = JobFuture(self._new_event)
        job = Job(
            task=task_id,
            args=positional,
            kwargs=keywords,
            scheduled_at=datetime.now(UTC),
            affinity=affinity,
            wait=timeout if timeout is not None else self._default_wait(task_id),
        )
        self._backend.accept(job, partial(self._submit, Submit(job=job, future=future)))
        # A second's grace past the job's own wait, for the dispatcher's verdict
        # (no_healthy_handler) to arrive before the caller's deadline.
        if timeout is None:
            await future.wait()
        else:
            with anyio.fail_after(timeout + 1.0):
                await future.wait()
        if future.outcome == "success":
            return future.value
        error_type = (
            NoHealthyHandler if future.outcome == "no_healthy_handler" else JobFailed
        )
        failure = error_type(
            f"job {job.id} of task {task_id!r} ended with {future.outcome}",
            outcome=str(future.outcome),
        )
        raise failure from future.error

    # ---------------------------------------------------------------- governors

    def _governor(self) -> Governor:
        """The limits of the config and of ``@sz.handler(rate=...)``."""
        limits = self.config.governors
        rates = dict(self._rates)
        for name, handler_limits in limits.per_handler_limits.items():
            if handler_limits.rate is not None and name not in rates:
                rates[name] = Limit(
                    rate=handler_limits.rate, burst=handler_limits.burst
                )
        adaptive = limits.adaptive
        marks = limits.backpressure
        return Governor.of(
            global_rate=(
                Limit(rate=limits.rate_limit.rate, burst=limits.rate_limit.burst)
                if limits.rate_limit.enabled
                else None
            ),
            max_running=(
                limits.concurrency.max_concurrent
                if limits.concurrency.enabled
                else None
            ),
            task_rates={
                task: Limit(rate=method.rate, burst=method.burst)
                for task, method in limits.per_method_limits.items()
            },
            handler_rates=rates,
            adaptive=(
                AdaptivePolicy(
                    failure_ratio=adaptive.failure_ratio,
                    latency=adaptive.latency_seconds,
                    decrease=adaptive.decrease,
                    increase=adaptive.increase,
                )
                if adaptive.enabled
                else None
            ),
            backpressure=(
                Backpressure(high_water=marks.high_water, low_water=marks.low_water)
                if marks.enabled
                else None
            ),
        )

    def _configured(self, spec: HandlerSpec) -> HandlerSpec:
        """``spec`` with the config's ``per_handler_limits.concurrent``, if any."""
        limits = self.config.governors.per_handler_limits.get(spec.name)
        if limits is None or limits.concurrent is None:
            return spec
        return attrs.evolve(spec, concurrency=limits.concurrent)

    def _check_load(self) -> None:
        """Refuse new work while too many jobs wait.

        Raises:
            Overloaded: Past the high-water mark (and until the low-water one).
        """
        state = self._state
        if state is None:
            return
        governor, waiting = state.governor, len(state.waiting_task)
        if governor.watch_water(waiting) and governor.backpressure is not None:
            retry_after = governor.retry_after(waiting)
            raise Overloaded(
                f"{waiting:,} jobs are waiting (high water "
                f"{governor.backpressure.high_water:,}): try again in "
                f"{retry_after:.0f} s",
                retry_after=retry_after,
            )

    async def governors(self) -> list[GovernorStatus]:
        """Every limit: its rates, tokens, running and waiting jobs, refusals."""
        if self._dispatcher is None:
            raise SzError("the scheduler is not running")
        result: list[GovernorStatus] = await self._dispatcher.ask(GovernorsQuery())
        return result

    # --------------------------------------------------------- health, history

    def _default_wait(self, task: str) -> float:
        """How long a job may wait for a handler, when nothing else says.

        A task no handler in this process serves waits ``handlers.zmq
        .timeout_seconds`` for a remote worker; others 30 s.
        """
        if task in self._tasks or self.broker_settings is None:
            return 30.0
        return self.config.handlers.zmq.timeout_seconds

    async def broker(self) -> tuple[str, BrokerStats]:
        """The endpoint remote workers connect to, and what the broker has seen.

        Raises:
            SzError: The scheduler is not running, or accepts no remote workers.
        """
        if self._broker is None:
            raise SzError("no broker: the scheduler accepts no remote workers")
        endpoint, stats = await self._broker.ask(WorkersQuery())
        return endpoint, stats

    async def handlers(self) -> list[HandlerStatus]:
        """Every handler's status: health state, counts, durations, load."""
        if self._dispatcher is None:
            raise SzError("the scheduler is not running")
        result: list[HandlerStatus] = await self._dispatcher.ask(HandlersQuery())
        return result

    async def history(
        self,
        *,
        task: str | None = None,
        handler: str | None = None,
        outcome: str | None = None,
        schedule_id: str | None = None,
        job_id: str | None = None,
        since: datetime | None = None,
        before: datetime | Attempt | None = None,
        limit: int = 100,
        final: bool | None = None,
    ) -> list[Attempt]:
        """History rows, newest first (by finish time, then job id and attempt).

        Page with ``before=<the last row of the page>``: the next page starts right
        after it, never skipping nor repeating a row. ``before=<a datetime>`` and
        ``since=`` bound rows by finish time.
        """
        if self._history is None:
            raise SzError("the scheduler is not running")
        query = HistoryQuery(
            task=task,
            handler=handler,
            outcome=outcome,
            schedule_id=schedule_id,
            job_id=job_id,
            since=since,
            before=before,
            limit=limit,
            final=final,
        )
        rows: list[Attempt] = await self._history.ask(query)
        return rows


def _handed_over() -> None:
    """APScheduler's function for every task, never called.

    ScheduleZero's store hands each fire to the dispatcher; no job reaches
    APScheduler's job layer, which would call this.
    """
    raise SzError("a ScheduleZero job reached APScheduler's job layer")
