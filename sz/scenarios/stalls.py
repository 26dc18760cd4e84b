"""How long the machine kept the run's event loop from a CPU.

A fire is late by the scheduler's fault when its loop was busy or blocked; it
is late by the machine's when the loop's thread was ready to run and the
operating system ran something else (another process on a loaded machine: on
CI's two cores, a second of it is not rare). Only the second is taken off a
fire's lateness (``schedule_fidelity``, ``scheduler_latency``): event-loop lag
is not, since a loop blocked by the scheduler's own code lags as much as a
starved one, and that is what the check is there to catch.

Linux counts, for each thread, the time it waited on a run queue
(``run_delay``, the second field of ``/proc/<pid>/task/<tid>/schedstat``).
Where it is not there, nothing is taken off.
"""

from __future__ import annotations

import bisect
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["cpu_wait", "cpu_wait_within"]


def cpu_wait(thread: int) -> float | None:
    """Seconds the thread ``thread`` (a native id) has waited for a CPU, in all.

    None where the system does not count it. Blocking (reads ``/proc``): call
    it in a thread.
    """
    try:
        with open(f"/proc/{os.getpid()}/task/{thread}/schedstat", "rb") as stat:
            fields = stat.read().split()
        return int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def cpu_wait_within(
    reads: Sequence[tuple[float, float, float]], since: float, until: float
) -> float:
    """The CPU wait that surely fell between offsets ``since`` and ``until``.

    ``reads`` are ``(earliest, latest, total)``: a total read at some moment
    between the offsets ``earliest`` and ``latest`` (a read in a worker thread
    happens somewhere in that span), in time order. Between two reads the wait
    may have fallen anywhere in their span, so only what cannot have fallen
    outside ``since``-``until`` counts: a lower bound, never more than the
    machine took.
    """
    surely = 0.0
    # Reads a long run ago are skipped by bisection: a soak of an hour asks
    # this of each of its fires, over all its reads.
    first = max(0, bisect.bisect_right(reads, since, key=_latest) - 1)
    pairs = zip(reads[first:], reads[first + 1 :], strict=False)
    for (begin, _, before), (_, end, after) in pairs:
        if end <= since:
            continue
        if begin >= until:
            break
        overlap = min(end, until) - max(begin, since)
        if overlap <= 0:
            continue
        surely += max(0.0, (after - before) - ((end - begin) - overlap))
    return surely


def _latest(read: tuple[float, float, float]) -> float:
    return read[1]
