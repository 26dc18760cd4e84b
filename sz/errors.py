"""The errors the ``sz`` package raises; ``SzError`` is the root of them all.

Each is defined here, except ``ScheduleNotFound`` (raised by the schedule calls,
defined in ``sz.bridge``); ``import sz`` exports them all.
"""

from __future__ import annotations

from actors import ExpectedCrash

__all__ = [
    "ConfigError",
    "ConnectionLost",
    "ExpressionError",
    "FencedOut",
    "JobFailed",
    "JobTimeout",
    "NoHealthyHandler",
    "Overloaded",
    "RemoteError",
    "ScenarioError",
    "StoreError",
    "SzError",
    "TooManyRuns",
    "UnknownScenario",
    "UnknownTask",
]


class SzError(Exception):
    """Root of every error the scheduler raises."""


class UnknownTask(SzError, KeyError):
    """No handler is registered for the task named.

    Raised by ``schedule`` and ``run_now`` at call time, never at fire time.
    """

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class JobFailed(SzError):
    """A job ended without success; the handler's exception is the ``__cause__``.

    Attributes:
        outcome: The job's final outcome (``failure``, ``timeout``,
            ``no_healthy_handler``, ``abandoned``, ...).
    """

    def __init__(self, message: str, *, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class NoHealthyHandler(JobFailed):
    """No healthy handler served the job's task before its deadline."""


class JobTimeout(SzError, TimeoutError):
    """The wait for a job's end ran out; the job itself goes on.

    Raised by ``run_now(timeout=)`` and ``JobHandle.result(timeout=)``. The job
    is neither cancelled nor forgotten: ``job_id`` names it, and
    ``sz.job(job_id)`` gives a handle to wait on it again or cancel it.

    Attributes:
        job_id: The job waited on.
    """

    def __init__(self, message: str, *, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class Overloaded(SzError):
    """Too many jobs wait already: new work is refused until the queues drain.

    Raised by ``run_now`` and ``schedule`` while the jobs waiting for a handler
    or a governor are past ``governors.backpressure.high_water``, and until they
    fall to ``low_water``.

    A burst of ``run_now`` calls may all pass that check before the first of
    them reaches the dispatcher, which then refuses the rest: those raise it
    too, with the refused job's id (its history row says ``rejected``, reason
    ``overloaded``).

    Attributes:
        retry_after: Seconds after which trying again is likely to succeed.
        job_id: The refused job's id when it was refused after being accepted;
            None when it was refused before (no job, no history row).
    """

    def __init__(
        self, message: str, *, retry_after: float, job_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.job_id = job_id


class ConfigError(SzError, ValueError):
    """A configuration file that cannot be used: unreadable, not YAML, or invalid.

    Its message is one line: ``"<file>: <key.path>: <problem>"``, several problems
    joined by ``"; "``; a problem with the whole file has no key path.

    Attributes:
        source: The file, as given to :func:`load_config`, or ``parse_config``'s
            ``source``.
        problems: ``(key_path, problem)`` pairs, sections and keys in the order
            they are documented here, unknown keys last at each level; ``key_path``
            is ``""`` for the file as a whole.
    """

    source: str
    problems: tuple[tuple[str, str], ...]

    def __init__(self, source: str, problems: tuple[tuple[str, str], ...]) -> None:
        super().__init__(source, problems)
        self.source = source
        self.problems = problems

    def __str__(self) -> str:
        described = (
            f"{path}: {problem}" if path else problem for path, problem in self.problems
        )
        return f"{self.source}: {'; '.join(described)}"


class ScenarioError(SzError, ValueError):
    """A scenario file that cannot be run: unreadable, not YAML, or invalid.

    Nothing of it runs. Its message is one line naming the file, the line (and,
    in a bad expression, the column) and what was expected, as compilers do::

        storm.yaml:12: unknown step type 'lop' (expected one of: action, ...)
        storm.yaml:30:19: unknown metric 'job_latncy' (expected one of: ...)

    Attributes:
        source: The file, as given to ``load_scenario``, or ``parse_scenario``'s
            ``source``.
        line: The line (from 1) the problem is on; None for the file as a whole.
        column: The column (from 1), when one is known; None otherwise.
        problem: What is wrong and what was expected, without the place.
    """

    source: str
    line: int | None
    column: int | None
    problem: str

    def __init__(
        self,
        source: str,
        problem: str,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(source, problem, line, column)
        self.source = source
        self.line = line
        self.column = column if line is not None else None
        self.problem = problem

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.problem}"


class UnknownScenario(SzError, LookupError):
    """No scenario of that id in a running ScheduleZero's library (``sz.scenarios``)."""


class TooManyRuns(SzError):
    """A scenario run refused: as many runs as allowed go on already.

    Attributes:
        limit: How many may run at once.
    """

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class ExpressionError(SzError, ValueError):
    """A condition of the scenario language that cannot be parsed or evaluated.

    Raised by ``parse_expression`` (bad syntax), ``check_expression`` (an
    unknown metric or function, units that disagree) and ``evaluate`` (a metric
    without a value). A scenario file's loader turns it into a
    :class:`ScenarioError` naming the file, the line and the column.

    Attributes:
        problem: What is wrong and what was expected.
        column: Where in the expression (from 1) the problem is.
    """

    problem: str
    column: int

    def __init__(self, problem: str, *, column: int) -> None:
        super().__init__(problem, column)
        self.problem = problem
        self.column = column

    def __str__(self) -> str:
        return f"column {self.column}: {self.problem}"


class StoreError(SzError):
    """The store's file cannot be used (the message names it and what to do)."""


class FencedOut(StoreError):
    """This node's row was taken over by another node sharing the store.

    The node was silent past its lease (stopped, cut off, or stalled), and
    another took over its jobs, or a process started with its name: from then
    on it writes nothing, and ``sz serve`` exits with code 2.
    """


class RemoteError(SzError):
    """A remote handler's job raised: the text is the worker's ``repr`` of it."""

    def __repr__(self) -> str:
        return str(self.args[0]) if self.args else "RemoteError()"


class ConnectionLost(SzError, ExpectedCrash):
    """The broker fell silent, refused the worker, or broke the protocol.

    The worker's connection actor ends with it and reconnects: an expected
    crash, logged as one warning line rather than an error with a traceback.
    """


def refusal_in(error: BaseException) -> SzError | None:
    """The ``SzError`` an error is, or holds: None if it holds anything else.

    A refusal raised inside the actor system or APScheduler comes out in an
    exception group (every leaf a refusal: the first is returned), or as the
    cause of an actor's failure to start. ``ScheduleZero.start`` raises it as
    itself; the ``sz`` command prints it as one line.
    """
    if isinstance(error, BaseExceptionGroup):
        found = [refusal_in(inner) for inner in error.exceptions]
        if not found or None in found:
            return None
        return found[0]
    while not isinstance(error, SzError) and error.__cause__ is not None:
        error = error.__cause__
    return error if isinstance(error, SzError) else None
