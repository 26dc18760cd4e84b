"""Chaos faults, injected into the run's scheduler and worker processes.

In-process faults act on the actor tree (``sz.system.snapshot()``, globbed by
path): ``kill_actor`` crashes actors, ``stop_actor`` stops them for good,
``flood_mailbox`` fills their mailboxes with messages no actor handles (each
goes to dead letters: harmless to what it does, costly to how fast), and
``block_loop`` holds the event loop with a blocking sleep in its thread. The
run's own actors (``/user/scenarios/...``) are never picked unless the target
names them. Worker faults go through the run's fleet (``sz.scenarios.fleet``):
signals to its processes, and partition, delay and loss on their links.

Every fault is an event on the run's timeline, with the targets it hit.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from actors import ActorError, MailboxFull

from .globs import glob_matches
from .model import (
    BlockLoop,
    Delay,
    Drop,
    FloodMailbox,
    KillActor,
    KillWorker,
    Partition,
    PauseWorker,
    StopActor,
)
from .workers import NoFleet

if TYPE_CHECKING:
    from random import Random

    from ..scheduler import ScheduleZero
    from .fleet import WorkerFleet
    from .model import Fault, Pick

__all__ = ["FLOOD_CHECKPOINT", "RUNS_ROOT", "Flood", "inject", "pick"]

#: Where runs live: never a fault's target unless the target names it.
RUNS_ROOT = "/user/scenarios"

#: Messages told to one actor between checkpoints while flooding.
FLOOD_CHECKPOINT = 1000

_GONE = frozenset({"stopped", "failed", "stopping"})


@attrs.frozen
class Flood:
    """A message no actor handles: ``flood_mailbox`` sends it (a dead letter each).

    Attributes:
        n: Its number in the flood.
    """

    n: int


def pick(candidates: list[str], count: int | None, how: Pick, rng: Random) -> list[str]:
    """The targets a fault hits among ``candidates`` (sorted by name).

    ``all`` takes every one; ``first`` the first ``count`` in name order;
    ``random`` ``count`` of them chosen by ``rng``. ``count`` is 1 by default.
    """
    ordered = sorted(candidates)
    if how == "all":
        return ordered
    wanted = min(count or 1, len(ordered))
    if how == "first":
        return ordered[:wanted]
    return rng.sample(ordered, wanted)


def _actor_paths(sz: ScheduleZero, target: str) -> list[str]:
    own = target.startswith(RUNS_ROOT + "/")
    return [
        snapshot.path
        for snapshot in sz.system.snapshot().walk()
        if snapshot.state not in _GONE
        and glob_matches(target, snapshot.path)
        and (own or not snapshot.path.startswith(RUNS_ROOT))
    ]


async def inject(
    fault: Fault, sz: ScheduleZero, rng: Random, fleet: WorkerFleet | None
) -> dict[str, Any]:
    """Inject ``fault``; return what the timeline says of it (its targets).

    A checkpoint. A fault with a duration returns once it is over.

    Raises:
        NoFleet: A worker fault in a run without worker processes.
    """
    match fault:
        case KillActor() | StopActor():
            hit = pick(_actor_paths(sz, fault.target), fault.count, fault.pick, rng)
            done = []
            for path in hit:
                ref = sz.system.lookup(path)
                if ref is None:  # gone with an ancestor picked before it
                    continue
                try:
                    if isinstance(fault, KillActor):
                        await ref.kill(reason="scenario fault kill_actor")
                    else:
                        await ref.stop()
                except ActorError:
                    continue  # ended meanwhile
                done.append(path)
            return {"targets": done}
        case FloodMailbox():
            return await _flood(sz, fault)
        case BlockLoop():
            # On purpose: the loop's own thread held, as a blocking call in a
            # handler or a library would hold it.
            time.sleep(fault.duration)  # noqa: ASYNC251
            await anyio.lowlevel.checkpoint()
            return {"duration": fault.duration}
        case _:
            return await _worker_fault(fault, rng, fleet)


async def _flood(sz: ScheduleZero, fault: FloodMailbox) -> dict[str, Any]:
    paths = _actor_paths(sz, fault.target)
    told = refused = 0
    for path in paths:
        ref = sz.system.lookup(path)
        if ref is None:
            continue
        for n in range(fault.count):
            try:
                ref.tell(Flood(n))
            except MailboxFull:
                refused += 1
            except ActorError:
                break  # ended meanwhile
            else:
                told += 1
            if n % FLOOD_CHECKPOINT == FLOOD_CHECKPOINT - 1:
                await anyio.lowlevel.checkpoint()
    return {"targets": paths, "told": told, "refused": refused}


async def _worker_fault(
    fault: Fault, rng: Random, fleet: WorkerFleet | None
) -> dict[str, Any]:
    if fleet is None:
        raise NoFleet(f"{fault.kind}: the run has no worker processes")
    assert isinstance(fault, KillWorker | PauseWorker | Partition | Delay | Drop)
    names = [name for name in fleet.names if glob_matches(fault.target, name)]
    hit = pick(names, fault.count, fault.pick, rng)
    match fault:
        case KillWorker():
            for name in hit:
                await fleet.kill(name, fault.signal, fault.restart_after)
            return {
                "targets": hit,
                "signal": fault.signal,
                "restart_after": fault.restart_after,
            }
        case PauseWorker():
            async with anyio.create_task_group() as group:
                for name in hit:
                    group.start_soon(fleet.pause, name, fault.duration)
            return {"targets": hit, "duration": fault.duration}
        case Partition():
            for name in hit:
                fleet.proxy(name).partition(fault.duration)
        case Delay():
            for name in hit:
                fleet.proxy(name).delay(fault.delay, fault.duration, fault.jitter)
        case Drop():
            for name in hit:
                fleet.proxy(name).drop(fault.probability, fault.duration, rng)
    # The link heals by itself; the step holds for the fault's duration.
    await anyio.sleep(fault.duration)
    return {"targets": hit, "duration": fault.duration}
