"""Choosing a handler for a job: affinity by rendezvous hashing, else least loaded.

Pure and synchronous: the dispatcher actor filters the candidates (the handlers of
the job's task that are healthy enough to accept a job) and asks a
``HandlerPicker``, one per task, which of them takes the job. Nothing here
blocks or reads a clock. (Not to be confused with ``transport.Router``, the
ZeroMQ ROUTER end.)
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Protocol, TypeVar

import attrs

from .validators import int_at_least

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Candidate", "HandlerPicker", "Loaded"]


class Loaded(Protocol):
    """Anything the picker can weigh: a name and a load (``Candidate`` is one)."""

    @property
    def name(self) -> str:
        """Its id, unique among one call's candidates."""

    @property
    def active(self) -> int:
        """Jobs it has in flight."""

    @property
    def concurrency(self) -> int:
        """Jobs it may run at once."""


C = TypeVar("C", bound=Loaded)


@attrs.frozen(kw_only=True)
class Candidate:
    """A handler that may take the job, with its current load.

    Attributes:
        name: The handler's id; unique among one call's candidates.
        active: Jobs the handler has in flight, >= 0.
        concurrency: Jobs the handler may run at once, >= 1. Load is
            ``active / concurrency``, so a big handler with a few jobs counts as
            less loaded than a small one with fewer.
    """

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    active: int = attrs.field(validator=int_at_least(0))
    concurrency: int = attrs.field(validator=int_at_least(1))


def _weight(key: str, name: str) -> bytes:
    # blake2b, not hash(): str hashes are salted per process, and the dispatcher's
    # choice for a key must survive a restart of the scheduler.
    return hashlib.blake2b(f"{key}\0{name}".encode(), digest_size=8).digest()


class HandlerPicker:
    """Picks the handler that takes each job; keep one ``HandlerPicker`` per task.

    The only state is the round-robin cursor: the name chosen last without affinity.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: str | None = None

    def choose(self, candidates: Sequence[C], affinity: str | None = None) -> C | None:
        """Return the candidate that takes the next job, or None if there is none.

        With ``affinity``, rendezvous (highest-random-weight) hashing: each candidate
        scores ``blake2b(affinity, name)`` and the highest wins, whatever the loads
        and the order of ``candidates``. A key therefore stays on one handler while
        that handler is a candidate; when a handler leaves, only the keys it held
        move, and a handler that joins takes only its fair share of keys. Affinity
        choices leave the round-robin cursor alone.

        Without ``affinity``, the least loaded candidates (``active / concurrency``,
        compared exactly) tie, and among them the first name after the one chosen
        last, in sorted order, wins (wrapping around). Remembering a name rather
        than an index keeps the rotation fair when handlers join and leave between
        calls: a handler present throughout is never skipped nor served twice in
        one turn.

        Args:
            candidates: The handlers that may take the job, in any order:
                ``Candidate`` objects or any with the same three attributes.
            affinity: The job's affinity key, None (the default) for none.

        Returns:
            One of ``candidates``, or None when ``candidates`` is empty.
        """
        if not candidates:
            return None
        if len(candidates) == 1:
            self._last = candidates[0].name if affinity is None else self._last
            return candidates[0]
        if affinity is not None:
            return max(candidates, key=lambda c: (_weight(affinity, c.name), c.name))
        # Division is correctly rounded, so equal ratios (1/3, 2/6) give equal floats.
        loads = [(c.active / c.concurrency, c) for c in candidates]
        least = min(load for load, _ in loads)
        tied = sorted((c for load, c in loads if load == least), key=lambda c: c.name)
        last = self._last
        chosen = tied[0]
        if last is not None:
            chosen = next((c for c in tied if c.name > last), tied[0])
        self._last = chosen.name
        return chosen
