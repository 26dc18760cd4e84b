"""The wire protocol between the broker and its workers (``PROTOCOL.md`` tells it).

A message is frames: ``[PROTOCOL, command, header, *bodies]``. The header is a
small msgpack map of the command's fields; bodies are opaque bytes the broker
routes without decoding (a job's arguments, a result's value). Never pickle:
a frame from the network is data, not code.

``encode`` turns a message into frames; ``decode`` turns frames back, and raises
``ProtocolError`` naming what is wrong with anything else.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeAlias

import attrs
import msgpack

__all__ = [
    "MAX_BODIES",
    "MAX_HEADER",
    "PROTOCOL",
    "Disconnect",
    "Heartbeat",
    "JobRequest",
    "JobResult",
    "Message",
    "ProtocolError",
    "Ready",
    "decode",
    "encode",
]

#: The first frame of every message: the protocol and its version.
PROTOCOL = b"SZP1"

#: Bytes a header may take; a longer one is refused before it is decoded.
MAX_HEADER = 64 * 1024

#: Bodies a message may carry.
MAX_BODIES = 4


class ProtocolError(ValueError):
    """Frames that are not a message of this protocol (the text says why)."""


def _text(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{attribute.name}: expected a non-empty string")


def _count(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"{attribute.name}: expected an integer >= 0")


def _seconds(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ProtocolError(f"{attribute.name}: expected a number of seconds > 0")


def _methods(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple) or not all(
        isinstance(method, str) and method for method in value
    ):
        raise ProtocolError(f"{attribute.name}: expected a list of method names")


def _optional_text(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"{attribute.name}: expected a string or nothing")


def _as_tuple(value: Any) -> Any:
    """A list from msgpack as a tuple; anything else as it is, for the validator."""
    return tuple(value) if isinstance(value, list | tuple) else value


@attrs.frozen(kw_only=True)
class Ready:
    """Worker to broker: here I am, this is what I serve and how much at once.

    ``incarnation`` changes each time the worker process starts, so that the
    broker tells a restarted worker from the one it knew.
    """

    COMMAND: ClassVar[bytes] = b"\x01"

    name: str = attrs.field(validator=_text)
    incarnation: str = attrs.field(validator=_text)
    methods: tuple[str, ...] = attrs.field(converter=_as_tuple, validator=_methods)
    capacity: int = attrs.field(validator=_count)
    heartbeat: float = attrs.field(validator=_seconds)


@attrs.frozen(kw_only=True)
class JobRequest:
    """Broker to worker: run attempt ``attempt`` of job ``job_id``.

    Its one body is the arguments, encoded by the scheduler.
    """

    COMMAND: ClassVar[bytes] = b"\x02"

    job_id: str = attrs.field(validator=_text)
    attempt: int = attrs.field(validator=_count)
    method: str = attrs.field(validator=_text)
    timeout: float | None = attrs.field(default=None)

    @timeout.validator
    def _timeout(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            _seconds(self, attribute, value)


@attrs.frozen(kw_only=True)
class JobResult:
    """Worker to broker: how attempt ``attempt`` of job ``job_id`` ended.

    ``outcome`` is ``success``, ``failure`` or ``timeout``; with success, its
    one body is the value, encoded by the worker.
    """

    COMMAND: ClassVar[bytes] = b"\x03"
    OUTCOMES: ClassVar[frozenset[str]] = frozenset({"success", "failure", "timeout"})

    job_id: str = attrs.field(validator=_text)
    attempt: int = attrs.field(validator=_count)
    outcome: str = attrs.field()
    error: str | None = attrs.field(default=None, validator=_optional_text)
    duration: float = attrs.field(default=0.0)

    @outcome.validator
    def _outcome(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in self.OUTCOMES:
            raise ProtocolError(
                f"outcome: expected one of {', '.join(sorted(self.OUTCOMES))}"
            )

    @duration.validator
    def _duration(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ProtocolError("duration: expected a number of seconds >= 0")


@attrs.frozen
class Heartbeat:
    """Either way: I am alive (any message counts as much)."""

    COMMAND: ClassVar[bytes] = b"\x04"


def _flag(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise ProtocolError(f"{attribute.name}: expected true or false")


@attrs.frozen(kw_only=True)
class Disconnect:
    """Either way: I no longer know you (register again), or I am leaving.

    From a worker with ``draining``: send me no more jobs, I finish those I
    have (their RESULTs follow), then leave with a plain DISCONNECT, which hands
    back any job I did not finish.
    """

    COMMAND: ClassVar[bytes] = b"\x05"

    reason: str = attrs.field(validator=_text)
    draining: bool = attrs.field(default=False, validator=_flag)


Message: TypeAlias = Ready | JobRequest | JobResult | Heartbeat | Disconnect

_KINDS = (Ready, JobRequest, JobResult, Heartbeat, Disconnect)
_BY_COMMAND: dict[bytes, type[Message]] = {kind.COMMAND: kind for kind in _KINDS}
#: Each command's header fields, in order (looked up per message: keep it cheap).
_FIELDS: dict[type[Message], tuple[str, ...]] = {
    kind: tuple(field.name for field in attrs.fields(kind)) for kind in _KINDS
}
_packer = msgpack.Packer(use_bin_type=True)


def encode(message: Message, *bodies: bytes) -> list[bytes]:
    """The frames of ``message`` with its ``bodies``."""
    header: bytes = _packer.pack(
        {name: getattr(message, name) for name in _FIELDS[type(message)]}
    )
    return [PROTOCOL, message.COMMAND, header, *bodies]


def decode(frames: list[bytes]) -> tuple[Message, list[bytes]]:
    """The message in ``frames``, and its bodies.

    Raises:
        ProtocolError: Not a message of this protocol and version, an unknown
            command, a header that is not a map of the command's fields, or too
            many frames (the message says which).
    """
    if len(frames) < 3:
        raise ProtocolError(f"{len(frames)} frames: at least 3 make a message")
    tag, command, header, *bodies = frames
    if tag != PROTOCOL:
        raise ProtocolError(
            f"protocol {bytes(tag[:16])!r}: this end speaks {PROTOCOL!r}"
        )
    kind = _BY_COMMAND.get(bytes(command))
    if kind is None:
        raise ProtocolError(f"unknown command {bytes(command[:4])!r}")
    if len(header) > MAX_HEADER:
        raise ProtocolError(f"header of {len(header)} bytes: at most {MAX_HEADER}")
    if len(bodies) > MAX_BODIES:
        raise ProtocolError(f"{len(bodies)} bodies: at most {MAX_BODIES}")
    try:
        fields = msgpack.unpackb(header, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ProtocolError(
            f"{kind.__name__}: the header is not msgpack ({exc})"
        ) from None
    if not isinstance(fields, dict):
        raise ProtocolError(f"{kind.__name__}: the header is not a map")
    names = _FIELDS[kind]
    unknown = [name for name in fields if name not in names]
    if unknown:
        raise ProtocolError(
            f"{kind.__name__}: unknown fields {', '.join(sorted(map(str, unknown)))}"
        )
    try:
        message = kind(**fields)
    except TypeError as exc:  # a required field missing
        raise ProtocolError(f"{kind.__name__}: {exc}") from None
    except ProtocolError as exc:
        raise ProtocolError(f"{kind.__name__}: {exc}") from None
    return message, bodies
