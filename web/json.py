"""What the API answers: the scheduler's and the runtime's objects as JSON data.

One function per kind of object, each returning plain dicts, lists, strings,
numbers, booleans and None that ``json.dumps`` encodes as they are. Times are
ISO 8601 strings in UTC; a float that JSON cannot hold (``inf``, ``nan``) is
None. Values that come from users' code (arguments, results, messages) are
shown as they are when JSON can hold them, else as their bounded ``repr``:
nothing here raises on an odd value.

The schemas of ``web.openapi`` describe exactly these shapes; a test holds the
two together.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sz.shapes import (
    MAX_REPR,
    MAX_VALUE_TEXT,
    attempt_data,
    iso,
    number,
    schedule_data,
    value_data,
)

if TYPE_CHECKING:
    from actors import ActorDeath, ActorSnapshot
    from sz import (
        Attempt,
        BrokerStats,
        GovernorStatus,
        HandlerStatus,
        JobStatus,
        RecentDeadLetter,
    )

__all__ = [
    "MAX_REPR",
    "MAX_VALUE_TEXT",
    "actor_data",
    "attempt_data",
    "broker_data",
    "dead_letter_data",
    "death_data",
    "governor_data",
    "handler_data",
    "iso",
    "job_status_data",
    "last_run_data",
    "number",
    "schedule_data",
    "value_data",
]


def _unix(seconds: float | None) -> str | None:
    """Unix seconds as ISO 8601 in UTC; None if not a usable time."""
    if seconds is None or not math.isfinite(seconds):
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def handler_data(status: HandlerStatus, now: float | None = None) -> dict[str, Any]:
    """A ``HandlerStatus``, with its health.

    Args:
        status: The handler's status.
        now: The actor system's clock when the status was read, for the age of
            its last sign of life (``heartbeat_age``, seconds); None leaves it
            None. ``last_seen`` itself is on that monotonic clock: meaningless
            outside the process, so it is not shown.
    """
    health = status.health
    age = None if now is None else number(max(0.0, now - health.last_seen))
    return {
        "name": status.name,
        "task": status.task,
        "tasks": list(status.tasks),
        "kind": status.kind,
        "concurrency": status.concurrency,
        "busy": health.active,
        "rate": number(status.rate),
        "draining": status.draining,
        "health": {
            "state": health.state,
            "heartbeat_age": age,
            "uptime": number(health.uptime),
            "successes": health.successes,
            "failures": health.failures,
            "failure_ratio": number(health.failure_ratio),
            "avg_duration": number(health.avg_duration),
            "active": health.active,
            "trial": health.trial,
        },
    }


def governor_data(status: GovernorStatus) -> dict[str, Any]:
    """A ``GovernorStatus``: one limit, its rates, tokens and counts."""
    return {
        "name": status.name,
        "rate": number(status.rate),
        "effective_rate": number(status.effective_rate),
        "burst": number(status.burst),
        "tokens": number(status.tokens),
        "max_running": status.max_running,
        "running": status.running,
        "waiting": status.waiting,
        "limited": status.limited,
        "rejected": status.rejected,
    }


def job_status_data(status: JobStatus) -> dict[str, Any]:
    """A ``JobStatus``: where one job stands, and why."""
    return {
        "id": status.id,
        "task": status.task,
        "state": status.state,
        "attempt": status.attempt,
        "schedule_id": status.schedule_id,
        "scheduled_at": iso(status.scheduled_at),
        "handler": status.handler,
        "since": iso(status.since),
        "why": status.why,
        "outcome": status.outcome,
    }


def actor_data(snapshot: ActorSnapshot) -> dict[str, Any]:
    """An ``ActorSnapshot`` and, nested, its children's.

    ``supervision`` is how it treats its children: its strategy, its intensity
    (``max_restarts`` within ``within`` seconds), the restarts of its children
    counted against that intensity now (``window_restarts``), and what a restart
    beyond it does (``past_intensity``: ``escalate``, giving up, or ``backoff``,
    restarting after a delay from ``backoff_min`` to ``backoff_max`` seconds).
    """
    supervision = snapshot.supervision
    backoff = supervision.past_intensity
    return {
        "path": snapshot.path,
        "name": snapshot.path.rsplit("/", 1)[-1],
        "actor_class": snapshot.actor_class,
        "state": snapshot.state,
        "mailbox_depth": snapshot.mailbox_depth,
        "mailbox_capacity": snapshot.mailbox_capacity,
        "processed": snapshot.processed,
        "failures": snapshot.failures,
        "restarts": snapshot.restarts,
        "last_error": snapshot.last_error,
        "started_at": _unix(snapshot.started_at),
        "supervision": {
            "strategy": supervision.strategy,
            "max_restarts": supervision.max_restarts,
            "within": supervision.within,
            "window_restarts": snapshot.window_restarts,
            "past_intensity": "escalate" if backoff is None else "backoff",
            "backoff_min": None if backoff is None else backoff.min,
            "backoff_max": None if backoff is None else backoff.max,
        },
        "children": [actor_data(child) for child in snapshot.children],
    }


def death_data(death: ActorDeath) -> dict[str, Any]:
    """An ``ActorDeath``: one crash of an actor, and what became of the actor."""
    return {
        "path": death.path,
        "name": death.path.rsplit("/", 1)[-1],
        "actor_class": death.actor_class,
        "cause": death.cause,
        "died_at": _unix(death.died_at),
        "restarted": death.restarted,
        "ended": death.ended,
    }


def last_run_data(row: Attempt | None) -> dict[str, Any] | None:
    """A schedule's last run, from its latest job's final row; None if none."""
    if row is None:
        return None
    return {
        "job_id": row.job_id,
        "finished_at": iso(row.finished_at),
        "outcome": row.outcome,
        "duration": number(row.duration),
        "attempt": row.attempt,
    }


def broker_data(endpoint: str, stats: BrokerStats) -> dict[str, Any]:
    """The broker's endpoint and what it has seen (``BrokerStats``)."""
    return {
        "endpoint": endpoint,
        "stats": {
            "registered": stats.registered,
            "refused": stats.refused,
            "malformed": stats.malformed,
            "unknown_peer": stats.unknown_peer,
            "workers_lost": stats.workers_lost,
            "workers_left": stats.workers_left,
            "jobs_sent": stats.jobs_sent,
            "results": stats.results,
            "stale_results": stats.stale_results,
            "congested": stats.congested,
            "connections": stats.connections,
            "disconnections": stats.disconnections,
            "handshakes_refused": stats.handshakes_refused,
        },
    }


def dead_letter_data(letter: RecentDeadLetter) -> dict[str, Any]:
    """A ``RecentDeadLetter``: when, to whom, why, and the message as text."""
    return {
        "at": iso(letter.at),
        "path": letter.path,
        "reason": letter.reason,
        "message_type": letter.message_type,
        "message": letter.message,
    }
