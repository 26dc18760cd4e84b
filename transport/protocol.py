"""The wire protocol between the broker and its workers (``PROTOCOL.md`` tells it).

A message is frames: ``[PROTOCOL, command, header, *bodies]``. The header is a
small msgpack map of the command's fields; bodies are opaque bytes the broker
routes without decoding (a job's arguments, a result's value). Never pickle:
a frame from the network is data, not code.

``encode`` turns a message into frames; ``decode`` turns frames back, and raises
``ProtocolError`` naming what is wrong with anything else.
"""

from __future__ import annotations

import operator
import re
import threading
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import attrs
import msgpack

from .errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

__all__ = [
    "BATCH_BODY_BYTES",
    "MAX_BATCH",
    "MAX_BODIES",
    "MAX_CAPACITY",
    "MAX_ERROR",
    "MAX_HEADER",
    "MAX_HEARTBEAT",
    "MAX_HELD",
    "MAX_INCARNATION",
    "MAX_JOB_ID",
    "MAX_NAME",
    "MAX_REASON",
    "MAX_SECONDS",
    "MAX_TASKS",
    "MAX_TRACEBACK",
    "MIN_HEARTBEAT",
    "PROTOCOL",
    "WORKER_NAME",
    "WORKER_NAME_RULE",
    "Disconnect",
    "Heartbeat",
    "JobRequest",
    "JobResult",
    "Message",
    "ProtocolError",
    "Ready",
    "decode",
    "decode_all",
    "decode_body",
    "encode",
    "encode_batches",
    "encode_body",
]

#: The first frame of every message: the protocol and its version.
PROTOCOL = b"SZP1"

#: What a worker may be called (READY's ``name``): it names an actor and a handler.
WORKER_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
#: The same rule, as a refusal puts it.
WORKER_NAME_RULE = "1-128 of A-Z a-z 0-9 _ . : @ -"

#: Bytes a header may take; a longer one is refused before it is decoded.
MAX_HEADER = 1024 * 1024

#: Bodies a message may carry (a batch carries its items' bodies in one frame).
MAX_BODIES = 4

#: Messages a batch may carry (JOB and RESULT come in batches).
MAX_BATCH = 256

#: READY's ``heartbeat`` bounds, in seconds: a worker that announced an endless
#: interval would never be judged dead, one far below the broker's tick could
#: never keep up.
MIN_HEARTBEAT = 0.01
MAX_HEARTBEAT = 3600.0

#: READY's largest ``capacity``: jobs in flight to one worker.
MAX_CAPACITY = 65535

#: READY's most ``methods``: a worker serving more is a mistake or an attack,
#: and each one costs the dispatcher an entry in its index of tasks. With
#: ASCII names at ``MAX_NAME`` a READY this long takes half of ``MAX_HEADER``
#: (4,096 such names would not fit in one header at all).
MAX_TASKS = 2048

#: Characters in a name: READY's ``name`` and each of its ``methods``, JOB's
#: ``method``. Twice the worker-name rule (``WORKER_NAME``), so that the
#: broker's refusal, which states the rule, still answers any name a person
#: might type; past this it is bad input, not a name.
MAX_NAME = 256

#: Characters in READY's ``incarnation`` (ours: 32 hex digits).
MAX_INCARNATION = 128

#: Characters in a JOB's or RESULT's ``job_id`` (ours: 24 or 32).
MAX_JOB_ID = 128

#: Job ids a worker's HEARTBEAT may list in ``jobs``: what one broker may have
#: in flight to it (its credit, at most ``MAX_CAPACITY``). The header's own
#: bound still applies: 65,535 ids of our 24 characters would not fit in it.
MAX_HELD = MAX_CAPACITY

#: Characters in a RESULT's ``error``: the worker cuts its error text to this.
MAX_ERROR = 4096

#: The longest RESULT ``traceback``, in characters: 16 KiB, the innermost
#: frames of a failure (the worker cuts the outer ones).
MAX_TRACEBACK = 16 * 1024

#: Characters in a DISCONNECT's ``reason``: a line for a log, not a document.
MAX_REASON = 1024

#: The most seconds a JOB's ``timeout`` or a RESULT's ``duration`` may say
#: (about 31 years): finite, and small enough for date arithmetic on either end.
MAX_SECONDS = 1e9

