"""The seam to the run's worker processes (``sz.scenarios.fleet``).

A setup with ``workers`` starts them through ``WorkerFleet``, each behind a
``FaultProxy`` for link faults. The fleet is found by import when it is
needed, so that a scenario without workers runs wherever the fleet is not
installed; one with workers then ends as ``error``, saying so.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import SzError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from contextlib import AbstractAsyncContextManager
    from datetime import datetime
    from pathlib import Path
    from random import Random

    from .model import WorkerSpec

__all__ = [
    "Fleet",
    "FleetEvent",
    "LinkFaults",
    "NoFleet",
    "fleet_available",
    "open_fleet",
]


class NoFleet(SzError, RuntimeError):
    """The scenario needs worker processes, and ``sz.scenarios.fleet`` is missing."""


class FleetEvent(Protocol):
    """What the fleet says happened to a worker."""

    at: datetime
    worker: str
    what: str
    detail: str


class LinkFaults(Protocol):
    """A worker's link to the broker, as its fault proxy breaks it."""

    def partition(self, duration: float) -> None:
        """Drop every message both ways for ``duration`` seconds."""

    def delay(self, delay: float, duration: float, jitter: float = 0.0) -> None:
        """Hold each message ``delay`` (± ``jitter``) s, for ``duration`` s."""

    def drop(self, probability: float, duration: float, rng: Random) -> None:
        """Drop each message with ``probability`` for ``duration`` seconds."""


class Fleet(Protocol):
    """The run's worker processes (``WorkerFleet``, entered)."""

    @property
    def names(self) -> tuple[str, ...]:
        """The workers' names, ``worker-1`` first."""

    @property
    def events(self) -> Sequence[FleetEvent]:
        """Every kill, restart, pause, resume and exit, in order."""

    async def kill(
        self,
        name: str,
        signal: Literal["SIGKILL", "SIGTERM"],
        restart_after: float | None,
    ) -> None:
        """Signal a worker; start it again after ``restart_after`` s if given."""

    async def pause(self, name: str, duration: float) -> None:
        """SIGSTOP a worker, SIGCONT it after ``duration``; return then."""

    def proxy(self, name: str) -> LinkFaults:
        """The fault proxy on a worker's link."""


_FLEET_MODULE = "sz.scenarios.fleet"


def fleet_available() -> bool:
    """Whether worker processes can be started (``sz.scenarios.fleet`` imports)."""
    try:
        importlib.import_module(_FLEET_MODULE)
    except ImportError:
        return False
    return True


def open_fleet(
    specs: Sequence[WorkerSpec],
    broker_endpoint: str,
    *,
    backend: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> AbstractAsyncContextManager[Fleet]:
    """The run's ``WorkerFleet``, to enter.

    Raises:
        NoFleet: ``sz.scenarios.fleet`` cannot be imported.
    """
    try:
        module: Any = importlib.import_module(_FLEET_MODULE)
    except ImportError as error:
        raise NoFleet(
            "this scenario starts worker processes, and sz.scenarios.fleet is "
            f"not installed ({error})"
        ) from None
    fleet: AbstractAsyncContextManager[Fleet] = module.WorkerFleet(
        specs, broker_endpoint, backend=backend, cwd=cwd, env=env
    )
    return fleet
