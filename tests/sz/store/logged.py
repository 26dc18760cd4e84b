"""Reading the log of an ``sz`` process in tests: crashes, not job failures.

Not a test module: imported by tests that run ``sz serve`` or ``sz worker``.
A job's failure is logged with its traceback, under its ``sz.history`` line;
any other traceback in the output is a crash.
"""

from __future__ import annotations

import re

__all__ = ["crash_tracebacks"]

#: The line a job's failure or timeout is logged with; its traceback follows.
_JOB_FAILED = re.compile(
    r" sz\.history: job \S+ .* attempt \d+ on \S+: (failure|timeout)"
)


def crash_tracebacks(output: str) -> list[str]:
    """The tracebacks in ``output`` that do not follow a job's failure line."""
    found: list[str] = []
    lines = output.splitlines()
    after_failure = False
    for number, line in enumerate(lines):
        if _JOB_FAILED.search(line):
            after_failure = True
        elif line.startswith("Traceback (most recent call last)"):
            if not after_failure:
                found.append("\n".join(lines[max(0, number - 1) : number + 12]))
        elif line and not line.startswith((" ", "Traceback")) and _is_log_line(line):
            after_failure = False
    return found


def _is_log_line(line: str) -> bool:
    """A line the log formatter starts (a date), not part of a traceback."""
    return bool(re.match(r"\d{4}-\d{2}-\d{2} ", line))
