"""How ``sz scenario run`` shows a run: a live progress line, then a final table.

On a terminal the progress line is redrawn in place with each sample (the
current step, its number of the top-level steps, the time so far and the key
metrics); into a pipe or a file, one line is written as each top-level step
starts, so a CI log reads as a list of steps. The final table lists the
metrics (in the units the scenario shows them in), the checks with their
details, the assertions with their values, and the verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from .catalog import METRICS
from .units import BYTE_UNITS, RATIO_UNITS, TIME_UNITS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .context import Progress
    from .result import ScenarioResult

__all__ = ["ProgressLine", "format_result"]

_KEY_METRICS = (
    ("jobs_per_sec", "jobs/s", 1.0),
    ("jobs_pending", "pending", 1.0),
    ("restarts", "restarts", 1.0),
    ("memory_usage", "MB", 1e6),
)
_WIDTH = 100


def _key_metrics(metrics: Mapping[str, float]) -> str:
    shown = []
    for name, label, scale in _KEY_METRICS:
        if name in metrics:
            value = metrics[name] / scale
            shown.append(
                f"{value:,.0f} {label}"
                if label in ("jobs/s", "MB")
                else f"{label} {value:,.0f}"
            )
    return "  ".join(shown)


class ProgressLine:
    """Shows a run's progress on ``stream`` (stderr).

    Args:
        stream: Where to write.
        tty: Redraw one line in place (a terminal) rather than write a line
            per step; by default, whether ``stream`` is a terminal.
    """

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._last_index = -1
        self._drawn = False

    def __call__(self, progress: Progress) -> None:
        """Show where the run stands."""
        if self.tty:
            self._redraw(progress)
        elif progress.why == "step" and progress.index != self._last_index:
            self._last_index = progress.index
            self.stream.write(
                f"[{progress.index}/{progress.total}] {progress.step}  "
                f"{progress.elapsed:.1f}s  {_key_metrics(progress.metrics)}\n"
            )
            self.stream.flush()

    def _redraw(self, progress: Progress) -> None:
        done = progress.index - 1 if progress.why != "end" else progress.total
        filled = round(20 * max(0, done) / max(1, progress.total))
        bar = "#" * filled + "-" * (20 - filled)
        line = (
            f"{progress.scenario} [{bar}] {progress.index}/{progress.total} "
            f"{progress.step}  {progress.elapsed:.1f}s  "
            f"{_key_metrics(progress.metrics)}"
        )
        self.stream.write("\r\x1b[K" + line[:_WIDTH])
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the redrawn line, if any."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


def _number(value: float, name: str, unit: str | None) -> str:
    info = METRICS.get(name)
    base = info.dimension.base if info is not None else "count"
    if unit is not None:
        head = unit.partition("/")[0]
        scale = TIME_UNITS.get(head) or BYTE_UNITS.get(head) or RATIO_UNITS.get(head)
        if scale:
            return f"{value / scale:,.3g} {unit}"
        return f"{value:,.1f} {unit}" if abs(value) >= 100 else f"{value:,.4g} {unit}"
    if base == "seconds":
        return f"{value * 1000:,.3g} ms" if abs(value) < 1 else f"{value:,.3g} s"
    if base == "bytes":
        return f"{value / 1e6:,.1f} MB"
    if base == "ratio":
        return f"{value * 100:,.3g} %"
    if info is not None and info.dimension.per_second:
        return f"{value:,.1f}/s"
    return f"{value:,.6g}"


def _metric(name: str, value: Any, unit: str | None, trend: str = "trend") -> str:
    if not isinstance(value, dict):
        return _number(float(value), name, unit)
    if not value.get("count"):
        return "no samples"
    parts = [
        f"{key} {_number(value[key], name, unit)}"
        for key in ("p50", "p99", "max")
        if key in value
    ]
    if "rate" in value:
        parts.append(f"{trend} {_number(value['rate'], name, unit)}/s")
    parts.append(f"n={value['count']:.0f}")
    return "  ".join(parts)


def _details(check: Mapping[str, Any]) -> str:
    shown = []
    for key, value in check.items():
        if key == "passed" or value in ([], {}, None):
            continue
        if isinstance(value, float):
            value = f"{value:.3g}"
        elif isinstance(value, dict):
            value = ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in value.items()
            )
        elif isinstance(value, list):
            value = ", ".join(map(str, value[:3])) + (" ..." if len(value) > 3 else "")
        shown.append(f"{key}: {value}")
    return "; ".join(shown)


def _phase_lines(phases: Mapping[str, Any], width: int) -> list[str]:
    """The steady state's phases, one line each under its check."""
    lines = []
    for phase, verdict in phases.items():
        mark = "PASS" if verdict.get("passed") else "FAIL"
        count = verdict.get("checked", 0)
        said = f"{count} sample{'s' if count != 1 else ''}" if count else "no sample"
        broken = "; ".join(verdict.get("violations") or ())
        detail = f"{said}; broke: {broken}" if broken else said
        lines.append(f"{'  ' + phase:<{width}}  {mark:<6}  {detail}")
    return lines


def format_result(
    result: ScenarioResult, units: Mapping[str, str] | None = None
) -> str:
    """The final table of a run, as text.

    Args:
        result: The run's result.
        units: The unit each metric is shown in (the scenario's ``metrics``
            section); base units otherwise.
    """
    units = units or {}
    verdict = "PASS" if result.passed else "FAIL"
    lines = [
        (
            f"scenario {result.name}  run {result.run_id}  seed {result.seed}  "
            f"{result.duration:.1f}s  {result.outcome}"
        ),
    ]
    if result.error:
        lines.append(f"  {result.error}")
    warmed = [event for event in result.timeline if event.event == "warmup_end"]
    trend = f"trend after warm-up ({warmed[0].offset:.1f}s)" if warmed else "trend"
    if result.metrics:
        width = max(map(len, result.metrics))
        lines += ["", f"{'metric':<{width}}  value"]
        lines += [
            f"{name:<{width}}  {_metric(name, value, units.get(name), trend)}"
            for name, value in result.metrics.items()
        ]
    if result.checks:
        width = max(len(name) for name in (*result.checks, "  during"))
        lines += ["", f"{'check':<{width}}  result  details"]
        for name, check in result.checks.items():
            mark = "PASS" if check.get("passed") else "FAIL"
            phases = check.get("phases") if name == "steady_state" else None
            if isinstance(phases, dict):
                lines.append(
                    f"{name:<{width}}  {mark:<6}  phases marked by "
                    f"{check.get('marked_by', 'steps')}"
                )
                lines += _phase_lines(phases, width)
                continue
            lines.append(f"{name:<{width}}  {mark:<6}  {_details(check)}")
    if result.assertions:
        width = max(len(a.expression) for a in result.assertions)
        lines += ["", f"{'assertion':<{width}}  value  result"]
        for assertion in result.assertions:
            value = "error" if assertion.value is None else str(assertion.value).lower()
            mark = "PASS" if assertion.passed else "FAIL"
            note = f"  ({assertion.error})" if assertion.error else ""
            lines.append(f"{assertion.expression:<{width}}  {value:<5}  {mark}{note}")
    lines += ["", verdict]
    return "\n".join(lines) + "\n"
