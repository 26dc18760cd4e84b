"""ZeroMQ transport for remote handler workers (built in a later issue)."""

from __future__ import annotations

__all__: list[str] = []
