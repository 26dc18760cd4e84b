"""What a scenario run leaves behind: ``ScenarioResult``, as JSON and as CSV.

The JSON export is the issue's shape: ``name``, ``run_id``, ``seed``,
``parameters``, ``started_at``, ``finished_at``, ``passed``, ``metrics`` (a
number, or ``{p50, p90, p99, max, min, mean, count, rate}`` for a metric with
samples), ``checks`` (``{passed, ...details}`` by name), ``assertions``
(``{expression, value, passed}``) and ``timeline``. The run's outcome (and why
an aborted or broken run ended) is the timeline's last event, ``run_end``. The
CSV export has one row per metric sample over time.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from .model import Scalar

__all__ = [
    "OUTCOMES",
    "STORED_SAMPLES",
    "AssertionResult",
    "MetricSample",
    "Outcome",
    "ScenarioResult",
    "TimelineEvent",
]

Outcome = Literal["passed", "failed", "aborted", "error"]
#: How a run ended: every check and assertion held (``passed``); one did not,
#: or a ``wait_until`` timed out (``failed``); the run's actor was killed or
#: stopped, or the scheduler ended under it (``aborted``); a step could not do
#: its work, as a worker fault without workers (``error``).
OUTCOMES: tuple[Outcome, ...] = ("passed", "failed", "aborted", "error")

#: Samples the store keeps of one run at most (about 1.5 MB of JSON): a
#: longer run keeps every n-th sample of each metric.
STORED_SAMPLES = 50_000


@attrs.frozen(kw_only=True)
class TimelineEvent:
    """One moment of a run: a step began or ended, a fault struck, a worker fell.

    Attributes:
        at: When (wall clock, UTC).
        offset: Seconds since the run began.
        event: ``run_start``, ``step_start``, ``step_end``, ``fault``,
            ``worker``, ``steady_state`` (a condition broke, with the phase
            known then), ``warmup_end`` (trends are measured from here) or
            ``run_end``.
        name: The step's name (or kind), the fault's, or the worker's.
        detail: What else there is to say: a fault's targets, a step's error,
            the run's outcome.
    """

    at: datetime
    offset: float
    event: str
    name: str = ""
    detail: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The event as plain JSON data."""
        return {
            "at": self.at.isoformat(),
            "offset": round(self.offset, 6),
            "event": self.event,
            "name": self.name,
            **_plain(self.detail),
        }


@attrs.frozen(kw_only=True)
class MetricSample:
    """One sample of a metric over time.

    Attributes:
        metric: The metric's name.
        offset: Seconds since the run began.
        value: Its value, in the metric's base unit.
    """

    metric: str
    offset: float
    value: float


