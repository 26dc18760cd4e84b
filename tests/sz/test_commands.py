"""The ``sz`` remote commands, without a server: arguments, tables, no answer."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from sz.commands import table

SZ = [sys.executable, "-c", "from sz.cli import main; main()"]


def closed_port() -> int:
    """A loopback port with nobody listening (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "argv",
    [["status"], ["schedules"], ["jobs"], ["history"], ["handlers"], ["actors"]],
)
def test_a_server_that_is_not_there_is_one_line_and_exit_one(argv: list[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = subprocess.run(
        [*SZ, *argv, "--url", url], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"sz {argv[0]}: no ScheduleZero answers at {url}")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["status", "--url", "nope"], "argument --url: expected http://HOST:PORT"),
        (
            ["schedules", "add", "echo", "* * * * *", "--field", "x"],
            "argument --field: expected NAME=VALUE",
        ),
        (["schedules", "add", "echo", "cron", "--args", "{"], "argument --args"),
        (["jobs", "--state", "done"], "argument --state: invalid choice"),
    ],
)
def test_bad_arguments_exit_two_naming_them(argv: list[str], says: str) -> None:
    result = subprocess.run([*SZ, *argv], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_a_table_lines_up_its_columns_and_shows_none_as_a_dash() -> None:
    text = table([("a", 1, None), ("longer", 22, "x")], ("NAME", "N", "WHY"))
    assert text.splitlines() == [
        "NAME    N   WHY",
        "a       1   -",
        "longer  22  x",
    ]
