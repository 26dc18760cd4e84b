"""The broker's ROUTER end and a worker's DEALER end of a worker connection.

Everything ZeroMQ-specific about them lives here (socket options, CURVE, libzmq's
errors turned into ``TransportError`` and ``PeerGone``), so that the scheduler
speaks of peers, frames and refusals, never of libzmq. (``endpoints.py`` beside it
checks the addresses these bind and connect to.)
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import zmq
from zmq.utils.monitor import parse_monitor_message

from .auth import WorkerKeys, secure_server, serve_zap
from .errors import PeerGone, TransportError
from .socket import Socket

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["HANDSHAKE_SECONDS", "Dealer", "Router"]

#: How long the broker waits for a connection's ZMTP (and CURVE) handshake
#: before it drops it: libzmq's 30 s would let half-open connections pile up.
HANDSHAKE_SECONDS = 5.0


class Router:
    """The broker's end: one bound ROUTER that every worker connects to.

    ``ROUTER_MANDATORY`` is on, so a message to a vanished peer is an error
    (``PeerGone``) rather than a silent drop, and a full peer refuses it
    (``send`` returns False) rather than losing it. With ``secret_key``, only
    the CURVE public keys in ``workers`` are admitted, each under its name;
    ``serve_auth`` must run meanwhile, and without it nobody is admitted.

    Args:
        endpoint: Where to bind (``tcp://127.0.0.1:5555``; port ``*`` picks one).
        max_message_bytes: A peer sending a larger message is disconnected by
            libzmq (``MAXMSGSIZE``).
        send_hwm: Messages queued for one peer before ``send`` refuses more.
        receive_hwm: Messages queued from one peer before it must wait.
        secret_key: The broker's CURVE secret key (Z85), or None for no CURVE.
        workers: With CURVE, worker names by their public key (Z85).

    Raises:
        TransportError: The endpoint is invalid or cannot be bound.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        max_message_bytes: int = 16 * 2**20,
        send_hwm: int = 1000,
        receive_hwm: int = 1000,
        secret_key: bytes | None = None,
        workers: Mapping[bytes, str] | None = None,
    ) -> None:
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._keys: WorkerKeys | None = None
        try:
            raw = self._context.socket(zmq.ROUTER)
            raw.setsockopt(zmq.LINGER, 0)
            raw.setsockopt(zmq.ROUTER_MANDATORY, 1)
            raw.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
            raw.setsockopt(zmq.SNDHWM, send_hwm)
            raw.setsockopt(zmq.RCVHWM, receive_hwm)
            raw.setsockopt(zmq.HANDSHAKE_IVL, int(HANDSHAKE_SECONDS * 1000))
            if secret_key is not None:
                self._keys = WorkerKeys(self._context, workers or {})
                # Bound before the socket is: no handshake finds no handler.
                self._keys.start()
                secure_server(raw, secret_key)
            raw.bind(endpoint)
        except zmq.ZMQError as exc:
            self._context.destroy(linger=0)
            raise TransportError(f"cannot bind {endpoint}: {exc.strerror}") from None
        last = raw.getsockopt(zmq.LAST_ENDPOINT)
        #: The endpoint bound, with the port chosen if it was ``*``.
        self.endpoint = last.decode() if isinstance(last, bytes) else endpoint
        self.socket = Socket(raw)
        #: Whether peers must authenticate (their ``User-Id`` is a worker name).
        self.secure = self._keys is not None

    @property
    def refused(self) -> int:
        """CURVE handshakes refused so far: keys not listed (0 without CURVE)."""
        return self._keys.refused if self._keys is not None else 0

    async def serve_auth(self) -> None:
        """Answer CURVE handshakes until cancelled (returns at once without CURVE)."""
        if self._keys is not None:
            await serve_zap(self._keys)

    async def watch_connections(self, on_change: Callable[[bool], None]) -> None:
        """Call ``on_change(True)`` as each connection opens, ``False`` as one closes.

        Until cancelled. A connection libzmq cuts (a message over
        ``max_message_bytes``, a broken handshake) closes like any other: this
        is how the broker counts what it never sees as a message.
        """
        events = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
        monitor = Socket(self.socket.zmq.get_monitor_socket(events))
        try:
            while True:
                event = parse_monitor_message(await monitor.receive())
                on_change(event["event"] == zmq.EVENT_ACCEPTED)
        finally:
            monitor.close()

    def send(self, peer: bytes, frames: Sequence[bytes]) -> bool:
        """Queue a message for ``peer`` now; False if its queue is full.

        Raises:
            PeerGone: ``peer`` is not connected (any more).
            anyio.ClosedResourceError: The router is closed.
        """
        try:
            return self.socket.try_send([peer, *frames])
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                raise PeerGone(peer) from None
            raise

    async def receive(self) -> list[tuple[bytes, list[bytes], str | None]]:
        """Every message waiting (at least one): ``(peer, frames, user)`` each.

        ``user`` is the worker name the peer's CURVE key is listed under, or None
        without CURVE.
        """
        if self.secure:
            return [
                (frames[0], frames[1:], user)
                for frames, user in await self.socket.receive_many_from()
                if frames
            ]
        return [
            (frames[0], frames[1:], None)
            for frames in await self.socket.receive_many()
            if frames
        ]

    def close(self) -> None:
        """Close the socket and the context; waiting tasks get ClosedResourceError."""
        self.socket.close()
        if self._keys is not None:
            self._keys.stop()
        self._context.destroy(linger=0)


