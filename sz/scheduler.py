"""``ScheduleZero``: the front door: handlers, schedules, jobs, health and history.

APScheduler 4 decides *when*: each schedule lives in it, kept by ScheduleZero's
own data store, whose ``add_job`` hands every fire to the dispatcher (APScheduler's
job layer never sees it); ``sz.bridge`` owns all of that, and the facade hands
its schedule methods to it. Everything after that — which handler, how fast,
retries, the record of what happened — is ScheduleZero's, done by actors in one
supervision tree that ``sz.system`` exposes. This module owns the facade:
registering handlers, starting and stopping the run (store file, actors, broker,
bridge), ``run_now``, the governors' limits, and the queries. With a store file,
schedules, accepted jobs and history survive the process; a job accepted but
never finished is taken up again at the next start (``_take_up``).
"""

from __future__ import annotations

import contextlib
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import anyio
import attrs

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

from .bridge import Bridge, make_trigger, split_arguments
from .config import Config, ScheduleEntry, load_config
from .dispatcher import (
    CANCEL_HELD,
    DispatcherActor,
    DispatcherState,
    GovernorsQuery,
    HandlersQuery,
    HandlerStatus,
    Register,
    Submit,
)
from .errors import (
    JobFailed,
    NoHealthyHandler,
    Overloaded,
    SzError,
    UnknownTask,
    refusal_in,
)
from .governors import AdaptivePolicy, Backpressure, Governor, GovernorStatus, Limit
from .handlers import HandlerActor, HandlerSpec
from .health import HealthPolicy
from .history import HistoryActor
from .jobs import Attempt, HistoryQuery, Job, JobFuture, new_job_id
from .remote import BrokerActor, BrokerSettings, BrokerStats, WorkersQuery
from .remote.broker import BoundRouter, CannotBind, bind_router
from .retry import next_attempt
from .startup import import_handler_module
from .storable import check_storable
from .store import SqliteFile, StoreError
from .store.history import FileHistory, HistoryBackend, MemoryHistory, Unfinished

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import TracebackType

    from apscheduler.abc import Trigger

    from .bridge import Schedule

__all__ = ["ScheduleZero", "check_startup"]

#: A handler's mailbox holds its concurrency's worth of jobs plus this many
#: messages (health, queries, control).
HANDLER_MAILBOX = 1000

#: The wait before the broker restarts after a crash: 50 ms, doubling to 5 s.
BROKER_BACKOFF = Backoff(min=0.05, max=5.0, factor=2.0, jitter=0.2, reset_after=30.0)

#: History rows kept in memory (the durable store keeps more).
HISTORY_ROWS = 100_000

