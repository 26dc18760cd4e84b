"""ZeroMQ transport for remote handler workers: sockets for AnyIO, the protocol."""

from __future__ import annotations

from .socket import Socket as Socket

__all__ = ["Socket"]
