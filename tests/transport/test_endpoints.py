"""Endpoints are checked before a socket sees them, each problem named."""

from __future__ import annotations

import pytest

from transport import TransportError, check_endpoint, endpoint_problem, is_local

GOOD_EITHER_WAY = [
    "tcp://127.0.0.1:5555",
    "tcp://scheduler.example.com:5555",
    "tcp://[::1]:5555",
    "ipc:///run/sz/broker.sock",
    "inproc://broker",
]


@pytest.mark.parametrize("endpoint", GOOD_EITHER_WAY)
def test_an_endpoint_of_each_transport_is_good_to_bind_and_to_connect_to(
    endpoint: str,
) -> None:
    assert endpoint_problem(endpoint, bind=True) is None
    assert endpoint_problem(endpoint, bind=False) is None


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://my_worker:5555",  # a container network's name
        "tcp://scheduler.example.com.:5555",  # fully qualified, with its root dot
        "tcp://0.0.0.0:5555",
        "tcp://[2001:db8::1]:5555",
    ],
)
def test_hosts_that_can_exist_are_good(endpoint: str) -> None:
    assert endpoint_problem(endpoint, bind=True) is None
    assert endpoint_problem(endpoint, bind=False) is None


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        pytest.param("tcp://999.1.1.1:5555", "four numbers from 0 to 255", id="octet"),
        pytest.param("tcp://1.2.3:5555", "four numbers from 0 to 255", id="three"),
        pytest.param("tcp://[::g]:5555", "an IPv6 address", id="ipv6"),
        pytest.param("tcp://a..b:5555", "labels of 1 to 63", id="empty-label"),
        pytest.param("tcp://-a.example:5555", "labels of 1 to 63", id="hyphen"),
        pytest.param(f"tcp://{'a' * 64}:5555", "labels of 1 to 63", id="long-label"),
        pytest.param("tcp://exa$mple:5555", "letters, digits, hyphens", id="dollar"),
    ],
)
def test_an_address_that_cannot_exist_is_refused(endpoint: str, expected: str) -> None:
    for bind in (True, False):
        problem = endpoint_problem(endpoint, bind=bind)
        assert problem is not None, endpoint
        assert expected in problem
    with pytest.raises(TransportError, match="expected tcp://"):
        check_endpoint(endpoint, bind=False)


@pytest.mark.parametrize("endpoint", ["tcp://*:5555", "tcp://127.0.0.1:*", "tcp://*:*"])
def test_a_wildcard_is_good_to_bind_but_not_to_connect_to(endpoint: str) -> None:
    assert endpoint_problem(endpoint, bind=True) is None
    assert endpoint_problem(endpoint, bind=False) is not None


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        pytest.param(
            "127.0.0.1:5555",
            "a ZeroMQ endpoint: tcp://HOST:PORT, ipc://PATH or inproc://NAME",
            id="no-scheme",
        ),
        pytest.param(
            "udp://127.0.0.1:5555",
            "a ZeroMQ endpoint: tcp://HOST:PORT, ipc://PATH or inproc://NAME",
            id="unknown-transport",
        ),
        pytest.param(5555, "a ZeroMQ endpoint: tcp://HOST", id="not-text"),
        pytest.param("tcp://127.0.0.1", "with a host and a port", id="no-port"),
        pytest.param("tcp://:5555", "with a host and a port", id="no-host"),
        pytest.param("tcp://my host:5555", "with a host and a port", id="space"),
        pytest.param("tcp://127.0.0.1:0", "with a port from 1 to 65535", id="port-0"),
        pytest.param(
            "tcp://127.0.0.1:65536", "with a port from 1 to 65535", id="port-too-big"
        ),
        pytest.param("tcp://127.0.0.1:55x", "with a port from 1 to 65535", id="port-x"),
        pytest.param(
            "tcp://127.0.0.1:5555/jobs", "with nothing after the port", id="a-path"
        ),
        pytest.param("ipc://", "ipc://PATH", id="ipc-without-path"),
        pytest.param("inproc://", "inproc://NAME", id="inproc-without-name"),
    ],
)
def test_a_bad_endpoint_is_refused_saying_what_was_expected(
    endpoint: object, expected: str
) -> None:
    for bind in (True, False):
        problem = endpoint_problem(endpoint, bind=bind)
        assert problem is not None
        assert expected in problem
    with pytest.raises(TransportError) as raised:
        check_endpoint(endpoint, bind=False)  # type: ignore[arg-type]
    assert str(raised.value) == (
        f"expected {endpoint_problem(endpoint, bind=False)}, got {endpoint!r}"
    )


def test_a_bound_port_out_of_range_mentions_the_free_port_wildcard() -> None:
    problem = endpoint_problem("tcp://127.0.0.1:70000", bind=True)
    assert problem == (
        "tcp://HOST:PORT with a port from 1 to 65535 (or * for a free one)"
    )


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.0.0.2:*", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///run/sz/broker.sock", True),
        ("inproc://broker", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.20:5555", False),
        ("tcp://scheduler.example.com:5555", False),
    ],
)
def test_only_loopback_ipc_and_inproc_endpoints_are_local(
    endpoint: str, local: bool
) -> None:
    # A broker bound to anything else without CURVE warns that anyone can join.
    assert is_local(endpoint) is local
