"""ZeroMQ transport for remote handler workers: sockets for AnyIO, the protocol."""

from __future__ import annotations

from .auth import (
    ZAP_DOMAIN as ZAP_DOMAIN,
    WorkerKeys as WorkerKeys,
    secure_server as secure_server,
    serve_zap as serve_zap,
)
from .protocol import (
    Disconnect as Disconnect,
    Heartbeat as Heartbeat,
    JobRequest as JobRequest,
    JobResult as JobResult,
    Message as Message,
    ProtocolError as ProtocolError,
    Ready as Ready,
    decode as decode,
    encode as encode,
)
from .socket import Socket as Socket

__all__ = [
    "ZAP_DOMAIN",
    "Disconnect",
    "Heartbeat",
    "JobRequest",
    "JobResult",
    "Message",
    "ProtocolError",
    "Ready",
    "Socket",
    "WorkerKeys",
    "decode",
    "encode",
    "secure_server",
    "serve_zap",
]
