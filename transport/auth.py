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

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the key (Z85) is listed: libzmq asks on each handshake."""
        return domain == ZAP_DOMAIN and key in self.workers

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
