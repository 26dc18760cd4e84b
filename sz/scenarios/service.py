"""Scenario runs inside a running ScheduleZero: ``sz.scenarios``.

The gateway's ``/api/tests`` routes (and through them ``sz scenario run
--url`` and the dashboard) use one ``ScenarioService`` per scheduler. It keeps
a library (the shipped scenarios and those loaded as YAML text), starts runs,
follows them while they run, keeps their results, and schedules recurring runs
through the scheduler itself.

Each run is an actor of the *server's* tree, ``/user/scenarios/<run id>``,
whose task calls :func:`run_scenario`: the run gets a fresh embedded scheduler
of its own, so its faults (kills, worker crashes, a blocked loop) hit that
scheduler and never the server's own scheduler or store. The two share the
process and its event loop, and nothing else. Killing or stopping the run's
actor (``sz kill``, the dashboard's tree, ``abort``) cancels the run; its
scheduler and worker processes are stopped before the actor is gone, and the
run ends ``aborted``. Runs are bounded (``max_running``, 2 by default): one
more is refused with :class:`TooManyRuns`.

Every run is also kept in the scheduler's store (``sz.store.scenario_runs``):
written as it starts and once more as it ends (its outcome, its result's JSON
export and one number per metric for trends), so that on a SQLite or
PostgreSQL store past runs survive a restart. The store keeps the newest
1,000 runs. ``runs`` and ``run`` read the runs of this process from memory
(the latest ``kept`` ended ones, 100 by default, and every live one) and the
others from the store. A run the process ended in the middle of is found
``running`` when the store opens again, and kept as ``aborted`` with the error
"the process ended during the run".
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import anyio
import attrs

from actors import Actor

from ..errors import ScenarioError, SzError, TooManyRuns, UnknownScenario
from ..handlers import CURRENT_JOB
from ..store.scenario_runs import KEPT_RUNS, StoredRun
from .context import Progress
from .loader import parse_scenario
from .model import Scalar, Scenario
from .result import Outcome, ScenarioResult, TimelineEvent
from .runner import run_scenario
from .shipped import library_scenarios
from .source import MAX_SCENARIO_BYTES

if TYPE_CHECKING:
    from actors import ActorRef

    from ..scheduler import ScheduleZero
    from ..store.scenario_runs import ScenarioRunStore

__all__ = [
    "KEPT_RESULTS",
    "MAX_LISTED",
    "MAX_LOADED",
    "MAX_RUNNING",
    "RUN_STATES",
    "SCENARIO_TASK",
    "LibraryEntry",
    "RunState",
    "RunView",
    "ScenarioService",
    "trend_metrics",
]

#: Runs that may go on at once in one scheduler, by default.
MAX_RUNNING = 2

#: Finished runs whose results are kept, the latest first, by default.
KEPT_RESULTS = 100

#: The most runs one ``runs`` call lists: as many as a store keeps.
MAX_LISTED = KEPT_RUNS

#: Scenarios loaded through the API that the library keeps (the oldest goes).
MAX_LOADED = 100

#: The task of the handler a recurring run's schedule fires.
SCENARIO_TASK = "sz.scenario"

RunStateName = Literal["running", "passed", "failed", "aborted", "error"]
#: Where a run stands: ``running``, then its outcome.
RUN_STATES: tuple[RunStateName, ...] = (
    "running",
    "passed",
    "failed",
    "aborted",
    "error",
)


@attrs.frozen(kw_only=True)
class LibraryEntry:
    """A scenario of the library.

    Attributes:
        id: Its id: a shipped scenario's name, or ``<name>-<hash>`` for one
            loaded (the same text loaded again has the same id).
        name: The scenario's name.
        description: Its description.
        parameters: Each parameter's default.
        units: The unit each reported metric is shown in, where one is given.
        source: ``shipped`` or ``loaded``.
        yaml: Its text.
    """

    id: str
    name: str
    description: str
    parameters: Mapping[str, Scalar]
    units: Mapping[str, str]
    source: Literal["shipped", "loaded"]
    yaml: str

    def to_json(self) -> dict[str, Any]:
        """The entry as plain JSON data."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
            "units": dict(self.units),
            "source": self.source,
            "yaml": self.yaml,
        }


