"""The aiohttp gateway and dashboard (built in a later issue)."""

from __future__ import annotations

__all__: list[str] = []
