"""The wire protocol: every message survives a round trip; anything else is refused
with a ``ProtocolError`` that says what was wrong, never another exception."""

from __future__ import annotations

import contextlib
import math
import struct

import attrs
import msgpack
import pytest
from hypothesis import given, strategies as st

from transport.protocol import (
    BATCH_BODY_BYTES,
    MAX_BATCH,
    MAX_BODIES,
    MAX_CAPACITY,
    MAX_ERROR,
    MAX_HEADER,
    MAX_HEARTBEAT,
    MAX_HELD,
    MAX_INCARNATION,
    MAX_JOB_ID,
    MAX_NAME,
    MAX_REASON,
    MAX_SECONDS,
    MAX_TASKS,
    MAX_TRACEBACK,
    MIN_HEARTBEAT,
    PROTOCOL,
    Disconnect,
    Heartbeat,
    JobRequest,
    JobResult,
    Message,
    ProtocolError,
    Ready,
    decode,
    decode_all,
    decode_body,
    encode,
    encode_batches,
)

MESSAGES: list[Message] = [
    Ready(
        name="mailer",
        incarnation="a1b2",
        methods=("send_email", "send_sms"),
        capacity=8,
        heartbeat=1.0,
    ),
    JobRequest(job_id="j1", attempt=2, method="send_email", timeout=30.0),
    JobRequest(job_id="j2", attempt=1, method="send_email"),
    JobResult(job_id="j1", attempt=2, outcome="success", duration=0.25),
    JobResult(job_id="j1", attempt=3, outcome="failure", error="RuntimeError('x')"),
    JobResult(
        job_id="j1",
        attempt=4,
        outcome="failure",
        error="TypeError()",
        caller_error=True,
    ),
    Heartbeat(),
    Heartbeat(jobs=()),
    Heartbeat(jobs=("j1", "j2")),
    Disconnect(reason="unknown worker"),
]


@pytest.mark.parametrize(
    "message", MESSAGES, ids=[f"{type(m).__name__}-{n}" for n, m in enumerate(MESSAGES)]
)
def test_every_message_comes_back_equal_with_its_bodies(message: Message) -> None:
    frames = encode(message, b"\x00body", b"")
    assert frames[0] == PROTOCOL
    assert decode(frames) == (message, [b"\x00body", b""])


