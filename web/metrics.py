"""``GET /metrics``: what the scheduler did and how it stands, for Prometheus.

Gathered in one call on the scheduler's loop (``sz.metrics()``, the actor
tree, the handlers and the governors), then written in Prometheus' text format
by ``prometheus-client``'s own families and exposition: a registry made for each
scrape holds one collector of that snapshot, so nothing is kept between scrapes
and the process-wide default registry is left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from actors import ActorSnapshot
from sz import GovernorStatus, HandlerStatus, SzError
from sz.metrics import BUCKETS, Metrics

from .access import ACCESS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from sz import ScheduleZero
    from sz.metrics import Histogram

__all__ = ["Scrape", "add_metrics_route", "render", "scrape"]

#: Health states in which a handler takes jobs.
_UP = frozenset({"healthy", "degraded"})


@attrs.frozen
class Scrape:
    """Everything one scrape shows, taken at once on the scheduler's loop."""

    metrics: Metrics
    actors: list[ActorSnapshot]
    handlers: list[HandlerStatus]
    governors: list[GovernorStatus]


async def scrape(sz: ScheduleZero) -> Scrape:
    """Take a ``Scrape`` (run it on the scheduler's loop: ``SchedulerAccess``).

    Raises:
        SzError: The scheduler is not running.
    """
    return Scrape(
        sz.metrics(),
        sz.system.snapshot().walk(),
        await sz.handlers(),
        await sz.governors(),
    )


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """Prometheus' cumulative buckets, ``+Inf`` last."""
    cumulative, total = [], 0
    for bound, count in zip(BUCKETS, histogram.counts, strict=False):
        total += count
        cumulative.append((repr(bound), float(total)))
    cumulative.append(("+Inf", float(histogram.total)))
    return cumulative


class _Collector:
    """Yields the families of one ``Scrape`` (prometheus-client's collector API)."""

    def __init__(self, taken: Scrape) -> None:
        self.taken = taken

    def collect(self) -> Iterator[Metric]:
        metrics = self.taken.metrics
        jobs = CounterMetricFamily(
            "sz_jobs",
            "Jobs ended, by task and final outcome.",
            labels=["task", "outcome"],
        )
        for (task, outcome), count in sorted(metrics.jobs.items()):
            jobs.add_metric([task, outcome], count)
        yield jobs
        attempts = CounterMetricFamily(
            "sz_attempts",
            "Attempts ended, by task and outcome.",
            labels=["task", "outcome"],
        )
        for (task, outcome), count in sorted(metrics.attempts.items()):
            attempts.add_metric([task, outcome], count)
        yield attempts
        durations = HistogramMetricFamily(
            "sz_attempt_duration_seconds",
            "How long attempts ran, by task.",
            labels=["task"],
        )
        for task, histogram in sorted(metrics.durations.items()):
            durations.add_metric([task], _buckets(histogram), histogram.sum)
        yield durations
        lateness = HistogramMetricFamily(
            "sz_fire_lateness_seconds",
            "How late fires' first attempts started after they were due.",
        )
        lateness.add_metric([], _buckets(metrics.lateness), metrics.lateness.sum)
        yield lateness
        waited = HistogramMetricFamily(
            "sz_governor_wait_seconds",
            "How long governors held attempts back before they started, by reason.",
            labels=["reason"],
        )
        for reason, histogram in sorted(metrics.waited.items()):
            waited.add_metric([reason], _buckets(histogram), histogram.sum)
        yield waited
        lag = GaugeMetricFamily(
            "sz_event_loop_lag_seconds",
            "How late the scheduler's event loop woke a half-second timer, last look.",
        )
        lag.add_metric([], metrics.loop_lag or 0.0)
        yield lag
        worst = GaugeMetricFamily(
            "sz_event_loop_lag_worst_seconds",
            "The largest event-loop lag of the last minute.",
        )
        worst.add_metric([], metrics.loop_lag_worst or 0.0)
        yield worst
        yield from self._actors()
        yield from self._handlers()
        yield from self._governors()

    def _actors(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "sz_actor_mailbox_depth",
            "Messages waiting in each actor's mailbox.",
            labels=["path"],
        )
        restarts = CounterMetricFamily(
            "sz_actor_restarts",
            "Times each actor was restarted in place.",
            labels=["path"],
        )
        up = GaugeMetricFamily(
            "sz_actor_up", "1 while the actor is running, else 0.", labels=["path"]
        )
        for actor in self.taken.actors:
            depth.add_metric([actor.path], actor.mailbox_depth)
            restarts.add_metric([actor.path], actor.restarts)
            up.add_metric([actor.path], 1.0 if actor.state == "running" else 0.0)
        yield depth
        yield restarts
        yield up

    def _handlers(self) -> Iterator[Metric]:
        healthy = GaugeMetricFamily(
            "sz_handler_up",
            "1 while the handler takes jobs (healthy or degraded), else 0.",
            labels=["handler", "kind"],
        )
        busy = GaugeMetricFamily(
            "sz_handler_jobs_in_flight",
            "Jobs each handler runs now.",
            labels=["handler"],
        )
        ratio = GaugeMetricFamily(
            "sz_handler_failure_ratio",
            "Failures over the outcomes in each handler's health window.",
            labels=["handler"],
        )
        for handler in self.taken.handlers:
            health = handler.health
            healthy.add_metric(
                [handler.name, handler.kind], 1.0 if health.state in _UP else 0.0
            )
            busy.add_metric([handler.name], health.active)
            ratio.add_metric([handler.name], health.failure_ratio)
        yield healthy
        yield busy
        yield ratio

    def _governors(self) -> Iterator[Metric]:
        waiting = GaugeMetricFamily(
            "sz_governor_jobs_waiting",
            "Jobs waiting that each limit covers.",
            labels=["limit"],
        )
        limited = CounterMetricFamily(
            "sz_governor_limited",
            "Jobs that have waited for each limit.",
            labels=["limit"],
        )
        for governor in self.taken.governors:
            waiting.add_metric([governor.name], governor.waiting)
            limited.add_metric([governor.name], governor.limited)
        yield waiting
        yield limited


def render(taken: Scrape) -> bytes:
    """``taken`` in Prometheus' text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(taken))
    text: bytes = generate_latest(registry)
    return text


async def _metrics(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    try:
        taken: Scrape = await access.call(scrape, access.scheduler)
    except SzError as error:  # not running: starting, or stopped
        raise web.HTTPServiceUnavailable(text=str(error)) from None
    response = web.Response(body=render(taken))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def add_metrics_route(app: web.Application) -> None:
    """Mount ``GET /metrics`` (under the gateway's guards: the token too)."""
    app.router.add_get("/metrics", _metrics)
