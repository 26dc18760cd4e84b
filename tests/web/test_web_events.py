"""``GET /api/events``: the live stream, on asyncio and trio, read by a real client.

The client is the standard library's, reading lines in a worker thread with a
deadline; every wait is on what the stream says, never a sleep.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from http.client import HTTPConnection, HTTPResponse
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import attrs
from web_http import http

import web
from actors.testing import wait_until
from sz import ScheduleZero
from web.events import EVENTS, KINDS, EventFeed, EventFeedStatistics
from web.server import SHUTDOWN_SECONDS

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest
    from aiohttp import web as aioweb

TOKEN = "s3cret-token-of-24-chars"
DEADLINE = 30.0


@attrs.frozen(kw_only=True)
class Event:
    kind: str
    id: int
    data: Any


class EventReader:
    """One connection to ``/api/events``, read in worker threads."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        self.connection = HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
        self.headers = headers or {}
        self.response: HTTPResponse | None = None
        self.events: list[Event] = []
        self.pings = 0

    def open(self) -> HTTPResponse:
        self.connection.request("GET", "/api/events", headers=self.headers)
        self.response = self.connection.getresponse()
        return self.response

    def read_until(self, done: Callable[[list[Event]], bool]) -> None:
        """Read events until ``done(events)``; fail past the deadline."""
        assert self.response is not None
        deadline = time.monotonic() + DEADLINE
        fields: dict[str, str] = {}
        while not done(self.events):
            assert time.monotonic() < deadline, self.events[-5:]
            line = self.response.readline().decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if not line:
                if "event" in fields:
                    self.events.append(
                        Event(
                            kind=fields["event"],
                            id=int(fields["id"]),
                            data=json.loads(fields["data"]),
                        )
                    )
                fields = {}
            elif line.startswith(":"):
                self.pings += 1
            else:
                name, _, value = line.partition(": ")
                fields[name] = value

    def response_ended(self) -> bool:
        """Read what is left until the server ends the stream; True then."""
        assert self.response is not None
        while self.response.readline():
            pass
        return True

    def close(self) -> None:
        self.connection.close()


def every_kind(events: list[Event]) -> bool:
    return {event.kind for event in events} >= set(KINDS)


def ended(total: int) -> Callable[[list[Event]], bool]:
    def done(events: list[Event]) -> bool:
        return any(
            e.kind == "summary" and e.data["ended"]["total"] >= total for e in events
        )

    return done


def handler_succeeded(events: list[Event]) -> bool:
    return any(
        e.kind == "handler" and e.data["items"][0]["health"]["successes"] == 1
        for e in events
        if e.data.get("items")
    )


async def opened(url: str, headers: dict[str, str] | None = None) -> EventReader:
    reader = EventReader(url, headers)
    response = await anyio.to_thread.run_sync(reader.open)
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    return reader


async def read_until(reader: EventReader, done: Callable[[list[Event]], bool]) -> None:
    await anyio.to_thread.run_sync(reader.read_until, done)


def settings(**more: Any) -> web.GatewaySettings:
    return web.GatewaySettings(port=0, **more)


class Apps:
    """Catches the gateway's application (an ``extra_routes`` hook), for its feed."""

    def __init__(self) -> None:
        self.apps: list[aioweb.Application] = []

    def __call__(self, app: aioweb.Application) -> None:
        self.apps.append(app)

    @property
    def feed(self) -> EventFeed:
        [app] = self.apps
        return app[EVENTS]


def echoing() -> ScheduleZero:
    sz = ScheduleZero()

    @sz.handler(concurrency=50)
    async def echo(value: int = 0) -> int:
        return value

    return sz


