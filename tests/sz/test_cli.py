from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import anyio
import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import Process

SZ = [sys.executable, "-c", "from sz.cli import main; main()"]


@pytest.fixture(autouse=True)
def _in_a_directory_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sz serve`` keeps its store in the working directory: not the repository."""
    monkeypatch.chdir(tmp_path)


async def read_until(process: Process, *needles: str) -> str:
    """Read the process's merged output until every needle appeared; return it."""
    assert process.stdout is not None
    seen = ""
    with anyio.fail_after(20):
        async for chunk in process.stdout:
            seen += chunk.decode()
            if all(needle in seen for needle in needles):
                return seen
    raise AssertionError(f"{needles!r} did not all appear in:\n{seen}")


async def test_sz_serve_with_a_bad_config_exits_two_naming_the_key(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    await anyio.Path(config).write_text("scheduler:\n  mode: local\n")
    result = await anyio.run_process([*SZ, "serve", "-c", str(config)], check=False)
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "scheduler.mode: expected one of 'embedded', 'distributed', got 'local'" in (
        stderr
    )
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["serve", "--interval", "0"], "--interval: expected a number > 0, got '0'"),
        (["serve", "--interval", "fast"], "--interval: expected a number, got 'fast'"),
        (["serve", "--backend", "curio"], "--backend: invalid choice: 'curio'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
async def test_sz_rejects_bad_arguments_with_exit_code_two_naming_the_problem(
    argv: list[str], complaint: str
) -> None:
    result = await anyio.run_process([*SZ, *argv], check=False)
    assert result.returncode == 2
    assert complaint in result.stderr.decode()


async def test_sz_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    await anyio.Path(config).write_text("scheduler:\n  mode: embedded\n")
    result = await anyio.run_process([*SZ, "check-config", str(config)], check=False)
    assert result.returncode == 0
    assert "ok" in result.stdout.decode()


async def test_sz_check_config_names_the_bad_key_in_one_line_with_exit_code_two(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    await anyio.Path(config).write_text("governors:\n  rate_limit:\n    rate: fast\n")
    result = await anyio.run_process([*SZ, "check-config", str(config)], check=False)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        f"{config}: governors.rate_limit.rate: expected a number > 0, got 'fast'"
    )
    assert "Traceback" not in result.stderr.decode()


def test_sz_version_names_the_installed_version() -> None:
    import subprocess
    from importlib import metadata

    result = subprocess.run(
        [*SZ, "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == (
        f"sz (ScheduleZero) {metadata.version('schedulezero')}"
    )


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("actors", lambda d: (d / "actors.py").write_text("x = 1\n")),
        ("transport", lambda d: (d / "transport.py").write_text("")),
        (
            "web",
            lambda d: ((d / "web").mkdir(), (d / "web" / "__init__.py").write_text("")),
        ),
    ],
)
def test_a_users_module_that_shadows_a_package_of_ours_is_named(
    tmp_path: Path, name: str, make: Any
) -> None:
    import subprocess

    make(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", "import sz"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"ImportError: ScheduleZero's package {name!r} is shadowed by {tmp_path / name}"
    ), result.stderr
    assert "rename that file" in last