#: What msgpack may raise on data from the network: malformed input
#: (``ValueError`` and its own errors), a map with an unhashable key
#: (``TypeError``), a timestamp past a datetime's range (``OverflowError``),
#: nesting past the interpreter's stack (``RecursionError``, pure-Python build).
_UNPACK_ERRORS = (
    ValueError,
    TypeError,
    OverflowError,
    RecursionError,
    msgpack.UnpackException,
)

#: Bytes of bodies a sender puts in one batch, past its first item's: batching
#: pays for small messages; a large body is cheaper sent on its own than copied.
BATCH_BODY_BYTES = 64 * 1024


def _is_text(value: Any, limit: int) -> bool:
    return type(value) is str and 0 < len(value) <= limit


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0  # not a bool: its type is bool


def _is_seconds(value: Any, *, zero: bool = False) -> bool:
    # Chained comparisons refuse NaN and infinities as well: they cost nothing
    # on the hot path (every RESULT's duration).
    return (type(value) is float or type(value) is int) and (
        0 <= value <= MAX_SECONDS if zero else 0 < value <= MAX_SECONDS
    )


def _text(limit: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """A validator: a string of 1 to ``limit`` characters."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not _is_text(value, limit):
            raise ProtocolError(
                f"{attribute.name}: expected a string of 1 to {limit} characters"
            )

    return check


def _capacity(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not int or not 1 <= value <= MAX_CAPACITY:
        raise ProtocolError(
            f"{attribute.name}: expected an integer from 1 to {MAX_CAPACITY}"
        )


def _heartbeat(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (type(value) is float or type(value) is int) or not (
        MIN_HEARTBEAT <= value <= MAX_HEARTBEAT
    ):
        raise ProtocolError(
            f"{attribute.name}: expected seconds from {MIN_HEARTBEAT:g} to "
            f"{MAX_HEARTBEAT:g}"
        )


def _methods(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, tuple) and len(value) > MAX_TASKS:
        raise ProtocolError(
            f"{attribute.name}: {len(value)} method names: at most {MAX_TASKS}"
        )
    if not isinstance(value, tuple) or not all(
        _is_text(method, MAX_NAME) for method in value
    ):
        raise ProtocolError(
            f"{attribute.name}: expected a list of method names, each of 1 to "
            f"{MAX_NAME} characters"
        )


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

    name: str = attrs.field(validator=_text(MAX_NAME))
    incarnation: str = attrs.field(validator=_text(MAX_INCARNATION))
    methods: tuple[str, ...] = attrs.field(converter=_as_tuple, validator=_methods)
    capacity: int = attrs.field(validator=_capacity)
    heartbeat: float = attrs.field(validator=_heartbeat)


_JOB_ID = f"job_id: expected a string of 1 to {MAX_JOB_ID} characters"

# JOB and RESULT are checked in one ``__attrs_post_init__`` each rather than a
# validator per field: a small job costs a few of these per end, and a call per
# field was a tenth of a worker's time.


# One per attempt on the hot path at both ends: a frozen wire frame, but
# positional as well as keyword (sz's STYLE rule 4 exception), so neither end
# builds it through a keyword dict.
@attrs.frozen
class JobRequest:
    """Broker to worker: run attempt ``attempt`` of job ``job_id``.

    Its one body is the arguments, encoded by the scheduler.
    """

    COMMAND: ClassVar[bytes] = b"\x02"

    job_id: str
    attempt: int
    method: str
    timeout: float | None = None

    def __attrs_post_init__(self) -> None:
        if not _is_text(self.job_id, MAX_JOB_ID):
            raise ProtocolError(_JOB_ID)
        if not _is_count(self.attempt):
            raise ProtocolError("attempt: expected an integer >= 0")
        if not _is_text(self.method, MAX_NAME):
            raise ProtocolError(
                f"method: expected a string of 1 to {MAX_NAME} characters"
            )
        if self.timeout is not None and not _is_seconds(self.timeout):
            raise ProtocolError(
                f"timeout: expected seconds > 0, at most {MAX_SECONDS:g}"
            )


# One per attempt on the hot path at both ends: positional as well as keyword,
# as JobRequest is.
@attrs.frozen
class JobResult:
    """Worker to broker: how attempt ``attempt`` of job ``job_id`` ended.

    ``outcome`` is ``success``, ``failure`` or ``timeout``; with success, its
    one body is the value, encoded by the worker. ``caller_error``: the job
    failed because its arguments do not fit the function's signature, the
    caller's error rather than the worker's. ``traceback``: a failure's
    formatted traceback. Both travel only when set, so that a peer that
    predates them still reads every other RESULT.
    """

    COMMAND: ClassVar[bytes] = b"\x03"
    OUTCOMES: ClassVar[frozenset[str]] = frozenset({"success", "failure", "timeout"})

    job_id: str
    attempt: int
    outcome: str
    error: str | None = None
    duration: float = 0.0
    caller_error: bool = False
    traceback: str | None = None

    def __attrs_post_init__(self) -> None:
        if not _is_text(self.job_id, MAX_JOB_ID):
            raise ProtocolError(_JOB_ID)
        if not _is_count(self.attempt):
            raise ProtocolError("attempt: expected an integer >= 0")
        # A list or a map from the wire would not even hash: look at its type first.
        if type(self.outcome) is not str or self.outcome not in self.OUTCOMES:
            raise ProtocolError(
                f"outcome: expected one of {', '.join(sorted(self.OUTCOMES))}"
            )
        if self.error is not None and (
            type(self.error) is not str or len(self.error) > MAX_ERROR
        ):
            raise ProtocolError(
                f"error: expected a string of at most {MAX_ERROR} characters, or "
                "nothing"
            )
        if not _is_seconds(self.duration, zero=True):
            raise ProtocolError(
                f"duration: expected seconds >= 0, at most {MAX_SECONDS:g}"
            )
        if type(self.caller_error) is not bool:
            raise ProtocolError("caller_error: expected true or false")
        if self.traceback is not None and (
            type(self.traceback) is not str or len(self.traceback) > MAX_TRACEBACK
        ):
            raise ProtocolError(
                f"traceback: expected a string of at most {MAX_TRACEBACK} "
                "characters, or nothing"
            )


def _held(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, tuple) and len(value) > MAX_HELD:
        raise ProtocolError(
            f"{attribute.name}: {len(value)} job ids: at most {MAX_HELD}"
        )
    if not isinstance(value, tuple) or not all(
        _is_text(job_id, MAX_JOB_ID) for job_id in value
    ):
        raise ProtocolError(
            f"{attribute.name}: expected a list of job ids, each of 1 to "
            f"{MAX_JOB_ID} characters, or nothing"
        )


@attrs.frozen
class Heartbeat:
    """Either way: I am alive (any message counts as much).

    From a worker, ``jobs`` lists the ids of the jobs it holds from this
    broker (received, not yet answered: running or waiting), so that the
    broker can tell a JOB or RESULT lost on the way from a job still running.
    None (the default, and always from a broker): no report, only a sign of
    life, as from a worker that predates the field.
    """

    COMMAND: ClassVar[bytes] = b"\x04"

    jobs: tuple[str, ...] | None = attrs.field(
        default=None, converter=_as_tuple, validator=_held
    )


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

    reason: str = attrs.field(validator=_text(MAX_REASON))
    draining: bool = attrs.field(default=False, validator=_flag)


Message: TypeAlias = Ready | JobRequest | JobResult | Heartbeat | Disconnect

_KINDS = (Ready, JobRequest, JobResult, Heartbeat, Disconnect)
_BY_COMMAND: dict[bytes, type[Message]] = {kind.COMMAND: kind for kind in _KINDS}
#: Each command's header fields, in order (looked up per message: keep it cheap).
_FIELDS: dict[type[Message], tuple[str, ...]] = {
    kind: tuple(field.name for field in attrs.fields(kind)) for kind in _KINDS
}


#: The commands that come in batches, made from an item's fields in order (the
#: classes themselves: they take their fields positionally).
_BATCHED: dict[type[Message], Callable[..., Message]] = {
    JobRequest: JobRequest,
    JobResult: JobResult,
}
_NAMES: dict[type[Message], frozenset[str]] = {
    kind: frozenset(names) for kind, names in _FIELDS.items()
}
#: Fields added after SZP1's first peers, last in their command's order, and
#: sent only when set: a peer that predates them reads any message without.
_OPTIONAL: dict[type[Message], tuple[str, ...]] = {
    JobResult: ("caller_error", "traceback"),
    Heartbeat: ("jobs",),
}
#: The fields every message of a command carries, in order (a batch item's).
_SENT: dict[type[Message], tuple[str, ...]] = {
    kind: names[: len(names) - len(_OPTIONAL.get(kind, ()))]
    for kind, names in _FIELDS.items()
}
_packer = msgpack.Packer(use_bin_type=True)


#: Each command's fields, read at once (a dict comprehension of getattr calls
#: cost a small job a microsecond at each end).
_READ: dict[type[Message], Callable[[Message], Any]] = {
    kind: operator.attrgetter(*names) for kind, names in _SENT.items() if names
}


def _header(message: Message) -> dict[str, Any]:
    kind = type(message)
    names = _SENT[kind]
    if len(names) > 1:
        header = dict(zip(names, _READ[kind](message), strict=True))
        if kind is JobResult:
            result: JobResult = message  # type: ignore[assignment]
            if result.caller_error:
                header["caller_error"] = True
            if result.traceback is not None:
                header["traceback"] = result.traceback
        return header
    if kind is Heartbeat:
        jobs = message.jobs  # type: ignore[union-attr]
        return {} if jobs is None else {"jobs": jobs}
    return {names[0]: _READ[kind](message)} if names else {}


def encode(message: Message, *bodies: bytes) -> list[bytes]:
    """The frames of ``message`` with its ``bodies``."""
    header: bytes = _packer.pack(_header(message))
    return [PROTOCOL, message.COMMAND, header, *bodies]


def encode_batches(
    items: Sequence[tuple[JobRequest, bytes]] | Sequence[tuple[JobResult, bytes]],
) -> Iterator[list[bytes]]:
    """Messages carrying ``items`` (JOBs, or RESULTs, with a body each; b"": none).

    One item makes a plain message; more make batches of at most ``MAX_BATCH``
    items and ``MAX_HEADER`` bytes of header each: one send and one receive
    for many jobs, which is most of a small job's cost. Bodies join a batch up
    to ``BATCH_BODY_BYTES``: a large one goes in a message of its own, sent as
    it is rather than copied into a batch. A batch is four frames however many
    items it carries (its items are arrays of their fields, its bodies one
    msgpack array of binaries): each frame costs both ends microseconds, as
    much as a small job's bookkeeping.
    """
    if len(items) == 1:
        message, body = items[0]
        yield encode(message, body) if body else encode(message)
        return
    kind = type(items[0][0])
    command, read, pack = kind.COMMAND, _READ[kind], _packer.pack
    optional = kind is JobResult
    chunk: list[tuple[Message, bytes]] = []
    rows: list[bytes] = []
    size = weight = 0
    for message, body in items:
        if optional and message.traceback is not None:  # type: ignore[union-attr]
            # Both optional fields, in order: an array item's are positional.
            row = pack((*read(message), message.caller_error, message.traceback))  # type: ignore[union-attr]
        elif optional and message.caller_error:  # type: ignore[union-attr]
            row = pack((*read(message), True))  # caller_error, only when true
        else:
            row = pack(read(message))  # its fields in order: an array
        if rows and (
            len(rows) == MAX_BATCH
            or size + len(row) > MAX_HEADER - 8
            or weight + len(body) > BATCH_BODY_BYTES
        ):
            yield _batch(command, chunk, rows)
            chunk, rows, size, weight = [], [], 0, 0
        chunk.append((message, body))
        rows.append(row)
        size += len(row)
        weight += len(body)
    yield _batch(command, chunk, rows)


def _batch(
    command: bytes, chunk: list[tuple[Message, bytes]], rows: list[bytes]
) -> list[bytes]:
    if len(chunk) == 1:
        message, body = chunk[0]
        return encode(message, body) if body else encode(message)
    header = _packer.pack_array_header(len(rows)) + b"".join(rows)
    return [PROTOCOL, command, header, _packer.pack([body for _, body in chunk])]


def decode(frames: list[bytes]) -> tuple[Message, list[bytes]]:
    """The one message in ``frames``, and its bodies.

    Raises:
        ProtocolError: Not a message of this protocol and version, an unknown
            command, a header that is not a map of the command's fields, too
            many frames, or a batch (``decode_all`` reads those); the message
            says which.
    """
    kind, fields, bodies = _open(frames)
    if isinstance(fields, list):
        raise ProtocolError(f"{kind.__name__}: a batch, where one message was due")
    return _message(kind, fields, bodies), bodies


def decode_all(frames: list[bytes]) -> list[tuple[Message, list[bytes]]]:
    """Every message in ``frames`` (one, or a batch), each with its bodies.

    A batch's header is an array of items, each an array of the command's
    fields in their order (``PROTOCOL.md``'s table), and its one body frame a
    msgpack array of as many binaries, in order (an empty one: none).

    Raises:
        ProtocolError: As ``decode``; and for a batch that is not of JOBs or
            RESULTs, is empty or larger than ``MAX_BATCH``, or whose bodies do
            not match its items.
    """
    kind, fields, bodies = _open(frames)
    if not isinstance(fields, list):
        return [(_message(kind, fields, bodies), bodies)]
    if not 1 <= len(fields) <= MAX_BATCH:
        raise ProtocolError(
            f"{kind.__name__}: a batch of {len(fields)}: from 1 to {MAX_BATCH}"
        )
    items = _batch_bodies(kind, len(fields), bodies)
    least, most, make = len(_SENT[kind]), len(_FIELDS[kind]), _BATCHED[kind]
    decoded: list[tuple[Message, list[bytes]]] = []
    for item, body in zip(fields, items, strict=True):
        if type(item) is not list or not least <= len(item) <= most:
            count = f"{least}" if least == most else f"{least} to {most}"
            raise ProtocolError(
                f"{kind.__name__}: a batch item is not an array of its {count} fields"
            )
        try:
            message = make(*item)
        except ProtocolError as exc:
            raise ProtocolError(f"{kind.__name__}: {exc}") from None
        decoded.append((message, [body] if body else []))
    return decoded


def _batch_bodies(kind: type[Message], count: int, frames: list[bytes]) -> list[bytes]:
    """The bodies of a batch of ``count`` items, from its one body frame."""
    name = kind.__name__
    if len(frames) != 1:
        raise ProtocolError(
            f"{name}: a batch with {len(frames)} body frames: one, an array of "
            f"{count} bodies"
        )
    try:
        bodies = msgpack.unpackb(frames[0], raw=False)
    except _UNPACK_ERRORS as exc:
        raise ProtocolError(f"{name}: the bodies are not msgpack ({exc})") from None
    if not isinstance(bodies, list) or not set(map(type, bodies)) <= {bytes}:
        raise ProtocolError(f"{name}: the bodies are not an array of binaries")
    if len(bodies) != count:
        raise ProtocolError(
            f"{name}: a batch of {count} with {len(bodies)} bodies: one each"
        )
    return bodies


def _open(frames: list[bytes]) -> tuple[type[Message], Any, list[bytes]]:
    """The command, the decoded header (a map, or a batch's array), the bodies."""
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
    except _UNPACK_ERRORS as exc:
        raise ProtocolError(
            f"{kind.__name__}: the header is not msgpack ({exc})"
        ) from None
    if not isinstance(fields, dict) and (
        not isinstance(fields, list) or kind not in _BATCHED
    ):
        # Only JOB and RESULT come in batches (an array of items).
        raise ProtocolError(f"{kind.__name__}: the header is not a map")
    return kind, fields, bodies


def _message(
    kind: type[Message], fields: dict[Any, Any], bodies: list[bytes]
) -> Message:
    if not fields.keys() <= _NAMES[kind]:
        # Named, but briefly: the refusal goes into a log line and a DISCONNECT.
        unknown = sorted(str(name)[:32] for name in fields.keys() - _NAMES[kind])
        more = f" and {len(unknown) - 4} more" if len(unknown) > 4 else ""
        raise ProtocolError(
            f"{kind.__name__}: unknown fields {', '.join(unknown[:4])}{more}"
        )
    try:
        return kind(**fields)
    except TypeError as exc:  # a required field missing
        raise ProtocolError(f"{kind.__name__}: {exc}") from None
    except ProtocolError as exc:
        raise ProtocolError(f"{kind.__name__}: {exc}") from None


class _Packers(threading.local):
    """A body packer per thread.

    ``msgpack.packb`` makes a packer per call, which costs ten times the packing
    of a small value.
    """

    def __init__(self) -> None:
        self.body = msgpack.Packer(use_bin_type=True, datetime=True)


_packers = _Packers()


def encode_body(value: Any) -> bytes:
    """A body: ``value`` as msgpack, aware datetimes as timestamps.

    Raises:
        TypeError: ``value`` holds something msgpack cannot encode.
        ValueError: A naive datetime, or a value too deeply nested.
        OverflowError: An integer beyond 64 bits.
    """
    body: bytes = _packers.body.pack(value)
    return body


def decode_body(body: bytes) -> Any:
    """The value of a body (timestamps come back as aware datetimes).

    Raises:
        ProtocolError: The body is not msgpack, or not a value this end can
            hold: a map keyed by an array or a map, a timestamp past a
            datetime's range. Never any other exception.
    """
    try:
        return msgpack.unpackb(body, raw=False, timestamp=3, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"not msgpack ({exc})") from None
    except _UNPACK_ERRORS as exc:
        raise ProtocolError(f"msgpack this end cannot hold ({exc})") from None
