"""The worker processes a scenario run starts, and the faults aimed at them.

A ``WorkerFleet`` starts one ``sz worker`` subprocess per worker of the run's
setup, each connected to the broker through a ``FaultProxy`` of its own, so
that a fault can act on one worker's process (kill, pause) or on its link
(partition, delay, drop) while the scheduler runs unchanged. It records each
thing it does, and each process's end, as a ``FleetEvent`` for the run's
timeline.

Waiting for the workers to register is the runner's business (the scheduler's
``handlers()`` says who has): the fleet only starts, signals and stops
processes.
"""

from __future__ import annotations

import contextlib
import os
import signal as signals
import subprocess
import sys
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import anyio
import attrs

from transport import FaultProxy

from ..errors import SzError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from types import TracebackType

    from anyio.abc import Process, TaskGroup

    from .model import WorkerSpec

__all__ = ["FleetEvent", "UnknownWorker", "WorkerFleet"]

#: Lines of each worker's log (its stderr) kept for ``output`` and exit events.
LOG_LINES = 50

#: The signals ``kill`` sends, by the names scenario files use.
KILL_SIGNALS = {"SIGKILL": signals.SIGKILL, "SIGTERM": signals.SIGTERM}


class UnknownWorker(SzError, KeyError):
    """A name that is not one of the fleet's workers (the message says which)."""

    def __str__(self) -> str:
        # KeyError's own would quote the message as if it were a key.
        return str(self.args[0]) if self.args else ""


@attrs.frozen(kw_only=True)
class FleetEvent:
    """Something the fleet did to a worker, or a worker's process ending.

    Attributes:
        at: When (UTC).
        worker: The worker's name (``worker-1``, ...).
        what: ``"start"``, ``"kill"``, ``"restart"``, ``"pause"``, ``"resume"`` or
            ``"exit"``.
        detail: The signal sent, the pid started, or how the process ended
            (``exit code 0``, ``killed by SIGKILL``, with the last line of its
            log when it failed).
    """

    at: datetime
    worker: str
    what: Literal["start", "kill", "restart", "pause", "resume", "exit"]
    detail: str


class _Member:
    """One worker name: its proxy, its current process and what it logged."""

    __slots__ = (
        "exited",
        "log",
        "name",
        "process",
        "proxy",
        "restarted",
        "restarting",
        "spec",
    )

    def __init__(self, name: str, spec: WorkerSpec, proxy: FaultProxy) -> None:
        self.name = name
        self.spec = spec
        self.proxy = proxy
        self.process: Process | None = None
        #: Set once the current process has ended and been reaped.
        self.exited = anyio.Event()
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        #: The scope of a pending restart, if any, and set when it is over.
        self.restarting: anyio.CancelScope | None = None
        self.restarted = anyio.Event()

    @property
    def running(self) -> bool:
        return self.process is not None and not self.exited.is_set()


