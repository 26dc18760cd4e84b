"""Every error transport raises is a TransportError, with its builtin twin."""

from __future__ import annotations

import inspect

import pytest

import transport
from transport import KeyFileError, PeerGone, ProtocolError, TransportError


def test_every_error_transport_exports_is_a_transport_error() -> None:
    errors = [
        value
        for value in vars(transport).values()
        if inspect.isclass(value) and issubclass(value, BaseException)
    ]
    assert set(errors) == {KeyFileError, PeerGone, ProtocolError, TransportError}
    assert all(issubclass(error, TransportError) for error in errors)


@pytest.mark.parametrize("error", [ProtocolError, KeyFileError])
def test_a_bad_frame_or_key_file_is_still_a_value_error(
    error: type[TransportError],
) -> None:
    with pytest.raises(ValueError, match="why"):
        raise error("why")


def test_a_bad_endpoint_raises_the_root_itself() -> None:
    with pytest.raises(TransportError) as caught:
        transport.check_endpoint("tcp://nowhere", bind=False)
    assert type(caught.value) is TransportError
