"""The errors ``transport`` raises; ``TransportError`` is the root of them all."""

from __future__ import annotations

__all__ = ["KeyFileError", "PeerGone", "ProtocolError", "TransportError"]


class TransportError(Exception):
    """Root of every error ``transport`` raises.

    Raised itself when an endpoint is invalid or cannot be bound or connected
    (the message says why).
    """


class ProtocolError(TransportError, ValueError):
    """Frames that are not a message of this protocol (the text says why)."""


class KeyFileError(TransportError, ValueError):
    """A key file is missing or is not one (the message names the file)."""


class PeerGone(TransportError):
    """The peer a message was addressed to is no longer connected."""
