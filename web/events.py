"""``GET /api/events``: the scheduler's state, live, as Server-Sent Events.

The stream polls: every ``events_interval`` (0.5 s by default) the
application's ``EventFeed`` reads the scheduler's state through its
``SchedulerAccess``, once for all the streams connected (and not at all while
none is), and each stream sends each kind of event only if its part changed
since the last one sent to its client. So the stream is coalesced by
construction: ten thousand jobs a second reach a client as at most one ``job``
and one ``summary`` event per interval, and five dashboards cost the scheduler
one read per interval, as one does. A
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
  handler's ``heartbeat_age`` and ``uptime`` do not by themselves make news,
  but a new sign of life (its ``last_seen`` moving: a job's start or end) does,
  so that a page can age the heartbeat itself from one event to the next.
- ``series``: the samples of ``GET /api/series`` (``web.series``) taken since
  the client's last events, oldest first, as ``items`` (``removed`` is always
  empty); the first of a connection holds the last ``SERIES_ON_CONNECT`` (10),
  with ``"full": true``.

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
import contextlib
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import hdrs, web

from actors import lowlevel
from sz import SzError

from .access import ACCESS
from .json import actor_data, handler_data, job_status_data, schedule_data
from .security import origin_allowed
from .series import SERIES, Series
from .settings import SETTINGS, GatewaySettings
from .summary import summarize

if TYPE_CHECKING:
    from collections.abc import Iterator

    from actors import ActorSnapshot
    from sz import HandlerStatus, JobStatus, Schedule, ScheduleZero

__all__ = [
    "EVENTS",
    "KINDS",
    "RETRY_LINE",
    "SERIES_ON_CONNECT",
    "EventFeed",
    "EventFeedStatistics",
    "SlowClient",
    "add_event_routes",
    "check_stream_origin",
    "drop_slow_client",
    "event_text",
    "next_event_id",
    "open_stream",
    "write_within",
]

logger = logging.getLogger("web")

#: The named events, in the order a snapshot sends them.
KINDS = ("summary", "job", "schedule", "handler", "actor", "series")

#: The samples of ``/api/series`` a connection's first ``series`` event holds:
#: ten seconds, enough to join a chart fetched from that route.
SERIES_ON_CONNECT = 10

#: What a browser's ``EventSource`` waits before reconnecting, in milliseconds.
RETRY_MS = 2000

#: The first line of every stream: how long a browser waits to reconnect.
RETRY_LINE = f"retry: {RETRY_MS}\n\n"

#: Fields read off a clock: sent along, never a change by themselves.
_SUMMARY_CLOCKS = frozenset({"time", "loop_lag"})
_HANDLER_CLOCKS = ("heartbeat_age", "uptime")

_NEXT_ID: web.AppKey[Iterator[int]] = web.AppKey("event_ids")

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


class _Snapshot:
    """One reading of the state as JSON, and the events it makes for a client.

    A client is sent the events that lead to a snapshot from the one it was
    sent before (none: a full snapshot). Those are the same for every client
    that comes from the same snapshot, as all that keep up with the shared
    reads do: they are made once, and their JSON written once.
    """

    _serials = itertools.count(1)

    def __init__(self, state: _State, series: Series | None = None) -> None:
        self.serial = next(self._serials)
        self.summary = state[0]
        self.summary_news = _news_of_summary(self.summary)
        self.keyed = _keyed(state)
        self.news = {
            kind: {key: _news_of(kind, item) for key, item in items.items()}
            for kind, items in self.keyed.items()
        }
        # A new sign of life is news, though the age is a clock reading: a page
        # ages it itself between events. (Today every sign of life, a job's
        # start or end, also moves a count; this holds if that changes.)
        handler_news = self.news["handler"]
        for handler in state[3][0]:
            news = handler_news.get(handler.name)
            if news is not None:
                news["seen"] = round(handler.health.last_seen, 3)
        self._series = series
        #: The ``seq`` of the latest series sample when this was read.
        self.series_seq = 0 if series is None else series.taken
        #: The events from each snapshot a client came from (its serial; 0:
        #: none), as (kind, data as one line of JSON).
        self._events: dict[int, list[tuple[str, str]]] = {}

    def events_since(self, before: _Snapshot | None) -> list[tuple[str, str]]:
        """The events a client sent ``before`` (None: nothing yet) is sent now."""
        key = 0 if before is None else before.serial
        found = self._events.get(key)
        if found is None:
            found = self._events[key] = [
                # json.dumps writes no newline: the data is one line, as SSE needs.
                (kind, json.dumps(data))
                for kind, data in self._changes(before)
            ]
        return found

    def _changes(self, before: _Snapshot | None) -> Iterator[tuple[str, Any]]:
        if before is None or before.summary_news != self.summary_news:
            yield "summary", self.summary
        for kind, items in self.keyed.items():
            if before is None:
                yield kind, {"full": True, "items": list(items.values()), "removed": []}
                continue
            was, is_ = before.news[kind], self.news[kind]
            changed = [items[key] for key, news in is_.items() if was.get(key) != news]
            removed = [key for key in was if key not in is_]
            if changed or removed:
                yield kind, {"full": False, "items": changed, "removed": removed}
        series = self._series
        if before is None:
            samples = (
                []
                if series is None
                else series.after(self.series_seq - SERIES_ON_CONNECT, self.series_seq)
            )
            yield "series", {"full": True, "items": samples, "removed": []}
        elif series is not None and self.series_seq > before.series_seq:
            samples = series.after(before.series_seq, self.series_seq)
            yield "series", {"full": False, "items": samples, "removed": []}


@attrs.frozen(kw_only=True)
class EventFeedStatistics:
    """What an application's event feed has done (``EventFeed.statistics``).

    Attributes:
        clients: Streams connected now.
        reads: Reads of the scheduler's state since the application was made:
            one per interval while any stream is connected, whatever their
            number, and one per connection (its snapshot).
        reading: Whether the shared reader runs (only while a stream is
            connected, and until the end of the interval after the last left).
    """

    clients: int
    reads: int
    reading: bool


class EventFeed:
    """One reader of the scheduler's state for every stream of an application.

    While any stream is connected, it reads the state every ``events_interval``
    in one crossing to the scheduler's loop, turns it into JSON once, and wakes
    every stream with it: five dashboards cost the scheduler what one does.
    Each stream still sends its own client only what changed since that
    client's last events; a stream that fell behind (a slow client) takes the
    latest reading when it is ready, and the readings in between are gone.
    With no stream connected, nothing reads.

    Args:
        app: The application, whose ``ACCESS`` and ``SETTINGS`` it reads.
    """

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._clients = 0
        self._reads = 0
        self._task: asyncio.Task[None] | None = None
        #: The latest shared reading, or the error that ended the reader.
        self._latest: _Snapshot | Exception | None = None
        #: Set (and replaced) at each shared reading, and when the feed closes.
        self._published = asyncio.Event()
        self._published_count = 0
        self._closed = False

    def statistics(self) -> EventFeedStatistics:
        """How many streams are connected and how many reads were made."""
        task = self._task
        return EventFeedStatistics(
            clients=self._clients,
            reads=self._reads,
            reading=task is not None and not task.done(),
        )

    async def read(self) -> _Snapshot:
        """Read the state now (a stream's first snapshot).

        Raises:
            SzError: The scheduler is not running.
        """
        access = self._app[ACCESS]
        self._reads += 1
        state: _State = await access.call(_read, access.scheduler)
        return _Snapshot(state, self._app.get(SERIES))

    @contextlib.contextmanager
    def subscribed(self) -> Iterator[None]:
        """Count a stream in while the block runs; start the reader if it is not."""
        self._clients += 1
        task = self._task
        if task is None or task.done():
            self._task = asyncio.create_task(self._run(), name="sz-gateway-events")
        try:
            yield
        finally:
            self._clients -= 1

    async def next_reading(self, seen: int) -> tuple[_Snapshot | None, int]:
        """The first shared reading after the ``seen``-th one: (it, its number).

        None when the feed closed (the gateway stops) or the scheduler stopped.

        Raises:
            Exception: What ended the reader, if not the scheduler's stop.
        """
        if self._published_count == seen and not self._closed:
            await self._published.wait()
        latest = self._latest
        if self._closed or latest is None or isinstance(latest, SzError):
            return None, self._published_count
        if isinstance(latest, Exception):
            raise latest
        return latest, self._published_count

    @property
    def readings(self) -> int:
        """How many shared readings were published: ``next_reading``'s ``seen``."""
        return self._published_count

    def _publish(self, latest: _Snapshot | Exception) -> None:
        self._latest = latest
        self._published_count += 1
        published, self._published = self._published, asyncio.Event()
        published.set()

    async def _run(self) -> None:
        interval = (self._app.get(SETTINGS) or GatewaySettings()).events_interval
        while True:
            await asyncio.sleep(interval)
            if not self._clients:
                return
            try:
                snapshot = await self.read()
            except Exception as error:
                # The scheduler stopped (SzError), or a bug: every stream ends.
                self._publish(error)
                return
            self._publish(snapshot)

    async def close(self) -> None:
        """End every stream and the reader (the gateway stops)."""
        self._closed = True
        self._published.set()
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def event_text(kind: str, event_id: int, data: str) -> str:
    """One Server-Sent Event: its name, id and one line of data."""
    return f"event: {kind}\nid: {event_id}\ndata: {data}\n\n"


class SlowClient(Exception):
    """The client did not read in time."""


async def write_within(
    response: web.StreamResponse, text: str, patience: float
) -> None:
    """Write ``text``, waiting at most ``patience`` seconds for the client to take it.

    Raises:
        SlowClient: The client did not read in time.
        ConnectionError: The client went away.
    """
    try:
        async with asyncio.timeout(patience):
            await response.write(text.encode())
    except TimeoutError:
        raise SlowClient(f"it read nothing for {patience:g} s") from None


def check_stream_origin(request: web.Request, what: str) -> None:
    """Refuse (403) a stream asked for by a page of another origin.

    Raises:
        HTTPForbidden: The request's origin is not allowed.
    """
    settings = request.app.get(SETTINGS) or GatewaySettings()
    origins = frozenset(o.lower().rstrip("/") for o in settings.allow_origins)
    if not origin_allowed(request, origins):
        origin = request.headers.get(hdrs.ORIGIN, "another site")
        raise web.HTTPForbidden(
            text=f"pages of {origin} may not read {what} (web.allow_origins)"
        )


async def open_stream(request: web.Request) -> web.StreamResponse:
    """Begin a stream of Server-Sent Events: send its headers.

    Its first write should be :data:`RETRY_LINE`.
    """
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: "text/event-stream; charset=utf-8",
            hdrs.CACHE_CONTROL: "no-cache",
            # nginx would otherwise hold the events back in its buffer.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    return response


def next_event_id(app: web.Application) -> int:
    """A fresh event id: increasing through the application's life."""
    ids = app[_NEXT_ID]
    return next(ids)


def drop_slow_client(request: web.Request, why: SlowClient) -> None:
    """End the connection of a client that does not read, with one warning."""
    logger.warning("event stream to %s dropped: %s", request.remote, why)
    if request.transport is not None:
        # abort, not close: close would wait to send what is buffered.
        request.transport.abort()


async def stream_events(request: web.Request) -> web.StreamResponse:
    """``GET /api/events``: the scheduler's state as Server-Sent Events.

    Refused with 403 when sent by a page of another origin (as a request that
    changes state is), and with 503 while the scheduler is not running. The
    stream ends when its client goes away or reads too slowly, when the
    scheduler stops, and when the gateway stops.
    """
    app = request.app
    settings = app.get(SETTINGS) or GatewaySettings()
    check_stream_origin(request, "the event stream")
    feed = app[EVENTS]
    # Its own reading: the state as it is now, not as the last shared reading
    # (up to an interval old) saw it.
    try:
        snapshot = await feed.read()
    except SzError as error:  # not running: starting, or stopped
        raise web.HTTPServiceUnavailable(text=str(error)) from None

    response = await open_stream(request)
    ids = app[_NEXT_ID]
    sent: _Snapshot | None = None
    loop = asyncio.get_running_loop()
    peer = request.remote
    try:
        with feed.subscribed():
            # Shared readings from now on: those before this one are older.
            seen = feed.readings
            # A snapshot at once, on a first connection and on a resume alike.
            await write_within(response, RETRY_LINE, settings.events_write_timeout)
            pinged = loop.time()
            while True:
                text = "".join(
                    event_text(kind, next(ids), data)
                    for kind, data in snapshot.events_since(sent)
                )
                sent = snapshot
                if loop.time() - pinged >= settings.events_heartbeat:
                    text += ": ping\n\n"
                    pinged = loop.time()
                if text:
                    await write_within(response, text, settings.events_write_timeout)
                reading, seen = await feed.next_reading(seen)
                if reading is None:
                    break  # the gateway or the scheduler stops
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # the client went away
                snapshot = reading
    except SlowClient as why:
        drop_slow_client(request, why)
    except ConnectionError:
        pass  # the client went away between two looks
    except Exception:
        # Too late for a JSON error: the stream has begun. It ends, the
        # traceback in the log.
        logger.exception("event stream to %s failed", peer)
    return response


async def _close_feed(app: web.Application) -> None:
    await app[EVENTS].close()


#: The application's ``EventFeed``: ``app[EVENTS].statistics()``.
EVENTS: web.AppKey[EventFeed] = web.AppKey("events", EventFeed)


def add_event_routes(app: web.Application) -> None:
    """Mount ``GET /api/events``; its streams end when the application shuts down."""
    app[_NEXT_ID] = itertools.count(1)
    app[EVENTS] = EventFeed(app)
    app.on_shutdown.append(_close_feed)
    app.router.add_get("/api/events", stream_events)