class WorkerFleet:
    """The run's ``sz worker`` processes, each behind a fault proxy.

    ``async with WorkerFleet(specs, endpoint, backend="trio") as fleet:`` starts
    every worker: ``spec.count`` processes for each spec, named ``worker-1``,
    ``worker-2``, ... in order, serving ``spec.methods`` of ``spec.module``
    (``--tasks``) with the default capacity, each connected to its own
    ``FaultProxy`` in front of ``broker_endpoint``. Entering returns once every
    process has started (not registered). Leaving stops every process
    (SIGTERM, and SIGCONT for a paused one; SIGKILL after ``grace`` seconds),
    cancels pending restarts, and closes the proxies.

    Args:
        specs: The setup's workers.
        broker_endpoint: The broker's ROUTER (``tcp://127.0.0.1:PORT``), without
            CURVE: the proxies relay messages, not encrypted streams.
        backend: The event loop the workers run on, ``"asyncio"`` or ``"trio"``.
        cwd: The workers' working directory, where ``sz worker`` looks for
            modules first; this process's by default.
        env: Variables added to this process's environment for the workers.
        heartbeat: The workers' ``--heartbeat`` in seconds; ``sz worker``'s
            default (1 s) when None (the default). The broker judges a worker
            dead after three of them without a word.
        grace: Seconds between SIGTERM and SIGKILL when the fleet stops, 5.0
            by default (a worker drains for a second).
    """

    def __init__(
        self,
        specs: Sequence[WorkerSpec],
        broker_endpoint: str,
        *,
        backend: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        heartbeat: float | None = None,
        grace: float = 5.0,
    ) -> None:
        if backend not in {"asyncio", "trio"}:
            raise ValueError(f"expected backend asyncio or trio, got {backend!r}")
        self.specs = tuple(specs)
        self.broker_endpoint = broker_endpoint
        self.backend = backend
        self.cwd = cwd
        self.env = dict(env or {})
        self.heartbeat = heartbeat
        self.grace = grace
        #: Everything done to the workers, and each process's end, in order.
        self.events: list[FleetEvent] = []
        self._members: dict[str, _Member] = {}
        self._stack: contextlib.AsyncExitStack | None = None
        self._group: TaskGroup | None = None
        self._closing = False

    # ------------------------------------------------------------ queries

    @property
    def names(self) -> tuple[str, ...]:
        """The workers' names, ``worker-1`` first."""
        total = sum(spec.count for spec in self.specs)
        return tuple(f"worker-{number}" for number in range(1, total + 1))

    @property
    def pids(self) -> dict[str, int | None]:
        """Each worker's process id; None while it is not running."""
        return {
            name: member.process.pid
            if member.process is not None and member.running
            else None
            for name, member in self._members.items()
        }

    def proxy(self, name: str) -> FaultProxy:
        """The fault proxy on worker ``name``'s link (it outlives restarts).

        Raises:
            UnknownWorker: No worker has that name.
        """
        return self._member(name).proxy

    def output(self, name: str) -> str:
        """The last lines worker ``name``'s processes logged (stderr).

        Raises:
            UnknownWorker: No worker has that name.
        """
        return "\n".join(self._member(name).log)

    def _member(self, name: str) -> _Member:
        try:
            return self._members[name]
        except KeyError:
            known = ", ".join(self._members) or "none"
            raise UnknownWorker(
                f"no worker named {name!r} in the fleet (it has: {known})"
            ) from None

    # ------------------------------------------------------------- faults

    async def kill(
        self,
        name: str,
        signal: Literal["SIGKILL", "SIGTERM"],
        restart_after: float | None,
    ) -> None:
        """Send worker ``name`` ``signal``; start it again after ``restart_after``.

        Returns at once: the restart (same name, same proxy, a new process)
        happens in the background ``restart_after`` seconds from now, or once
        the old process has ended if that is later. A worker not running is not
        signalled (the event says so), but is restarted all the same; a restart
        already pending is not doubled. A checkpoint.

        Raises:
            UnknownWorker: No worker has that name.
            ValueError: ``restart_after`` is negative.
        """
        member = self._member(name)
        if restart_after is not None and not restart_after >= 0:
            raise ValueError(f"expected restart_after >= 0, got {restart_after}")
        if member.running and member.process is not None:
            self._signal(member, member.process, KILL_SIGNALS[signal])
            self._record(name, "kill", signal)
        else:
            self._record(name, "kill", f"{signal} (not running)")
        if (
            restart_after is not None
            and member.restarting is None
            and not self._closing
        ):
            member.restarting = anyio.CancelScope()
            member.restarted = anyio.Event()
            assert self._group is not None
            self._group.start_soon(self._restart, member, restart_after)
        await anyio.lowlevel.checkpoint()

    async def pause(self, name: str, duration: float) -> None:
        """SIGSTOP worker ``name``; SIGCONT it after ``duration`` seconds.

        Returns once it is continued. Cancelled meanwhile, it still continues
        the process before it ends (a stopped worker is never left behind). A
        worker not running is not signalled; the events say so.

        Raises:
            UnknownWorker: No worker has that name.
        """
        member = self._member(name)
        process = member.process if member.running else None
        if process is None:
            self._record(name, "pause", "not running")
            await anyio.sleep(duration)
            return
        self._signal(member, process, signals.SIGSTOP)
        self._record(name, "pause", f"SIGSTOP for {duration:g} s")
        try:
            await anyio.sleep(duration)
        finally:
            self._signal(member, process, signals.SIGCONT)
            self._record(name, "resume", "SIGCONT")

    # ---------------------------------------------------------- lifecycle

    async def __aenter__(self) -> WorkerFleet:
        async with contextlib.AsyncExitStack() as stack:
            names = self.names
            specs = [spec for spec in self.specs for _ in range(spec.count)]
            for name, spec in zip(names, specs, strict=True):
                proxy = await stack.enter_async_context(
                    FaultProxy(self.broker_endpoint)
                )
                self._members[name] = _Member(name, spec, proxy)
            group = await stack.enter_async_context(anyio.create_task_group())
            self._group = group
            # Last in, first out: stop the processes while the proxies and the
            # task group (whose tasks watch the processes) still run.
            stack.callback(group.cancel_scope.cancel)
            stack.push_async_callback(self._stop_all)
            for member in self._members.values():
                await self._start(member, "start")
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        return await stack.__aexit__(exc_type, exc, traceback)

    def _command(self, member: _Member) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "sz",
            "worker",
            member.proxy.endpoint,
            member.spec.module,
            "--name",
            member.name,
            "--tasks",
            ",".join(member.spec.methods),
            "--backend",
            self.backend,
        ]
        if self.heartbeat is not None:
            command += ["--heartbeat", repr(self.heartbeat)]
        return command

    async def _start(self, member: _Member, what: Literal["start", "restart"]) -> None:
        assert self._group is not None
        process = await anyio.open_process(
            self._command(member),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        member.process = process
        member.exited = exited = anyio.Event()
        self._record(member.name, what, f"pid {process.pid}")
        self._group.start_soon(self._watch, member, process, exited)

    async def _watch(
        self, member: _Member, process: Process, exited: anyio.Event
    ) -> None:
        """Keep the process's log, and record its end."""
        try:
            stream = process.stderr
            assert stream is not None
            # Read to the end (so a chatty worker never blocks on a full
            # pipe), whole lines kept; a line cut by the read is joined.
            partial = b""
            async for chunk in stream:
                *lines, partial = (partial + chunk).split(b"\n")
                member.log.extend(line.decode(errors="replace") for line in lines)
            if partial:
                member.log.append(partial.decode(errors="replace"))
            code = await process.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await process.aclose()
            exited.set()
        self._record(member.name, "exit", self._ended(member, code))

    @staticmethod
    def _ended(member: _Member, code: int) -> str:
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signals.Signals(-code).name}"
            return f"killed by signal {-code}"
        if code == 0 or not member.log:
            return f"exit code {code}"
        return f"exit code {code}: {member.log[-1]}"

    async def _restart(self, member: _Member, after: float) -> None:
        scope = member.restarting
        assert scope is not None
        try:
            with scope:
                await anyio.sleep(after)
                # The same name may not register twice while the old one lives.
                await member.exited.wait()
                # Started whole or not at all: never a process nobody watches.
                with anyio.CancelScope(shield=True):
                    await self._start(member, "restart")
        finally:
            member.restarting = None
            member.restarted.set()

    async def _stop_all(self) -> None:
        """SIGTERM every worker (continuing paused ones), SIGKILL after ``grace``."""
        with anyio.CancelScope(shield=True):
            self._closing = True
            for member in self._members.values():
                if member.restarting is not None:
                    member.restarting.cancel()
                    # One starting its process finishes: that one is stopped too.
                    await member.restarted.wait()
            running = [m for m in self._members.values() if m.running]
            for member in running:
                assert member.process is not None
                self._signal(member, member.process, signals.SIGTERM)
                # A stopped process acts on SIGTERM only once continued.
                self._signal(member, member.process, signals.SIGCONT)
            with anyio.move_on_after(self.grace):
                for member in running:
                    await member.exited.wait()
            for member in running:
                if member.running and member.process is not None:
                    self._signal(member, member.process, signals.SIGKILL)
            for member in running:
                await member.exited.wait()

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _signal(member: _Member, process: Process, signum: int) -> None:
        """Signal ``process`` if it is ``member``'s and not reaped yet.

        Once reaped, its pid may be another process's.
        """
        if member.process is not process or member.exited.is_set():
            return
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(process.pid, signum)

    def _record(
        self,
        worker: str,
        what: Literal["start", "kill", "restart", "pause", "resume", "exit"],
        detail: str,
    ) -> None:
        self.events.append(
            FleetEvent(at=datetime.now(UTC), worker=worker, what=what, detail=detail)
        )
