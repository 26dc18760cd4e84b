"""Built-in handlers for demos, smoke tests and scenarios: ``noop``, ``echo``, ...

Register them with ``handlers.builtin: [{module: sz.builtin, methods: [...]}]`` in
``config.yaml``; ``sz serve`` without a config uses them for its demo schedules.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import anyio

__all__ = ["echo", "fail", "log", "noop", "sleep"]

logger = logging.getLogger("sz.builtin")


async def noop() -> None:
    """Do nothing: measures the scheduler, not the work."""


async def echo(*args: Any, **kwargs: Any) -> Any:
    """Return what it was given: the single argument, or all of them."""
    if len(args) == 1 and not kwargs:
        return args[0]
    return {"args": list(args), "kwargs": kwargs}


async def sleep(seconds: float = 1.0) -> float:
    """Sleep ``seconds`` (a long-running job), then return them."""
    await anyio.sleep(seconds)
    return seconds


async def fail(probability: float = 1.0, seed: int | None = None) -> None:
    """Raise ``RuntimeError`` with ``probability``; with ``seed``, reproducibly.

    A seed makes the decision a function of the seed alone, so a scenario that
    passes ``seed=n`` for job ``n`` knows which jobs fail.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be between 0 and 1, got {probability!r}")
    roll = random.Random(seed).random() if seed is not None else random.random()
    if roll < probability:
        raise RuntimeError(f"failed on purpose (probability {probability})")


async def log(message: str = "") -> str:
    """Log ``message`` at INFO on the ``sz.builtin`` logger and return it."""
    logger.info("%s", message)
    return message