def header(**fields: object) -> bytes:
    packed = msgpack.packb(fields, use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


@pytest.mark.parametrize(
    ("frames", "says"),
    [
        pytest.param(
            [PROTOCOL, b"\x04"], "2 frames: at least 3 make a message", id="short"
        ),
        pytest.param([b"SZP9", b"\x04", header()], "protocol b'SZP9'", id="version"),
        pytest.param([PROTOCOL, b"\x99", header()], "unknown command", id="command"),
        pytest.param([PROTOCOL, b"\x04", b"\xc1"], "not msgpack", id="garbage"),
        pytest.param([PROTOCOL, b"\x04", header(x=1)], "unknown fields x", id="field"),
        pytest.param(
            [PROTOCOL, b"\x04", msgpack.packb([1, 2])], "not a map", id="not-a-map"
        ),
        pytest.param([PROTOCOL, b"\x05", header()], "Disconnect: ", id="missing-field"),
        pytest.param(
            [
                PROTOCOL,
                b"\x01",
                header(
                    name="w", incarnation="1", methods="abc", capacity=1, heartbeat=1.0
                ),
            ],
            "methods: expected a list of method names",
            id="methods-a-string",
        ),
        pytest.param(
            [
                PROTOCOL,
                b"\x01",
                header(
                    name="w", incarnation="1", methods=["m"], capacity=-1, heartbeat=1.0
                ),
            ],
            "capacity: expected an integer from 1 to 65535",
            id="negative-capacity",
        ),
        pytest.param(
            [PROTOCOL, b"\x03", header(job_id="j", attempt=1, outcome="maybe")],
            "outcome: expected one of failure, success, timeout",
            id="outcome",
        ),
        pytest.param(
            [PROTOCOL, b"\x04", b"\x80" + b" " * MAX_HEADER],
            f"at most {MAX_HEADER}",
            id="header-too-long",
        ),
        pytest.param(
            [PROTOCOL, b"\x04", header(), *[b""] * (MAX_BODIES + 1)],
            f"at most {MAX_BODIES}",
            id="too-many-bodies",
        ),
    ],
)
def test_a_bad_message_is_refused_saying_what_is_wrong(
    frames: list[bytes], says: str
) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode(frames)
    assert says in str(refused.value)


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_any_frames_decode_or_raise_protocol_error_only(frames: list[bytes]) -> None:
    try:
        message, bodies = decode(frames)
    except ProtocolError:
        return
    assert decode(encode(message, *bodies)) == (message, bodies)


@given(
    st.sampled_from([b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"]),
    st.dictionaries(
        st.sampled_from(
            [
                "name",
                "incarnation",
                "methods",
                "capacity",
                "heartbeat",
                "job_id",
                "attempt",
                "method",
                "timeout",
                "outcome",
                "error",
                "duration",
                "reason",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(2**63), max_value=2**64 - 1),  # msgpack ints
            st.floats(),
            st.text(max_size=8),
            st.lists(st.text(max_size=4), max_size=3),
            st.binary(max_size=4),
        ),
    ),
)
def test_headers_of_any_shape_decode_or_raise_protocol_error_only(
    command: bytes, fields: dict[str, object]
) -> None:
    with contextlib.suppress(ProtocolError):
        decode([PROTOCOL, command, header(**fields)])


def results(count: int, body: bytes) -> list[tuple[JobResult, bytes]]:
    return [
        (JobResult(job_id=f"j{n}", attempt=1, outcome="success", duration=0.5), body)
        for n in range(count)
    ]


def test_a_batch_is_four_frames_however_many_items_and_decodes_in_order() -> None:
    items = results(MAX_BATCH + 10, b"\x93\x01\x02\x03")
    items[3] = (JobResult(job_id="j3", attempt=2, outcome="failure", error="E"), b"")
    messages = list(encode_batches(items))
    assert [len(frames) for frames in messages] == [4, 4]  # MAX_BATCH, then 10
    decoded = [item for frames in messages for item in decode_all(frames)]
    assert decoded == [(message, [body] if body else []) for message, body in items]


def test_a_large_body_travels_in_a_message_of_its_own() -> None:
    large = b"x" * BATCH_BODY_BYTES
    items = [*results(2, b"\xc0"), *results(1, large), *results(2, b"\xc0")]
    messages = list(encode_batches(items))
    assert [len(decode_all(frames)) for frames in messages] == [2, 1, 2]
    assert messages[1][3] is large  # sent as it is, not copied into a batch


@pytest.mark.parametrize(
    ("items", "says"),
    [
        pytest.param(
            [{"job_id": "a", "attempt": 1, "outcome": "success"}] * 2,
            "a batch item is not an array of its 5 to 7 fields",
            id="maps",
        ),
        pytest.param(
            [["a", 1, "success", None]] * 2,
            "a batch item is not an array of its 5 to 7 fields",
            id="short",
        ),
        pytest.param(
            [["a", 1, "maybe", None, 0.0]] * 2,
            "JobResult: outcome: expected one of",
            id="bad-value",
        ),
    ],
)
def test_a_batch_of_items_that_are_not_their_fields_is_refused(
    items: list[object], says: str
) -> None:
    bodies = msgpack.packb([b""] * 2)
    frames = [PROTOCOL, JobResult.COMMAND, msgpack.packb(items), bodies]
    with pytest.raises(ProtocolError) as refused:
        decode_all(frames)
    assert says in str(refused.value)


def test_caller_error_travels_only_when_true_so_older_peers_read_the_rest() -> None:
    plain = JobResult("j", 1, "failure", "TypeError('x')", 0.5)
    blamed = JobResult("k", 1, "failure", "TypeError('y')", 0.5, caller_error=True)
    # Alone: a map without the key (what a peer before it expects), or with it.
    assert msgpack.unpackb(encode(plain)[2]) == {
        "job_id": "j",
        "attempt": 1,
        "outcome": "failure",
        "error": "TypeError('x')",
        "duration": 0.5,
    }
    assert msgpack.unpackb(encode(blamed)[2])["caller_error"] is True
    # Batched: five fields, or six with caller_error last.
    (frames,) = encode_batches([(plain, b""), (blamed, b"")])
    assert msgpack.unpackb(frames[2]) == [
        ["j", 1, "failure", "TypeError('x')", 0.5],
        ["k", 1, "failure", "TypeError('y')", 0.5, True],
    ]
    assert decode_all(frames) == [(plain, []), (blamed, [])]
    assert decode(encode(blamed)) == (blamed, [])


def test_a_traceback_travels_only_when_there_is_one() -> None:
    trace = 'Traceback (most recent call last):\n  File "t.py"\nValueError: v\n'
    plain = JobResult("j", 1, "success", None, 0.5)
    traced = JobResult("k", 2, "failure", "ValueError('v')", 0.5, traceback=trace)
    both = JobResult("m", 1, "failure", "TypeError()", 0.1, True, trace)
    assert "traceback" not in msgpack.unpackb(encode(plain)[2])
    assert msgpack.unpackb(encode(traced)[2])["traceback"] == trace
    assert decode(encode(traced)) == (traced, [])
    # Batched: both optional fields, in order, once a traceback comes.
    (frames,) = encode_batches([(plain, b""), (traced, b""), (both, b"")])
    assert msgpack.unpackb(frames[2]) == [
        ["j", 1, "success", None, 0.5],
        ["k", 2, "failure", "ValueError('v')", 0.5, False, trace],
        ["m", 1, "failure", "TypeError()", 0.1, True, trace],
    ]
    assert decode_all(frames) == [(plain, []), (traced, []), (both, [])]


@pytest.mark.parametrize(
    "value", [7, b"bytes", ["a"], "x" * (MAX_TRACEBACK + 1)], ids=lambda v: repr(v)[:20]
)
def test_a_traceback_that_is_not_bounded_text_is_refused(value: object) -> None:
    fields = {"job_id": "j", "attempt": 1, "outcome": "failure", "traceback": value}
    with pytest.raises(ProtocolError, match="traceback: expected a string of at most"):
        decode([PROTOCOL, JobResult.COMMAND, header(**fields)])


@pytest.mark.parametrize("value", [1, 0, "true", None, [True]], ids=repr)
def test_a_caller_error_that_is_not_a_bool_is_refused(value: object) -> None:
    fields = {"job_id": "j", "attempt": 1, "outcome": "failure", "caller_error": value}
    with pytest.raises(ProtocolError, match="caller_error: expected true or false"):
        decode([PROTOCOL, JobResult.COMMAND, header(**fields)])


@pytest.mark.parametrize(
    ("bodies", "says"),
    [
        pytest.param([b"", b""], "a batch with 2 body frames", id="a-frame-each"),
        pytest.param([msgpack.packb([b""])], "a batch of 2 with 1 bodies", id="short"),
        pytest.param([b"\xc1"], "the bodies are not msgpack", id="garbage"),
        pytest.param(
            [msgpack.packb(["a", "b"])], "not an array of binaries", id="text-bodies"
        ),
        pytest.param([msgpack.packb({"a": b""})], "not an array", id="a-map"),
    ],
)
def test_a_batch_whose_bodies_do_not_match_its_items_is_refused(
    bodies: list[bytes], says: str
) -> None:
    frames = encode_batches(results(2, b"\xc0"))
    tag, command, header, _ = next(frames)
    with pytest.raises(ProtocolError) as refused:
        decode_all([tag, command, header, *bodies])
    assert says in str(refused.value)


# ------------------------------------------------- any msgpack, from anyone

_packer = msgpack.Packer(use_bin_type=True)


def _pack(value: object) -> bytes:
    packed: bytes = _packer.pack(value)
    return packed


def _arrays(items: list[bytes]) -> bytes:
    head: bytes = _packer.pack_array_header(len(items))
    return head + b"".join(items)


def _maps(pairs: list[tuple[bytes, bytes]]) -> bytes:
    head: bytes = _packer.pack_map_header(len(pairs))
    return head + b"".join(key + value for key, value in pairs)


def _timestamp(data: bytes) -> bytes:
    """A msgpack timestamp (extension -1) holding ``data`` as it is."""
    # msgpack's ExtType refuses negative codes: the bytes are written by hand.
    prefix = {4: b"\xd6", 8: b"\xd7"}.get(len(data), b"\xc7" + bytes([len(data)]))
    return prefix + b"\xff" + data


#: One msgpack value's bytes, not only what Python can build: its maps may be
#: keyed by arrays and maps, its timestamps past any datetime.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
).map(_pack) | st.one_of(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=12, max_size=12),
).map(_timestamp)


def _nested(depth: int, kind: bytes) -> bytes:
    # 0x91: an array of one; 0x81 0xc0: a map of nil to what follows.
    return (b"\x91" if kind == b"array" else b"\x81\xc0") * depth + b"\xc0"


TREES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4).map(_arrays)
        | st.lists(st.tuples(inner, inner), max_size=4).map(_maps)
    ),
    max_leaves=12,
)
#: Nesting deeper than any unpacker's stack, now and then.
DEEP = st.builds(
    _nested,
    st.integers(min_value=1, max_value=100_000),
    st.sampled_from([b"array", b"map"]),
)
VALUES: st.SearchStrategy[bytes] = st.one_of(TREES, TREES, TREES, DEEP)

