"""The metrics and checks a scenario may name, with what each means.

One registry each, read by the loader (an unknown name is an error naming its
line), by the expression checker (a metric's unit decides what it may be
compared with) and by the runner (which measures and checks them).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

import attrs

from .units import BYTES, COUNT, PER_SECOND, RATIO, SECONDS, Dimension

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CHECKS", "METRICS", "CheckInfo", "MetricInfo"]


@attrs.frozen(kw_only=True)
class MetricInfo:
    """A metric a run measures.

    Attributes:
        name: Its name in conditions and in the ``metrics`` section.
        dimension: What it measures: seconds, bytes, a count, a ratio, or a
            count per second. A number compared with it must have a unit of the same
            dimension.
        sampled: True if the run records it over time (a series of samples:
            its bare name is the latest, and ``p99(name)`` and the like read the
            whole series); False if it is one number at the end of the run.
        description: What it measures, in a sentence.
    """

    name: str
    dimension: Dimension
    sampled: bool
    description: str


@attrs.frozen(kw_only=True)
class CheckInfo:
    """A check over the run's recorded history (the runner implements each).

    Attributes:
        name: Its name in the ``checks`` section.
        description: The invariant it holds the history to, in a sentence.
    """

    name: str
    description: str


def _metrics(*infos: MetricInfo) -> Mapping[str, MetricInfo]:
    return MappingProxyType({info.name: info for info in infos})


#: Every metric a scenario may name, by name.
METRICS: Mapping[str, MetricInfo] = _metrics(
    MetricInfo(
        name="creation_rate",
        dimension=PER_SECOND,
        sampled=False,
        description="schedules created a second by the run's create_schedule steps",
    ),
    MetricInfo(
        name="deletion_rate",
        dimension=PER_SECOND,
        sampled=False,
        description="schedules deleted a second by the run's delete_schedule steps",
    ),
    MetricInfo(
        name="memory_usage",
        dimension=BYTES,
        sampled=True,
        description="the scheduler process's resident memory (RSS)",
    ),
    MetricInfo(
        name="scheduler_latency",
        dimension=SECONDS,
        sampled=True,
        description=(
            "each fire's lateness: from its fire time to its job's start, less"
            " the time the machine kept the scheduler's loop from a CPU"
        ),
    ),
    MetricInfo(
        name="jobs_per_sec",
        dimension=PER_SECOND,
        sampled=True,
        description="jobs finished a second (any final outcome but rejected:"
        " refused, like those refused at submit), over the last second",
    ),
    MetricInfo(
        name="job_latency",
        dimension=SECONDS,
        sampled=True,
        description="each job's time from submission (or fire) to its final row",
    ),
    MetricInfo(
        name="lost_jobs",
        dimension=COUNT,
        sampled=False,
        description="jobs submitted or fired that have no final history row",
    ),
    MetricInfo(
        name="duplicate_jobs",
        dimension=COUNT,
        sampled=False,
        description="jobs that succeeded more than once (counted by the run's "
        "own handlers)",
    ),
    MetricInfo(
        name="error_rate",
        dimension=RATIO,
        sampled=False,
        description="the share of the run's jobs whose final outcome was not a "
        "success (0.01 is 1%)",
    ),
    MetricInfo(
        name="restarts",
        dimension=COUNT,
        sampled=True,
        description="actor restarts in the scheduler's tree since the run began",
    ),
    MetricInfo(
        name="fds",
        dimension=COUNT,
        sampled=True,
        description="the scheduler process's open file descriptors",
    ),
    MetricInfo(
        name="jobs_pending",
        dimension=COUNT,
        sampled=True,
        description="jobs of the run accepted and not yet final (for wait_until)",
    ),
)


def _checks(*infos: CheckInfo) -> Mapping[str, CheckInfo]:
    return MappingProxyType({info.name: info for info in infos})


#: Every check a scenario may name, by name.
CHECKS: Mapping[str, CheckInfo] = _checks(
    CheckInfo(
        name="no_lost_jobs",
        description="every submitted job and every due fire has exactly one "
        "final history row",
    ),
    CheckInfo(
        name="no_duplicate_jobs",
        description="no job succeeded twice (executions counted by the run's own "
        "handlers)",
    ),
    CheckInfo(
        name="schedule_fidelity",
        description="no fire of the run's schedules was missed or late beyond its "
        "grace; reports the drift",
    ),
    CheckInfo(
        name="recovery_time",
        description="after each fault, throughput came back within 10 % of its "
        "level before; reports the time it took",
    ),
    CheckInfo(
        name="restart_budget",
        description="no supervisor gave up (no restart intensity was exceeded)",
    ),
)
