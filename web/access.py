"""How the gateway's request handlers reach the scheduler, whatever loop it runs on.

aiohttp runs on asyncio. Embedded in a program on asyncio, the gateway shares
the scheduler's event loop, and a handler awaits the scheduler's calls directly.
Under trio, aiohttp runs on an asyncio loop in a thread of its own, and every
call crosses over to the scheduler's loop through an AnyIO ``BlockingPortal``
opened there: ``portal.start_task_soon`` hands the call over without blocking,
and the gateway's loop awaits the future it returns, so that it never waits on
the scheduler's (and no worker thread stands between the two loops).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.from_thread import BlockingPortal

    from sz import ScheduleZero

__all__ = ["ACCESS", "SchedulerAccess"]

T = TypeVar("T")


class SchedulerAccess:
    """Calls into one scheduler, on its own event loop.

    Args:
        scheduler: The running scheduler the gateway shows.
        portal: A portal opened in the scheduler's event loop when that is not
            the gateway's (trio); None when both share one asyncio loop.
    """

    def __init__(
        self, scheduler: ScheduleZero, portal: BlockingPortal | None = None
    ) -> None:
        self.scheduler = scheduler
        self.portal = portal

    async def call(self, func: Callable[..., Awaitable[T] | T], *args: Any) -> T:
        """Run ``func(*args)`` in the scheduler's loop; its result, or its error.

        What ``func`` returns is awaited there if it is awaitable.
        """
        portal = self.portal
        if portal is None:
            result = func(*args)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                return await result  # type: ignore[no-any-return]
            return result  # type: ignore[return-value]
        # The portal runs a plain function too (its result is not awaitable);
        # its signature asks for an async one.
        run = cast("Callable[..., Awaitable[T]]", func)
        return await asyncio.wrap_future(portal.start_task_soon(run, *args))


#: The ``SchedulerAccess`` of the application, for every handler:
#: ``request.app[ACCESS].call(sz.schedules)``.
ACCESS: web.AppKey[SchedulerAccess] = web.AppKey("access", SchedulerAccess)
