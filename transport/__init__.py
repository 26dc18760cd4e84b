"""ZeroMQ transport for remote handler workers: sockets for AnyIO, the protocol."""

from __future__ import annotations

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
    "Disconnect",
    "Heartbeat",
    "JobRequest",
    "JobResult",
    "Message",
    "ProtocolError",
    "Ready",
    "Socket",
    "decode",
    "encode",
]