#: Values each field might plausibly hold, right or wrong: enough of them right
#: that whole messages get through, and their numbers reach every edge.
NUMBERS = st.floats() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
#: Mostly short, now and then about the length bounds (128 to 1,024 characters).
NAMES = st.text(min_size=1, max_size=6) | st.text(
    alphabet="x", min_size=120, max_size=1100
)
PLAUSIBLE: dict[str, st.SearchStrategy[object]] = {
    "name": NAMES,
    "incarnation": NAMES,
    "methods": st.lists(NAMES, min_size=1, max_size=3),
    "capacity": st.integers(min_value=-1, max_value=70_000) | NUMBERS,
    "heartbeat": NUMBERS,
    "job_id": NAMES,
    "attempt": st.integers(min_value=0, max_value=3) | NUMBERS,
    "method": NAMES,
    "timeout": st.none() | NUMBERS,
    "outcome": st.sampled_from(["success", "failure", "timeout", "maybe"]),
    "error": st.none() | NAMES,
    "duration": NUMBERS,
    "caller_error": st.booleans(),
    # At its bound, and one past it.
    "traceback": st.none() | NAMES | st.sampled_from(["t" * 16_384, "t" * 16_385]),
    "reason": NAMES,
    "draining": st.booleans(),
    # A report: none, a few ids (some not ids at all), or one id too many.
    "jobs": st.none()
    | st.lists(NAMES | NUMBERS, max_size=3)
    | st.just(["j"] * (MAX_HELD + 1)),
}
KINDS: list[type[Message]] = [Ready, JobRequest, JobResult, Heartbeat, Disconnect]


