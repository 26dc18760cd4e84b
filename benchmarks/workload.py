"""What the benchmarks' handlers run.

``sz worker ENDPOINT benchmarks.workload`` serves ``noop``; ``benchmarks.scenarios``
registers ``timed`` both directly and through a scenario's setup (which imports
this module by name, so both see the same ``CALLS``).
"""

from __future__ import annotations

import time

import anyio


async def noop() -> None:
    """Nothing: the job's cost is all transport and bookkeeping."""


class Calls:
    """When ``timed`` ran first and last (``time.perf_counter``), and how often."""

    def __init__(self) -> None:
        self.count = 0
        self.first = self.last = 0.0
        self.expected = 0
        self.all_ran: anyio.Event | None = None

    def reset(self, expected: int) -> None:
        """Count afresh; ``all_ran`` is set at the ``expected``-th call."""
        self.count = 0
        self.first = self.last = 0.0
        self.expected = expected
        self.all_ran = anyio.Event()


#: The calls of ``timed`` since the last ``reset``.
CALLS = Calls()


async def timed() -> None:
    """Nothing, noting when: jobs per second read off the handler's side."""
    now = time.perf_counter()
    if not CALLS.count:
        CALLS.first = now
    CALLS.last = now
    CALLS.count += 1
    if CALLS.count == CALLS.expected and CALLS.all_ran is not None:
        CALLS.all_ran.set()
