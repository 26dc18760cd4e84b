"""A run's metric values: live for conditions, final (with the history) for the result.

Sampled over time (``memory_usage``, ``jobs_per_sec``, ``restarts``, ``fds``,
``jobs_pending``): the sampler's series. Per job (``job_latency``: submission
or fire to final row; ``scheduler_latency``: fire to the start of its first
attempt, less the time the machine surely kept the loop from a CPU meanwhile,
``stalls``): from the history at the end, each sample at the offset its row
finished. One number (``creation_rate``, ``deletion_rate``: schedules a
second of time spent in those actions; ``lost_jobs``, ``duplicate_jobs``:
from the checks; ``error_rate``: the share of the history's jobs whose final
outcome was not a success, none without a job).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .catalog import METRICS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .checks import History
    from .evaluation import MetricValue
    from .record import RunRecord

__all__ = ["OVER_TIME", "final_metrics", "live_metrics", "summarize"]

#: The metrics the sampler records over time.
OVER_TIME = frozenset(
    {"memory_usage", "jobs_per_sec", "restarts", "fds", "jobs_pending"}
)


def live_metrics(record: RunRecord) -> dict[str, MetricValue]:
    """What is known while the run runs (no per-job metrics, no lost jobs)."""
    values: dict[str, MetricValue] = {
        name: list(series)
        for name, series in record.samples.items()
        if name in METRICS and series
    }
    if record.created and record.creating > 0:
        values["creation_rate"] = record.created / record.creating
    if record.deleted and record.deleting > 0:
        values["deletion_rate"] = record.deleted / record.deleting
    return values


def final_metrics(
    record: RunRecord, history: History, lost: int, duplicates: int
) -> dict[str, MetricValue]:
    """Every metric's value at the end of the run."""
    values = live_metrics(record)
    start = record.started_at
    latency: list[tuple[float, float]] = []
    lateness: list[tuple[float, float]] = []
    for rows in history.finals.values():
        row = rows[0]
        offset = (row.finished_at - start).total_seconds()
        if offset < 0:
            continue
        latency.append((offset, (row.finished_at - row.scheduled_at).total_seconds()))
        if row.schedule_id is not None:
            first = history.first_attempts.get(row.job_id, row)
            if first.started_at is not None:
                late = (first.started_at - first.scheduled_at).total_seconds()
                # Less the machine's stalls of the loop (module stalls).
                late -= record.machine_stall(first.scheduled_at, first.started_at)
                lateness.append((offset, max(0.0, late)))
    latency.sort()
    lateness.sort()
    if latency:
        values["job_latency"] = latency
    if lateness:
        values["scheduler_latency"] = lateness
    if history.finals:
        failed = sum(rows[0].outcome != "success" for rows in history.finals.values())
        values["error_rate"] = failed / len(history.finals)
    values["lost_jobs"] = float(lost)
    values["duplicate_jobs"] = float(duplicates)
    return values


def summarize(
    name: str, value: MetricValue, trend_after: float | None = None
) -> float | dict[str, float]:
    """A metric as the result reports it: a number, or a summary of its samples.

    The summary has ``p50``, ``p90``, ``p99``, ``max``, ``min``, ``mean`` and
    ``count``; a metric sampled over time also ``rate``, its trend per second
    (the least-squares slope: a leak's signature), over the samples from
    ``trend_after`` on (the end of the warm-up; every sample if None), when
    there are two or more.
    """
    if isinstance(value, int | float):
        return float(value)
    samples = [
        sample if isinstance(sample, tuple) else (0.0, float(sample))
        for sample in value
    ]
    values = sorted(sample[1] for sample in samples)
    if not values:
        return {"count": 0}

    def at(q: float) -> float:
        position = q * (len(values) - 1)
        low = math.floor(position)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (position - low)

    summary = {
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "max": values[-1],
        "min": values[0],
        "mean": math.fsum(values) / len(values),
        "count": float(len(values)),
    }
    trend = (
        samples
        if trend_after is None
        else [sample for sample in samples if sample[0] >= trend_after]
    )
    if name in OVER_TIME and len(trend) >= 2:
        summary["rate"] = _slope(trend)
    return summary


def _slope(samples: Sequence[tuple[float, float]]) -> float:
    times = [sample[0] for sample in samples]
    values = [sample[1] for sample in samples]
    mean_t = math.fsum(times) / len(times)
    mean_v = math.fsum(values) / len(values)
    spread = math.fsum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return 0.0
    return (
        math.fsum(
            (t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)
        )
        / spread
    )