WILD = st.one_of(SCALARS, TREES, DEEP)


def field_value(draw: st.DrawFn, name: str) -> bytes:
    """Mostly plausible: one wild value anywhere in a header refuses all of it."""
    if draw(st.integers(min_value=0, max_value=9)):
        return _pack(draw(PLAUSIBLE[name]))
    return draw(WILD)


@st.composite
def frames_of_any_message(draw: st.DrawFn) -> list[bytes]:
    """A message of any command, each field plausible, wild, or missing."""
    kind = draw(st.sampled_from(KINDS))
    names = [field.name for field in attrs.fields(kind)]
    if kind in (JobRequest, JobResult) and draw(st.booleans()):
        count = draw(st.integers(min_value=1, max_value=3))
        items = [
            _arrays([field_value(draw, name) for name in names])
            if draw(st.integers(min_value=0, max_value=9))
            else draw(VALUES)
            for _ in range(count)
        ]
        bodies = draw(st.lists(st.binary(max_size=8), min_size=count, max_size=count))
        body = draw(st.just(_pack(bodies)) | VALUES)
        return [PROTOCOL, kind.COMMAND, _arrays(items), body]
    pairs = [
        (_pack(name), field_value(draw, name))
        for name in names
        if draw(st.integers(min_value=0, max_value=9))
    ]
    if not draw(st.integers(min_value=0, max_value=9)):
        pairs.append((draw(VALUES), draw(VALUES)))
    bodies = draw(st.lists(VALUES, max_size=2))
    return [PROTOCOL, kind.COMMAND, _maps(pairs), *bodies]


