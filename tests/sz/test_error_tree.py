"""Every error sz raises is an SzError, exported by ``sz``, with its builtin twin."""

from __future__ import annotations

import inspect

import pytest

import sz
import sz.errors
from actors import ExpectedCrash

#: The builtin each error is also, as ``except`` clauses outside sz expect.
TWINS: dict[type[BaseException], type[BaseException]] = {
    sz.ConfigError: ValueError,
    sz.UnknownTask: KeyError,
    sz.ScheduleNotFound: KeyError,
}


def test_every_error_sz_exports_is_an_sz_error() -> None:
    errors = [
        value
        for value in vars(sz).values()
        if inspect.isclass(value) and issubclass(value, BaseException)
    ]
    assert errors
    assert all(issubclass(error, sz.SzError) for error in errors), errors


def test_sz_exports_every_error_of_sz_errors() -> None:
    for name in sz.errors.__all__:
        assert getattr(sz, name) is getattr(sz.errors, name)
        assert issubclass(getattr(sz, name), sz.SzError)


@pytest.mark.parametrize(("error", "builtin"), list(TWINS.items()))
def test_an_sz_error_keeps_its_builtin_twin(
    error: type[BaseException], builtin: type[BaseException]
) -> None:
    assert issubclass(error, sz.SzError)
    assert issubclass(error, builtin)


def test_the_store_and_remote_errors_are_sz_errors() -> None:
    from sz.store import StoreError

    assert StoreError is sz.StoreError
    assert issubclass(sz.RemoteError, sz.SzError)
    assert issubclass(sz.ConnectionLost, sz.SzError)
    # A worker's reconnect is one warning line, not an error with a traceback.
    assert issubclass(sz.ConnectionLost, ExpectedCrash)
    assert repr(sz.RemoteError("ValueError('no')")) == "ValueError('no')"
