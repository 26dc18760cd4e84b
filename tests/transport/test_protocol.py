"""The wire protocol: every message survives a round trip; anything else is refused
with a ``ProtocolError`` that says what was wrong, never another exception."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, strategies as st

from transport.protocol import (
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
    encode,
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
