"""Where scenario runs and their results are kept: memory, or a database.

A run is written twice: when it starts (``running``, no outcome; waited for,
so that a process that dies at once leaves it) and when it ends (one update,
committed at once, not waited for: its outcome, its result's JSON export and
its scalar trend metrics).
A durable store (a SQLite file, a PostgreSQL database) keeps them across
restarts; a run still ``running`` when the store is opened again was cut off
by the end of the process that ran it, and ``abandon`` marks it ``aborted``.
On a PostgreSQL store shared by several nodes each run row names its node:
a node that starts abandons only its own runs, and a node that takes over a
dead one aborts the dead node's (``nodes.take_over``).
Every store keeps the newest ``KEPT_RUNS`` runs (by start time), pruned as
each run ends.

The store knows rows, not scenarios: what a run's result means is
``sz.scenarios``' business (the export is kept as JSON text, decoded on read).
"""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .database import Connection, Database

__all__ = [
    "ABANDONED",
    "KEPT_RUNS",
    "FileScenarioRuns",
    "MemoryScenarioRuns",
    "ScenarioRunStore",
    "StoredRun",
]

logger = logging.getLogger("sz.store")

#: Runs a store keeps, the newest by start time; older ones are pruned as
#: each run ends.
KEPT_RUNS = 1_000

#: The error of a run found ``running`` when its store was opened again.
ABANDONED = "the process ended during the run"


@attrs.frozen(kw_only=True)
class StoredRun:
    """A scenario run as the store keeps it.

    Attributes:
        run_id: The run's id.
        scenario_id: The library id it ran.
        name: The scenario's name.
        seed: The seed of its random choices.
        parameters: The parameters it ran with (JSON data).
        schedule_id: The schedule that started it, or None.
        started_at: When it started (UTC).
        finished_at: When it ended, or None while it runs (for a run found
            cut off by a restart: when the store was opened again).
        outcome: ``passed``, ``failed``, ``aborted`` or ``error``; None while
            it runs.
        error: Why it ended early, or None.
        passed: Whether it passed; None while it runs.
        units: The unit each reported metric is shown in.
        metrics: One number per reported metric, for trends.
        result: The result's JSON export, or None (while it runs, for a run
            cut off by a restart, and in lists, which leave it out).
    """

    run_id: str
    scenario_id: str
    name: str
    seed: int
    parameters: Mapping[str, Any] = attrs.field(factory=dict)
    schedule_id: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str | None = None
    error: str | None = None
    passed: bool | None = None
    units: Mapping[str, str] = attrs.field(factory=dict)
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    result: Mapping[str, Any] | None = None

    @property
    def running(self) -> bool:
        """Whether it had not ended when last written."""
        return self.outcome is None

    def matches(self, scenario: str | None) -> bool:
        """Whether it is a run of ``scenario`` (a library id or a name; None: any)."""
        return scenario is None or scenario in (self.scenario_id, self.name)


def _newest_first(run: StoredRun) -> tuple[datetime, str]:
    return (run.started_at, run.run_id)


class ScenarioRunStore(Protocol):
    """What ``sz.scenarios`` needs from where runs are kept."""

    async def started(self, run: StoredRun) -> None:
        """Keep a run that starts; return once that is durable.

        Raises:
            StoreError: It could not be written (a full disk, a lost server).
        """

    def ended(self, run: StoredRun) -> None:
        """Keep a run's end (its outcome, result and metrics). Never waits.

        A failure to write it is logged (the run then comes back ``aborted``
        at the next start).
        """

    async def abandon(self, now: datetime, error: str = ABANDONED) -> int:
        """Mark every run still ``running`` as ``aborted``; how many there were."""

    async def runs(
        self, scenario: str | None = None, limit: int = 100
    ) -> list[StoredRun]:
        """Runs (of ``scenario``: a library id or a name), newest first, no result."""

    async def get(self, run_id: str) -> StoredRun | None:
        """The run ``run_id`` with its result, if kept."""

    async def flush(self) -> None:
        """Wait until every run written so far is durable."""