class Dealer:
    """A worker's end: one DEALER connected to the broker.

    ``IMMEDIATE`` is on: until the connection is up, sends wait (or ``try_send``
    refuses) instead of queueing for a broker that may never answer, so nothing
    stale is delivered to a broker that restarted.

    Args:
        endpoint: The broker's endpoint.
        secret_key: This worker's CURVE secret key (Z85), with ``public_key``
            and ``server_key``; all None for no CURVE.
        public_key: This worker's CURVE public key (Z85).
        server_key: The broker's CURVE public key (Z85).
        hwm: Messages queued each way.

    Raises:
        TransportError: The endpoint is invalid.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        secret_key: bytes | None = None,
        public_key: bytes | None = None,
        server_key: bytes | None = None,
        hwm: int = 1000,
    ) -> None:
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            raw = self._context.socket(zmq.DEALER)
            raw.setsockopt(zmq.LINGER, 0)
            raw.setsockopt(zmq.IMMEDIATE, 1)
            raw.setsockopt(zmq.SNDHWM, hwm)
            raw.setsockopt(zmq.RCVHWM, hwm)
            if secret_key is not None:
                if public_key is None or server_key is None:
                    raise TransportError(
                        "CURVE needs the worker's public and secret keys and the "
                        "broker's public key"
                    )
                raw.setsockopt(zmq.CURVE_SECRETKEY, secret_key)
                raw.setsockopt(zmq.CURVE_PUBLICKEY, public_key)
                raw.setsockopt(zmq.CURVE_SERVERKEY, server_key)
            raw.connect(endpoint)
        except zmq.ZMQError as exc:
            self._context.destroy(linger=0)
            raise TransportError(
                f"cannot connect to {endpoint}: {exc.strerror}"
            ) from None
        except BaseException:
            self._context.destroy(linger=0)
            raise
        self.socket = Socket(raw)

    async def send(self, frames: Sequence[bytes]) -> None:
        """Send a message; wait while the connection is not up or is full."""
        await self.socket.send(frames)

    def try_send(self, frames: Sequence[bytes]) -> bool:
        """Send a message now if it can go; False if not (not connected, full)."""
        return self.socket.try_send(frames)

    async def receive(self) -> list[list[bytes]]:
        """Every message waiting (at least one)."""
        return await self.socket.receive_many()

    def close(self) -> None:
        """Close the socket and its context."""
        self.socket.close()
        self._context.destroy(linger=0)
