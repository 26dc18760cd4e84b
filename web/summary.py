"""``GET /api/summary``: the counts a dashboard's summary bar shows, in one call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from actors import lowlevel
from sz import SzError

from .access import ACCESS

if TYPE_CHECKING:
    from sz import ScheduleZero


__all__ = ["FAILED", "RESTARTS_WINDOW", "add_summary_routes", "summarize"]

#: The final outcomes that count as failed: the job did not do its work.
FAILED = frozenset(
    {"failure", "timeout", "abandoned", "no_healthy_handler", "rejected"}
)

#: The window of ``actors.restarts_recent``, in seconds: five minutes.
RESTARTS_WINDOW = 300.0


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


async def summarize(sz: ScheduleZero) -> dict[str, Any]:
    """The summary of a running scheduler, as JSON-ready data.

    Run it in the scheduler's own loop (``SchedulerAccess.call``). Jobs ended
    are counted since the scheduler was made (``sz.metrics()``), and so is
    ``lateness`` (fires' first attempts: how many, and their lateness summed, so
    that a client reads the mean lateness of any interval from two summaries).
    ``actors.restarts_5m`` counts the restarts of the last five minutes, as the
    actor system recorded them.

    Only the schedules are awaited; everything else is read after them in one
    synchronous pass (``sz.live_counts()``, not an ask of the dispatcher: an
    ask waits behind every job in its mailbox), so the numbers are of one
    instant and consistent with one another.

    Raises:
        SzError: The scheduler is not running.
    """
    schedules = await sz.schedules()
    now = datetime.now(UTC)
    live = sz.live_counts()
    system = sz.system
    actors = system.snapshot().walk()
    metrics = sz.metrics()
    ended: dict[str, int] = {}
    for (_task, outcome), count in metrics.jobs.items():
        ended[outcome] = ended.get(outcome, 0) + count
    soon = now + timedelta(hours=1)
    return {
        "time": now.isoformat(),
        "jobs": {
            "held": live.held,
            "waiting": live.waiting,
            "running": live.running,
            "retrying": live.retrying,
        },
        "ended": {
            "total": sum(ended.values()),
            "failed": sum(n for outcome, n in ended.items() if outcome in FAILED),
            "by_outcome": dict(sorted(ended.items())),
        },
        "handlers": {"up": live.handlers_up, "total": live.handlers},
        "actors": {
            "up": sum(a.state == "running" for a in actors),
            "total": len(actors),
            "restarts": sum(a.restarts for a in actors),
            "restarts_5m": lowlevel.recent_restarts(system, RESTARTS_WINDOW),
        },
        "dead_letters": system.statistics().dead_letters,
        "schedules": {
            "total": len(schedules),
            "paused": sum(s.paused for s in schedules),
            "due_within_hour": sum(
                not s.paused
                and s.next_fire_time is not None
                and s.next_fire_time <= soon
                for s in schedules
            ),
        },
        "lateness": {
            "fires": metrics.lateness.total,
            "sum": round(metrics.lateness.sum, 6),
        },
        "loop_lag": {
            "latest": _seconds(metrics.loop_lag),
            "worst_last_minute": _seconds(metrics.loop_lag_worst),
        },
    }


async def _summary(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    try:
        body: dict[str, Any] = await access.call(summarize, access.scheduler)
    except SzError as error:  # not running: starting, or stopped
        raise web.HTTPServiceUnavailable(text=str(error)) from None
    return web.json_response(body)


def add_summary_routes(app: web.Application) -> None:
    """Mount ``GET /api/summary``."""
    app.router.add_get("/api/summary", _summary)
