"""The shipped scenarios: each one checks clean, at its CI size and overridden."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sz.scenarios import (
    ChaosStep,
    ScenarioError,
    library_scenarios,
    load_scenario,
    resolve,
)

if TYPE_CHECKING:
    from pathlib import Path

#: The scenarios issue 18 asks to ship.
SHIPPED = {
    "schedule_storm",
    "handler_failover",
    "chaos_kill_actors",
    "worker_crash_loop",
    "zmq_partition",
    "governor_overload",
    "soak",
}


def test_the_library_holds_the_seven_scenarios_of_the_issue() -> None:
    assert set(library_scenarios()) == SHIPPED


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_scenario_checks_clean_under_its_own_name(name: str) -> None:
    scenario = load_scenario(library_scenarios()[name])
    assert scenario.name == name
    assert scenario.description
    assert scenario.steps
    assert scenario.assertions
    assert any(check.name == "no_lost_jobs" for check in scenario.checks)


def test_the_chaos_scenario_scales_to_its_full_size_by_parameters() -> None:
    scenario = load_scenario(
        library_scenarios()["chaos_kill_actors"],
        parameters={"kills": "1000", "jobs": "20000", "rate": "1000"},
    )
    kills = [step for step in scenario.walk() if step.name == "kills"]
    assert [step.iterations for step in kills] == [1000]  # type: ignore[union-attr]
    assert any(isinstance(step, ChaosStep) for step in scenario.walk())


def test_the_soak_runs_longer_by_a_duration_parameter() -> None:
    scenario = load_scenario(
        library_scenarios()["soak"], parameters={"duration": "24h"}
    )
    day = next(step for step in scenario.walk() if step.name == "day")
    assert day.duration == 24 * 3600  # type: ignore[union-attr]


def test_resolve_takes_a_file_first_and_else_a_shipped_name(tmp_path: Path) -> None:
    assert resolve("soak") == library_scenarios()["soak"]
    assert resolve("soak.yaml") == library_scenarios()["soak"]
    mine = tmp_path / "soak"
    mine.write_text("test: {}\n")
    assert resolve(str(mine)) == mine
    with pytest.raises(ScenarioError) as raised:
        resolve("soek")
    assert str(raised.value).startswith(
        "soek: no such file, nor a shipped scenario (did you mean 'soak'?"
    )
    with pytest.raises(ScenarioError, match="no such file"):
        resolve(str(tmp_path / "soak.yaml"))