def _units(scenario: Scenario) -> dict[str, str]:
    return {entry.name: entry.unit for entry in scenario.metrics if entry.unit}


def _entry(
    id: str, scenario: Scenario, source: Literal["shipped", "loaded"], text: str
) -> LibraryEntry:
    return LibraryEntry(
        id=id,
        name=scenario.name,
        description=scenario.description,
        parameters=dict(scenario.parameters),
        units=_units(scenario),
        source=source,
        yaml=text,
    )


def _read_shipped() -> dict[str, LibraryEntry]:
    """The shipped scenarios (blocking: file reads), by id; invalid ones left out."""
    found: dict[str, LibraryEntry] = {}
    for name, path in library_scenarios().items():
        text = path.read_text(encoding="utf-8")
        try:
            scenario = parse_scenario(text, source=path.name)
        except ScenarioError:
            continue  # a broken shipped file is the shipped tests' to catch
        found[name] = _entry(name, scenario, "shipped", text)
    return found


def _progress_json(progress: Progress) -> dict[str, Any]:
    return {
        "why": progress.why,
        "step": progress.step,
        "index": progress.index,
        "total": progress.total,
        "elapsed": round(progress.elapsed, 6),
        # JSON has no infinities: a metric that is not finite is shown null.
        "metrics": {
            name: value if math.isfinite(value) else None
            for name, value in progress.metrics.items()
        },
    }


def trend_metrics(result: ScenarioResult) -> dict[str, float]:
    """One number per reported metric of ``result``, for trends across runs.

    A metric that is one number is itself; one with samples is its ``p99``
    (in the metric's base unit: seconds, bytes, a count). A metric with no
    samples, or not a finite number, is left out.
    """
    found: dict[str, float] = {}
    for name, value in result.metrics.items():
        number = value.get("p99") if isinstance(value, Mapping) else value
        if isinstance(number, int | float) and math.isfinite(number):
            found[name] = float(number)
    return found


