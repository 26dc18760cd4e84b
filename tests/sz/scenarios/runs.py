"""Helpers of the runner's tests: run a scenario written inline."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from sz.scenarios import ScenarioResult, parse_scenario, run_scenario

if TYPE_CHECKING:
    from sz.scenarios import TimelineEvent


async def run_text(text: str, *, seed: int = 1, **overrides: Any) -> ScenarioResult:
    """Run the scenario ``text`` (dedented YAML) with ``seed``."""
    scenario = parse_scenario(textwrap.dedent(text), parameters=overrides or None)
    return await run_scenario(scenario, seed=seed)


def events(result: ScenarioResult, kind: str) -> list[TimelineEvent]:
    """The timeline's events of one kind."""
    return [event for event in result.timeline if event.event == kind]


def explain(result: ScenarioResult) -> str:
    """What a failing assertion should show of a result."""
    return f"{result.outcome}: {result.error}\n{result.checks}\n{result.assertions}"
