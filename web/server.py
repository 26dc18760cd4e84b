"""``web.serve``: the gateway beside a running scheduler, on asyncio or trio.

aiohttp runs on asyncio only. Embedded in a program on asyncio, the gateway
listens in the scheduler's own event loop. Under trio, it runs on an asyncio
loop in a thread of its own, and reaches the scheduler through an AnyIO
``BlockingPortal`` opened in the trio loop (see ``web.access``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
import threading
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from aiohttp import web
from anyio.from_thread import BlockingPortal

from sz import SzError

from .access import SchedulerAccess
from .app import make_app
from .security import check_bind
from .settings import GatewaySettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from sz import ScheduleZero

    from .app import RouteAdder

__all__ = ["SHUTDOWN_SECONDS", "serve"]

#: Seconds requests still in flight get to finish when the gateway stops.
SHUTDOWN_SECONDS = 2.0


def _on_asyncio() -> bool:
    """Whether the caller runs on asyncio (else trio).

    Asked of asyncio itself: ``sniffio`` would say the same, but it is not a
    dependency of ours (trio, a test dependency, brings it).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _listen(
    app: web.Application, settings: GatewaySettings
) -> tuple[web.AppRunner, str]:
    """Start serving ``app`` on asyncio; the runner to clean up, and the URL.

    Raises:
        SzError: The address cannot be listened on (taken, not this machine's).
    """
    # No access log: a dashboard polls, and each request would be a log line.
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_SECONDS, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise SzError(
            f"web gateway: cannot listen on {_url(settings.host, settings.port)}: "
            f"{os.strerror(error.errno).lower() if error.errno else error}"
        ) from None
    port = runner.addresses[0][1]
    return runner, _url(settings.host, port)


async def _cleanup(runner: web.AppRunner) -> None:
    with anyio.CancelScope(shield=True):
        await runner.cleanup()


@asynccontextmanager
async def _same_loop(
    app: web.Application, settings: GatewaySettings
) -> AsyncIterator[str]:
    runner, url = await _listen(app, settings)
    try:
        yield url
    finally:
        await _cleanup(runner)


_Started = tuple[asyncio.AbstractEventLoop, asyncio.Event, str]


def _run_loop(
    app: web.Application,
    settings: GatewaySettings,
    started: concurrent.futures.Future[_Started],
) -> None:
    """The gateway thread: an asyncio loop serving ``app`` until told to stop."""

    async def main() -> None:
        try:
            runner, url = await _listen(app, settings)
        except BaseException as error:
            started.set_exception(error)
            return
        stop = asyncio.Event()
        started.set_result((asyncio.get_running_loop(), stop, url))
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


#: The interpreter's switch interval while the gateway runs in a thread of its
#: own (seconds; Python's default is 0.005). The gateway's thread shares the
#: GIL with the scheduler's loop, which under load never lets go of it by
#: itself: at each of a request's several waits for it, the gateway waited a
#: whole interval. Measured under trio at run_now's pace (benchmarks.web), a
#: trivial endpoint's p99 fell from 295-590 ms at 5 ms to 12 ms at 0.5 ms.
GIL_SWITCH_INTERVAL = 0.0005


@contextlib.contextmanager
def _short_switch_interval() -> Iterator[None]:
    """Lower the switch interval to ``GIL_SWITCH_INTERVAL`` while inside.

    Restored on the way out, unless someone else changed it meanwhile.
    """
    before = sys.getswitchinterval()
    shorter = min(before, GIL_SWITCH_INTERVAL)
    sys.setswitchinterval(shorter)
    try:
        yield
    finally:
        if sys.getswitchinterval() == shorter:
            sys.setswitchinterval(before)


@asynccontextmanager
async def _own_thread(
    app: web.Application, settings: GatewaySettings
) -> AsyncIterator[str]:
    with _short_switch_interval():
        async with _serving_thread(app, settings) as url:
            yield url


@asynccontextmanager
async def _serving_thread(
    app: web.Application, settings: GatewaySettings
) -> AsyncIterator[str]:
    started: concurrent.futures.Future[_Started] = concurrent.futures.Future()
    thread = threading.Thread(
        target=_run_loop, args=(app, settings, started), name="sz-gateway", daemon=True
    )
    thread.start()
    try:
        # Binding takes a moment, and never hangs: waited for to the end.
        loop, stop, url = await anyio.to_thread.run_sync(started.result)
    except BaseException:
        with anyio.CancelScope(shield=True):
            if started.done() and started.exception() is None:
                loop, stop, _ = started.result()
                loop.call_soon_threadsafe(stop.set)
            await anyio.to_thread.run_sync(thread.join)
        raise
    try:
        yield url
    finally:
        with contextlib.suppress(RuntimeError):  # the loop ended already
            loop.call_soon_threadsafe(stop.set)
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(thread.join)


@asynccontextmanager
async def serve(
    scheduler: ScheduleZero,
    settings: GatewaySettings | None = None,
    *,
    extra_routes: Sequence[RouteAdder] = (),
) -> AsyncIterator[str]:
    """Serve the gateway for ``scheduler`` while the block runs; yield its URL.

    Use it beside ``async with scheduler:``, on asyncio (the gateway shares the
    loop) or trio (it runs in a thread of its own)::

        async with ScheduleZero() as sz, web.serve(sz) as url:
            ...  # http://127.0.0.1:8080/api/summary answers

    Entering is a checkpoint that returns once the gateway listens; leaving
    stops it, letting requests in flight finish (``SHUTDOWN_SECONDS`` at most),
    even when cancelled.

    Args:
        scheduler: The scheduler to show. Requests that need it running get
            503 while it is not (it may start after the gateway, and stop
            before).
        settings: Where to listen and the guards, ``GatewaySettings()`` by
            default (127.0.0.1:8080, no token).
        extra_routes: Functions that add routes of your own to the application
            (see ``make_app``), none by default.

    Yields:
        The base URL, such as ``http://127.0.0.1:8080``, with the port taken
        when ``settings.port`` is 0.

    Raises:
        SzError: A host beyond this machine without a token, or an address
            that cannot be listened on (a port taken): one line saying which.
    """
    settings = settings if settings is not None else GatewaySettings()
    check_bind(settings.host, settings.token)
    # Left by hand, never by ``async with`` around the ``yield``: an error of
    # the caller's block (or of the start) then comes out as itself. Each part
    # shields its own cleanup.
    stack = AsyncExitStack()
    try:
        if _on_asyncio():
            access = SchedulerAccess(scheduler)
            app = make_app(access, settings, extra_routes=extra_routes)
            url = await stack.enter_async_context(_same_loop(app, settings))
        else:
            portal = await stack.enter_async_context(BlockingPortal())
            access = SchedulerAccess(scheduler, portal)
            app = make_app(access, settings, extra_routes=extra_routes)
            url = await stack.enter_async_context(_own_thread(app, settings))
    except BaseException:
        await stack.aclose()
        raise
    try:
        yield url
    finally:
        # The gateway stops first, then the portal.
        await stack.aclose()