def check_bounds(message: Message) -> None:
    """What a decoded message may say, whatever the sender meant."""
    if isinstance(message, Ready):
        assert MIN_HEARTBEAT <= message.heartbeat <= MAX_HEARTBEAT
        assert 1 <= message.capacity <= MAX_CAPACITY
        assert 1 <= len(message.name) <= MAX_NAME
        assert 1 <= len(message.incarnation) <= MAX_INCARNATION
        assert len(message.methods) <= MAX_TASKS
        assert all(1 <= len(method) <= MAX_NAME for method in message.methods)
    elif isinstance(message, JobRequest):
        assert message.timeout is None or 0 < message.timeout <= MAX_SECONDS
        assert 1 <= len(message.job_id) <= MAX_JOB_ID
        assert 1 <= len(message.method) <= MAX_NAME
    elif isinstance(message, JobResult):
        assert 0 <= message.duration <= MAX_SECONDS
        assert 1 <= len(message.job_id) <= MAX_JOB_ID
        assert message.error is None or len(message.error) <= MAX_ERROR
        assert message.traceback is None or len(message.traceback) <= MAX_TRACEBACK
    elif isinstance(message, Disconnect):
        assert 1 <= len(message.reason) <= MAX_REASON
    elif message.jobs is not None:  # a Heartbeat: the one kind left
        assert len(message.jobs) <= MAX_HELD
        assert all(1 <= len(job_id) <= MAX_JOB_ID for job_id in message.jobs)


@given(VALUES)
def test_any_msgpack_body_decodes_or_raises_protocol_error_only(body: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_body(body)


@given(frames_of_any_message())
def test_any_msgpack_header_decodes_in_bounds_or_raises_protocol_error_only(
    frames: list[bytes],
) -> None:
    with contextlib.suppress(ProtocolError):
        check_bounds(decode(frames)[0])
    with contextlib.suppress(ProtocolError):
        for message, _ in decode_all(frames):
            check_bounds(message)


def ready(**fields: object) -> list[bytes]:
    given = {
        "name": "w",
        "incarnation": "1",
        "methods": ["m"],
        "capacity": 1,
        "heartbeat": 1.0,
        **fields,
    }
    return [PROTOCOL, Ready.COMMAND, header(**given)]


@pytest.mark.parametrize(
    "value",
    [math.inf, -math.inf, math.nan, 0, 0.009, 3600.5, 1e308, 2**64 - 1, True, "1"],
    ids=repr,
)
def test_a_ready_heartbeat_outside_a_hundredth_to_an_hour_is_refused(
    value: object,
) -> None:
    with pytest.raises(
        ProtocolError, match=r"heartbeat: expected seconds from 0\.01 to 3600"
    ):
        decode(ready(heartbeat=value))


@pytest.mark.parametrize("value", [0, -1, 65536, 2**64 - 1, True, 1.0], ids=repr)
def test_a_ready_capacity_outside_one_to_65535_is_refused(value: object) -> None:
    with pytest.raises(
        ProtocolError, match="capacity: expected an integer from 1 to 65535"
    ):
        decode(ready(capacity=value))


@pytest.mark.parametrize(
    ("heartbeat", "capacity"),
    [(MIN_HEARTBEAT, 1), (MAX_HEARTBEAT, MAX_CAPACITY), (1, 8)],
)
def test_a_ready_at_its_bounds_is_taken(heartbeat: float, capacity: int) -> None:
    message, _ = decode(ready(heartbeat=heartbeat, capacity=capacity))
    assert isinstance(message, Ready)
    assert (message.heartbeat, message.capacity) == (heartbeat, capacity)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        pytest.param(
            {"methods": [f"m{n}" for n in range(MAX_TASKS + 1)]},
            f"methods: {MAX_TASKS + 1} method names: at most {MAX_TASKS}",
            id="too-many-methods",
        ),
        pytest.param(
            {"methods": ["m", "x" * (MAX_NAME + 1)]},
            f"each of 1 to {MAX_NAME} characters",
            id="method-name-too-long",
        ),
        pytest.param(
            {"methods": ["m", ""]},
            f"each of 1 to {MAX_NAME} characters",
            id="method-name-empty",
        ),
        pytest.param(
            {"name": "x" * (MAX_NAME + 1)},
            f"name: expected a string of 1 to {MAX_NAME} characters",
            id="name-too-long",
        ),
        pytest.param(
            {"incarnation": "x" * (MAX_INCARNATION + 1)},
            f"incarnation: expected a string of 1 to {MAX_INCARNATION} characters",
            id="incarnation-too-long",
        ),
    ],
)
def test_a_ready_past_its_size_bounds_is_refused(
    fields: dict[str, object], says: str
) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode(ready(**fields))
    assert says in str(refused.value)


