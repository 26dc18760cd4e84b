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
import logging
import math
from collections import Counter
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from functools import partial
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
from .cluster import ClusterActor
from .config import MAX_DRAIN_SECONDS, Config, ScheduleEntry, load_config
from .deadletters import DEAD_LETTERS, DeadLetterLog, RecentDeadLetter
from .dispatcher import (
    STOPPING,
    DispatcherActor,
    DispatcherState,
    Drain,
    GovernorsQuery,
    HandlersQuery,
    HandlerStatus,
    JobsQuery,
    RunningJob,
    Submit,
)
from .errors import (
    JobTimeout,
    Overloaded,
    SzError,
    UnknownTask,
    refusal_in,
)
from .governors import AdaptivePolicy, Backpressure, Governor, GovernorStatus, Limit
from .handlers import HandlerSpec
from .handles import JobDesk, JobHandle, check_job_id, settle
from .health import HealthPolicy
from .history import HistoryActor, query_history
from .jobs import (
    Attempt,
    HistoryQuery,
    Job,
    JobFuture,
    JobState,
    JobStatus,
    LastRunsQuery,
    Outcome,
    Reason,
    new_job_id,
)
from .livecounts import LiveCounts, live_counts
from .metrics import JobMetrics, Metrics
from .remote import BrokerActor, BrokerSettings, BrokerStats, WorkersQuery
from .remote.broker import BoundRouter, CannotBind, bind_router
from .retry import next_attempt
from .startup import import_handler_module
from .storable import check_storable
from .store import PostgresDatabase
from .store.history import FileHistory, HistoryBackend, MemoryHistory, Unfinished
from .store.location import database_for, is_postgres, store_path
from .store.nodes import NodeSettings, default_node_name
from .store.scenario_runs import (
    FileScenarioRuns,
    MemoryScenarioRuns,
    ScenarioRunStore,
)
from .store.shared import NodeHistory
from .takeup import take_up_verdicts
from .tree import CORE_SUPERVISION, HandlersSupervisor

logger = logging.getLogger("sz.scheduler")

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import TracebackType

    from apscheduler.abc import Trigger

    from .bridge import Schedule
    from .scenarios.service import ScenarioService
    from .store import Database, StoreError
    from .takeup import SchedulePolicy, TakeUpVerdict

__all__ = ["ScheduleZero", "check_startup"]

logger = logging.getLogger("sz.scheduler")

#: The wait before the broker restarts after a crash: 50 ms, doubling to 5 s.
BROKER_BACKOFF = Backoff(min=0.05, max=5.0, factor=2.0, jitter=0.2, reset_after=30.0)

#: Scenario runs a memory store keeps, with their results (a durable store
#: keeps ``KEPT_RUNS``, 1,000): each result holds its whole timeline.
MEMORY_RUNS = 100

#: History rows kept in memory (the durable store keeps more).
HISTORY_ROWS = 100_000

#: The most fire times one ``upcoming()`` call computes.
MAX_UPCOMING = 1000

#: The most rows one ``history()`` call returns: all the memory store keeps.
#: Page with ``before=`` for more.
HISTORY_LIMIT = HISTORY_ROWS