@attrs.frozen(kw_only=True)
class AssertionResult:
    """An assertion of the scenario and how it came out.

    Attributes:
        expression: The condition as written.
        value: True or False; None if it could not be evaluated (a metric with
            no samples), which fails it.
        passed: Whether it held.
        error: Why it could not be evaluated, or None.
    """

    expression: str
    value: bool | None
    passed: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The assertion as the export shows it."""
        shown: dict[str, Any] = {
            "expression": self.expression,
            "value": self.value,
            "passed": self.passed,
        }
        if self.error is not None:
            shown["error"] = self.error
        return shown


@attrs.frozen(kw_only=True)
class ScenarioResult:
    """A finished run of a scenario.

    Attributes:
        name: The scenario's name.
        run_id: The run's id (its actor is ``/user/scenarios/<run_id>``).
        seed: The seed of its random choices (which actors a fault picks).
        parameters: The parameters it ran with.
        started_at: When it began (UTC).
        finished_at: When it ended (UTC).
        outcome: ``passed``, ``failed``, ``aborted`` or ``error`` (see
            :data:`OUTCOMES`).
        metrics: Each reported metric: a number, or a summary of its samples
            (``p50``, ``p90``, ``p99``, ``max``, ``min``, ``mean``, ``count``,
            and ``rate``, the trend per second, for metrics sampled over time).
        checks: Each check by name: ``{"passed": bool, ...details}``.
        assertions: Each assertion and its value.
        timeline: What happened, in order.
        samples: Every metric sample over time (the CSV export).
        error: Why the run ended early (aborted or error), or None.
    """

    name: str
    run_id: str
    seed: int
    parameters: Mapping[str, Scalar]
    started_at: datetime
    finished_at: datetime
    outcome: Outcome
    metrics: Mapping[str, float | Mapping[str, float]] = attrs.field(factory=dict)
    checks: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    assertions: tuple[AssertionResult, ...] = ()
    timeline: tuple[TimelineEvent, ...] = ()
    samples: tuple[MetricSample, ...] = ()
    error: str | None = None

    @property
    def passed(self) -> bool:
        """Whether every check and assertion held and the run ran to its end."""
        return self.outcome == "passed"

    @property
    def duration(self) -> float:
        """Seconds the run took."""
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """The result as the JSON export has it (plain data, ``json.dumps``-able)."""
        return {
            "name": self.name,
            "run_id": self.run_id,
            "seed": self.seed,
            "parameters": dict(self.parameters),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "passed": self.passed,
            "metrics": _plain(self.metrics),
            "checks": _plain(self.checks),
            "assertions": [assertion.to_json() for assertion in self.assertions],
            "timeline": [event.to_json() for event in self.timeline],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScenarioResult:
        """A result read back from its JSON export (``to_json``'s shape).

        The outcome and the error are the ``run_end`` event's (or, when given,
        the keys ``outcome`` and ``error`` beside the export's, as the
        gateway's ``/api/tests/results`` adds them). The export holds no
        samples: the result read back has none, unless ``data`` is what the
        store keeps (``to_stored_json``: a ``samples`` key).

        Raises:
            ValueError: ``data`` is not a result's export.
        """
        try:
            timeline = tuple(
                TimelineEvent(
                    at=datetime.fromisoformat(event["at"]),
                    offset=float(event["offset"]),
                    event=event["event"],
                    name=event.get("name", ""),
                    detail={
                        key: value
                        for key, value in event.items()
                        if key not in ("at", "offset", "event", "name")
                    },
                )
                for event in data["timeline"]
            )
            ends = [event.detail for event in timeline if event.event == "run_end"]
            end = ends[-1] if ends else {}
            given = data.get("outcome") or end.get("outcome")
            outcome: Outcome = next(
                (known for known in OUTCOMES if known == given),
                "passed" if data["passed"] else "failed",
            )
            return cls(
                name=data["name"],
                run_id=data["run_id"],
                seed=int(data["seed"]),
                parameters=dict(data["parameters"]),
                started_at=datetime.fromisoformat(data["started_at"]),
                finished_at=datetime.fromisoformat(data["finished_at"]),
                outcome=outcome,
                metrics=dict(data["metrics"]),
                checks=dict(data["checks"]),
                assertions=tuple(
                    AssertionResult(
                        expression=item["expression"],
                        value=item["value"],
                        passed=item["passed"],
                        error=item.get("error"),
                    )
                    for item in data["assertions"]
                ),
                timeline=timeline,
                samples=tuple(
                    MetricSample(metric=str(metric), offset=float(at), value=float(v))
                    for at, metric, v in data.get("samples", ())
                ),
                error=data.get("error", end.get("error")),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a scenario result's JSON: {exc!r}") from None

    def to_stored_json(self) -> dict[str, Any]:
        """The JSON export and the samples: what the store keeps of a run.

        Samples as ``[offset, metric, value]``, so that a run read back (after
        a restart) still has its CSV export and its charts; a run of more than
        ``STORED_SAMPLES`` samples keeps every n-th of each metric, its first
        and last included.
        """
        data = self.to_json()
        data["samples"] = [
            [sample.offset, sample.metric, sample.value]
            for sample in _thinned(self.samples, STORED_SAMPLES)
            if math.isfinite(sample.value)
        ]
        return data

    def dumps(self) -> str:
        """The JSON export as text."""
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"

    def to_csv(self) -> str:
        """The CSV export: ``offset,metric,value``, one row per sample over time."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("offset", "metric", "value"))
        for sample in sorted(self.samples, key=lambda s: (s.offset, s.metric)):
            writer.writerow((f"{sample.offset:.6f}", sample.metric, repr(sample.value)))
        return out.getvalue()


def _thinned(samples: tuple[MetricSample, ...], most: int) -> tuple[MetricSample, ...]:
    """About ``most`` of ``samples``: every n-th of each metric, its last too."""
    if len(samples) <= most:
        return samples
    step = math.ceil(len(samples) / most)
    by_metric: dict[str, list[MetricSample]] = {}
    for sample in samples:
        by_metric.setdefault(sample.metric, []).append(sample)
    kept: list[MetricSample] = []
    for series in by_metric.values():
        picked = series[::step]
        if picked[-1] is not series[-1]:
            picked.append(series[-1])
        kept.extend(picked)
    return tuple(kept)


def _plain(value: Any) -> Any:
    """``value`` as JSON data: mappings, lists, finite numbers, text."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [_plain(item) for item in items]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
