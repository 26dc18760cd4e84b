"""Which actor's task is running: lets a ref tell "myself" from "someone else"."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cell import Cell

__all__ = ["current_cell"]

current_cell: contextvars.ContextVar[Cell | None] = contextvars.ContextVar(
    "current_cell", default=None
)
