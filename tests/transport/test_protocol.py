"""The wire protocol: every message survives a round trip; anything else is refused
with a ``ProtocolError`` that says what was wrong, never another exception."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, strategies as st

from transport.protocol import (
    BATCH_BODY_BYTES,
    MAX_BATCH,
    MAX_BODIES,
    MAX_HEADER,
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
    Heartbeat(),
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
            "capacity: expected an integer >= 0",
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
            "a batch item is not an array of its 5 fields",
            id="maps",
        ),
        pytest.param(
            [["a", 1, "success", None]] * 2,
            "a batch item is not an array of its 5 fields",
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