def test_a_ready_at_its_size_bounds_is_taken() -> None:
    methods = [f"{n:0{MAX_NAME}d}" for n in range(MAX_TASKS)]
    frames = ready(
        name="n" * MAX_NAME, incarnation="i" * MAX_INCARNATION, methods=methods
    )
    message, _ = decode(frames)
    assert isinstance(message, Ready)
    assert len(message.methods) == MAX_TASKS
    assert len(frames[2]) < MAX_HEADER  # the bounds fit in a header


def test_strings_past_their_bounds_are_refused_in_jobs_results_and_disconnects() -> (
    None
):
    too_long_id = "j" * (MAX_JOB_ID + 1)
    refusals: list[tuple[bytes, dict[str, object], str]] = [
        (
            JobRequest.COMMAND,
            {"job_id": too_long_id, "attempt": 1, "method": "m"},
            f"job_id: expected a string of 1 to {MAX_JOB_ID} characters",
        ),
        (
            JobRequest.COMMAND,
            {"job_id": "j", "attempt": 1, "method": "m" * (MAX_NAME + 1)},
            f"method: expected a string of 1 to {MAX_NAME} characters",
        ),
        (
            JobResult.COMMAND,
            {"job_id": too_long_id, "attempt": 1, "outcome": "success"},
            f"job_id: expected a string of 1 to {MAX_JOB_ID} characters",
        ),
        (
            JobResult.COMMAND,
            {"job_id": "j", "attempt": 1, "outcome": "failure", "error": "e" * 5000},
            f"error: expected a string of at most {MAX_ERROR} characters",
        ),
        (
            Disconnect.COMMAND,
            {"reason": "r" * (MAX_REASON + 1)},
            f"reason: expected a string of 1 to {MAX_REASON} characters",
        ),
    ]
    for command, fields, says in refusals:
        with pytest.raises(ProtocolError) as refused:
            decode([PROTOCOL, command, header(**fields)])
        assert says in str(refused.value)
    # The same in a batch: one item past a bound refuses the batch.
    batch = [
        ["j", 1, "failure", "e" * MAX_ERROR, 0.5],
        ["k", 1, "failure", "e" * 5000, 0.5],
    ]
    frames = [
        PROTOCOL,
        JobResult.COMMAND,
        msgpack.packb(batch),
        msgpack.packb([b""] * 2),
    ]
    with pytest.raises(ProtocolError, match="JobResult: error: expected a string"):
        decode_all(frames)


def test_strings_at_their_bounds_are_taken() -> None:
    for message in (
        JobRequest("j" * MAX_JOB_ID, 1, "m" * MAX_NAME),
        JobResult("j" * MAX_JOB_ID, 1, "failure", "e" * MAX_ERROR),
        Disconnect(reason="r" * MAX_REASON),
    ):
        assert decode(encode(message)) == (message, [])


def test_a_refusal_naming_unknown_fields_stays_short() -> None:
    fields = {f"{'k' * 90}{n}": n for n in range(10_000)}
    with pytest.raises(ProtocolError) as refused:
        decode([PROTOCOL, Heartbeat.COMMAND, header(**fields)])
    assert "unknown fields" in str(refused.value)
    assert "and 9996 more" in str(refused.value)
    assert len(str(refused.value)) < MAX_REASON