#: The most rows one ``history()`` call returns: all the memory store keeps.
#: Page with ``before=`` for more.
HISTORY_LIMIT = HISTORY_ROWS


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
        #: The same handlers by the task they serve: whose signatures a call of
        #: the task must fit.
        self._task_specs: dict[str, list[HandlerSpec]] = {}
        #: Rates of handlers registered with ``rate=``, by handler id.
        self._rates: dict[str, Limit] = {}
        self._tasks: set[str] = set()  # the tasks the handlers serve
        self._backend: HistoryBackend = MemoryHistory(HISTORY_ROWS)
        self._stack: AsyncExitStack | None = None
        self._system: ActorSystem | None = None
        self._new_event: Callable[[], anyio.Event] = anyio.Event
        self._dispatcher: ActorRef | None = None
        self._history: ActorRef | None = None
        #: Set (in ``start``) when the store's file is found deleted or replaced.
        self._store_lost: anyio.Event | None = None
        self._lost_error: StoreError | None = None
        self._broker: ActorRef | None = None
        self._state: DispatcherState | None = None
        self._bridge = Bridge(
            default_wait=self._default_wait,
            submit=self._submit,
            durable=self.store_path is not None,
            check_arguments=self._check_arguments,
        )

    @classmethod
    def from_config(cls, path: str, *, store: str | None = None) -> ScheduleZero:
        """Build a scheduler from ``config.yaml``, registering its built-in handlers.

        ``store`` overrides the config's ``store.url``.

        Raises:
            ConfigError: The file is missing or invalid (the message names the key).
            SzError: A listed module or function cannot be imported (the message
                names the file and line that failed).
        """
        config = load_config(path)
        sz = cls(config=config, store=store)
        for entry in config.handlers.builtin:
            try:
                module = import_handler_module(entry.module)
            except SzError as exc:
                raise SzError(f"handlers.builtin: {exc}") from None
            for task in entry.methods:
                func = getattr(module, task, None)
                if not callable(func):
                    raise SzError(
                        f"handlers.builtin: {entry.module}.{task} is not a function"
                    )
                limits = config.governors.per_handler_limits.get(task)
                concurrency = limits.concurrent if limits and limits.concurrent else 1
                sz.handler(func, name=task, concurrency=concurrency)
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
            self._task_specs.setdefault(task, []).append(spec)
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
            StoreError: The store's file cannot be used, or a value in it cannot
                be read back (the message says why).
            SzError: What :func:`check_startup` refuses, before anything opens.
        """
        if self._stack is not None:
            raise SzError("the scheduler is already running")
        # A thread: a trigger reads its time zone's file the first time.
        await anyio.to_thread.run_sync(check_startup, self)
        try:
            await self._start()
        except BaseExceptionGroup as group:
            # APScheduler and the actor system start inside task groups: a
            # refusal of ours (a damaged store, a broker that cannot bind) comes
            # out wrapped: raised as itself.
            refusal = refusal_in(group)
            if refusal is None:
                raise
            raise refusal from None

    async def _start(self) -> None:
        async with AsyncExitStack() as stack:
            file: SqliteFile | None = None
            self._store_lost, self._lost_error = anyio.Event(), None
            if self.store_path is not None:
                file = SqliteFile(self.store_path)
                file.on_lost = self._on_store_lost
                await file.open()
                stack.push_async_callback(file.close)
                self._backend = FileHistory(file)
            else:
                self._backend = MemoryHistory(HISTORY_ROWS)
            system = await stack.enter_async_context(ActorSystem(self.name))
            self._system = system
            self._bridge.attach(system, self._backend)
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
                withdrawn=self._bridge.withdrawn_why,
                governor=self._governor(),
                on_served=self._bridge.on_served,
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
            # On the way out, after APScheduler stops (it is entered later) and
            # before the actors do: fires taken early get their final row now.
            stack.push_async_callback(_cancel_held, self._dispatcher)
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
                        timeout=spec.timeout,
                    )
                )
            if self.broker_settings is not None:
                await self._spawn_broker(system, state)
            for unfinished in await self._backend.unfinished():
                self._take_up(unfinished)
            await self._bridge.start(stack, file=file, tasks=self._tasks)
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
        # Bound here, before any actor starts, so that a taken port is this
        # refusal alone rather than a broker's and its supervisor's crashes,
        # each logged with its traceback.
        try:
            bound = BoundRouter(bind_router(self.broker_settings))
        except CannotBind as exc:
            raise SzError(f"the broker cannot start: {exc}") from None
        try:
            await system.spawn(
                Supervisor,
                [
                    Child(
                        BrokerActor,
                        self.broker_settings,
                        self._dispatcher,
                        state,
                        bound,
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
        finally:
            bound.close()  # unless the broker took it
        self._broker = system.lookup("/user/remote/broker")

    async def _add_config_schedules(self) -> None:
        """Add (or replace) the config's ``schedules``.

        Raises:
            SzError: One names a task no handler serves, or a bad crontab line
                (the message names the schedule).
        """
        for index, entry in enumerate(self.config.schedules):
            trigger, fields = _config_trigger(entry)
            try:
                await self.schedule(
                    entry.task,
                    trigger,
                    id=entry.id,
                    args=dict(entry.args or {}),
                    paused=entry.paused,
                    **fields,
                )
            except SzError as exc:
                raise SzError(f"schedules[{index}] ({entry.id}): {exc}") from None

    def _on_store_lost(self, error: StoreError) -> None:
        self._lost_error = error
        if self._store_lost is not None:
            self._store_lost.set()

    async def wait_store_lost(self) -> StoreError:
        """Wait until the store's file is found deleted or replaced; return why.

        A checkpoint; waits for ever on a memory store, or while the file stays.
        From then on every store call fails with the returned error: the owner
        should stop the scheduler (``sz serve`` exits with code 2).

        Raises:
            SzError: The scheduler was never started.
        """
        lost = self._store_lost
        if lost is None:
            raise SzError("the scheduler is not running")
        await lost.wait()
        assert self._lost_error is not None
        return self._lost_error

    async def stop(self) -> None:
        """Stop APScheduler, then every actor (in order). Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                await stack.aclose()
            finally:
                self._system = None
                self._bridge.detach()
                self._dispatcher = self._history = self._broker = None
                self._state = None

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

    def _check_arguments(
        self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Refuse arguments that do not bind to every local handler of the task.

        Any of them may be given the job. A task only remote workers serve is not
        checked: their signatures are not known here.

        Raises:
            SzError: The arguments do not bind (the message names the task, the
                handler and what does not fit).
        """
        for spec in self._task_specs.get(task_id, ()):
            problem = spec.binding_error(args, kwargs)
            if problem is not None:
                raise SzError(
                    f"the arguments do not fit task {task_id!r} (handler "
                    f"{spec.name!r}: {problem})"
                )

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
        late a fire may start before it is recorded as ``missed`` (from 0 to a
        year, ``MAX_MISFIRE_GRACE``; None, the default, for no limit); ``coalesce``
        (``latest``, ``earliest`` or ``all``) says which of several fires due at
        once (after the process was down) run, the others being recorded as
        ``coalesced``.

        Raises:
            UnknownTask: No handler serves ``task_id``.
            SzError: A bad trigger (an unknown time zone, an interval of zero or
                too long to fire twice before the year 9999), a bad
                ``misfire_grace_time``, arguments that do not bind to the
                signature of a local handler of the task, or arguments the store
                cannot keep (the message names the first: ``args[0]``,
                ``kwargs['lock']``); nothing is added, on any store.
            Overloaded: Too many jobs wait already (``retry_after`` says when to
                try again).
        """
        self._check_task(task_id)
        self._check_load()
        return await self._bridge.schedule(
            task_id,
            trigger,
            args=args,
            kwargs=kwargs,
            id=id,
            paused=paused,
            misfire_grace_time=misfire_grace_time,
            affinity=affinity,
            coalesce=coalesce,
            trigger_fields=trigger_fields,
        )

    async def unschedule(self, id: str) -> None:
        """Remove a schedule. Removing one that does not exist does nothing.

        A fire already taken ahead of its time (``LOOKAHEAD``) and not yet due
        is cancelled (a final ``cancelled`` row, reason ``schedule_removed``).
        """
        await self._bridge.unschedule(id)

    async def pause(self, id: str) -> None:
        """Pause a schedule: it does not fire until resumed.

        A fire already taken ahead of its time and not yet due is cancelled (a
        final ``cancelled`` row, reason ``schedule_paused``).

        Raises:
            ScheduleNotFound: No schedule has that id.
        """
        await self._bridge.pause(id)

    async def resume(self, id: str) -> None:
        """Resume a paused schedule from now on (fires missed while paused are skipped).

        Raises:
            ScheduleNotFound: No schedule has that id.
        """
        await self._bridge.resume(id)

    async def schedules(self) -> list[Schedule]:
        """Every schedule, with its next fire time."""
        return await self._bridge.schedules()

    async def get_schedule(self, id: str) -> Schedule:
        """One schedule.

        Raises:
            ScheduleNotFound: No schedule has that id.
        """
        return await self._bridge.get_schedule(id)

    # ---------------------------------------------------------------------- jobs

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
        retry = next_attempt(interrupted, retries, lost=True, why="restart")
        history.tell(
            Attempt.of(
                job,
                interrupted,
                "abandoned",
                final=retry.attempt is None,
                reason=retry.reason,
            )
        )
        if retry.attempt is not None:
            self._submit(
                Submit(
                    job=job,
                    attempt=retry.attempt,
                    reason=retry.reason,
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
                try again): refused before the job was accepted, or by the
                dispatcher after (``job_id`` names it; its history row says
                ``rejected``). Never a ``JobFailed`` with outcome ``rejected``.
            StoreError: The store could not record the job as accepted (a full
                disk, an I/O error): the job never ran. Later calls succeed once
                the store can write again.
            SzError: Arguments that do not bind to the signature of a local
                handler of the task, or an argument the store cannot keep
                (``args[1]``, ``kwargs['lock']``: arguments must be picklable, on
                every store); no job is made.
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
            # On every store, so that memory accepts what the file would.
            check_storable(positional, keywords)
        # The caller's error, refused here: never a failed job held against the
        # handler's health.
        self._check_arguments(task_id, positional, keywords)
        future = JobFuture(self._new_event)
        # Positional: once per job (STYLE rule 4's exception).
        job = Job(
            task_id,
            datetime.now(UTC),
            new_job_id(),
            positional,
            keywords,
            None,
            affinity,
            timeout if timeout is not None else self._default_wait(task_id),
        )
        # A store that cannot write (disk full) fails the call at once: the job
        # was never accepted, so nobody would ever resolve its future.
        self._backend.accept(
            job, partial(self._submit, Submit(job, future)), failed=future.fail
        )
        # A second's grace past the job's own wait, for the dispatcher's verdict
        # (no_healthy_handler) to arrive before the caller's deadline.
        if timeout is None:
            await future.wait()
        else:
            with anyio.fail_after(timeout + 1.0):
                await future.wait()
        if future.outcome is None:
            # Never accepted: the store's error (a StoreError).
            assert future.error is not None
            raise future.error
        if future.outcome == "success":
            return future.value
        if future.outcome == "rejected":
            # Refused for load after the check above let it in (a burst of
            # callers checks before any of them reaches the dispatcher).
            raise self._refused(job, future.error)
        error_type = (
            NoHealthyHandler if future.outcome == "no_healthy_handler" else JobFailed
        )
        failure = error_type(
            f"job {job.id} of task {task_id!r} ended with {future.outcome}",
            outcome=str(future.outcome),
        )
        raise failure from future.error

    def _refused(self, job: Job, error: BaseException | None) -> Overloaded:
        """The error of a job refused once accepted: the dispatcher's, or its like."""
        if isinstance(error, Overloaded):
            return error
        state = self._state
        waiting = len(state.waiting_task) if state is not None else 0
        return Overloaded(
            f"job {job.id} of task {job.task!r} was refused: the dispatcher is full",
            retry_after=(
                state.governor.retry_after(waiting) if state is not None else 1.0
            ),
            job_id=job.id,
        )

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
                task: Limit(rate=rate.rate, burst=rate.burst)
                for task, rate in limits.per_method_limits.items()
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
        ``since=`` bound rows by finish time. ``limit`` (100 by default) is from 1
        to ``HISTORY_LIMIT`` (100,000) rows.

        Raises:
            SzError: The scheduler is not running, or ``limit`` is out of range.
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise SzError(f"history limit must be an integer, got {limit!r}")
        if not 1 <= limit <= HISTORY_LIMIT:
            raise SzError(
                f"history limit must be from 1 to {HISTORY_LIMIT:,}, got {limit:,}: "
                f"page with before=<the last row> for more"
            )
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


def _config_trigger(entry: ScheduleEntry) -> tuple[str, dict[str, Any]]:
    """A config schedule's trigger, as ``ScheduleZero.schedule`` takes it."""
    if entry.cron is not None:
        return entry.cron, {}
    return "interval", dict(entry.interval or {})


def check_startup(sz: ScheduleZero) -> None:
    """Refuse now what ``sz.start()`` would refuse, opening nothing.

    ``start`` calls it first, and ``sz check-config`` calls it on the scheduler
    ``from_config`` builds: one rule for both. Each config schedule must name a
    task a handler serves (any, with a broker), and its trigger must build (by
    the ``make_trigger`` that ``schedule`` uses) and compute its first two fire
    times (the second comes due at the first fire: an interval too long for a
    date to hold would break the scheduler then). The store, the sockets and the
    key files are not opened. May read a time zone's file: not for the event loop.

    Raises:
        SzError: A schedule that cannot run (the message names it and why).
    """
    for index, entry in enumerate(sz.config.schedules):
        try:
            sz._check_task(entry.task)
            _check_fires(*_config_trigger(entry))
        except SzError as exc:
            raise SzError(f"schedules[{index}] ({entry.id}): {exc}") from None


def _check_fires(trigger: str, fields: Mapping[str, Any]) -> None:
    try:
        built = make_trigger(trigger, fields)
        if built.next() is not None:
            built.next()
    except SzError:
        raise
    except Exception as exc:  # APScheduler's own arithmetic: whatever it raises
        problem = " ".join(f"{type(exc).__name__}: {exc}".split())
        shown = f"{trigger} {dict(fields)}" if fields else repr(trigger)
        raise SzError(f"no fire time for {shown} ({problem})") from None


async def _cancel_held(dispatcher: ActorRef) -> None:
    """End the fires the dispatcher holds ahead of time as ``scheduler_stopped``.

    Shielded: it runs while the scheduler stops, perhaps because it was cancelled.
    A dispatcher that does not answer leaves its held fires accepted, to be taken
    up at the next start.
    """
    with anyio.CancelScope(shield=True), contextlib.suppress(ActorError, TimeoutError):
        await dispatcher.ask(CANCEL_HELD)
