"""A pyzmq socket for AnyIO: the same code under asyncio and trio.

pyzmq's own async sockets (``zmq.asyncio``) are asyncio-only. This wraps a plain
pyzmq socket instead: every send and receive is tried without blocking first;
on ``zmq.Again`` the task waits until the socket's ``EVENTS`` say it may go on.

The traps, and how each is met:

- ``ZMQ_FD`` is edge-triggered, and reading ``EVENTS`` (which every send and
  receive does inside libzmq) consumes the edge. A task asleep on the FD after
  another task's send or receive consumed it would sleep for ever. So a task
  only sleeps on the FD after ``EVENTS`` said "not ready", and every send or
  receive wakes whoever sleeps on the FD to look at ``EVENTS`` again.
- An event loop lets one task wait on a descriptor at a time (asyncio's
  ``add_reader``, trio's ``wait_readable`` both refuse a second). One task at a
  time sleeps on the FD; the others wait for a change, and re-check ``EVENTS``.
- Closing a descriptor a task waits on: ``anyio.notify_closing`` first, so the
  waiter ends with ``ClosedResourceError`` instead of waiting on a reused FD.
- ``LINGER`` 0: closing drops unsent messages rather than hanging the context's
  termination (the protocol above resends what matters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import zmq

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Socket"]

# pyzmq's ``send_multipart`` and ``recv_multipart`` spend most of their time on
# its flag enums (an ``|`` per frame): the core calls with plain int flags cost a
# fifth as much per message.
_send = zmq.backend.Socket.send
_recv = zmq.backend.Socket.recv
_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_NOW = int(zmq.NOBLOCK)


def _send_now(socket: zmq.Socket[bytes], frames: Sequence[bytes]) -> None:
    """Send a message without waiting; ``zmq.Again`` if it cannot go now.

    All parts or none: libzmq takes a message whole once its first part is in.
    """
    last = len(frames) - 1
    for index, frame in enumerate(frames):
        _send(socket, frame, _MORE if index < last else _NOW)


def _receive_now(socket: zmq.Socket[bytes]) -> list[zmq.Frame]:
    """Receive a message's frames without waiting; ``zmq.Again`` if none is there."""
    frame = _recv(socket, _NOW, copy=False)
    frames = [frame]
    while frame.more:
        frame = _recv(socket, _NOW, copy=False)
        frames.append(frame)
    return frames


def _user(frames: list[zmq.Frame]) -> str | None:
    """The ``User-Id`` a ZAP handler gave the sender (CURVE sockets only)."""
    try:
        user = frames[0].get("User-Id") if frames else None
    except zmq.ZMQError:  # no such property: no ZAP handler named the sender
        return None
    return str(user) if user else None


