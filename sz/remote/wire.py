"""What the broker and its workers agree on beyond SZP1's frames.

Both ends batch what one turn of their event loop produced (``Outbox``), cap
error text at the same length, tick on the same kind of sentinel, and put
arguments and values into bodies the same way: ``transport/PROTOCOL.md`` says
what goes on the wire; this module is the one place ``sz`` decides how.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from transport import (
    MAX_ERROR as PROTOCOL_MAX_ERROR,
    JobRequest,
    JobResult,
    ProtocolError,
    decode_body,
    encode,
    encode_batches,
    encode_body,
)

from ..errors import SzError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from transport import Message

__all__ = [
    "BEAT",
    "MAX_ERROR",
    "MAX_MESSAGE_BYTES",
    "SHIP_AT",
    "UNENCODABLE",
    "Beat",
    "Outbox",
    "decode_arguments",
    "decode_value",
    "encode_arguments",
    "encode_value",
    "frames_of",
]

#: JOBs or RESULTs for one peer that are sent at once rather than at the end of
#: the event loop's turn.
SHIP_AT = 32

#: Longest error text a RESULT carries: the worker cuts it to this, since SZP1
#: refuses a longer one.
MAX_ERROR = PROTOCOL_MAX_ERROR

#: The largest message the broker takes by default, 16 MiB: a worker must know
#: it, since libzmq drops the connection of a peer that sends more.
MAX_MESSAGE_BYTES = 16 * 2**20

#: What msgpack raises for a value it cannot encode (``encode_body``).
UNENCODABLE = (TypeError, ValueError, OverflowError)

M = TypeVar("M", JobRequest, JobResult)


class Beat:
    """Time to send heartbeats and judge the peer's liveness (a timer's message)."""


#: The one ``Beat``: actors compare with ``is``.
BEAT = Beat()


class Outbox(Generic[M]):
    """JOBs or RESULTs for one peer, waiting to go together as batches.

    The dispatcher hands jobs over, and jobs finish, one at a time; sent one by
    one, each would cost a send at one end and a receive at the other (and often
    a wake-up of libzmq's I/O thread each): most of a small job's cost. Its owner
    empties it at the end of the event loop's turn, or at once when it is
    ``full``.
    """

    # Slotted, positional and mutable: one per peer, touched for every job.
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[M, bytes]] = []

    def __len__(self) -> int:
        return len(self.items)

    def put(self, message: M, body: bytes) -> bool:
        """Add ``message`` and its body (b"": none).

        Returns:
            True if it was empty: its owner then arranges for it to be emptied.
        """
        items = self.items
        items.append((message, body))
        return len(items) == 1

    @property
    def full(self) -> bool:
        """Whether ``SHIP_AT`` wait: enough for a batch, better sent now."""
        return len(self.items) >= SHIP_AT

    def take(self) -> Iterator[list[bytes]]:
        """Empty it now; the messages carrying what it held, encoded as they go."""
        items, self.items = self.items, []
        return encode_batches(items) if items else iter(())

    def clear(self) -> None:
        """Forget what it holds (its peer is gone)."""
        self.items.clear()


def frames_of(message: Message, body: bytes) -> list[bytes]:
    """One message's frames; an empty ``body`` travels as no body frame at all."""
    return encode(message, body) if body else encode(message)


def encode_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    """A JOB's body: msgpack ``[args, kwargs]``, or b"" when there are none.

    Raises:
        TypeError: An argument is something msgpack cannot encode (so may
            ValueError and OverflowError: see ``UNENCODABLE``).
    """
    kwargs = kwargs if type(kwargs) is dict else {**kwargs}
    return encode_body((args, kwargs)) if args or kwargs else b""


def decode_arguments(bodies: list[bytes]) -> tuple[list[Any], dict[str, Any]]:
    """A JOB's arguments from its bodies (none: no arguments).

    Raises:
        SzError: The body is not msgpack ``[args, kwargs]``.
    """
    if not bodies:
        return [], {}
    try:
        decoded = decode_body(bodies[0])
    except ProtocolError as exc:
        raise SzError(f"the job's arguments are {exc}") from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != 2
        or not isinstance(decoded[0], list)
        or not isinstance(decoded[1], dict)
    ):
        raise SzError("the job's arguments are not [args, kwargs]")
    return decoded[0], decoded[1]


def encode_value(value: Any) -> bytes:
    """A RESULT's body: ``value`` as msgpack, or b"" for None (most jobs' value).

    Raises:
        TypeError: ``value`` is something msgpack cannot encode (so may
            ValueError and OverflowError: see ``UNENCODABLE``).
    """
    return b"" if value is None else encode_body(value)


def decode_value(bodies: list[bytes]) -> Any:
    """A successful RESULT's value from its bodies (none: None).

    Raises:
        ProtocolError: The body is not msgpack.
    """
    return decode_body(bodies[0]) if bodies else None
