"""The ``sz`` command: the scheduler's command line, with the gateway for ``sz serve``.

Why here and not in ``sz.cli``: ``sz`` may not import ``web`` (the layers,
which an import-linter contract holds), and the gateway belongs to ``sz
serve``. So the command's entry point lives at the top layer, and hands
``sz.cli.main`` the way to serve the gateway; ``sz.cli`` only knows its shape.
``python -m sz`` remains the scheduler's own command line, without a gateway;
``python -m web`` is the same command as ``sz``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from sz import cli

from .security import check_bind
from .server import serve
from .settings import GatewaySettings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    from sz import ScheduleZero
    from sz.config import WebConfig

__all__ = ["gateway", "main"]


def gateway(
    config: WebConfig,
) -> Callable[[ScheduleZero], AbstractAsyncContextManager[str]]:
    """How ``sz serve`` serves the gateway that ``config`` describes.

    Raises:
        SzError: A host beyond this machine without a token: refused before
            the scheduler starts.
    """
    settings = GatewaySettings.from_config(config)
    check_bind(settings.host, settings.token)
    return functools.partial(serve, settings=settings)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``sz`` command line; exits 2 on bad arguments or a refusal."""
    cli.main(argv, gateway=gateway)
