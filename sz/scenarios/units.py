"""Units of the scenario language: seconds, bytes, counts, ratios, each per second.

A number in a condition may carry a unit (``2s``, ``50ms``, ``500MB``, ``1%``),
and a rate one more (``10MB/s``, ``100/s``); a duration in a scenario file may
be a number of seconds or such a string (``"50ms"``). Every value is reduced to
its base unit (seconds, bytes, a count, a ratio) before it is compared, so
``2s`` and ``2000ms`` are equal, and ``1%`` is the ratio 0.01. Byte units are
decimal (``KB`` is 1,000 bytes) and binary with an ``i`` (``KiB`` is 1,024).
"""

from __future__ import annotations

import math
import re
from typing import Literal

import attrs

__all__ = [
    "BYTE_UNITS",
    "RATIO_UNITS",
    "TIME_UNITS",
    "Dimension",
    "parse_duration",
    "unit_of",
]

Base = Literal["seconds", "bytes", "count", "ratio"]

#: Time units and their length in seconds.
TIME_UNITS: dict[str, float] = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}

#: Byte units and their size in bytes.
BYTE_UNITS: dict[str, float] = {
    "B": 1.0,
    "KB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "KiB": 2.0**10,
    "MiB": 2.0**20,
    "GiB": 2.0**30,
}


#: Ratio units (a share of a whole, as ``error_rate``) and their size.
RATIO_UNITS: dict[str, float] = {"%": 0.01}


@attrs.frozen(kw_only=True)
class Dimension:
    """What a value measures: its base unit, and whether it is so much per second.

    Attributes:
        base: ``"seconds"``, ``"bytes"``, ``"count"`` or ``"ratio"`` (a share
            of a whole: 0.01 is ``1%``).
        per_second: True for a rate of the base (bytes a second, jobs a second).
    """

    base: Base
    per_second: bool = False

    def __str__(self) -> str:
        if not self.per_second:
            return self.base
        return "per second" if self.base == "count" else f"{self.base} per second"


SECONDS = Dimension(base="seconds")
BYTES = Dimension(base="bytes")
COUNT = Dimension(base="count")
RATIO = Dimension(base="ratio")
PER_SECOND = Dimension(base="count", per_second=True)

_WORD = re.compile(r"[A-Za-z_][A-Za-z_]*")


_COUNTED: tuple[Base, float] = ("count", 1.0)


def _base_unit(text: str) -> tuple[Base, float] | None:
    if text in TIME_UNITS:
        return "seconds", TIME_UNITS[text]
    if text in BYTE_UNITS:
        return "bytes", BYTE_UNITS[text]
    if text in RATIO_UNITS:
        return "ratio", RATIO_UNITS[text]
    return None


def unit_of(text: str, *, words: bool = False) -> tuple[Dimension, float] | None:
    """The dimension of a unit and how many base units one of it is.

    ``"ms"`` is seconds (0.001), ``"MB/s"`` bytes per second (1e6), ``"/m"`` a
    count per second (1/60), ``"%"`` a ratio (0.01). With ``words``, a word
    that is no unit counts things (``"jobs"``, ``"schedules/sec"``): the
    display units a scenario's ``metrics`` section may give.

    Args:
        text: The unit as written.
        words: Whether a word counts things, False by default.

    Returns:
        The dimension and the scale, or None if ``text`` is no unit.
    """
    head, slash, tail = text.partition("/")
    if not (head or slash):
        return None
    found = _base_unit(head) if head else _COUNTED
    if found is None:
        if not (words and _WORD.fullmatch(head)):
            return None
        found = _COUNTED
    base, scale = found
    if not slash:
        return Dimension(base=base), scale
    per = TIME_UNITS.get(tail)
    if per is None:
        return None
    return Dimension(base=base, per_second=True), scale / per


_DURATION = re.compile(
    r"\s*(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>[A-Za-z]*)\s*"
)


def parse_duration(value: object) -> float | None:
    """Seconds from a scenario file's duration: a number, or text with a time unit.

    ``0.05``, ``"50ms"``, ``"1.5m"`` and ``"2h"`` are durations; a bare number
    in text (``"30"``) is seconds. Negative, infinite and unknown units are not.

    Returns:
        The seconds (0 or more), or None if ``value`` is no duration.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            return None
        scale = TIME_UNITS.get(match["unit"] or "s")
        if scale is None:
            return None
        seconds = float(match["number"]) * scale
    else:
        return None
    if not (math.isfinite(seconds) and seconds >= 0):
        return None
    return seconds