async def test_a_client_gets_the_state_at_once_then_what_a_job_changes() -> None:
    sz = echoing()
    async with sz, web.serve(sz, settings(events_interval=0.1)) as url:
        reader = await opened(url)
        try:
            await read_until(reader, every_kind)
            snapshot = list(reader.events)
            await sz.run_now("echo", args=[1])
            await read_until(
                reader,
                lambda events: ended(1)(events) and handler_succeeded(events),
            )
        finally:
            reader.close()
    assert [e.kind for e in snapshot] == list(KINDS)
    assert snapshot[0].data["ended"]["total"] == 0
    for event in snapshot[1:]:
        assert event.data["full"] is True
        assert event.data["removed"] == []
    [handler] = snapshot[3].data["items"]
    assert handler["name"] == "echo"
    assert "/user" in {actor["path"] for actor in snapshot[4].data["items"]}
    ids = [event.id for event in reader.events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    # Its counters changed: sent again, as a change, not a snapshot.
    [*_, changed] = [e.data for e in reader.events if e.kind == "handler"]
    assert changed["full"] is False
    assert [h["name"] for h in changed["items"]] == ["echo"]


async def test_a_burst_of_2000_jobs_reaches_a_client_as_few_events() -> None:
    sz = echoing()
    interval = 0.5
    async with sz, web.serve(sz, settings(events_interval=interval)) as url:
        reader = await opened(url)
        try:
            await read_until(reader, every_kind)
            before = len(reader.events)
            started = time.monotonic()

            async def one(value: int) -> None:
                await sz.run_now("echo", args=[value])

            async def burst() -> None:
                async with anyio.create_task_group() as group:
                    for value in range(2000):
                        group.start_soon(one, value)

            async with anyio.create_task_group() as group:
                group.start_soon(burst)
                await read_until(reader, ended(2000))
            elapsed = time.monotonic() - started
        finally:
            reader.close()
    during = reader.events[before:]
    # At most one event of each kind per interval, whatever the jobs' pace.
    assert len(during) <= len(KINDS) * (elapsed / interval + 2), (len(during), elapsed)
    assert len(during) < 200
    print(f"2,000 jobs in {elapsed:.2f} s reached the client as {len(during)} events")


async def test_a_resume_with_last_event_id_gets_the_current_state_at_once() -> None:
    sz = echoing()
    async with sz, web.serve(sz, settings(events_interval=0.1)) as url:
        first = await opened(url)
        try:
            await read_until(first, every_kind)
        finally:
            first.close()
        last_id = first.events[-1].id
        await sz.run_now("echo")
        await sz.schedule("echo", "interval", id="often", seconds=3600, paused=True)
        again = await opened(url, {"Last-Event-ID": str(last_id)})
        try:
            await read_until(again, every_kind)
        finally:
            again.close()
    snapshot = again.events[: len(KINDS)]
    assert [e.kind for e in snapshot] == list(KINDS)
    assert all(e.id > last_id for e in snapshot)
    assert snapshot[0].data["ended"]["total"] == 1
    schedules = snapshot[2].data
    assert schedules["full"] is True
    assert [s["id"] for s in schedules["items"]] == ["often"]


async def test_a_page_of_another_origin_may_not_read_the_stream() -> None:
    sz = ScheduleZero()
    allowed = "https://ops.example.com"
    async with sz, web.serve(sz, settings(allow_origins=[allowed])) as url:
        foreign = await http(
            "GET", f"{url}/api/events", headers={"Origin": "https://evil.example"}
        )
        cross_site = await http(
            "GET", f"{url}/api/events", headers={"Sec-Fetch-Site": "cross-site"}
        )
        reader = await opened(url, {"Origin": allowed})
        own = await opened(url, {"Origin": url})
        try:
            await read_until(reader, every_kind)
            await read_until(own, every_kind)
        finally:
            reader.close()
            own.close()
    assert foreign.status == cross_site.status == 403
    assert foreign.json()["error"]["message"] == (
        "pages of https://evil.example may not read the event stream "
        "(web.allow_origins)"
    )


async def test_with_a_token_the_stream_needs_it() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings(token=TOKEN)) as url:
        refused = await http("GET", f"{url}/api/events")
        reader = await opened(url, {"Authorization": f"Bearer {TOKEN}"})
        try:
            await read_until(reader, every_kind)
        finally:
            reader.close()
    assert refused.status == 401


async def test_the_stream_sends_pings_when_nothing_changes() -> None:
    sz = ScheduleZero()
    async with (
        sz,
        web.serve(sz, settings(events_interval=0.05, events_heartbeat=0.1)) as url,
    ):
        reader = await opened(url)
        try:
            await read_until(reader, every_kind)
            await anyio.to_thread.run_sync(
                reader.read_until, lambda _: reader.pings >= 2
            )
        finally:
            reader.close()


