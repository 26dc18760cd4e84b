"""The actions a scenario's steps may call, and each one's arguments.

One table, :data:`ACTIONS`: the loader checks every ``action`` step against it
(an unknown action, an unknown or missing argument, a value of the wrong type
are errors naming the line) and hands the runner the arguments converted
(durations in seconds); the runner calls the scheduler with them. The
roadmap's ``create_schedule`` and ``delete_schedule`` take their arguments as
the roadmap writes them (``task_id``, ``trigger: {type: interval, seconds:
10}``); the other actions name their task ``task``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import attrs

from ..errors import SzError
from .hints import expected_one_of, show
from .units import parse_duration

__all__ = [
    "ACTIONS",
    "TRIGGER_FIELDS",
    "ActionSpec",
    "ArgKind",
    "ArgSpec",
    "ArgumentProblem",
    "check_arguments",
]


class ArgumentProblem(SzError, ValueError):
    """An action's arguments do not fit its table.

    Attributes:
        argument: The argument at fault; None for the arguments as a whole.
        problem: What is wrong and what was expected.
    """

    def __init__(self, problem: str, *, argument: str | None = None) -> None:
        super().__init__(problem)
        self.argument = argument
        self.problem = problem


class _Refused(Exception):
    """A value refused by an argument kind; the kind's ``expected`` says why."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


@attrs.frozen(kw_only=True)
class ArgKind:
    """What an argument's value may be.

    Attributes:
        expected: What it may be, as error messages say it ("a number > 0").
        convert: Returns the value as the runner takes it (a duration in
            seconds), or raises for a value of the wrong kind.
    """

    expected: str
    convert: Callable[[object], object]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object) -> object:
    if not (isinstance(value, str) and value.strip()):
        raise _Refused
    return value


def _whole(least: int) -> Callable[[object], object]:
    def convert(value: object) -> object:
        if not (_is_int(value) and value >= least):  # type: ignore[operator]
            raise _Refused
        return value

    return convert


def _positive(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Refused
    if not (math.isfinite(value) and value > 0):
        raise _Refused
    return value


def _duration(value: object) -> object:
    seconds = parse_duration(value)
    if seconds is None:
        raise _Refused
    return seconds


def _flag(value: object) -> object:
    if not isinstance(value, bool):
        raise _Refused
    return value


def _arguments(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(value)
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return dict(value)
    raise _Refused


def _keywords(value: object) -> object:
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return dict(value)
    raise _Refused


#: Each trigger type's fields (APScheduler 4's triggers).
TRIGGER_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "interval": (
            "weeks",
            "days",
            "hours",
            "minutes",
            "seconds",
            "microseconds",
            "start_time",
            "end_time",
        ),
        "cron": (
            "year",
            "month",
            "day",
            "week",
            "day_of_week",
            "hour",
            "minute",
            "second",
            "start_time",
            "end_time",
            "timezone",
        ),
        "date": ("run_time",),
        "calendarinterval": (
            "years",
            "months",
            "weeks",
            "days",
            "hour",
            "minute",
            "second",
            "start_date",
            "end_date",
            "timezone",
        ),
    }
)
_INTERVALS = frozenset(TRIGGER_FIELDS["interval"][:6])


def _trigger(value: object) -> object:
    if isinstance(value, str):
        if len(value.split()) != 5:
            raise _Refused
        return value
    if not isinstance(value, Mapping):
        raise _Refused
    kind = value.get("type")
    fields = TRIGGER_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        shown = "missing type" if kind is None else f"unknown type {kind!r}"
        raise _Refused(f"{shown} {expected_one_of(str(kind), TRIGGER_FIELDS)}")
    for key, amount in value.items():
        if key == "type":
            continue
        if key not in fields:
            raise _Refused(
                f"{kind} trigger: unknown field {key!r} "
                f"{expected_one_of(str(key), fields)}"
            )
        if key in _INTERVALS and kind == "interval":
            try:
                _positive(amount)
            except _Refused:
                raise _Refused(
                    f"interval trigger: {key}: expected a number > 0, got {amount!r}"
                ) from None
    if kind == "interval" and not _INTERVALS & set(value):
        raise _Refused(f"interval trigger: give one of {', '.join(sorted(_INTERVALS))}")
    return dict(value)


TEXT = ArgKind(expected="a non-empty string", convert=_text)
TASK = ArgKind(expected="a task's name", convert=_text)
COUNT = ArgKind(expected="a whole number >= 1", convert=_whole(1))
RATE = ArgKind(expected="a number > 0", convert=_positive)
DURATION = ArgKind(
    expected="a duration (seconds, or a number with a unit such as 50ms)",
    convert=_duration,
)
FLAG = ArgKind(expected="true or false", convert=_flag)
ARGUMENTS = ArgKind(
    expected="a list (positional) or a mapping (keyword arguments)",
    convert=_arguments,
)
KEYWORDS = ArgKind(expected="a mapping of keyword arguments", convert=_keywords)
TRIGGER = ArgKind(
    expected="a trigger: {type: interval|cron|date|calendarinterval, ...fields} "
    "or a crontab line such as '*/5 * * * *'",
    convert=_trigger,
)

TaskScope = Literal["served", "local"]


@attrs.frozen(kw_only=True)
class ArgSpec:
    """One argument of an action.

    Attributes:
        name: Its name in ``args``.
        kind: What its value may be.
        required: Whether it must be given, False by default.
        description: What it means, its default said when it has one.
    """

    name: str
    kind: ArgKind
    description: str
    required: bool = False


