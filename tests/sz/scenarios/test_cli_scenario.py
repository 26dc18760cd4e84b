"""``sz scenario check`` and ``sz scenario list``, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from sz.cli import main
from sz.scenarios import library_scenarios

if TYPE_CHECKING:
    from pathlib import Path

SZ = [sys.executable, "-c", "from sz.cli import main; main()"]

VALID = """\
test:
  name: small
  parameters: {jobs: 10}
  steps:
    - type: action
      action: {method: submit_jobs, args: {task: noop, count: "${jobs}"}}
    - {type: wait_until, condition: jobs_pending == 0, timeout: 10s}
  checks: [no_lost_jobs]
  assertions: [lost_jobs == 0]
"""


def run(*argv: str) -> int:
    """Run ``sz`` in this process (capsys reads what it prints); its exit code."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    return code if isinstance(code, int) else 1


def test_check_prints_ok_with_what_the_scenario_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(VALID)
    code = run("scenario", "check", str(path))
    out, err = capsys.readouterr()
    assert code == 0
    assert out == f"{path}: ok (small: 2 steps, 1 check, 0 metrics, 1 assertion)\n"
    assert err == ""


def test_check_prints_one_line_naming_file_and_line_and_exits_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(VALID.replace("no_lost_jobs", "no_lost_job"))
    code = run("scenario", "check", str(path))
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == (
        f"{path}:8:12: unknown check 'no_lost_job' (did you mean 'no_lost_jobs'? "
        "expected one of: no_duplicate_jobs, no_lost_jobs, recovery_time, "
        "restart_budget, schedule_fidelity)\n"
    )


def test_check_applies_param_overrides_typed_by_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(VALID)
    assert run("scenario", "check", str(path), "--param", "jobs=500") == 0
    code = run("scenario", "check", str(path), "--param", "jobs=lots")
    assert code == 2
    assert capsys.readouterr().err == (
        f"{path}:3: parameter jobs: expected a whole number like its default 10, "
        "got 'lots'\n"
    )


def test_check_takes_a_shipped_scenarios_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("scenario", "check", "chaos_kill_actors", "--param", "kills=1000") == 0
    assert capsys.readouterr().out.startswith(
        "chaos_kill_actors: ok (chaos_kill_actors:"
    )


def test_list_shows_every_shipped_scenario_with_its_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("scenario", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(library_scenarios())
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)


def test_the_sz_command_checks_a_scenario_in_a_process_of_its_own(
    tmp_path: Path,
) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(VALID)
    ok = subprocess.run(
        [*SZ, "scenario", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout.startswith(f"{path}: ok (small:")
    path.write_text(VALID.replace("type: wait_until", "type: wait"))
    bad = subprocess.run(
        [*SZ, "scenario", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith(f"{path}:7:14: unknown step type 'wait'")
    assert bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["scenario", "check", "x.yaml", "--param", "jobs"], "expected NAME=VALUE"),
        (["scenario"], "the following arguments are required: COMMAND"),
        (["scenario", "run", "x.yaml"], "no such file, nor a shipped scenario"),
        (["scenario", "frob"], "invalid choice: 'frob'"),
    ],
)
def test_bad_scenario_arguments_exit_two(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*argv) == 2
    assert complaint in capsys.readouterr().err
