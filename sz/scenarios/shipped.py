"""The scenarios shipped with ScheduleZero (``sz scenario list``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ScenarioError
from .hints import expected_one_of

__all__ = ["LIBRARY", "library_scenarios", "resolve"]

#: The folder of the shipped scenarios, one ``NAME.yaml`` each.
LIBRARY = Path(__file__).with_name("library")


def library_scenarios() -> dict[str, Path]:
    """Each shipped scenario's file, by name, in name order."""
    return {path.stem: path for path in sorted(LIBRARY.glob("*.yaml"))}


def resolve(name: str) -> Path:
    """The scenario file ``name`` means: a file, or else a shipped scenario's name.

    Raises:
        ScenarioError: There is no such file, and no shipped scenario of that
            name.
    """
    path = Path(name)
    if path.exists():
        return path
    shipped = library_scenarios()
    found = shipped.get(name.removesuffix(".yaml"))
    if found is not None and path.parent == Path():
        return found
    raise ScenarioError(
        name, f"no such file, nor a shipped scenario {expected_one_of(name, shipped)}"
    )
