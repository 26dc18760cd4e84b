"""Fault targets: globs over actor paths and worker names."""

from __future__ import annotations

import pytest

from sz.scenarios import glob_matches


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("/user/handlers/*", "/user/handlers/noop", True),
        ("/user/handlers/*", "/user/handlers/noop#2", True),
        ("/user/handlers/*", "/user/handlers", False),
        ("/user/handlers/*", "/user/handlers/noop/child", False),
        ("/user/**", "/user/handlers/noop", True),
        ("/user/**", "/user/dispatcher", True),
        ("/user/**", "/system/log", False),
        ("/user/remote/broker/*", "/user/remote/broker/worker-1", True),
        ("worker-?", "worker-1", True),
        ("worker-?", "worker-12", False),
        ("*", "worker-3", True),
        ("/user/handlers/noop", "/user/handlers/noop", True),
        ("/user/[ab]", "/user/a", False),
        ("/user/[ab]", "/user/[ab]", True),
    ],
)
def test_star_stays_in_a_segment_and_double_star_crosses_them(
    glob: str, path: str, matches: bool
) -> None:
    assert glob_matches(glob, path) is matches