def _stalled(url: str) -> socket.socket:
    """A client that asks for the stream and never reads a byte of it."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(DEADLINE)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(f"GET /api/events HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
    return sock


def _read_to_the_end(sock: socket.socket) -> int:
    """Bytes read until the server closed the connection (or reset it)."""
    total = 0
    try:
        while chunk := sock.recv(65536):
            total += len(chunk)
    except ConnectionResetError:
        pass
    return total


async def test_a_client_that_stops_reading_is_dropped_and_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sz = ScheduleZero()
    release = anyio.Event()

    @sz.handler
    async def block() -> None:
        await release.wait()

    waiting = 2000
    gateway = settings(events_interval=0.1, events_write_timeout=0.5)
    caplog.set_level(logging.WARNING, logger="web")
    async with sz, web.serve(sz, gateway) as url:
        for _ in range(waiting + 1):
            await sz.submit("block")
        # The snapshot of 2,000 live jobs: far more than the socket buffers
        # and the transport's high-water mark hold.
        good = await opened(url)
        try:
            await read_until(good, every_kind)
            assert len(good.events[1].data["items"]) == waiting + 1
            stalled = await anyio.to_thread.run_sync(_stalled, url)
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(
                        anyio.to_thread.run_sync, good.read_until, ended(waiting + 1)
                    )
                    await wait_until(
                        lambda: "event stream to 127.0.0.1 dropped" in caplog.text,
                        timeout=DEADLINE,
                    )
                    release.set()
                # The stalled client's connection was closed: what it reads ends.
                await anyio.to_thread.run_sync(_read_to_the_end, stalled)
            finally:
                stalled.close()
        finally:
            good.close()
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 1
    assert drops[0].getMessage().endswith("it read nothing for 0.5 s")


async def test_the_gateway_stops_promptly_with_a_stream_open() -> None:
    sz = ScheduleZero()
    async with sz:
        async with web.serve(sz, settings()) as url:
            reader = await opened(url)
            await read_until(reader, every_kind)
            started = time.monotonic()
        stopped = time.monotonic() - started
        try:
            # The stream ended: the server closed it.
            assert await anyio.to_thread.run_sync(reader.response_ended)
        finally:
            reader.close()
    # Well within the runner's shutdown timeout (2 s): the stream was told.
    assert stopped < SHUTDOWN_SECONDS


async def test_five_clients_cost_the_scheduler_one_read_per_interval() -> None:
    sz = echoing()
    interval = 0.05
    apps = Apps()
    gateway = settings(events_interval=interval, events_heartbeat=interval)
    async with sz, web.serve(sz, gateway, extra_routes=[apps]) as url:
        feed = apps.feed
        readers = [await opened(url) for _ in range(5)]
        try:
            for reader in readers:
                await read_until(reader, every_kind)
            await wait_until(lambda: feed.statistics().clients == 5, timeout=DEADLINE)
            before = feed.statistics().reads
            started = time.monotonic()
            # Pings go out only as readings come: ten of them to every client
            # take ten intervals at least, each client's as many as the others'.
            async with anyio.create_task_group() as group:
                for reader in readers:
                    group.start_soon(
                        anyio.to_thread.run_sync,
                        reader.read_until,
                        lambda _, reader=reader: reader.pings >= 10,
                    )
            elapsed = time.monotonic() - started
            reads = feed.statistics().reads - before
        finally:
            for reader in readers:
                reader.close()
    # One reader sleeps an interval between reads: a reader per client would
    # have read five times as often.
    assert 10 <= reads <= elapsed / interval + 2, (reads, elapsed)


async def test_nothing_reads_the_scheduler_while_no_client_is_connected() -> None:
    sz = echoing()
    apps = Apps()
    async with (
        sz,
        web.serve(sz, settings(events_interval=0.05), extra_routes=[apps]) as url,
    ):
        feed = apps.feed
        idle = feed.statistics()
        reader = await opened(url)
        try:
            await read_until(reader, every_kind)
            connected = feed.statistics()
        finally:
            reader.close()
        await wait_until(
            lambda: feed.statistics().clients == 0 and not feed.statistics().reading,
            timeout=DEADLINE,
        )
        left = feed.statistics()
        # A new client starts the reader again.
        again = await opened(url)
        try:
            await read_until(again, every_kind)
            await sz.run_now("echo")
            await read_until(again, ended(1))
            back = feed.statistics()
        finally:
            again.close()
    assert idle == EventFeedStatistics(clients=0, reads=0, reading=False)
    assert connected.clients == 1
    assert connected.reading
    assert left.reads >= connected.reads
    assert back.reading
    assert back.reads > left.reads


async def test_every_stream_ends_when_the_scheduler_stops() -> None:
    sz = echoing()
    async with web.serve(sz, settings(events_interval=0.05)) as url:
        async with sz:
            readers = [await opened(url) for _ in range(3)]
            for reader in readers:
                await read_until(reader, every_kind)
        try:
            for reader in readers:
                assert await anyio.to_thread.run_sync(reader.response_ended)
        finally:
            for reader in readers:
                reader.close()
        refused = await http("GET", f"{url}/api/events")
    assert refused.status == 503