@attrs.define(kw_only=True)
class RunState:
    """One run the service started: where it stands, and its result once ended.

    Attributes:
        run_id: The run's id; its actor is ``/user/scenarios/<run_id>``.
        scenario_id: The library id it runs.
        name: The scenario's name.
        seed: The seed of its random choices.
        parameters: The parameters it runs with.
        schedule_id: The schedule that started it, or None.
        units: The unit each reported metric is shown in.
        started_at: When it was started (UTC).
        state: ``running``, then its outcome.
        progress: Its latest progress, or None before the first.
        timeline: Its timeline so far, as it happened.
        result: Its result once it ended (for a run read from a store's
            list: None, with ``finished_at``, ``passed`` and ``metrics``
            standing in for it).
        error: Why it ended early, or None.
        finished_at: When it ended, for a run without its result at hand.
        passed: Whether it passed, for a run without its result at hand.
        metrics: Its trend metrics (``trend_metrics``), for a run without
            its result at hand.
        done: Set when it ended.
        on_end: Called once, with the run, when it ends (None by default).
    """

    run_id: str
    scenario_id: str
    name: str
    seed: int
    parameters: Mapping[str, Scalar]
    schedule_id: str | None = None
    units: Mapping[str, str] = attrs.Factory(dict)
    started_at: datetime = attrs.Factory(lambda: datetime.now(UTC))
    state: RunStateName = "running"
    progress: Progress | None = None
    timeline: list[TimelineEvent] = attrs.Factory(list)
    result: ScenarioResult | None = None
    error: str | None = None
    finished_at: datetime | None = None
    passed: bool | None = None
    metrics: Mapping[str, float] = attrs.Factory(dict)
    done: anyio.Event = attrs.Factory(anyio.Event)
    on_end: Callable[[RunState], None] | None = attrs.field(
        default=None, eq=False, repr=False
    )

    @property
    def running(self) -> bool:
        """Whether it still runs."""
        return self.state == "running"

    def finish(self, result: ScenarioResult) -> None:
        """It ended with ``result``."""
        if not self.running:
            return
        self.result = result
        self.state = result.outcome
        self.error = result.error
        self._ended()

    def _ended(self) -> None:
        result = self.result
        if result is not None:
            self.finished_at = result.finished_at
            self.passed = result.passed
            self.metrics = trend_metrics(result)
        self.done.set()
        if self.on_end is not None:
            self.on_end(self)

    def abort(self, why: str, state: Outcome = "aborted") -> None:
        """It ended without a result of the runner's: killed, or a bug."""
        if not self.running:
            return
        self.state = state
        self.error = why
        now = datetime.now(UTC)
        first = self.timeline[0] if self.timeline else None
        end = TimelineEvent(
            at=now,
            offset=(
                first.offset + (now - first.at).total_seconds()
                if first is not None
                else 0.0
            ),
            event="run_end",
            name=self.name,
            detail={"outcome": state, "error": why},
        )
        self.timeline.append(end)
        started = self.timeline[0].at if self.timeline else self.started_at
        self.result = ScenarioResult(
            name=self.name,
            run_id=self.run_id,
            seed=self.seed,
            parameters=dict(self.parameters),
            started_at=started,
            finished_at=end.at,
            outcome=state,
            timeline=tuple(self.timeline),
            error=why,
        )
        self._ended()

    def progress_json(self) -> dict[str, Any]:
        """Where it stands, as the ``progress`` event of its stream shows it."""
        shown: dict[str, Any] = {
            "run_id": self.run_id,
            "scenario": self.name,
            "state": self.state,
            "why": "start",
            "step": "",
            "index": 0,
            "total": 0,
            "elapsed": 0.0,
            "metrics": {},
        }
        if self.progress is not None:
            shown.update(_progress_json(self.progress))
        return shown

    def to_json(self) -> dict[str, Any]:
        """The run as ``/api/tests/results/{id}`` shows it.

        Once ended: the result's JSON export, plus ``state``, ``outcome``,
        ``error``, ``scenario_id``, ``schedule_id``, ``units`` and the last
        ``progress``. While running: the same keys but the result's.
        """
        shown: dict[str, Any] = {
            "run_id": self.run_id,
            "scenario_id": self.scenario_id,
            "schedule_id": self.schedule_id,
            "name": self.name,
            "seed": self.seed,
            "parameters": dict(self.parameters),
            "units": dict(self.units),
            "started_at": self.started_at.isoformat(),
            "state": self.state,
            "outcome": None if self.running else self.state,
            "error": self.error,
            "progress": self.progress_json(),
        }
        if self.result is not None:
            shown.update(self.result.to_json())
        return shown

    def summary_json(self) -> dict[str, Any]:
        """The run as ``/api/tests/results`` lists it.

        ``metrics`` has one number per reported metric (``trend_metrics``;
        empty while it runs), ``units`` the unit each is shown in, and
        ``outcome`` is None while it runs, then its ``state``.
        """
        finished = self.finished_at
        return {
            "run_id": self.run_id,
            "scenario_id": self.scenario_id,
            "schedule_id": self.schedule_id,
            "name": self.name,
            "seed": self.seed,
            "state": self.state,
            "outcome": None if self.running else self.state,
            "error": self.error,
            "started_at": self.started_at.isoformat(),
            "finished_at": finished.isoformat() if finished is not None else None,
            "passed": self.passed,
            "metrics": dict(self.metrics),
            "units": dict(self.units),
        }

    def stored(self) -> StoredRun:
        """The run as the store keeps it (with its result's export once ended)."""
        result = self.result
        return StoredRun(
            run_id=self.run_id,
            scenario_id=self.scenario_id,
            name=self.name,
            seed=self.seed,
            parameters=dict(self.parameters),
            schedule_id=self.schedule_id,
            started_at=self.started_at,
            finished_at=self.finished_at,
            outcome=None if self.running else self.state,
            error=self.error,
            passed=self.passed,
            units=dict(self.units),
            metrics=dict(self.metrics),
            result=result.to_stored_json() if result is not None else None,
        )

    @classmethod
    def from_stored(cls, stored: StoredRun) -> RunState:
        """A run read back from the store: ended (or, listed, still running).

        A run whose result was not kept (one cut off by the end of its
        process) gets an empty result of its outcome, so that it shows as
        any ended run does.
        """
        state: RunStateName = next(
            (known for known in RUN_STATES[1:] if known == stored.outcome),
            "running" if stored.outcome is None else "error",
        )
        result: ScenarioResult | None = None
        if stored.result is not None:
            with contextlib.suppress(ValueError):
                result = ScenarioResult.from_json(
                    {**stored.result, "outcome": stored.outcome, "error": stored.error}
                )
        elif state != "running" and stored.finished_at is not None:
            result = ScenarioResult(
                name=stored.name,
                run_id=stored.run_id,
                seed=stored.seed,
                parameters=dict(stored.parameters),
                started_at=stored.started_at,
                finished_at=stored.finished_at,
                outcome=state,
                error=stored.error,
            )
        run = cls(
            run_id=stored.run_id,
            scenario_id=stored.scenario_id,
            name=stored.name,
            seed=stored.seed,
            parameters=dict(stored.parameters),
            schedule_id=stored.schedule_id,
            units=dict(stored.units),
            started_at=stored.started_at,
            state=state,
            result=result,
            error=stored.error,
            finished_at=stored.finished_at,
            passed=stored.passed,
            metrics=dict(stored.metrics),
            timeline=list(result.timeline) if result is not None else [],
        )
        if state != "running":
            run.done.set()
        return run


