"""``sz scenario run``: exit codes, the final table, the progress lines, exports."""

from __future__ import annotations

import csv
import io
import json
import logging
from typing import TYPE_CHECKING

import pytest

from sz.cli import main

if TYPE_CHECKING:
    from pathlib import Path

PASSING = """\
test:
  name: small
  parameters: {jobs: 50}
  setup: {handlers: [noop]}
  steps:
    - name: load
      type: action
      action: {method: submit_jobs, args: {task: noop, count: "${jobs}"}}
    - {name: settle, type: wait_until, condition: jobs_pending == 0, timeout: 10s}
  checks: [no_lost_jobs]
  metrics: [jobs_per_sec, {memory_usage: MB}]
  assertions: [lost_jobs == 0]
"""

BACKENDS = pytest.mark.parametrize("backend", ["asyncio", "trio"])


def run(*argv: str) -> int:
    """Run ``sz`` in this process (capsys reads what it prints); its exit code.

    The command sets up logging as a process of its own does (the root
    logger's handlers and level): put back as it was, or later tests' log
    capture would hear nothing.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    apscheduler = logging.getLogger("apscheduler").level
    try:
        with pytest.raises(SystemExit) as exited:
            main(list(argv))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("apscheduler").setLevel(apscheduler)
    code = exited.value.code
    return code if isinstance(code, int) else 1


@BACKENDS
def test_run_prints_the_table_and_exits_zero_when_everything_held(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(PASSING)
    code = run("scenario", "run", str(path), "--seed", "7", "--backend", backend)
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out.startswith("scenario small  run run-")
    assert "seed 7" in out.splitlines()[0]
    assert "no_lost_jobs  PASS" in out
    assert "lost_jobs == 0  true   PASS" in out
    assert "memory_usage" in out
    assert " MB" in out
    assert out.endswith("\nPASS\n")
    # Into a pipe: a line per top-level step.
    assert [line.split()[0] for line in err.splitlines()] == ["[1/2]", "[2/2]"]
    assert "load" in err.splitlines()[0]


@BACKENDS
def test_run_exits_one_when_an_assertion_fails_and_param_overrides_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(PASSING.replace("lost_jobs == 0", "lost_jobs > 0"))
    code = run("scenario", "run", str(path), "--param", "jobs=5", "--backend", backend)
    out, _ = capsys.readouterr()
    assert code == 1
    assert "lost_jobs > 0  false  FAIL" in out
    assert "submitted: 5;" in out
    assert out.endswith("\nFAIL\n")


def test_run_exits_two_for_a_file_that_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(PASSING.replace("wait_until", "wait_untill"))
    assert run("scenario", "run", str(path)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{path}:9:28: unknown step type 'wait_untill'")
    assert run("scenario", "run", str(path.with_name("missing.yaml"))) == 2
    assert run("scenario", "run", str(path), "--export", "out.txt") == 2
    assert "expected a .json or .csv file" in capsys.readouterr().err


def test_run_exports_the_issues_json_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = tmp_path / "small.yaml", tmp_path / "out.json"
    path.write_text(PASSING)
    assert run("scenario", "run", str(path), "--seed", "3", "--export", str(out)) == 0
    data = json.loads(out.read_text())
    assert list(data) == [
        "name",
        "run_id",
        "seed",
        "parameters",
        "started_at",
        "finished_at",
        "passed",
        "metrics",
        "checks",
        "assertions",
        "timeline",
    ]
    assert data["name"] == "small"
    assert data["seed"] == 3
    assert data["parameters"] == {"jobs": 50}
    assert data["passed"] is True
    assert set(data["metrics"]["jobs_per_sec"]) >= {"p50", "p99", "max", "count"}
    assert data["metrics"]["lost_jobs"] == 0
    assert data["checks"]["no_lost_jobs"]["passed"] is True
    assert data["assertions"] == [
        {"expression": "lost_jobs == 0", "value": True, "passed": True}
    ]
    kinds = [event["event"] for event in data["timeline"]]
    assert kinds[0] == "run_start"
    assert kinds[-1] == "run_end"
    assert data["timeline"][-1]["outcome"] == "passed"
    assert {"at", "offset", "event", "name"} <= set(data["timeline"][1])


def test_run_exports_one_csv_row_per_metric_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = tmp_path / "small.yaml", tmp_path / "out.csv"
    path.write_text(PASSING)
    assert run("scenario", "run", str(path), "--export", str(out)) == 0
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["offset", "metric", "value"]
    metrics = {row[1] for row in rows[1:]}
    assert {"memory_usage", "jobs_pending", "restarts"} <= metrics
    offsets = [float(row[0]) for row in rows[1:]]
    assert offsets == sorted(offsets)
    assert all(float(row[2]) >= 0 for row in rows[1:])