class ScheduleZero:
    """The scheduler: register handlers, add schedules, run jobs, read what happened.

    Use it as ``async with sz:`` (or ``await sz.start()`` / ``await sz.stop()``),
    under asyncio or trio. Handlers are registered before it starts; schedules may
    be added before (applied at start) or after.

    Args:
        config: The configuration, defaults if None.
        name: The actor system's name, ``"sz"`` by default.
        store: Where schedules, jobs and history live: ``"memory"``,
            ``"sqlite:///path.db"`` or ``"postgresql://user@host:port/db"``;
            the config's ``store.url`` if None.
        broker: Accept remote workers (``ZMQHandler``, ``sz worker``) as set
            here; by default, as ``handlers.zmq`` says when ``scheduler.mode``
            is ``distributed``, else not at all.
        node: On a PostgreSQL store, this scheduler's name among the nodes
            sharing it; the config's ``store.node`` if None, else ``HOST-PID``.
            Two schedulers of one process on one store need names of their own.

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
        node: str | None = None,
    ) -> None:
        self.config = config if config is not None else Config()
        if node is not None:
            # Checked as the config checks it.
            self.config = attrs.evolve(
                self.config, store=attrs.evolve(self.config.store, node=node)
            )
        if broker is None and self.config.scheduler.mode == "distributed":
            broker = BrokerSettings.from_config(self.config.handlers.zmq)
        #: How remote workers are accepted, or None: local handlers only.
        self.broker_settings = broker
        self.name = name
        url = store if store is not None else self.config.store.url
        #: The SQLite file of the store, None for memory and PostgreSQL.
        self.store_path = store_path(url)
        #: The durable store's URL (SQLite or PostgreSQL); None for memory.
        self.store_url = None if url is None or url == "memory" else url
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
        #: Jobs ended since the last start, by final outcome (the history
        #: actor counts them; kept here across its restarts).
        #: Set (in ``start``) when the store's file is found deleted or replaced.
        self._store_lost: anyio.Event | None = None
        self._lost_error: StoreError | None = None
        self._broker: ActorRef | None = None
        self._state: DispatcherState | None = None
        #: Set by ``drain``: no new job is taken until the next start.
        self._draining = False
        #: Answers for job ids: handles, keyed submits, cancels in transit.
        self._desk = JobDesk()
        #: What the scheduler did, for ``metrics()``: kept across restarts of
        #: the scheduler in one process, as counters are.
        self._metrics = JobMetrics()
        #: The latest dead letters of every run.
        self._dead_letters = DeadLetterLog()
        self._scenarios: ScenarioService | None = None
        #: Where scenario runs and their results are kept (``sz.scenarios``
        #: writes them): memory until a durable store opens.
        self._scenario_runs: ScenarioRunStore = MemoryScenarioRuns(MEMORY_RUNS)
        self._bridge = Bridge(
            default_wait=self._default_wait,
            submit=self._submit,
            durable=self.store_url is not None,
            check_arguments=self._check_arguments,
        )

    @classmethod
    def from_config(
        cls, path: str, *, store: str | None = None, node: str | None = None
    ) -> ScheduleZero:
        """Build a scheduler from ``config.yaml``, registering its built-in handlers.

        ``store`` overrides the config's ``store.url``, ``node`` its
        ``store.node``.

        Raises:
            ConfigError: The file is missing or invalid (the message names the key).
            SzError: A listed module or function cannot be imported (the message
                names the file and line that failed).
        """
        config = load_config(path)
        sz = cls(config=config, store=store, node=node)
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
        retry_backoff: Backoff | None = None,
        rate: float | None = None,
        burst: int | None = None,
        observe: Callable[[Job, bool], None] | None = None,
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
        retry_backoff: Backoff | None = None,
        rate: float | None = None,
        burst: int | None = None,
        observe: Callable[[Job, bool], None] | None = None,
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
        retry_backoff: Backoff | None = None,
        rate: float | None = None,
        burst: int | None = None,
        observe: Callable[[Job, bool], None] | None = None,
    ) -> Any:
        """Register a function as a handler of the task ``name`` (its own name).

        Usable bare (``@sz.handler``) or with options
        (``@sz.handler(name=..., concurrency=5, timeout=30, retries=2)``).
        ``retry_backoff`` (the runtime's ``Backoff``) spaces the retries of a
        failed or timed-out attempt: the first after ``min`` seconds, each next
        ``factor`` times longer, up to ``max``, with ``jitter``; meanwhile
        ``jobs()`` shows the job ``held`` (``retry_backoff``). Without it, a
        retry follows at once.
        ``rate`` caps the jobs it starts per second (a token bucket of ``burst``
        tokens, one second's worth by default): a job over it waits for a token,
        and its history row says how long (``waited``, reason ``rate_limited``). Async
        functions run on the event loop; sync ones in worker threads. Registering
        several functions under one name makes several handlers of that task
        (``task``, ``task#2``, ...), among which the dispatcher spreads its jobs.
        ``observe(job, returned)``, if given, is told on the event loop right
        after each call of an async function returns (True) or raises (False):
        a count of executions as the handler saw them, without a wrapper
        around the function (a sync one is not observed: wrap it).
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
                    retry_backoff=retry_backoff,
                    observe=observe,
                )
            except (ValueError, TypeError) as exc:
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

    @property
    def scenarios(self) -> ScenarioService:
        """Scenario runs inside this scheduler: a library, runs, results, schedules.

        Made on first use. Made before the scheduler starts, it registers the
        handler of the task ``sz.scenario`` that recurring runs' schedules fire
        (``sz serve`` does so); made after, it runs scenarios but cannot
        schedule them. Each run has a fresh embedded scheduler of its own
        (``docs/guide/scenarios.md``, "Through a server").
        """
        if self._scenarios is None:
            # Here, not at the top: the scenarios package builds on this module.
            from .scenarios.service import ScenarioService

            self._scenarios = ScenarioService(self)
        return self._scenarios

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
            file: Database | None = None
            self._store_lost, self._lost_error = anyio.Event(), None
            file = self._database()
            if file is not None:
                file.on_lost = self._on_store_lost
                await file.open()
                stack.push_async_callback(file.close)
                self._backend = (
                    NodeHistory(
                        file,
                        file.node.name,
                        self.config.store.max_result_bytes,
                        self._metrics.record,
                    )
                    if isinstance(file, PostgresDatabase) and file.node is not None
                    else FileHistory(
                        file, self.config.store.max_result_bytes, self._metrics.record
                    )
                )
                runs = FileScenarioRuns(
                    file,
                    node=(
                        file.node.name
                        if isinstance(file, PostgresDatabase) and file.node is not None
                        else None
                    ),
                )
                # The store (or, on a cluster, this node's name) is held by one
                # scheduler at a time: a run of ours still "running" in it was
                # cut off by the end of the last process.
                abandoned = await runs.abandon(datetime.now(UTC))
                if abandoned:
                    logger.warning(
                        "%d scenario run(s) were cut off by the end of the last "
                        "process: kept as aborted",
                        abandoned,
                    )
                self._scenario_runs = runs
                logger.info(
                    "store: %s",
                    f"sqlite:///{self.store_path.absolute()}"
                    if self.store_path is not None
                    else file.where,
                )
            else:
                self._backend = MemoryHistory(HISTORY_ROWS, self._metrics.record)
                if not isinstance(self._scenario_runs, MemoryScenarioRuns):
                    self._scenario_runs = MemoryScenarioRuns(MEMORY_RUNS)
                logger.info("store: memory (nothing outlives the process)")
            system = await stack.enter_async_context(
                ActorSystem(self.name, supervision=CORE_SUPERVISION)
            )
            self._system = system
            # Subscribed before any actor of ours starts: none of their dead
            # letters is missed. The task ends as the system exits.
            await lowlevel.task_group(system).start(self._dead_letters.collect, system)
            self._bridge.attach(system, self._backend)
            self._new_event = lowlevel.event_factory(system)
            stack.callback(self._desk.close)
            # The system's task group waits for its tasks: this one is cancelled
            # on the way out, before the system exits.
            measuring = anyio.CancelScope()
            stack.callback(measuring.cancel)
            lowlevel.task_group(system).start_soon(self._metrics.lag.run, measuring)
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
                durable=self.store_url is not None,
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
            self._desk.open(
                self._dispatcher, self._history, self._backend, self._new_event
            )
            # On the way out, after APScheduler stops (it is entered later) and
            # before the actors do: fires taken early get their final row now.
            stack.push_async_callback(_stopping, self._dispatcher)
            await system.spawn(
                HandlersSupervisor, specs, self._dispatcher, name="handlers"
            )
            if self.broker_settings is not None:
                await self._spawn_broker(system, state)
            unfinished = await self._backend.unfinished()
            await self._bridge.start(
                stack,
                file=file,
                tasks=self._tasks,
                take_up=partial(self._take_up_all, unfinished) if unfinished else None,
            )
            if isinstance(self._backend, NodeHistory):
                assert isinstance(file, PostgresDatabase)
                await system.spawn(
                    ClusterActor,
                    file,
                    self._take_over,
                    name="cluster",
                    restart="permanent",
                    capacity=10,
                )
            await self._add_config_schedules()
            self._stack = stack.pop_all()

    def _database(self) -> Database | None:
        """The store's database, not yet open: a PostgreSQL one as a node."""
        if not is_postgres(self.store_url):
            return database_for(self.store_url)
        assert self.store_url is not None
        store = self.config.store
        settings = NodeSettings(
            name=store.node or default_node_name(),
            lease=store.lease,
            heartbeat=store.heartbeat_seconds,
            endpoint=(
                None if self.broker_settings is None else self.broker_settings.endpoint
            ),
        )
        return PostgresDatabase(self.store_url, node=settings)

    async def _take_over(self, unfinished: list[Unfinished]) -> None:
        """Take up the accepted jobs of a node taken over (``/user/cluster``)."""
        if self._history is None:
            return  # stopping: they stay this node's, for its next start
        await self._bridge.take_over(partial(self._take_up_all, unfinished))

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

    def metrics(self) -> Metrics:
        """Counters and histograms of what this scheduler did (``Metrics``).

        Jobs and attempts by task and outcome, attempt durations, fire
        lateness, governor waits, and the event loop's lag. Counters grow for
        the life of the process; the gateway serves them at ``/metrics``.
        """
        return self._metrics.snapshot()

    async def drain(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - how long jobs may run on
    ) -> list[RunningJob]:
        """Start no more jobs, and give those running ``timeout`` seconds to end.

        For a stop that lets work finish (``sz serve`` drains on SIGTERM): from
        now on no fire is taken, fires taken ahead of their time end
        ``cancelled`` (``scheduler_stopped``), ``run_now`` is refused, and jobs
        not yet started stay waiting. On the SQLite store they stay accepted,
        and the next start takes them up; on the memory store they end with
        the process. Then leave ``async with`` (or call ``stop``): jobs still
        running are abandoned (a sync handler's thread runs on until the
        process exits), and on the SQLite store taken up at the next start.

        Args:
            timeout: Seconds to wait, ``scheduler.drain_timeout`` of the config
                (5 by default) if None; 0 waits for nothing.

        Returns:
            The jobs still running when the time was up, with their handlers
            (each logged at WARNING), or an empty list if all ended.

        Raises:
            SzError: The scheduler is not running, or ``timeout`` is not a
                number of seconds from 0 to 3,600.
        """
        if timeout is None:
            timeout = self.config.scheduler.drain_timeout
        given: object = timeout  # checked as given: a caller may pass anything
        if (
            isinstance(given, bool)
            or not isinstance(given, int | float)
            or not (math.isfinite(given) and 0 <= given <= MAX_DRAIN_SECONDS)
        ):
            raise SzError(
                f"drain timeout must be a number of seconds from 0 to "
                f"{MAX_DRAIN_SECONDS:,.0f}, got {timeout!r}"
            )
        dispatcher = self._dispatcher
        if dispatcher is None:
            raise SzError("the scheduler is not running")
        self._draining = True
        await self._bridge.stop_fires()
        quiet = self._new_event()
        running: list[RunningJob] = await dispatcher.ask(Drain(quiet=quiet.set))
        if running:
            logger.info(
                "draining: %d job(s) running, waiting up to %g s",
                len(running),
                timeout,
            )
            with anyio.move_on_after(timeout):
                await quiet.wait()
            if quiet.is_set():
                running = []
            else:
                # Asked again: the answer is who runs now.
                running = await dispatcher.ask(Drain(quiet=quiet.set))
        for entry in running:
            logger.warning(
                "drain timed out: abandoning job %s of task %s on %s (attempt %d)",
                entry.job.id,
                entry.job.task,
                entry.handler,
                entry.attempt,
            )
        return running

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
                self._draining = False
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

        With an ``id`` that names a stored schedule, the stored one is replaced;
        unless it was added with the very same trigger name, fields, arguments
        and options (as a restart adds its config's schedules again): then it
        is kept as it is, with its fire times and any pause made since, so a
        restart does not fire it anew. (A trigger object always replaces.)

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

    async def upcoming(self, id: str, n: int = 5) -> list[datetime]:
        """A schedule's next ``n`` fire times (5 by default, at most 1,000).

        Computed on a copy of its trigger: the schedule itself does not move.
        Fewer if its trigger ends first; none while it is paused (whatever the
        reason: it fires from the time it is resumed).

        Raises:
            ScheduleNotFound: No schedule has that id.
            SzError: ``n`` is not an integer from 1 to 1,000, or the scheduler
                is not running.
        """
        given: object = n  # checked as given: a caller may pass anything
        if (
            isinstance(given, bool)
            or not isinstance(given, int)
            or not 1 <= given <= MAX_UPCOMING
        ):
            raise SzError(f"n must be an integer from 1 to {MAX_UPCOMING:,}, got {n!r}")
        return await self._bridge.upcoming(id, n)

    # ---------------------------------------------------------------------- jobs

    def _submit(self, submit: Submit) -> None:
        """Give an accepted job to the dispatcher; if it is full, reject the job.

        The dispatcher holds 100,000 jobs before it refuses more: past that, a
        job ends at once as ``rejected`` rather than wait without bound.
        """
        dispatcher, history = self._dispatcher, self._history
        if dispatcher is None or history is None:
            return  # stopping: the job stays accepted and is taken up next start
        cancelled = self._desk.cancel_on_arrival
        if cancelled and submit.job.id in cancelled:
            # Cancelled between its acceptance and now: it never runs.
            cancelled.discard(submit.job.id)
            history.tell(
                Attempt.of(
                    submit.job,
                    submit.attempt,
                    "cancelled",
                    final=True,
                    reason="cancel_requested",
                )
            )
            if submit.future is not None:
                submit.future.resolve("cancelled", None, None)
            return
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

    def _take_up_all(
        self,
        unfinished: Sequence[Unfinished],
        policies: Mapping[str, SchedulePolicy],
        now: datetime,
    ) -> list[str]:
        """Take up the jobs the last run left unfinished, each schedule's as a round.

        Called by the bridge before the schedule loop starts, with each
        schedule's policy. A job of a schedule gets its verdict from
        ``take_up_verdicts``: past the schedule's misfire grace it ends
        ``missed``; coalesced into another job of the round (or into a fire
        that came due while down) it ends ``coalesced``; else it is taken up
        as a job of no schedule is (``_take_up``). A job of no schedule, or of
        one removed since, is taken up as before.

        Returns:
            The schedules whose fires that came due while down are folded into
            a job taken up and retried (an ``earliest`` schedule's).
        """
        rounds: dict[str, list[Unfinished]] = {}
        for job in unfinished:
            schedule_id = job.job.schedule_id
            if schedule_id is None or schedule_id not in policies:
                self._take_up(job)
            else:
                rounds.setdefault(schedule_id, []).append(job)
        folds: list[str] = []
        for schedule_id, jobs in rounds.items():
            jobs.sort(key=lambda taken: taken.job.scheduled_at)
            policy = policies[schedule_id]
            verdicts = take_up_verdicts(
                [taken.job.scheduled_at for taken in jobs], policy, now
            )
            counts: Counter[str] = Counter()
            for taken, verdict in zip(jobs, verdicts, strict=True):
                if verdict != "kept":
                    self._skip_taken_up(taken, verdict, policy)
                    counts[verdict] += 1
                elif self._take_up(taken):
                    counts["retried"] += 1
                    if policy.coalesce == "earliest" and policy.fires_due:
                        folds.append(schedule_id)
                else:
                    counts["abandoned"] += 1
            if counts["missed"] or counts["coalesced"]:
                logger.warning(
                    "schedule %s: %d jobs taken up after restart: %s",
                    schedule_id,
                    len(jobs),
                    ", ".join(
                        f"{counts[what]} {what}"
                        for what in ("missed", "coalesced", "retried", "abandoned")
                        if counts[what]
                    ),
                )
        return folds

    def _skip_taken_up(
        self, unfinished: Unfinished, verdict: TakeUpVerdict, policy: SchedulePolicy
    ) -> None:
        """End a job taken up without running it again: ``missed`` or ``coalesced``.

        The final row is its interrupted attempt's, in place of ``abandoned``.
        """
        history = self._history
        assert history is not None
        reason: Reason = (
            "misfire_grace_time"
            if verdict == "missed"
            else "coalesce_latest"
            if policy.coalesce == "latest"
            else "coalesce_earliest"
        )
        outcome: Outcome = "missed" if verdict == "missed" else "coalesced"
        history.tell(
            Attempt.of(
                unfinished.job,
                unfinished.attempts + 1,
                outcome,
                final=True,
                reason=reason,
            )
        )

    def _take_up(self, unfinished: Unfinished) -> bool:
        """A job the last run accepted and never finished: retry it or abandon it.

        Its interrupted attempt is recorded as ``abandoned``; the next one follows
        while the task's handlers allow that many attempts (their ``retries`` plus
        the retries of a job lost with its handler), as for a job whose handler
        died mid-job.

        Returns:
            True if it is retried, False if it ended ``abandoned``.
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
        return retry.attempt is not None

    async def submit(
        self,
        task_id: str,
        *,
        args: Sequence[Any] | Mapping[str, Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        affinity: str | None = None,
        wait: float | None = None,
    ) -> JobHandle:
        """Accept one job now and return its handle at once, without waiting for it.

        ``await handle.result()`` waits for its end; ``handle.status()`` says
        where it stands; ``handle.cancel()`` cancels it. Without a ``job_id``
        nothing is waited for, and this is not a checkpoint (as
        ``ActorRef.tell`` is not): ``result()`` is.

        ``job_id`` is an idempotency key: if a job of that id was accepted
        already (live, or ended within the history's retention,
        ``reporting.metrics.retention_days``; on the SQLite store, before a
        restart too), no new job is made and the handle is the first job's,
        whatever the task and arguments given now. Without it, a fresh id.

        Args:
            task_id: The task to run.
            args: Positional arguments (a sequence) or keyword arguments (a
                mapping).
            kwargs: Keyword arguments.
            job_id: The job's id, chosen by the caller (at most 200 characters).
            affinity: Jobs with the same key stick to one handler while it is
                healthy.
            wait: Seconds the job may wait for a healthy handler before it ends
                ``no_healthy_handler`` (the handlers' default if None).

        Raises:
            UnknownTask: No handler serves ``task_id``.
            Overloaded: Too many jobs wait already (``retry_after`` says when).
            StoreError: The store could not record the job as accepted.
            SzError: Bad arguments (as ``run_now``), a bad ``job_id``, or the
                scheduler is not running or drains.
        """
        desk = self._desk
        if job_id is None:
            # Nothing to wait for: no checkpoint either (AnyIO's cheapest,
            # checkpoint_if_cancelled, costs a job a tenth of its time).
            job, future = self._accept(task_id, args, kwargs, affinity, wait)
            return JobHandle(desk, job.id, future)
        check_job_id(job_id)
        # One decision per id at a time: a second submit of it waits for the
        # first to find the id known, or to accept its job.
        while (deciding := desk.deciding.get(job_id)) is not None:
            await deciding.wait()
        known = desk.keyed.get(job_id)
        if known is not None:
            return JobHandle(desk, job_id, known)
        decided = self._new_event()
        desk.deciding[job_id] = decided
        try:
            if await desk.known(job_id):
                return JobHandle(desk, job_id)
            job, future = self._accept(
                task_id, args, kwargs, affinity, wait, job_id=job_id
            )
            desk.keyed[job_id] = future
            return JobHandle(desk, job_id, future)
        finally:
            del desk.deciding[job_id]
            decided.set()

    def job(self, job_id: str) -> JobHandle:
        """A handle for the job ``job_id``: of this run, or of an earlier one.

        Its ``result()`` works for a job that ended before a restart on the
        SQLite store (within ``store.max_result_bytes``), and for any job
        while a handle from its ``submit`` is held.

        Raises:
            SzError: ``job_id`` is not a job id (a non-empty string).
        """
        check_job_id(job_id)
        return JobHandle(self._desk, job_id, self._desk.keyed.get(job_id))

    async def jobs(self, state: JobState | None = None) -> list[JobStatus]:
        """The live jobs, or only those in ``state``.

        Held until due, waiting (and why), running (where, since when, which
        attempt): see ``JobStatus``.

        Raises:
            SzError: The scheduler is not running, or ``state`` is not
                ``held``, ``waiting`` or ``running``.
        """
        if state not in (None, "held", "waiting", "running"):
            raise SzError(
                f"state must be 'held', 'waiting' or 'running', got {state!r}"
            )
        if self._dispatcher is None:
            raise SzError("the scheduler is not running")
        statuses: list[JobStatus] = await self._dispatcher.ask(JobsQuery(state=state))
        return statuses

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

        ``submit`` and ``result`` in one call. ``timeout`` bounds how long this
        call waits (and how long the job may wait for a healthy handler); the
        handler's own ``timeout`` bounds each attempt.

        Raises:
            UnknownTask: No handler serves ``task_id``.
            JobFailed: The job ended without success (``__cause__`` is the handler's
                exception); ``NoHealthyHandler`` if no healthy handler took it.
            JobTimeout: ``timeout`` passed first; the job itself goes on
                (``job_id`` names it). A ``TimeoutError`` too.
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
                every store); no job is made. Or the scheduler stopped before
                the job ended.
        """
        job, future = self._accept(task_id, args, kwargs, affinity, timeout)
        # A second's grace past the job's own wait, for the dispatcher's verdict
        # (no_healthy_handler) to arrive before the caller's deadline.
        if timeout is None:
            await future.wait()
        else:
            with anyio.move_on_after(timeout + 1.0):
                await future.wait()
            if not future.done:
                raise JobTimeout(
                    f"job {job.id} of task {task_id!r} did not end within "
                    f"{timeout:g} s; it goes on: sz.job({job.id!r}) waits on it "
                    "again or cancels it",
                    job_id=job.id,
                )
        if future.outcome == "success":
            return future.value
        if future.outcome == "rejected":
            # Refused for load after the check let it in (a burst of callers
            # checks before any of them reaches the dispatcher).
            raise self._refused(job, future.error)
        return settle(job.id, task_id, future)

    def _accept(
        self,
        task_id: str,
        args: Sequence[Any] | Mapping[str, Any] | None,
        kwargs: Mapping[str, Any] | None,
        affinity: str | None,
        wait: float | None,
        job_id: str | None = None,
    ) -> tuple[Job, JobFuture]:
        """Check a job, and hand it to the store to accept; its future.

        The dispatcher gets it once the store has it (at once on memory).

        Raises:
            As ``submit``; a ``StoreError`` of the accept itself reaches the
            future instead.
        """
        if task_id not in self._tasks:
            self._check_task(task_id)
        if self._dispatcher is None:
            raise SzError("the scheduler is not running")
        if self._draining:
            raise SzError("the scheduler is stopping (drained): it takes no new job")
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
            job_id or new_job_id(),
            positional,
            keywords,
            None,
            affinity,
            wait if wait is not None else self._default_wait(task_id),
        )
        # A store that cannot write (disk full) fails the future at once: the
        # job was never accepted, so nobody would ever resolve it otherwise.
        self._backend.accept(
            job, partial(self._submit, Submit(job, future)), failed=future.fail
        )
        return job, future

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

    def dead_letters(self, limit: int = 100) -> list[RecentDeadLetter]:
        """The latest messages no actor processed, newest first.

        The scheduler keeps the last ``DEAD_LETTERS`` (1,000) of its runs, each
        with its message described as text (``RecentDeadLetter``); the actor
        system's ``statistics().dead_letters`` counts them all.

        Args:
            limit: At most this many, 100 by default (from 1 to 1,000).

        Raises:
            SzError: ``limit`` is not an integer from 1 to 1,000.
        """
        given: object = limit  # checked as given: a caller may pass anything
        if (
            isinstance(given, bool)
            or not isinstance(given, int)
            or not 1 <= given <= DEAD_LETTERS
        ):
            raise SzError(
                f"dead letters limit must be an integer from 1 to {DEAD_LETTERS:,}, "
                f"got {limit!r}"
            )
        return self._dead_letters.latest(limit)

    async def handlers(self) -> list[HandlerStatus]:
        """Every handler's status: health state, counts, durations, load."""
        if self._dispatcher is None:
            raise SzError("the scheduler is not running")
        result: list[HandlerStatus] = await self._dispatcher.ask(HandlersQuery())
        return result

    def live_counts(self) -> LiveCounts:
        """How many jobs are held, waiting, running and retrying; handlers up.

        The counts ``jobs()`` and ``handlers()`` would give at this moment,
        read from the dispatcher's state rather than asked of it: not a
        checkpoint, and it never waits behind the jobs in the dispatcher's
        mailbox, so a dashboard may poll it under any load (see
        ``LiveCounts``).

        Raises:
            SzError: The scheduler is not running.
        """
        state, system = self._state, self._system
        if self._dispatcher is None or state is None or system is None:
            raise SzError("the scheduler is not running")
        return live_counts(state, lowlevel.clock(system).now())

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
        rows: list[Attempt] = await query_history(self._history, query)
        return rows

    async def last_runs(self, schedule_ids: Iterable[str]) -> dict[str, Attempt]:
        """The final history row of each schedule's latest job that ended.

        One read of the store for them all (a dashboard's schedules list),
        where asking ``history(schedule_id=..., final=True, limit=1)`` for each
        would be one per schedule. A schedule none of whose jobs ended yet (or
        whose rows were pruned) is absent from the answer. A checkpoint.

        Args:
            schedule_ids: The schedules, at most ``HISTORY_LIMIT`` (100,000).

        Raises:
            SzError: The scheduler is not running, or too many ids were given.
        """
        ids = tuple(dict.fromkeys(schedule_ids))
        if len(ids) > HISTORY_LIMIT:
            raise SzError(
                f"last_runs takes at most {HISTORY_LIMIT:,} schedules, got {len(ids):,}"
            )
        if self._history is None:
            raise SzError("the scheduler is not running")
        if not ids:
            return {}
        found: dict[str, Attempt] = await query_history(
            self._history, LastRunsQuery(schedule_ids=ids)
        )
        return found


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


async def _stopping(dispatcher: ActorRef) -> None:
    """Tell the dispatcher the scheduler stops (``Stopping``).

    Fires held ahead of their time end as ``scheduler_stopped``; callers still
    waiting on a job get an error rather than wait for ever.

    Shielded: it runs while the scheduler stops, perhaps because it was cancelled.
    A dispatcher that does not answer leaves its held fires accepted, to be taken
    up at the next start.
    """
    with anyio.CancelScope(shield=True), contextlib.suppress(ActorError, TimeoutError):
        await dispatcher.ask(STOPPING)
