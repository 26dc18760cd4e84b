"""The run's worker processes: a ``WorkerFleet`` whose heartbeat is its broker's.

A setup with ``workers`` starts them through ``WorkerFleet``, each behind a
``FaultProxy`` for link faults. The broker judges a worker by the heartbeat
the worker announces, so the fleet's workers beat at the run's broker's
interval: a worker fault is then noticed within the broker's liveness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SzError
from .fleet import WorkerFleet

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from .model import WorkerSpec

__all__ = ["NoFleet", "open_fleet"]


class NoFleet(SzError, RuntimeError):
    """A worker fault in a run whose setup starts no worker processes."""


def open_fleet(
    specs: Sequence[WorkerSpec],
    broker_endpoint: str,
    *,
    backend: str,
    heartbeat: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> WorkerFleet:
    """The run's ``WorkerFleet``, to enter: its workers beat every ``heartbeat``."""
    return WorkerFleet(
        specs, broker_endpoint, backend=backend, heartbeat=heartbeat, cwd=cwd, env=env
    )
