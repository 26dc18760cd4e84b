"""The aiohttp gateway: a JSON API under ``/api/`` beside a running scheduler.

``async with web.serve(sz) as url:`` serves it inside ``async with sz:``, under
asyncio or trio; ``sz serve`` runs it by default. Only this package imports
aiohttp.
"""

from __future__ import annotations

from .access import ACCESS as ACCESS, SchedulerAccess as SchedulerAccess
from .app import make_app as make_app
from .server import serve as serve
from .settings import GatewaySettings as GatewaySettings

__all__ = ["ACCESS", "GatewaySettings", "SchedulerAccess", "make_app", "serve"]