@attrs.frozen(kw_only=True)
class ActionSpec:
    """An action: an operation of the scheduler a step may call.

    Attributes:
        name: The action's name (``method`` in the step).
        description: What it does, in a sentence.
        args: Its arguments.
        task_argument: The argument naming a task, if any.
        task_scope: Where that task must be found: ``"served"`` (by a local
            handler or a worker of the run's setup) or ``"local"`` (by a local
            handler of the setup, or a built-in one).
    """

    name: str
    description: str
    args: tuple[ArgSpec, ...]
    task_argument: str | None = None
    task_scope: TaskScope = "served"

    def argument(self, name: str) -> ArgSpec | None:
        """The argument named ``name``; None if it has none such."""
        for spec in self.args:
            if spec.name == name:
                return spec
        return None


_JOB_ARGS = (
    ArgSpec(
        name="args",
        kind=ARGUMENTS,
        description="the job's arguments: a list (positional) or a mapping; none "
        "by default",
    ),
    ArgSpec(
        name="kwargs",
        kind=KEYWORDS,
        description="more keyword arguments of the job, none by default",
    ),
)
_SCHEDULE_ID = ArgSpec(
    name="schedule_id",
    kind=TEXT,
    description="the schedule; by default the oldest one the run created that "
    "this action can apply to",
)


def _actions(*specs: ActionSpec) -> Mapping[str, ActionSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


#: Every action a step may call, by name.
ACTIONS: Mapping[str, ActionSpec] = _actions(
    ActionSpec(
        name="create_schedule",
        description="add a schedule of the task (ScheduleZero.schedule)",
        args=(
            ArgSpec(
                name="task_id",
                kind=TASK,
                required=True,
                description="the task it runs",
            ),
            ArgSpec(
                name="trigger",
                kind=TRIGGER,
                required=True,
                description="when it fires: {type: interval, seconds: 10}, "
                "{type: cron, minute: '*/5'}, ... or a crontab line",
            ),
            ArgSpec(
                name="schedule_id",
                kind=TEXT,
                description="its id; a new one by default (a loop creating one "
                "id replaces that schedule each time)",
            ),
            *_JOB_ARGS,
            ArgSpec(
                name="paused",
                kind=FLAG,
                description="added paused, false by default",
            ),
            ArgSpec(
                name="misfire_grace_time",
                kind=DURATION,
                description="how late a fire may start before it is missed; no "
                "limit by default",
            ),
        ),
        task_argument="task_id",
    ),
    ActionSpec(
        name="delete_schedule",
        description="remove a schedule (ScheduleZero.unschedule); without "
        "schedule_id, the oldest the run created and has not deleted",
        args=(_SCHEDULE_ID,),
    ),
    ActionSpec(
        name="pause_schedule",
        description="pause a schedule; without schedule_id, the oldest the run "
        "created that is not paused",
        args=(_SCHEDULE_ID,),
    ),
    ActionSpec(
        name="resume_schedule",
        description="resume a schedule; without schedule_id, the oldest the run paused",
        args=(_SCHEDULE_ID,),
    ),
    ActionSpec(
        name="run_job",
        description="run one job now and wait for its end (ScheduleZero.run_now)",
        args=(
            ArgSpec(name="task", kind=TASK, required=True, description="the task"),
            *_JOB_ARGS,
            ArgSpec(
                name="timeout",
                kind=DURATION,
                description="how long to wait for its end; no limit by default",
            ),
        ),
        task_argument="task",
    ),
    ActionSpec(
        name="submit_jobs",
        description="submit jobs at a steady rate without waiting for them "
        "(ScheduleZero.submit); the step ends when the last is submitted",
        args=(
            ArgSpec(name="task", kind=TASK, required=True, description="the task"),
            ArgSpec(
                name="count",
                kind=COUNT,
                required=True,
                description="how many jobs",
            ),
            ArgSpec(
                name="rate",
                kind=RATE,
                description="jobs a second; as fast as they are accepted by default",
            ),
            *_JOB_ARGS,
        ),
        task_argument="task",
    ),
    ActionSpec(
        name="spawn_handler",
        description="register one more local handler of the task (task#2, ...)",
        args=(
            ArgSpec(
                name="task",
                kind=TASK,
                required=True,
                description="the task: one of the setup's local handlers, or a "
                "built-in",
            ),
            ArgSpec(
                name="concurrency",
                kind=COUNT,
                description="jobs it runs at once; the setup's by default",
            ),
        ),
        task_argument="task",
        task_scope="local",
    ),
    ActionSpec(
        name="stop_handler",
        description="stop the newest local handler of the task; its jobs go to "
        "the others",
        args=(
            ArgSpec(
                name="task",
                kind=TASK,
                required=True,
                description="the task of a local handler",
            ),
        ),
        task_argument="task",
        task_scope="local",
    ),
)


def check_arguments(action: ActionSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    """Check an action's arguments against its table; return them converted.

    Args:
        action: The action called.
        args: Its arguments as the step gives them.

    Returns:
        The arguments, durations in seconds and lists as tuples.

    Raises:
        ArgumentProblem: An argument it does not take, one it requires that is
            missing, or a value of the wrong kind; ``argument`` names it.
    """
    converted: dict[str, Any] = {}
    for name, value in args.items():
        spec = action.argument(name)
        if spec is None:
            known = [arg.name for arg in action.args]
            hint = expected_one_of(name, known) if known else "(it takes none)"
            raise ArgumentProblem(
                f"{action.name}: unknown argument {name!r} {hint}", argument=name
            )
        try:
            converted[name] = spec.kind.convert(value)
        except _Refused as refused:
            problem = refused.detail or (
                f"expected {spec.kind.expected}, got {show(value)}"
            )
            raise ArgumentProblem(
                f"{action.name}: {name}: {problem}", argument=name
            ) from None
    for spec in action.args:
        if spec.required and spec.name not in args:
            raise ArgumentProblem(
                f"{action.name}: missing argument {spec.name!r} ({spec.description})"
            )
    return converted
