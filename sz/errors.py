"""The root of the errors the ``sz`` package raises."""

from __future__ import annotations

__all__ = ["SzError"]


class SzError(Exception):
    """Root of every error the scheduler raises."""
