"""Whether a call's arguments fit its function: the caller's error, or the function's.

A ``TypeError`` from a handler is either: the arguments did not bind to the
signature (a missing, surplus or unknown argument: the caller's error, never
held against the handler's health), or the function raised it. Local handlers
and remote workers tell them apart the same way, with these two functions.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["binding_error", "signature_of"]


def signature_of(func: Callable[..., Any]) -> inspect.Signature | None:
    """``func``'s signature, or None when ``inspect`` cannot read one.

    Read it once, at registration: reading costs more than binding.
    """
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None  # some builtins have none: their calls go unchecked


def binding_error(
    signature: inspect.Signature | None, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> str | None:
    """Why ``args`` and ``kwargs`` do not bind to ``signature``; None if they do.

    Only the binding is judged (a missing, surplus or unknown argument), not the
    arguments' types; None when the signature is unknown.
    """
    if signature is None:
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return str(exc)
    return None