class Socket:
    """One pyzmq socket, owned by this wrapper, used from AnyIO tasks.

    Several tasks may send and receive on it at once (a socket is not
    thread-safe, but these tasks share one thread). Cancelling a send or a receive
    leaves the socket sound: a message is either wholly sent or not at all, and a
    message received is returned or left in the socket.
    """

    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        socket.setsockopt(zmq.LINGER, 0)
        self.zmq = socket
        fd = socket.getsockopt(zmq.FD)
        assert isinstance(fd, int)  # an int option: typed int | bytes by pyzmq
        self._fd = fd
        self._closed = False
        #: Set (and replaced) whenever the socket's readiness may have changed.
        self._changed = anyio.Event()
        #: The scope of the one task asleep on the FD, if any.
        self._fd_sleeper: anyio.CancelScope | None = None
        #: Tasks waiting to receive, and to send.
        self._want_in = self._want_out = 0

    # ------------------------------------------------------------------ I/O

    async def send(self, frames: Sequence[bytes]) -> None:
        """Send one message of ``frames``; wait while the socket cannot take it.

        Raises:
            anyio.ClosedResourceError: The socket is closed (or closes meanwhile).
            zmq.ZMQError: libzmq refused it (``ROUTER_MANDATORY`` and an unknown
                or vanished peer: ``EHOSTUNREACH``).
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            self._check_open()
            try:
                _send_now(self.zmq, frames)
            except zmq.Again:
                await self._wait_for(zmq.POLLOUT)
                waited = True
                continue
            self._wake()
            if not waited:  # else it has yielded already: no second pass
                await anyio.lowlevel.cancel_shielded_checkpoint()
            return

    def try_send(self, frames: Sequence[bytes]) -> bool:
        """Send one message now if the socket takes it; False if it cannot yet.

        Never waits: for a sender that must not be held up by one slow peer (a
        ROUTER's ``POLLOUT`` says *some* peer has room, not which one).

        Raises:
            anyio.ClosedResourceError: The socket is closed.
            zmq.ZMQError: libzmq refused it (as ``send``).
        """
        self._check_open()
        try:
            _send_now(self.zmq, frames)
        except zmq.Again:
            return False
        self._wake()
        return True

    async def receive(self) -> list[bytes]:
        """Receive one message (its frames); wait until one is there.

        Raises:
            anyio.ClosedResourceError: The socket is closed (or closes meanwhile).
        """
        return [frame.bytes for frame in await self._receive()]

    async def receive_from(self) -> tuple[list[bytes], str | None]:
        """Receive one message, with the ``User-Id`` its sender authenticated as.

        With CURVE and a ZAP handler, the User-Id is what the handler named the
        sender's key (``transport.auth``); without, None.
        """
        frames = await self._receive()
        return [frame.bytes for frame in frames], _user(frames)

    async def _receive(self) -> list[zmq.Frame]:
        await anyio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            self._check_open()
            try:
                frames = _receive_now(self.zmq)
            except zmq.Again:
                await self._wait_for(zmq.POLLIN)
                waited = True
                continue
            self._wake()
            if not waited:  # else it has yielded already: no second pass
                await anyio.lowlevel.cancel_shielded_checkpoint()
            return frames

    async def receive_many(self, limit: int = 256) -> list[list[bytes]]:
        """Receive every message there is, up to ``limit``; wait for the first.

        A broker with many workers takes what arrived in one go: one schedule
        point for the lot rather than one per message.

        Raises:
            anyio.ClosedResourceError: The socket is closed (or closes meanwhile).
        """
        return [
            [frame.bytes for frame in frames]
            for frames in await self._receive_many(limit)
        ]

    async def receive_many_from(
        self, limit: int = 256
    ) -> list[tuple[list[bytes], str | None]]:
        """As ``receive_many``, each message with its sender's ``User-Id``."""
        return [
            ([frame.bytes for frame in frames], _user(frames))
            for frames in await self._receive_many(limit)
        ]

    async def _receive_many(self, limit: int) -> list[list[zmq.Frame]]:
        messages = [await self._receive()]
        while len(messages) < limit and not self._closed:
            try:
                messages.append(_receive_now(self.zmq))
            except zmq.Again:
                break
        if len(messages) > 1:
            self._wake()
        return messages

    # ------------------------------------------------------------- waiting

    def _ready(self, event: int) -> bool:
        events = self.zmq.getsockopt(zmq.EVENTS)
        assert isinstance(events, int)
        return bool(events & event)

    async def _wait_for(self, event: int) -> None:
        """Return once ``EVENTS`` has ``event``, or may have (look again)."""
        inbound = event == zmq.POLLIN
        if inbound:
            self._want_in += 1
        else:
            self._want_out += 1
        try:
            await self._wait_until(event)
        finally:
            if inbound:
                self._want_in -= 1
            else:
                self._want_out -= 1

    async def _wait_until(self, event: int) -> None:
        while True:
            self._check_open()
            if self._ready(event):
                return
            if self._fd_sleeper is not None:
                # Another task sleeps on the FD: wait for it (or a send or a
                # receive) to say something changed.
                await self._changed.wait()
                continue
            with anyio.CancelScope() as scope:
                self._fd_sleeper = scope
                try:
                    await anyio.wait_readable(self._fd)
                finally:
                    self._fd_sleeper = None
                    self._wake_others()

    def _wake(self) -> None:
        """A send or receive happened: wake the waiters it may have made ready.

        It may have consumed the FD's edge while libzmq took in what a waiter
        waits for (a message, room to send): then no edge will come for it, and
        the waiter must be woken to look. Anything it did not make ready comes
        with a new edge later.
        """
        if not (self._want_in or self._want_out):
            return
        events = self.zmq.getsockopt(zmq.EVENTS)
        assert isinstance(events, int)
        if (self._want_in and events & zmq.POLLIN) or (
            self._want_out and events & zmq.POLLOUT
        ):
            if self._fd_sleeper is not None:
                self._fd_sleeper.cancel()
            self._wake_others()

    def _wake_others(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _check_open(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError

    # ---------------------------------------------------------------- close

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def close(self) -> None:
        """Close the socket; tasks waiting on it get ``ClosedResourceError``."""
        if self._closed:
            return
        self._closed = True
        if self._fd_sleeper is not None:
            anyio.notify_closing(self._fd)
        self._wake_others()
        self.zmq.close(linger=0)

    async def aclose(self) -> None:
        """Close it (a checkpoint, for ``async with``)."""
        self.close()
        await anyio.lowlevel.checkpoint()

    async def __aenter__(self) -> Socket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