@pytest.mark.parametrize(
    "value", [math.inf, math.nan, -0.5, 1e300, 2**64 - 1, MAX_SECONDS * 2], ids=repr
)
def test_a_result_duration_that_is_not_finite_seconds_is_refused_alone_or_batched(
    value: object,
) -> None:
    fields = {"job_id": "j", "attempt": 1, "outcome": "success", "duration": value}
    with pytest.raises(ProtocolError, match="duration: expected seconds >= 0"):
        decode([PROTOCOL, JobResult.COMMAND, header(**fields)])
    batch = [["j", 1, "success", None, 0.5], ["k", 1, "success", None, value]]
    frames = [
        PROTOCOL,
        JobResult.COMMAND,
        msgpack.packb(batch),
        msgpack.packb([b""] * 2),
    ]
    with pytest.raises(ProtocolError, match="JobResult: duration: expected seconds"):
        decode_all(frames)


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, 1e300], ids=repr)
def test_a_job_timeout_that_is_not_finite_seconds_is_refused(value: object) -> None:
    fields = {"job_id": "j", "attempt": 1, "method": "m", "timeout": value}
    with pytest.raises(ProtocolError, match="timeout: expected seconds > 0"):
        decode([PROTOCOL, JobRequest.COMMAND, header(**fields)])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        pytest.param(_maps([(_pack([1, 2]), _pack(3))]), "unhashable", id="array-key"),
        pytest.param(_maps([(_pack({"a": 1}), _pack(3))]), "unhashable", id="map-key"),
        pytest.param(
            _timestamp(struct.pack(">Iq", 0, 2**63 - 1)),
            "msgpack this end cannot hold",
            id="timestamp-past-any-datetime",
        ),
        pytest.param(_nested(100_000, b"array"), "not msgpack", id="deep-arrays"),
        pytest.param(_nested(100_000, b"map"), "not msgpack", id="deep-maps"),
    ],
)
def test_a_body_no_value_here_can_hold_raises_protocol_error(
    body: bytes, says: str
) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode_body(body)
    assert says in str(refused.value)


# ------------------------------------------------ a worker's report of its jobs


def test_a_bare_heartbeat_is_an_empty_map_and_reports_nothing() -> None:
    # What a worker that predates reports sends, and what a broker always sends.
    frames = encode(Heartbeat())
    assert frames == [PROTOCOL, Heartbeat.COMMAND, header()]
    message, _ = decode(frames)
    assert message == Heartbeat()
    assert isinstance(message, Heartbeat)
    assert message.jobs is None


def test_a_report_of_no_jobs_is_not_a_bare_heartbeat() -> None:
    # "I hold nothing" is news to a broker waiting for RESULTs; no report is not.
    message, _ = decode([PROTOCOL, Heartbeat.COMMAND, header(jobs=[])])
    assert isinstance(message, Heartbeat)
    assert message.jobs == ()


def test_a_report_at_its_bounds_is_taken() -> None:
    longest = Heartbeat(jobs=("j" * MAX_JOB_ID,))
    assert decode(encode(longest)) == (longest, [])
    most = Heartbeat(jobs=tuple(f"{n:x}" for n in range(MAX_HELD)))
    frames = encode(most)
    assert len(frames[2]) <= MAX_HEADER
    assert decode(frames) == (most, [])


@pytest.mark.parametrize(
    ("jobs", "says"),
    [
        pytest.param("j1", "jobs: expected a list of job ids", id="a-string"),
        pytest.param({"j1": 1}, "jobs: expected a list of job ids", id="a-map"),
        pytest.param([""], "jobs: expected a list of job ids", id="an-empty-id"),
        pytest.param([1, 2], "jobs: expected a list of job ids", id="numbers"),
        pytest.param([None], "jobs: expected a list of job ids", id="nil"),
        pytest.param([["j1"]], "jobs: expected a list of job ids", id="nested"),
        pytest.param(
            ["j" * (MAX_JOB_ID + 1)], "jobs: expected a list of job ids", id="long-id"
        ),
        pytest.param(
            ["j"] * (MAX_HELD + 1),
            f"jobs: {MAX_HELD + 1} job ids: at most {MAX_HELD}",
            id="too-many",
        ),
    ],
)
def test_a_report_that_is_not_a_bounded_list_of_job_ids_is_refused_naming_it(
    jobs: object, says: str
) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode([PROTOCOL, Heartbeat.COMMAND, header(jobs=jobs)])
    assert str(refused.value).startswith("Heartbeat: ")
    assert says in str(refused.value)
    assert len(str(refused.value)) < MAX_REASON
