"""Pieces of error messages: a value shown short, the names a name could be."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["expected_one_of", "show"]


def expected_one_of(found: str, choices: Iterable[str]) -> str:
    """``(did you mean 'loop'? expected one of: action, loop, ...)``.

    The choices are listed sorted; the suggestion is the closest, if any is
    close (a typo, not a different word).
    """
    ordered = sorted(choices)
    close = difflib.get_close_matches(found, ordered, n=1)
    mean = f"did you mean {close[0]!r}? " if close else ""
    return f"({mean}expected one of: {', '.join(ordered)})"


def show(value: object) -> str:
    """A value on one short line, ``null``/``true``/``false`` as YAML says them."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 60 else f"{text[:57]}..."
