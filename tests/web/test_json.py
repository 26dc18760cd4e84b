"""``web.json``: values of any kind become JSON data, and nothing raises."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from web.json import MAX_REPR, MAX_VALUE_TEXT, iso, number, value_data


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -3, 2.5, "text", [1, "a", None], {"a": {"b": [1.5, False]}}],
)
def test_values_json_holds_are_kept_as_they_are(value: Any) -> None:
    assert value_data(value) == value


def test_a_tuple_is_a_list() -> None:
    assert value_data((1, (2, 3))) == [1, [2, 3]]


class Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _cyclic() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({1, 2}, "{1, 2}"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        ({1: "a"}, "{1: 'a'}"),
        ([b"x"], "[b'x']"),
        (2**70, None),
        (_cyclic(), None),
        (Hostile(), None),
        (list(range(100_000)), None),
        ("x" * (MAX_VALUE_TEXT + 1), None),
    ],
)
def test_other_values_are_their_bounded_repr_and_never_raise(
    value: Any, shown: str | None
) -> None:
    data = value_data(value)
    assert isinstance(data, str)
    assert len(data) <= MAX_REPR
    if shown is not None:
        assert data == shown
    json.dumps(data)


def test_times_are_iso_8601_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert iso(datetime(2030, 1, 2, 10, 30, tzinfo=paris)) == (
        "2030-01-02T09:30:00+00:00"
    )
    assert iso(datetime(2030, 1, 2, 9, 30)) == "2030-01-02T09:30:00+00:00"
    assert iso(datetime(2030, 1, 2, 9, 30, tzinfo=UTC)) == "2030-01-02T09:30:00+00:00"
    assert iso(None) is None


def test_numbers_json_cannot_hold_are_null() -> None:
    assert [number(x) for x in (1.5, math.inf, -math.inf, math.nan, None)] == [
        1.5,
        None,
        None,
        None,
        None,
    ]
