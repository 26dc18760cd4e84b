"""The aiohttp gateway and dashboard: not in this version yet; empty for now."""

from __future__ import annotations

__all__: list[str] = []