@attrs.frozen(kw_only=True)
class RunView:
    """What a watcher of a run has not seen yet (``ScenarioService.watch``).

    Attributes:
        progress: Where the run stands (``RunState.progress_json``).
        events: Timeline events after the ``seen`` first, as JSON.
        seen: How many timeline events there are now: the next ``seen``.
        result: The run as ``RunState.to_json`` shows it once ended; None
            while it runs.
    """

    progress: dict[str, Any]
    events: tuple[dict[str, Any], ...]
    seen: int
    result: dict[str, Any] | None


@attrs.frozen
class _Start:
    """Ask ``/user/scenarios`` to start a run's actor."""

    run: RunState
    scenario: Scenario


class RunActor(Actor):
    """``/user/scenarios/<run id>`` of the server: runs one scenario to its end.

    Args:
        run: The run's state, which it keeps up to date.
        scenario: The scenario, parameters applied.
    """

    def __init__(self, run: RunState, scenario: Scenario) -> None:
        self.run = run
        self.scenario = scenario

    async def on_start(self) -> None:
        """Start the run in a task of this actor's."""
        self.start_task(self._main, name="run")

    def _progress(self, progress: Progress) -> None:
        self.run.progress = progress

    def _event(self, event: TimelineEvent) -> None:
        self.run.timeline.append(event)

    async def _main(self) -> None:
        run = self.run
        try:
            result = await run_scenario(
                self.scenario,
                seed=run.seed,
                run_id=run.run_id,
                on_progress=self._progress,
                on_event=self._event,
            )
        except Exception as exc:
            # The runner turns every failure of a run into a result: this is
            # a bug of its own.
            run.abort(f"the runner failed: {type(exc).__name__}: {exc}", "error")
        else:
            run.finish(result)
        finally:
            # Cancelled: this actor was killed or stopped (its run's scheduler
            # has stopped by now: run_scenario's cleanup is shielded).
            run.abort(f"the run's actor {self.ref.path} was killed or stopped")
        await self.stop()

    async def on_stop(self) -> None:
        """Ended before its task began: the run is aborted all the same."""
        self.run.abort(f"the run's actor {self.ref.path} was killed or stopped")