class MemoryScenarioRuns:
    """The newest runs in memory; nothing survives the process.

    Args:
        kept: Runs kept, the newest; ``KEPT_RUNS`` by default.
    """

    def __init__(self, kept: int = KEPT_RUNS) -> None:
        self.kept = kept
        self._runs: OrderedDict[str, StoredRun] = OrderedDict()

    async def started(self, run: StoredRun) -> None:
        """Keep it."""
        self._runs[run.run_id] = run

    def ended(self, run: StoredRun) -> None:
        """Keep its end; drop the oldest runs past ``kept``."""
        self._runs[run.run_id] = run
        if len(self._runs) > self.kept:
            ordered = sorted(self._runs.values(), key=_newest_first, reverse=True)
            for old in ordered[self.kept :]:
                del self._runs[old.run_id]

    async def abandon(self, now: datetime, error: str = ABANDONED) -> int:
        """None: a memory store starts empty."""
        return 0

    async def runs(
        self, scenario: str | None = None, limit: int = 100
    ) -> list[StoredRun]:
        """Scan them, newest first."""
        found = [run for run in self._runs.values() if run.matches(scenario)]
        found.sort(key=_newest_first, reverse=True)
        return [attrs.evolve(run, result=None) for run in found[: max(0, limit)]]

    async def get(self, run_id: str) -> StoredRun | None:
        """The run, as kept."""
        return self._runs.get(run_id)

    async def flush(self) -> None:
        """Nothing to wait for."""


# The statements are SQLite's and PostgreSQL's alike (``?`` becomes ``%s`` there).
_START = (
    "INSERT INTO scenario_runs (run_id, node, scenario_id, name, seed, parameters, "
    "schedule_id, started_at, units) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO NOTHING"
)

_END = (
    "UPDATE scenario_runs SET finished_at = ?, outcome = ?, error = ?, passed = ?, "
    "units = ?, result = ? WHERE run_id = ?"
)

_METRIC = (
    "INSERT INTO scenario_metrics (run_id, name, value) VALUES (?, ?, ?) "
    "ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value"
)

# Runs started before the ``kept``-th newest go (ties at that instant stay).
_PRUNE = (
    "DELETE FROM scenario_runs WHERE started_at < (SELECT started_at FROM "
    "scenario_runs ORDER BY started_at DESC LIMIT 1 OFFSET ?)"
)
_PRUNE_METRICS = (
    "DELETE FROM scenario_metrics WHERE run_id NOT IN "
    "(SELECT run_id FROM scenario_runs)"
)

# A node's own runs, and those of no node (a file's, a lone server's).
_ABANDON = (
    "UPDATE scenario_runs SET outcome = 'aborted', error = ?, passed = ?, "
    "finished_at = ? WHERE outcome IS NULL AND (node IS NULL OR node = ?)"
)
_LEFT_RUNNING = (
    "SELECT COUNT(*) FROM scenario_runs WHERE outcome IS NULL "
    "AND (node IS NULL OR node = ?)"
)

_SUMMARY_COLUMNS = (
    "run_id, scenario_id, name, seed, parameters, schedule_id, started_at, "
    "finished_at, outcome, error, passed, units"
)


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _finite(metrics: Mapping[str, float]) -> list[tuple[str, float]]:
    return [
        (name, float(value)) for name, value in metrics.items() if math.isfinite(value)
    ]


