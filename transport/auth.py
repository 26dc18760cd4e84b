"""CURVE authentication of workers: an allow-list of public keys, each naming a worker.

libzmq asks a ZAP handler, over ``inproc://zeromq.zap.01``, whether to admit each
peer that completes a CURVE handshake. pyzmq's ready-made handlers run in a
thread or on asyncio only; its base ``Authenticator`` decides without either, so
``serve_zap`` drives it from an AnyIO task on our socket, under asyncio or trio.

The broker's socket must set ``ZAP_DOMAIN`` and ``ZAP_ENFORCE_DOMAIN``: without
them a CURVE server with no handler admits anyone who knows its public key. The
User-Id of an admitted peer is the worker name its key was listed under, so the
key, not what a worker claims in READY, decides which name it may register.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import zmq
from zmq.auth.base import Authenticator
from zmq.utils import z85

from .socket import Socket

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ZAP_DOMAIN", "WorkerKeys", "secure_server", "serve_zap"]

#: The ZAP domain the broker's socket authenticates in.
ZAP_DOMAIN = "schedulezero"

#: Seconds between two warnings of refused handshakes: a misconfigured worker or
#: a scan retries without end, and the log must stay readable.
REFUSALS_LOGGED_EVERY = 10.0

logger = logging.getLogger("transport.auth")


class WorkerKeys(Authenticator):
    """Admits the CURVE public keys listed, each under its worker's name.

    Args:
        context: The context of the sockets it guards (ZAP is per context).
        workers: Worker names by their public key (Z85, as ``sz keys`` writes it).
    """

    def __init__(
        self, context: zmq.Context[zmq.Socket[bytes]], workers: Mapping[bytes, str]
    ) -> None:
        super().__init__(context)
        self.workers = {bytes(key): name for key, name in workers.items()}
        self.configure_curve_callback(ZAP_DOMAIN, self)
        #: CURVE handshakes refused (a key not listed): an operator's sign of a
        #: misconfigured worker, or of someone trying.
        self.refused = 0
        self._peer = "?"
        self._refused_unlogged = 0
        self._logged_at = -float("inf")

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        """Answer one ZAP request, noting the peer's address for a refusal."""
        # version, request id, domain, address, identity, mechanism, credentials
        self._peer = msg[3].decode(errors="replace") if len(msg) > 3 else "?"
        await super().handle_zap_message(msg)

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the key (Z85) is listed: libzmq asks on each handshake."""
        if domain == ZAP_DOMAIN and key in self.workers:
            return True
        self._refuse(key)
        return False

    def _refuse(self, key: bytes) -> None:
        """Count a refusal; warn of it, at most once per ``REFUSALS_LOGGED_EVERY``."""
        self.refused += 1
        self._refused_unlogged += 1
        now = time.monotonic()
        if now - self._logged_at < REFUSALS_LOGGED_EVERY:
            return
        also = self._refused_unlogged - 1
        logger.warning(
            "refused a CURVE handshake from %s: key %s is not a listed worker's%s",
            self._peer,
            key.decode(errors="replace"),
            f" ({also} more refused since the last warning)" if also else "",
        )
        self._logged_at, self._refused_unlogged = now, 0

    def curve_user_id(self, client_public_key: bytes) -> str:
        """The worker name of an admitted key: its messages' User-Id."""
        return self.workers[z85.encode(client_public_key)]


def secure_server(socket: zmq.Socket[bytes], secret_key: bytes) -> None:
    """Make ``socket`` a CURVE server that admits only what the ZAP handler admits."""
    socket.setsockopt(zmq.CURVE_SERVER, 1)
    socket.setsockopt(zmq.CURVE_SECRETKEY, secret_key)
    socket.setsockopt_string(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
    socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


async def serve_zap(keys: WorkerKeys) -> None:
    """Answer libzmq's ZAP requests until cancelled.

    Starts ``keys`` unless it was started already: a server bound before this
    task runs must call ``keys.start()`` first, so no handshake finds no handler.
    """
    if getattr(keys, "zap_socket", None) is None:  # typed as always set: it is not
        keys.start()
    socket = Socket(keys.zap_socket)
    try:
        while True:
            request = await socket.receive()
            # Replies on the raw REP socket, which never blocks right after a
            # request: the base class sends them itself.
            await keys.handle_zap_message(request)
    finally:
        socket.close()
        keys.stop()  # forgets the closed socket
