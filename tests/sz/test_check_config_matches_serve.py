"""Whatever ``sz check-config`` accepts, ``sz serve`` starts, and the other way round.

Configs are generated with good and bad schedules, crontabs, intervals and
retentions; the check's verdict must equal whether the scheduler built from the
same file (in this process, memory store) starts.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from sz import ScheduleZero, SzError
from sz.cli import _check_config
from sz.errors import refusal_in

CRON_FIELDS = ["*", "0", "*/5", "59", "60", "99", "1-3", "7", "8", "mon", "x", "*/0"]
#: Amounts of an interval's unit: two in three fine, the rest refused somewhere.
AMOUNTS = st.one_of(
    st.floats(min_value=1e-3, max_value=1e4),
    st.integers(min_value=1, max_value=100_000),
    st.sampled_from(
        [0, -1, 1e-300, 1e300, 10**8, 10**30, "5", math.inf, math.nan, 3_000_000]
    ),
)
BUILTIN = ["echo", "noop"]
UNITS = ["weeks", "days", "hours", "minutes", "seconds"]


@st.composite
def schedules(draw: st.DrawFn, index: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": draw(st.sampled_from([f"s{index}", f"s{index}", "same"])),
        "task": draw(st.sampled_from(["echo", "noop", "echo", "nope"])),
    }
    if draw(st.booleans()):
        # Five fields mostly: the loader refuses other counts before any trigger.
        size = draw(st.sampled_from([5, 5, 5, 5, 4, 6]))
        fields = draw(
            st.lists(st.sampled_from(CRON_FIELDS), min_size=size, max_size=size)
        )
        entry["cron"] = " ".join(fields)
    else:
        units = draw(st.lists(st.sampled_from(UNITS), min_size=1, max_size=2))
        entry["interval"] = {unit: draw(AMOUNTS) for unit in units}
    return entry


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=0, max_value=3))
    config: dict[str, Any] = {
        "handlers": {
            "builtin": [{"module": "sz.builtin", "methods": ["echo", "noop"]}]
        },
        "schedules": [draw(schedules(index)) for index in range(count)],
    }
    retention = draw(st.sampled_from([None] * 6 + [30, 365_000, 365_001, 10**12, 0]))
    if retention is not None:
        config["reporting"] = {"metrics": {"retention_days": retention}}
    return config


def starts(path: str, backend: str) -> bool:
    """Whether ``sz serve -c path`` would start: ``from_config``, then ``start``."""
    try:
        sz = ScheduleZero.from_config(path, store="memory")
    except SzError:
        return False
    return anyio.run(start_and_stop, sz, backend=backend)


async def start_and_stop(sz: ScheduleZero) -> bool:
    try:
        await sz.start()
    except (SzError, BaseExceptionGroup) as error:
        if refusal_in(error) is None:
            raise  # neither a refusal nor a start: what sz serve would crash on
        return False
    await sz.stop()
    return True


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(config=configs())
def test_check_config_accepts_exactly_what_the_scheduler_starts(
    backend: str, config: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "config.yaml")
        Path(path).write_text(yaml.safe_dump(config), encoding="utf-8")
        checked = _check_config(path) == 0
        started = starts(path, backend)
    assert checked == started