class FileScenarioRuns:
    """Runs in a database (SQLite, PostgreSQL), written on its thread.

    Each run is a row of ``scenario_runs``; its trend metrics are rows of
    ``scenario_metrics``.

    Args:
        file: The store's database.
        kept: Runs kept, the newest; ``KEPT_RUNS`` by default.
        node: The node this scheduler is among those sharing a PostgreSQL
            store; None for a file or a lone server.
    """

    def __init__(
        self, file: Database, kept: int = KEPT_RUNS, node: str | None = None
    ) -> None:
        self.file = file
        self.kept = kept
        self.node = node

    async def started(self, run: StoredRun) -> None:
        """Write the run's row, ``running``; return once it is committed.

        Waited for: a process that dies a moment after a run started leaves
        the row, which the next start finds cut off.

        Raises:
            StoreError: It could not be written (a full disk, a lost server).
        """
        values = (
            run.run_id,
            self.node,
            run.scenario_id,
            run.name,
            run.seed,
            _json(dict(run.parameters)),
            run.schedule_id,
            self.file.stamp(run.started_at),
            _json(dict(run.units)),
        )
        done = anyio.Event()
        failure: list[BaseException] = []

        def failed(error: BaseException) -> None:
            failure.append(error)
            done.set()

        self.file.write(((_START, values),), done.set, failed=failed)
        await done.wait()
        if failure:
            raise failure[0]

    def ended(self, run: StoredRun) -> None:
        """Queue the run's end, its metrics, and the pruning of old runs."""
        assert run.finished_at is not None, "a run that ended has an end"
        end = (
            self.file.stamp(run.finished_at),
            run.outcome,
            run.error,
            run.passed,
            _json(dict(run.units)),
            None if run.result is None else _json(run.result),
            run.run_id,
        )
        metrics = [(run.run_id, name, value) for name, value in _finite(run.metrics)]
        kept = self.kept

        def write(connection: Connection) -> None:
            connection.execute(_END, end)
            if metrics:
                connection.executemany(_METRIC, metrics)
            connection.execute(_PRUNE, (kept - 1,))
            connection.execute(_PRUNE_METRICS)

        # Committed at once rather than with company (``then`` makes it
        # urgent): a run that ended must not come back "cut off" because the
        # process died in the next few milliseconds.
        run_id = run.run_id

        def failed(error: BaseException) -> None:
            logger.error(
                "%s: the end of scenario run %s was not kept: %s",
                self.file.where,
                run_id,
                error,
            )

        self.file.write(write, _committed, failed=failed)

    async def abandon(self, now: datetime, error: str = ABANDONED) -> int:
        """Mark the runs left ``running`` by an ended process ``aborted``.

        Called as the store opens: a store is held by one ScheduleZero at a
        time (its lock), and a node's name by one node of a cluster (its
        epoch), so a run of this node still ``running`` then was cut off by the
        end of the process that ran it. Other nodes' runs are theirs.
        """
        stamp = self.file.stamp(now)
        node = self.node or ""

        def count(connection: Connection) -> int:
            (found,) = connection.execute(_LEFT_RUNNING, (node,)).fetchone()
            return int(found)

        found = await self.file.read(count)
        if found:
            self.file.write(((_ABANDON, (error, False, stamp, node)),))
            await self.file.flush()
        return found

    async def runs(
        self, scenario: str | None = None, limit: int = 100
    ) -> list[StoredRun]:
        """Select runs, newest first, with their metrics (not their results)."""
        if limit < 1:
            return []
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM scenario_runs"
        params: list[Any] = []
        if scenario is not None:
            sql += " WHERE scenario_id = ? OR name = ?"
            params += [scenario, scenario]
        sql += " ORDER BY started_at DESC, run_id DESC LIMIT ?"
        params.append(limit)
        moment = self.file.moment

        def select(connection: Connection) -> list[StoredRun]:
            rows = list(connection.execute(sql, params))
            metrics = _metrics_of(connection, [row[0] for row in rows])
            return [_stored(moment, row, metrics.get(row[0], {})) for row in rows]

        return await self.file.read(select)

    async def get(self, run_id: str) -> StoredRun | None:
        """Select the run, with its result and metrics."""
        moment = self.file.moment

        def select(connection: Connection) -> StoredRun | None:
            row = connection.execute(
                f"SELECT {_SUMMARY_COLUMNS}, result FROM scenario_runs "
                "WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                return None
            metrics = _metrics_of(connection, [run_id]).get(run_id, {})
            stored = _stored(moment, row[:-1], metrics)
            if row[-1] is None:
                return stored
            return attrs.evolve(stored, result=json.loads(row[-1]))

        return await self.file.read(select)

    async def flush(self) -> None:
        """Wait for every queued write to be committed."""
        await self.file.flush()


def _committed() -> None:
    """Nothing to do once a run's end is committed."""


def _metrics_of(
    connection: Connection, run_ids: Sequence[str]
) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    if not run_ids:
        return found
    marks = ", ".join("?" * len(run_ids))
    for run_id, name, value in connection.execute(
        f"SELECT run_id, name, value FROM scenario_metrics WHERE run_id IN ({marks})",
        tuple(run_ids),
    ):
        found.setdefault(run_id, {})[name] = float(value)
    return found


def _stored(
    moment: Callable[[Any], datetime],
    row: Sequence[Any],
    metrics: Mapping[str, float],
) -> StoredRun:
    (run_id, scenario_id, name, seed, parameters, schedule_id, started) = row[:7]
    (finished, outcome, error, passed, units) = row[7:12]
    return StoredRun(
        run_id=run_id,
        scenario_id=scenario_id,
        name=name,
        seed=int(seed),
        parameters=json.loads(parameters) if parameters else {},
        schedule_id=schedule_id,
        started_at=moment(started),
        finished_at=None if finished is None else moment(finished),
        outcome=outcome,
        error=error,
        passed=None if passed is None else bool(passed),
        units=json.loads(units) if units else {},
        metrics=dict(metrics),
    )
