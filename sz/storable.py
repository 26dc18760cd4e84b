"""What the store can keep: a job's arguments, checked before they are accepted.

The SQLite store pickles a schedule (its arguments and trigger with it) and each
accepted job's arguments. An argument pickle cannot store (a lambda, a lock)
would fail there, after the call that brought it had returned, or half way
through adding a schedule. ``schedule`` and ``run_now`` check first, on every
store, so that the memory store accepts exactly what the file would.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

from .errors import SzError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PICKLE_PROTOCOL", "check_storable", "check_value"]

#: The protocol the store pickles with (``sz.store``): what it can store is
#: what this protocol can.
PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL


def check_storable(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Check that the store can keep these arguments; never waits.

    Nothing to do without arguments, the common case; otherwise one pickling of
    them all, and only if that fails one per argument, to name the culprit.

    Raises:
        SzError: One cannot be pickled; the message names it (``args[1]``,
            ``kwargs['lock']``) and says why.
    """
    if not args and not kwargs:
        return
    try:
        pickle.dumps((args, kwargs), PICKLE_PROTOCOL)
    except Exception as exc:  # pickle may raise nearly anything an object does
        whole = exc
    else:
        return
    named = (
        *((f"args[{index}]", value) for index, value in enumerate(args)),
        *((f"kwargs[{key!r}]", value) for key, value in kwargs.items()),
    )
    for name, value in named:
        check_value(name, value)
    # Each alone pickles, together they do not (a __reduce__ that depends on
    # its company): say so about them all.
    raise SzError(f"the arguments cannot be stored: {_why(whole)}")


def check_value(name: str, value: Any) -> None:
    """Check that the store can keep ``value``, called ``name`` in the message.

    Raises:
        SzError: It cannot be pickled.
    """
    try:
        pickle.dumps(value, PICKLE_PROTOCOL)
    except Exception as exc:  # as above
        raise SzError(
            f"{name} cannot be stored ({type(value).__name__}): {_why(exc)}; "
            f"arguments must be picklable"
        ) from None


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
