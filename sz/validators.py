"""The attrs validators ``sz``'s data classes share; each names the bad field."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import attrs

__all__ = ["int_at_least", "not_negative", "positive", "positive_or_none", "ratio"]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def int_at_least(minimum: int) -> Validator:
    """An int (not a bool) of at least ``minimum``."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(
                f"{attribute.name} must be an int >= {minimum}, got {value!r}"
            )

    return check


def ratio(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    """A number in (0, 1]."""
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name} must be in (0, 1], got {value!r}")


def not_negative(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    """A number >= 0."""
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def positive(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A number (not a bool) > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a number > 0, got {value!r}")


def positive_or_none(
    _instance: Any, attribute: attrs.Attribute[Any], value: float | None
) -> None:
    """None, or a number > 0."""
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value!r}")
