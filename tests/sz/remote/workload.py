"""The functions test workers serve (``sz worker ENDPOINT workload``).

Run from this directory, so that ``workload`` imports as a top-level module.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import anyio


def noop() -> None:
    """Do nothing."""


def add(a: int, b: int) -> int:
    """A sync function: runs in a worker thread."""
    return a + b


async def where() -> int:
    """The worker's process id: which worker ran a job."""
    return os.getpid()


async def nap(seconds: float) -> int:
    """Sleep on the event loop, then return the process id."""
    await anyio.sleep(seconds)
    return os.getpid()


def hang(marker: str) -> None:
    """Write ``marker`` (a file), then never return: a sync call stuck for good."""
    Path(marker).touch()
    time.sleep(3600)


def block(seconds: float) -> int:
    """Sleep in a worker thread, then return the process id."""
    time.sleep(seconds)
    return os.getpid()


async def record(path: str, token: str, seconds: float = 0.0) -> int:
    """Append ``token`` to ``path`` once done (after ``seconds``): a run's trace."""
    await anyio.sleep(seconds)
    with Path(path).open("a", encoding="utf-8") as trace:  # noqa: ASYNC230 - tiny
        trace.write(f"{token} {os.getpid()}\n")
    return os.getpid()


async def fail(message: str = "failed on purpose") -> None:
    """Raise."""
    raise RuntimeError(message)


async def announce(path: str, token: str, seconds: float) -> int:
    """Append ``token`` to ``path`` as it starts, then sleep: a job seen in flight."""
    with Path(path).open("a", encoding="utf-8") as trace:  # noqa: ASYNC230 - tiny
        trace.write(f"{token} {os.getpid()}\n")
    await anyio.sleep(seconds)
    return os.getpid()


#: ``crowd`` jobs running in this process now (they run on its one event loop).
_crowd = 0


async def crowd(path: str, token: str, seconds: float) -> int:
    """Run for ``seconds``, writing to ``path`` how many ``crowd`` jobs ran at
    once as it started: ``token running``, one line a start."""
    global _crowd
    _crowd += 1
    try:
        with Path(path).open("a", encoding="utf-8") as trace:  # noqa: ASYNC230
            trace.write(f"{token} {_crowd}\n")
        await anyio.sleep(seconds)
    finally:
        _crowd -= 1
    return os.getpid()


async def announce_until(path: str, token: str, gate: str) -> int:
    """Append ``token`` to ``path`` as it starts, then run until the file
    ``gate`` exists (a minute at most): a job in flight for as long as the test
    needs. Returns the process id."""
    with Path(path).open("a", encoding="utf-8") as trace:  # noqa: ASYNC230 - tiny
        trace.write(f"{token} {os.getpid()}\n")
    with anyio.move_on_after(60):
        # Another process makes the file: no event here can tell of it.
        while not await anyio.Path(gate).exists():  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return os.getpid()


async def hold(path: str) -> None:
    """Write ``started`` to ``path``, then wait until cancelled; write ``ended``."""
    with Path(path).open("a", encoding="utf-8") as trace:  # noqa: ASYNC230
        trace.write("started\n")
    try:
        await anyio.sleep_forever()
    finally:
        with Path(path).open("a", encoding="utf-8") as trace:  # noqa: ASYNC230
            trace.write("ended\n")


# Hostile functions: each must fail its own job and leave the worker serving.


class Unprintable(Exception):
    """An exception whose ``repr`` and ``str`` both raise."""

    def __repr__(self) -> str:
        raise ValueError("no repr for you")

    def __str__(self) -> str:
        raise ValueError("no str either")


async def exit_now(code: int) -> None:
    """Raise ``SystemExit`` on the event loop."""
    raise SystemExit(code)


def exit_in_thread(code: int) -> None:
    """Raise ``SystemExit`` in a worker thread."""
    raise SystemExit(code)


async def interrupt() -> None:
    """Raise ``KeyboardInterrupt`` on the event loop."""
    raise KeyboardInterrupt


def interrupt_in_thread() -> None:
    """Raise ``KeyboardInterrupt`` in a worker thread."""
    raise KeyboardInterrupt


async def unprintable() -> None:
    """Raise an exception that cannot be printed."""
    raise Unprintable


async def opaque() -> object:
    """Return what msgpack cannot encode."""
    return object()


class Treacherous(dict[str, int]):
    """A dict whose items raise ``SystemExit`` while msgpack packs it."""

    def items(self) -> Any:
        raise SystemExit("from items")


async def treacherous() -> dict[str, int]:
    """Return a value whose packing raises ``SystemExit``."""
    return Treacherous(a=1)