class RunsActor(Actor):
    """``/user/scenarios`` of the server: every run's parent; never restarts one."""

    async def receive(self, message: Any) -> Any:
        """Start a run's actor; answer its ref."""
        if isinstance(message, _Start):
            return await self.spawn(
                RunActor,
                message.run,
                message.scenario,
                name=message.run.run_id,
                restart="temporary",
            )
        return await super().receive(message)


def _scenario_id(name: str, text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{name}-{digest}"


class ScenarioService:
    """Scenario runs of one ScheduleZero: its library, runs, results, schedules.

    Made by ``ScheduleZero.scenarios`` (on first use). Made before the
    scheduler starts, it registers the handler of the task ``sz.scenario``,
    which recurring runs' schedules fire; made after, it runs scenarios but
    cannot schedule them. Its calls run on the scheduler's event loop.

    Args:
        sz: The scheduler.
        max_running: Runs that may go on at once, 2 by default.
        kept: Finished results kept, the latest; 100 by default.
    """

    def __init__(
        self,
        sz: ScheduleZero,
        *,
        max_running: int = MAX_RUNNING,
        kept: int = KEPT_RESULTS,
    ) -> None:
        if max_running < 1 or kept < 1:
            raise ValueError("max_running and kept must be at least 1")
        #: The scheduler it runs in.
        self.scheduler = sz
        self.max_running = max_running
        self.kept = kept
        self._shipped: dict[str, LibraryEntry] | None = None
        self._loaded: OrderedDict[str, LibraryEntry] = OrderedDict()
        self._runs: OrderedDict[str, RunState] = OrderedDict()
        self._parent: ActorRef | None = None
        try:
            sz.handler(self._run_scheduled, name=SCENARIO_TASK)
        except SzError:
            self.schedulable = False  # the scheduler runs: too late to register
        else:
            self.schedulable = True

    # ----------------------------------------------------------------- library

    async def library(self) -> list[LibraryEntry]:
        """Every scenario of the library: the shipped ones, then those loaded.

        A checkpoint; the shipped files are read (in a worker thread) on the
        first call.
        """
        shipped = await self._shipped_entries()
        return [*shipped.values(), *self._loaded.values()]

    async def _shipped_entries(self) -> dict[str, LibraryEntry]:
        if self._shipped is None:
            self._shipped = await anyio.to_thread.run_sync(_read_shipped)
        return self._shipped

    async def entry(self, scenario_id: str) -> LibraryEntry:
        """The library's scenario ``scenario_id``.

        Raises:
            UnknownScenario: There is none.
        """
        found = (await self._shipped_entries()).get(scenario_id) or self._loaded.get(
            scenario_id
        )
        if found is None:
            raise UnknownScenario(f"no scenario {scenario_id!r} in the library")
        return found

    async def load(self, text: str, *, source: str = "<api>") -> LibraryEntry:
        """Check a scenario given as YAML text and add it to the library.

        The same text loaded again is the same entry. The library keeps the
        latest ``MAX_LOADED`` loaded scenarios. A checkpoint (the text is
        parsed in a worker thread).

        Args:
            text: The YAML.
            source: The file name its errors give, ``<api>`` by default.

        Raises:
            ScenarioError: Not a valid scenario; the message names ``source``,
                the line and what was expected.
        """
        if len(text.encode()) > MAX_SCENARIO_BYTES:
            raise ScenarioError(
                source, f"larger than {MAX_SCENARIO_BYTES:,} bytes: not a scenario"
            )
        scenario = await anyio.to_thread.run_sync(
            partial(parse_scenario, text, source=source)
        )
        entry = _entry(_scenario_id(scenario.name, text), scenario, "loaded", text)
        self._loaded[entry.id] = entry
        self._loaded.move_to_end(entry.id)
        while len(self._loaded) > MAX_LOADED:
            self._loaded.popitem(last=False)
        return entry

    # -------------------------------------------------------------------- runs

    async def start(
        self,
        scenario_id: str,
        params: Mapping[str, object] | None = None,
        seed: int | None = None,
        *,
        schedule_id: str | None = None,
    ) -> RunState:
        """Start a run of the library's scenario ``scenario_id``; return it running.

        A checkpoint; returns once the run's actor has started.

        Args:
            scenario_id: The library's id.
            params: Parameter overrides (text is read as the default's type),
                none by default.
            seed: The seed of its random choices; a random one by default.
            schedule_id: The schedule that started it, if one did.

        Raises:
            UnknownScenario: No such scenario.
            ScenarioError: A parameter it does not have, or of the wrong type.
            TooManyRuns: ``max_running`` runs go on already.
            SzError: The scheduler is not running.
        """
        entry = await self.entry(scenario_id)
        scenario = await anyio.to_thread.run_sync(
            partial(
                parse_scenario, entry.yaml, source=entry.id, parameters=params or None
            )
        )
        system = self.scheduler.system  # SzError when it is not running
        running = sum(run.running for run in self._runs.values())
        if running >= self.max_running:
            raise TooManyRuns(
                f"{running} scenario runs go on already, as many as this server "
                f"allows at once ({self.max_running}): try again when one ends",
                limit=self.max_running,
            )
        seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
        run = RunState(
            run_id=f"run-{uuid.uuid4().hex[:8]}",
            scenario_id=entry.id,
            name=scenario.name,
            seed=seed,
            parameters=dict(scenario.parameters),
            schedule_id=schedule_id,
            units=_units(scenario),
            on_end=self._ended,
        )
        # Counted at once: a start racing this one sees it.
        self._runs[run.run_id] = run
        try:
            # In the store before it runs: a process that dies during the run
            # leaves it there, found cut off at the next start.
            await self._store().started(run.stored())
            parent = system.lookup("/user/scenarios")
            if parent is None:
                parent = await system.spawn(RunsActor, name="scenarios")
            await parent.ask(_Start(run, scenario))
        except BaseException as exc:
            why = (
                f"the run could not start: {exc}"
                if isinstance(exc, SzError)
                else "the run's actor could not start"
            )
            run.abort(why, "error")
            raise
        finally:
            self._prune()
        return run

    async def _run_scheduled(
        self,
        scenario: str,
        params: Mapping[str, object] | None = None,
        seed: int | None = None,
        yaml: str | None = None,
    ) -> str:
        """The ``sz.scenario`` handler: start a run of a schedule's; its run id.

        ``yaml`` is a loaded scenario's text, loaded again if the library lost
        it (the server restarted since the schedule was made).
        """
        if yaml is not None:
            scenario = (await self.load(yaml, source=scenario)).id
        job = CURRENT_JOB.get()
        run = await self.start(
            scenario, params, seed, schedule_id=job.schedule_id if job else None
        )
        return run.run_id

    def _prune(self) -> None:
        ended = [run_id for run_id, run in self._runs.items() if not run.running]
        for run_id in ended[: max(0, len(ended) - self.kept)]:
            del self._runs[run_id]

    def _store(self) -> ScenarioRunStore:
        # The scheduler's: memory, or the durable store it opened.
        return self.scheduler._scenario_runs

    def _ended(self, run: RunState) -> None:
        """A run ended: keep its end in the store (queued, never waited for)."""
        self._store().ended(run.stored())

    async def runs(
        self, scenario: str | None = None, limit: int = KEPT_RESULTS
    ) -> list[RunState]:
        """Runs, running or ended, the newest first: this process's and the store's.

        A checkpoint (the store is read on its thread). Runs of this process
        are read from memory (every live one, and the latest ``kept`` ended);
        older ones, and those of earlier processes, from the store, which
        lists them without their results (``run`` reads one whole).

        Args:
            scenario: Only runs of this scenario: a library id or a name;
                None (the default) for every run.
            limit: The most runs listed, 100 by default; from 1 to
                ``MAX_LISTED`` (1,000).

        Raises:
            ValueError: ``limit`` is out of range.
            StoreError: The store cannot be read.
        """
        if isinstance(limit, bool) or not 1 <= limit <= MAX_LISTED:
            raise ValueError(f"limit must be from 1 to {MAX_LISTED:,}, got {limit!r}")
        self._prune()
        found = {
            run.run_id: run
            for run in self._runs.values()
            if scenario is None or scenario in (run.scenario_id, run.name)
        }
        for stored in await self._store().runs(scenario, limit):
            if stored.run_id not in found:
                found[stored.run_id] = RunState.from_stored(stored)
        ordered = sorted(
            found.values(), key=lambda run: (run.started_at, run.run_id), reverse=True
        )
        return ordered[:limit]

    async def run(self, run_id: str) -> RunState | None:
        """The run ``run_id``, with its result once ended: from memory or the store.

        A checkpoint.

        Raises:
            StoreError: The store cannot be read.
        """
        found = self._runs.get(run_id)
        if found is not None:
            return found
        stored = await self._store().get(run_id)
        return RunState.from_stored(stored) if stored is not None else None

    async def watch(self, run_id: str, seen: int) -> RunView | None:
        """What a watcher of the run has not seen: its progress, new events.

        A checkpoint. A run of an earlier process (read from the store) is
        seen ended at once.

        Args:
            run_id: The run.
            seen: How many of its timeline events the watcher has (0 at first).

        Returns:
            None if the run is not kept.
        """
        run = await self.run(run_id)
        if run is None:
            return None
        timeline = run.timeline
        return RunView(
            progress=run.progress_json(),
            events=tuple(event.to_json() for event in timeline[seen:]),
            seen=len(timeline),
            result=None if run.running else run.to_json(),
        )

    async def abort(self, run_id: str) -> RunState | None:
        """Stop the run's actor; return the run, ``aborted`` unless it had ended.

        A checkpoint; returns once the run's scheduler has stopped.

        Returns:
            None if the run is not kept.
        """
        run = self._runs.get(run_id)
        if run is None:
            return None
        if run.running:
            ref = self.scheduler.system.lookup(f"/user/scenarios/{run_id}")
            if ref is None:
                run.abort("aborted: the run's actor was gone")
            else:
                await ref.stop()
                await run.done.wait()
        return run

    # --------------------------------------------------------------- schedules

    async def schedule(
        self,
        scenario_id: str,
        trigger: str,
        *,
        params: Mapping[str, object] | None = None,
        seed: int | None = None,
        id: str | None = None,
        **options: Any,
    ) -> str:
        """Add a schedule of recurring runs; return its id.

        Each fire starts a run (a job of the task ``sz.scenario`` that returns
        its run id; refused as a failure while ``max_running`` runs go on).

        Args:
            scenario_id: The library's id. A loaded scenario's text goes into
                the schedule's arguments, so that it outlives the library.
            trigger: As ``ScheduleZero.schedule`` takes it, with its fields
                and options in ``options``.
            params: Parameter overrides of every run, none by default.
            seed: Every run's seed; None (the default) for a fresh one each.
            id: The schedule's id, a new one by default.
            **options: ``ScheduleZero.schedule``'s trigger fields and options.

        Raises:
            UnknownScenario: No such scenario.
            ScenarioError: Bad parameters.
            SzError: This service was made after the scheduler started (no
                ``sz.scenario`` handler), or ``ScheduleZero.schedule``'s errors.
        """
        if not self.schedulable:
            raise SzError(
                "scenario runs cannot be scheduled here: the sz.scenario handler "
                "is registered when sz.scenarios is first used before the "
                "scheduler starts (sz serve does so)"
            )
        entry = await self.entry(scenario_id)
        # Bad parameters refused now, not at every fire.
        await anyio.to_thread.run_sync(
            partial(
                parse_scenario, entry.yaml, source=entry.id, parameters=params or None
            )
        )
        args: dict[str, Any] = {"scenario": entry.id, "params": dict(params or {})}
        if seed is not None:
            args["seed"] = seed
        if entry.source == "loaded":
            args["yaml"] = entry.yaml
        return await self.scheduler.schedule(
            SCENARIO_TASK, trigger, args=args, id=id, **options
        )
