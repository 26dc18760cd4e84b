"""Globs over actor paths and worker names, as chaos faults' targets write them."""

from __future__ import annotations

import functools
import re

__all__ = ["glob_matches"]


@functools.lru_cache(maxsize=256)
def _pattern(glob: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*\*|\*|\?)", glob):
        if piece == "**":
            parts.append(".*")
        elif piece == "*":
            parts.append("[^/]*")
        elif piece == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts), re.DOTALL)


def glob_matches(glob: str, path: str) -> bool:
    """Whether ``path`` matches ``glob``.

    ``*`` matches any run of characters within one path segment (no ``/``),
    ``**`` any run across segments, ``?`` one character but ``/``; every other
    character matches itself. ``/user/handlers/*`` matches each handler but not
    its children; ``/user/**`` matches every actor below ``/user``.
    """
    return _pattern(glob).fullmatch(path) is not None
