"""``GET /api/events``: the scheduler's state, live, as Server-Sent Events.

The stream polls: every ``events_interval`` (0.5 s by default) it reads the
scheduler's state through the application's ``SchedulerAccess`` and sends each
kind of event only if its part changed since the last one sent to this client.
So the stream is coalesced by construction: ten thousand jobs a second reach a
client as at most one ``job`` and one ``summary`` event per interval. A
``: ping`` comment line goes out every ``events_heartbeat`` (15 s by default),
whatever else was sent, so that proxies do not close a quiet stream as idle.

The events, each with ``data:`` one line of JSON:

- ``summary``: the body of ``GET /api/summary``, whole. Its clock readings
  (``time``, ``loop_lag``) ride along but do not by themselves make news.
- ``job``, ``schedule``, ``handler``, ``actor``: what changed among the live
  jobs (by id), the schedules (by id), the handlers (by name) and the actors
  of the supervision tree (by path, each without its children):
  ``{"full": false, "items": [...], "removed": [...]}``, ``items`` holding
  the changed or new ones as the matching ``/api`` route shows them and
  ``removed`` the keys of those gone (a job ended, a schedule deleted). A
  handler's ``heartbeat_age`` and ``uptime`` do not by themselves make news.

Every connection begins with a full snapshot: one event of each kind, the
others with ``"full": true`` and every item. Each event bears an ``id:``,
increasing through the server's life. A client that reconnects with
``Last-Event-ID`` gets the same: the current state at once, not the events it
missed — intermediate states are gone, only the latest is kept.

A client that does not read is dropped rather than buffered for: a write that
its client has not taken within ``events_write_timeout`` (5 s by default)
closes the connection, with one warning in the ``web`` log. The kernel's
socket buffers and the transport's (64 KiB before a write waits) are all it
holds meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web

from actors import lowlevel
from sz import SzError

from .access import ACCESS
from .json import actor_data, handler_data, job_status_data, schedule_data
from .security import origin_allowed
from .settings import SETTINGS, GatewaySettings
from .summary import summarize

if TYPE_CHECKING:
    from collections.abc import Iterator

    from actors import ActorSnapshot
    from sz import HandlerStatus, JobStatus, Schedule, ScheduleZero

__all__ = ["KINDS", "add_event_routes"]

logger = logging.getLogger("web")

#: The named events, in the order a snapshot sends them.
KINDS = ("summary", "job", "schedule", "handler", "actor")

#: What a browser's ``EventSource`` waits before reconnecting, in milliseconds.
RETRY_MS = 2000

#: Fields read off a clock: sent along, never a change by themselves.
_SUMMARY_CLOCKS = frozenset({"time", "loop_lag"})
_HANDLER_CLOCKS = ("heartbeat_age", "uptime")

_NEXT_ID: web.AppKey[Iterator[int]] = web.AppKey("event_ids")
_STOPPING: web.AppKey[asyncio.Event] = web.AppKey("events_stopping", asyncio.Event)

_State = tuple[
    dict[str, Any],
    list["JobStatus"],
    list["Schedule"],
    tuple[list["HandlerStatus"], float],
    "ActorSnapshot",
]


async def _read(sz: ScheduleZero) -> _State:
    """Everything the stream shows, read in the scheduler's loop in one crossing.

    The JSON is made on the gateway's side: the scheduler's loop does as little
    as it can for a watcher.
    """
    summary = await summarize(sz)
    jobs = await sz.jobs()
    schedules = await sz.schedules()
    handlers = await sz.handlers()
    return (
        summary,
        jobs,
        schedules,
        (handlers, lowlevel.clock(sz.system).now()),
        sz.system.snapshot(),
    )


def _flat_actor(snapshot: ActorSnapshot) -> dict[str, Any]:
    data = actor_data(snapshot)
    del data["children"]
    return data


def _keyed(state: _State) -> dict[str, dict[str, dict[str, Any]]]:
    """The keyed kinds of ``state`` as JSON: kind -> key -> item."""
    _, jobs, schedules, (handlers, now), tree = state
    return {
        "job": {job.id: job_status_data(job) for job in jobs},
        "schedule": {s.id: schedule_data(s) for s in schedules},
        "handler": {h.name: handler_data(h, now) for h in handlers},
        "actor": {a.path: _flat_actor(a) for a in tree.walk()},
    }


def _news_of_summary(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in _SUMMARY_CLOCKS}


def _news_of(kind: str, item: dict[str, Any]) -> Any:
    """What of ``item`` counts as a change: all of it but its clock readings."""
    if kind != "handler":
        return item
    health = {k: v for k, v in item["health"].items() if k not in _HANDLER_CLOCKS}
    return {**item, "health": health}


class _Client:
    """What one client was last sent, to send it only what changed since."""

    def __init__(self) -> None:
        self.summary: dict[str, Any] | None = None
        self.keyed: dict[str, dict[str, Any]] | None = None

    def events(self, state: _State) -> list[tuple[str, Any]]:
        """The events ``state`` makes for this client: (kind, data) pairs."""
        found: list[tuple[str, Any]] = []
        summary = state[0]
        news = _news_of_summary(summary)
        if news != self.summary:
            self.summary = news
            found.append(("summary", summary))
        keyed = _keyed(state)
        now = {
            kind: {key: _news_of(kind, item) for key, item in items.items()}
            for kind, items in keyed.items()
        }
        before = self.keyed
        for kind, items in keyed.items():
            if before is None:
                found.append(
                    (kind, {"full": True, "items": list(items.values()), "removed": []})
                )
                continue
            was, is_ = before[kind], now[kind]
            changed = [items[key] for key, news in is_.items() if was.get(key) != news]
            removed = [key for key in was if key not in is_]
            if changed or removed:
                found.append(
                    (kind, {"full": False, "items": changed, "removed": removed})
                )
        self.keyed = now
        return found


def _event(kind: str, event_id: int, data: Any) -> str:
    # json.dumps writes no newline: the data is one line, as SSE needs.
    return f"event: {kind}\nid: {event_id}\ndata: {json.dumps(data)}\n\n"


class _Dropped(Exception):
    """The client did not read in time."""


async def _write(response: web.StreamResponse, text: str, patience: float) -> None:
    """Write ``text``, waiting at most ``patience`` seconds for the client to take it.

    Raises:
        _Dropped: The client did not read in time.
        ConnectionError: The client went away.
    """
    try:
        async with asyncio.timeout(patience):
            await response.write(text.encode())
    except TimeoutError:
        raise _Dropped(f"it read nothing for {patience:g} s") from None


async def stream_events(request: web.Request) -> web.StreamResponse:
    """``GET /api/events``: the scheduler's state as Server-Sent Events.

    Refused with 403 when sent by a page of another origin (as a request that
    changes state is), and with 503 while the scheduler is not running. The
    stream ends when its client goes away or reads too slowly, when the
    scheduler stops, and when the gateway stops.
    """
    app = request.app
    settings = app.get(SETTINGS) or GatewaySettings()
    origins = frozenset(o.lower().rstrip("/") for o in settings.allow_origins)
    if not origin_allowed(request, origins):
        origin = request.headers.get(hdrs.ORIGIN, "another site")
        raise web.HTTPForbidden(
            text=f"pages of {origin} may not read the event stream (web.allow_origins)"
        )
    access = app[ACCESS]
    try:
        state: _State = await access.call(_read, access.scheduler)
    except SzError as error:  # not running: starting, or stopped
        raise web.HTTPServiceUnavailable(text=str(error)) from None

    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: "text/event-stream; charset=utf-8",
            hdrs.CACHE_CONTROL: "no-cache",
            # nginx would otherwise hold the events back in its buffer.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    ids, stopping = app[_NEXT_ID], app[_STOPPING]
    client = _Client()
    loop = asyncio.get_running_loop()
    peer = request.remote
    try:
        # A snapshot at once, on a first connection and on a resume alike.
        await _write(response, f"retry: {RETRY_MS}\n\n", settings.events_write_timeout)
        pinged = loop.time()
        while True:
            text = "".join(
                _event(kind, next(ids), data) for kind, data in client.events(state)
            )
            if loop.time() - pinged >= settings.events_heartbeat:
                text += ": ping\n\n"
                pinged = loop.time()
            if text:
                await _write(response, text, settings.events_write_timeout)
            try:
                async with asyncio.timeout(settings.events_interval):
                    await stopping.wait()
                break  # the gateway stops
            except TimeoutError:
                pass
            transport = request.transport
            if transport is None or transport.is_closing():
                break  # the client went away
            try:
                state = await access.call(_read, access.scheduler)
            except SzError:
                break  # the scheduler stopped
    except _Dropped as why:
        logger.warning("event stream to %s dropped: %s", peer, why)
        if request.transport is not None:
            # abort, not close: close would wait to send what is buffered.
            request.transport.abort()
    except ConnectionError:
        pass  # the client went away between two looks
    except Exception:
        # Too late for a JSON error: the stream has begun. It ends, the
        # traceback in the log.
        logger.exception("event stream to %s failed", peer)
    return response


async def _stop_streams(app: web.Application) -> None:
    app[_STOPPING].set()


def add_event_routes(app: web.Application) -> None:
    """Mount ``GET /api/events``; its streams end when the application shuts down."""
    app[_NEXT_ID] = itertools.count(1)
    app[_STOPPING] = asyncio.Event()
    app.on_shutdown.append(_stop_streams)
    app.router.add_get("/api/events", stream_events)
