"""Conditions checked against the metric catalog, and evaluated against values.

:func:`check_expression` runs when a scenario loads: every metric must exist,
functions of samples must be given a sampled metric, and the two sides of a
comparison must measure the same thing (``job_latency < 500MB`` is refused).
A number without a unit compared with a metric in seconds or bytes takes the
unit the scenario's ``metrics`` section shows that metric in (``memory_usage:
MB`` makes ``memory_usage < 500`` mean 500MB); without one it is refused, since
``job_latency < 2`` could mean seconds or milliseconds. Counts, ratios (a bare
0.01 is ``1%``) and rates of counts need no unit.

:func:`evaluate` runs when a run ends (assertions) or while it runs
(``wait_until``, the steady state).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

from ..errors import ExpressionError
from .catalog import METRICS, MetricInfo
from .expressions import (
    And,
    Call,
    Compare,
    Metric,
    Not,
    Number,
    Or,
    Predicate,
    Quantity,
    Value,
    render,
)
from .hints import expected_one_of
from .units import BYTE_UNITS, COUNT, RATIO_UNITS, TIME_UNITS, Dimension, unit_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from .expressions import Expression

__all__ = [
    "MetricValue",
    "Sample",
    "check_expression",
    "display_unit_problem",
    "evaluate",
    "metrics_named",
]

#: One sample of a metric: its value, or ``(time, value)`` with the time in
#: seconds (any clock, the same for all samples). ``rate`` needs the times.
Sample = float | tuple[float, float]
#: A metric's value: one number, or its samples oldest first.
MetricValue = float | Sequence[Sample]

_PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXAMPLES = {"seconds": "2s or 50ms", "bytes": "500MB"}


def display_unit_problem(metric: MetricInfo, unit: str) -> str | None:
    """What is wrong with showing ``metric`` in ``unit``; None if nothing is.

    A metric in seconds may be shown in any time unit (``ms``), one in bytes in
    any byte unit (``MB``), a count in a word (``jobs``), a rate per a time unit
    (``schedules/sec``, ``MB/s``).
    """
    found = unit_of(unit, words=True)
    if found is None:
        return (
            f"{unit!r} is no unit (expected a time unit such as ms, a byte unit "
            "such as MB, %, a word such as jobs, or a rate such as schedules/sec)"
        )
    if found[0] != metric.dimension:
        return f"{metric.name} is in {metric.dimension}, and {unit!r} is in {found[0]}"
    return None


def _language_unit(display: str | None) -> str | None:
    """A display unit as the language writes it: ``schedules/sec`` is ``/sec``."""
    if display is None:
        return None
    head, slash, tail = display.partition("/")
    if head not in TIME_UNITS and head not in BYTE_UNITS and head not in RATIO_UNITS:
        head = ""
    return (head + slash + tail) or None


class _Checker:
    def __init__(
        self, metrics: Mapping[str, MetricInfo], display_units: Mapping[str, str]
    ) -> None:
        self.metrics = metrics
        self.display_units = display_units

    def metric(self, metric: Metric) -> MetricInfo:
        info = self.metrics.get(metric.name)
        if info is None:
            raise ExpressionError(
                f"unknown metric {metric.name!r} "
                f"{expected_one_of(metric.name, self.metrics)}",
                column=metric.column,
            )
        return info

    def measure(self, value: Value) -> tuple[Dimension | None, str | None]:
        """What ``value`` measures (None for a bare number), and its display unit."""
        match value:
            case Number():
                return None, None
            case Quantity(unit=unit):
                found = unit_of(unit)
                if found is None:
                    raise ExpressionError(f"unknown unit {unit!r}", column=value.column)
                return found[0], None
            case Metric(name=name):
                info = self.metric(value)
                return info.dimension, _language_unit(self.display_units.get(name))
            case Call(function=function, metric=metric):
                info = self.metric(metric)
                display = _language_unit(self.display_units.get(metric.name))
                if not info.sampled:
                    raise ExpressionError(
                        f"{function}() reads samples, and {metric.name} is one "
                        "number: compare it as it is",
                        column=value.column,
                    )
                if function == "count":
                    return COUNT, None
                if function != "rate":
                    return info.dimension, display
                if info.dimension.per_second:
                    raise ExpressionError(
                        f"{metric.name} is already {info.dimension}: rate() of it "
                        "would be per second per second",
                        column=value.column,
                    )
                if display is not None and "/" not in display:
                    display += "/s"
                per = Dimension(base=info.dimension.base, per_second=True)
                return per, display

    def bare(
        self, number: Number, other: Value, dimension: Dimension, display: str | None
    ) -> Value:
        """A bare number given the unit of what it is compared with."""
        if display is not None:
            found = unit_of(display)
            if found is not None and found[1] != 1.0:
                return Quantity(value=number.value, unit=display, column=number.column)
            return number
        if dimension.base in ("count", "ratio"):
            return number  # a count, or a ratio (0.01 is 1%)
        example = _EXAMPLES[dimension.base]
        if dimension.per_second:
            example = "1MB/s" if dimension.base == "bytes" else "0.1s/s"
        raise ExpressionError(
            f"{render(other)} is in {dimension}: give {render(number)} a unit, as "
            f"in {example} (or show {_shown(other)} in a unit in the metrics "
            "section)",
            column=number.column,
        )

    def compare(self, compare: Compare) -> Compare:
        left, right = compare.left, compare.right
        left_is, left_shown = self.measure(left)
        right_is, right_shown = self.measure(right)
        if isinstance(left, Number) and right_is is not None:
            left = self.bare(left, right, right_is, right_shown)
        elif isinstance(right, Number) and left_is is not None:
            right = self.bare(right, left, left_is, left_shown)
        elif left_is != right_is:
            raise ExpressionError(
                f"{render(left)} is in {left_is} and {render(right)} is in "
                f"{right_is}: they cannot be compared",
                column=right.column,
            )
        return Compare(op=compare.op, left=left, right=right, column=compare.column)

    def check(self, expression: Predicate) -> Predicate:
        match expression:
            case Compare():
                return self.compare(expression)
            case And(operands=operands):
                checked = tuple(self.check(operand) for operand in operands)
                return And(operands=checked, column=expression.column)
            case Or(operands=operands):
                checked = tuple(self.check(operand) for operand in operands)
                return Or(operands=checked, column=expression.column)
            case Not(operand=operand):
                return Not(operand=self.check(operand), column=expression.column)


def _shown(value: Value) -> str:
    return value.metric.name if isinstance(value, Call) else render(value)


def check_expression(
    expression: Predicate,
    *,
    metrics: Mapping[str, MetricInfo] = METRICS,
    display_units: Mapping[str, str] | None = None,
) -> Predicate:
    """Check a parsed condition's names and units; give bare numbers their unit.

    Args:
        expression: What :func:`parse_expression` returned.
        metrics: The metrics that exist, :data:`METRICS` by default.
        display_units: The unit a scenario shows each metric in (its ``metrics``
            section: ``{"memory_usage": "MB"}``), each checked already with
            :func:`display_unit_problem`; none by default.

    Returns:
        The condition, each bare number compared with a metric shown in a unit
        turned into a :class:`Quantity` of that unit (``memory_usage < 500``
        becomes ``memory_usage < 500MB``).

    Raises:
        ExpressionError: An unknown metric; a function of samples given a
            metric that is one number; ``rate()`` of a rate; two sides that
            measure different things; a bare number compared with seconds or
            bytes not shown in a unit. ``column`` says where.
    """
    return _Checker(metrics, display_units or {}).check(expression)


def metrics_named(expression: Expression) -> frozenset[str]:
    """The names of the metrics an expression reads."""
    return frozenset(_names(expression))


def _names(expression: Expression) -> Iterator[str]:
    match expression:
        case Metric(name=name):
            yield name
        case Call(metric=metric):
            yield metric.name
        case Compare(left=left, right=right):
            yield from _names(left)
            yield from _names(right)
        case And(operands=operands) | Or(operands=operands):
            for operand in operands:
                yield from _names(operand)
        case Not(operand=operand):
            yield from _names(operand)
        case _:
            pass


@overload
def evaluate(
    expression: Predicate,
    metrics: Mapping[str, MetricValue],
    *,
    trend_after: float | None = None,
) -> bool: ...
@overload
def evaluate(
    expression: Value,
    metrics: Mapping[str, MetricValue],
    *,
    trend_after: float | None = None,
) -> float: ...
def evaluate(
    expression: Expression,
    metrics: Mapping[str, MetricValue],
    *,
    trend_after: float | None = None,
) -> float | bool:
    """The value of an expression: True or False for a condition, else a number.

    Values are in base units (seconds, bytes, counts, each per second).

    Args:
        expression: A parsed (and checked) expression.
        metrics: Each metric's value: a number, or its samples oldest first
            (numbers, or ``(time, value)`` pairs, which ``rate`` needs). A bare
            metric name reads the latest sample.
        trend_after: The time (on the samples' clock) before which ``rate``
            ignores samples: the end of a warm-up. None (the default): every
            sample counts. The other functions read every sample.

    Raises:
        ExpressionError: A metric read has no value or no samples, or ``rate``
            is given fewer than two timed samples (or all at one time;
            after ``trend_after`` if given); ``column`` says which part of
            the expression.
    """

    def value(part: Expression) -> Any:
        return evaluate(part, metrics, trend_after=trend_after)

    match expression:
        case Number(value=number):
            return number
        case Quantity():
            return expression.base_value
        case Metric():
            found = _value_of(expression, metrics)
            if isinstance(found, Sequence):
                return _sample_values(expression, found)[-1]
            return float(found)
        case Call(function=function, metric=metric):
            return _call(expression, function, _value_of(metric, metrics), trend_after)
        case Compare(op=op, left=left, right=right):
            return _OPERATORS[op](value(left), value(right))
        case And(operands=operands):
            return all(value(operand) for operand in operands)
        case Or(operands=operands):
            return any(value(operand) for operand in operands)
        case Not(operand=operand):
            return not value(operand)


def _value_of(metric: Metric, metrics: Mapping[str, MetricValue]) -> MetricValue:
    try:
        return metrics[metric.name]
    except KeyError:
        raise ExpressionError(
            f"no value for metric {metric.name!r}", column=metric.column
        ) from None


def _sample_values(at: Metric | Call, samples: Sequence[Sample]) -> list[float]:
    if not samples:
        name = at.name if isinstance(at, Metric) else at.metric.name
        raise ExpressionError(f"no samples of {name}", column=at.column)
    return [
        float(sample[1]) if isinstance(sample, tuple) else float(sample)
        for sample in samples
    ]


def _call(
    call: Call, function: str, value: MetricValue, trend_after: float | None
) -> float:
    samples: Sequence[Sample] = value if isinstance(value, Sequence) else (value,)
    if function == "count":
        return float(len(samples))
    if function == "rate":
        if trend_after is None:
            return _slope(call, samples)
        after = [
            sample
            for sample in samples
            if not isinstance(sample, tuple) or sample[0] >= trend_after
        ]
        return _slope(call, after, " after the warm-up")
    values = _sample_values(call, samples)
    if function == "max":
        return max(values)
    if function == "min":
        return min(values)
    if function == "mean":
        return math.fsum(values) / len(values)
    return _percentile(sorted(values), _PERCENTILES[function])


def _percentile(ordered: list[float], q: float) -> float:
    # Linear between the two nearest ranks: p50 of [1, 2] is 1.5.
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _slope(call: Call, samples: Sequence[Sample], which: str = "") -> float:
    timed = [sample for sample in samples if isinstance(sample, tuple)]
    if len(timed) != len(samples) or len(timed) < 2:
        raise ExpressionError(
            f"rate() needs two or more (time, value) samples of "
            f"{call.metric.name}{which}, got {len(timed)} timed of {len(samples)}",
            column=call.column,
        )
    times = [float(time) for time, _ in timed]
    values = [float(value) for _, value in timed]
    mean_time = math.fsum(times) / len(times)
    mean_value = math.fsum(values) / len(values)
    spread = math.fsum((time - mean_time) ** 2 for time in times)
    if spread == 0:
        raise ExpressionError(
            f"rate() needs samples of {call.metric.name} at different times",
            column=call.column,
        )
    return (
        math.fsum(
            (time - mean_time) * (value - mean_value)
            for time, value in zip(times, values, strict=True)
        )
        / spread
    )
