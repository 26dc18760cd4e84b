"""What the benchmark's worker process serves.

``sz worker ENDPOINT benchmarks.workload``.
"""

from __future__ import annotations


async def noop() -> None:
    """Nothing: the job's cost is all transport and bookkeeping."""
