"""The checks of a run, over its recorded history (as Jepsen checks a history).

At the end of a run every history row is read back (``ScheduleZero.history``,
paged) and set against what the run itself recorded: the job ids its actions
had accepted, the times its schedules were due to fire (from their triggers,
between creation and deletion, pauses left out), the executions its own
handlers counted, the faults it injected and the supervisors that gave up.

- ``no_lost_jobs``: every submitted job and every due fire has exactly one
  final row.
- ``no_duplicate_jobs``: no job's function returned twice (counted by the run's
  handlers; for jobs of remote workers, success rows).
- ``schedule_fidelity``: no due fire missed (no row, or ``missed``,
  ``skipped``, ``coalesced``), none started later than its grace
  (``misfire_grace_time``, else ``DEFAULT_GRACE``) once the time the machine
  surely kept the scheduler's loop from a CPU is taken off (``stalls``: the
  machine's fault, not the scheduler's); reports the lateness, gross and net.
- ``recovery_time``: after each fault (faults less than ``EPISODE_GAP`` apart
  are one episode), throughput over ``WINDOW`` seconds came back within 10 % of
  its level before, or the backlog drained; reports how long it took.
- ``restart_budget``: no supervisor gave up (no ``Escalated`` event).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..bridge import make_trigger
from ..errors import SzError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..jobs import Attempt
    from ..scheduler import ScheduleZero
    from .record import RunRecord, ScheduleRecord

__all__ = [
    "DEFAULT_GRACE",
    "EDGE",
    "EPISODE_GAP",
    "WINDOW",
    "History",
    "expected_fires",
    "read_history",
    "run_checks",
]

#: How late a fire may start, for ``schedule_fidelity``, when its schedule has
#: no ``misfire_grace_time``.
DEFAULT_GRACE = 1.0

#: Fires due this close to the edge of a window in which a schedule could fire
#: (its creation, deletion, a pause, the end of the run) are not held against
#: it: whether one fell just inside is a race the run cannot judge.
EDGE = timedelta(seconds=0.5)

#: Faults closer together than this (seconds) are one episode of
#: ``recovery_time``.
EPISODE_GAP = 1.0

#: Seconds of throughput averaged before and after a fault.
WINDOW = 1.0

#: How many ids a check's details list at most.
SHOWN = 10

_NEVER_RAN = frozenset({"missed", "skipped", "coalesced"})
_PAGE = 100_000


class History:
    """Every row of a run's history, indexed for the checks.

    Args:
        rows: The rows, in any order.
    """

    def __init__(self, rows: Sequence[Attempt]) -> None:
        self.rows = rows
        self.finals: dict[str, list[Attempt]] = defaultdict(list)
        self.by_schedule: dict[str, list[Attempt]] = defaultdict(list)
        self.first_attempts: dict[str, Attempt] = {}
        for row in rows:
            if row.final:
                self.finals[row.job_id].append(row)
                if row.schedule_id is not None:
                    self.by_schedule[row.schedule_id].append(row)
            if row.attempt == 1:
                self.first_attempts[row.job_id] = row


async def read_history(sz: ScheduleZero) -> History:
    """Every row of the scheduler's history, paged newest first. A checkpoint."""
    rows: list[Attempt] = []
    before: Attempt | None = None
    while True:
        page = await sz.history(limit=_PAGE, before=before)
        rows.extend(page)
        if len(page) < _PAGE:
            return History(rows)
        before = page[-1]


def expected_fires(entry: ScheduleRecord, end: datetime) -> list[datetime] | None:
    """When ``entry`` was due to fire, edges left out; None if not computable.

    Interval schedules are anchored on their first recorded fire when it is
    known (``entry`` holds no rows: the caller passes it in ``fields``), cron
    schedules computed from their creation. Calendar intervals are not checked.
    Blocking (a trigger may read a time zone's file): call it in a thread.
    """
    start = entry.created_at
    stop = min(end, entry.deleted_at or end)
    if entry.trigger == "calendarinterval":
        return None
    fields = dict(entry.fields)
    if entry.trigger == "interval":
        period = timedelta(
            **{
                key: fields[key]
                for key in ("weeks", "days", "hours", "minutes", "seconds")
                if key in fields
            },
            microseconds=fields.get("microseconds", 0),
        )
        anchor = fields.pop("_anchor", None) or fields.get("start_time") or start
        if not isinstance(anchor, datetime) or period <= timedelta(0):
            return None
        first = anchor - period * math.floor((anchor - start) / period)
        times, moment = [], first
        while moment <= stop:
            times.append(moment)
            moment += period
    else:
        if entry.trigger in ("cron",) or " " in entry.trigger:
            fields.setdefault("start_time", start)
        try:
            trigger = make_trigger(entry.trigger, fields)
        except SzError:
            return None
        times = []
        while (fire := trigger.next()) is not None and fire <= stop:
            times.append(fire)
            if len(times) > 1_000_000:
                break
    return [moment for moment in times if _inside(entry, moment, stop)]


def _inside(entry: ScheduleRecord, moment: datetime, stop: datetime) -> bool:
    if not entry.created_at + EDGE <= moment <= stop - EDGE:
        return False
    for since, until in entry.paused:
        if since - EDGE <= moment and (until is None or moment <= until + EDGE):
            return False
    return True


def _match(
    rows: list[Attempt], moment: datetime, tolerance: timedelta
) -> list[Attempt]:
    return [row for row in rows if abs(row.scheduled_at - moment) <= tolerance]


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        position = q * (len(ordered) - 1)
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return {"p50": at(0.5), "p99": at(0.99), "max": ordered[-1]}


def _fires(
    record: RunRecord, history: History, end: datetime
) -> tuple[dict[str, Any], list[tuple[str, datetime, list[Attempt]]]]:
    """Each due fire with its final rows; and what could not be computed."""
    due: list[tuple[str, datetime, list[Attempt]]] = []
    unchecked: list[str] = []
    for entry in record.schedules.values():
        rows = history.by_schedule.get(entry.id, [])
        if entry.trigger == "interval" and rows:
            # Anchored on a recorded fire: the trigger the scheduler built
            # started a moment before the run recorded the schedule.
            earliest = min(row.scheduled_at for row in rows)
            entry_fields = {**entry.fields, "_anchor": earliest}
            times = expected_fires(_with_fields(entry, entry_fields), end)
        else:
            times = expected_fires(entry, end)
        if times is None:
            unchecked.append(entry.id)
            continue
        tolerance = timedelta(seconds=0.05)
        due.extend(
            (entry.id, moment, _match(rows, moment, tolerance)) for moment in times
        )
    return {"unchecked_schedules": unchecked[:SHOWN]}, due


def _with_fields(entry: ScheduleRecord, fields: dict[str, Any]) -> ScheduleRecord:
    from .record import ScheduleRecord

    return ScheduleRecord(
        id=entry.id,
        task=entry.task,
        trigger=entry.trigger,
        fields=fields,
        grace=entry.grace,
        created_at=entry.created_at,
        deleted_at=entry.deleted_at,
        paused=list(entry.paused),
    )


def no_lost_jobs(
    record: RunRecord,
    history: History,
    due: list[tuple[str, datetime, list[Attempt]]],
) -> dict[str, Any]:
    """Every submitted job and every due fire has exactly one final row."""
    submitted = record.submitted_ids()
    lost = [job for job in submitted if job not in history.finals]
    several = [job for job in submitted if len(history.finals.get(job, ())) > 1]
    lost_fires = [f"{sid}@{at.isoformat()}" for sid, at, rows in due if not rows]
    several_fires = [
        f"{sid}@{at.isoformat()}" for sid, at, rows in due if len(rows) > 1
    ]
    passed = not (lost or several or lost_fires or several_fires)
    return {
        "passed": passed,
        "submitted": len(submitted),
        "refused": record.refused,
        "fires_due": len(due),
        "lost": len(lost) + len(lost_fires),
        "several_final_rows": len(several) + len(several_fires),
        "lost_ids": (lost + lost_fires)[:SHOWN],
        "several_ids": (several + several_fires)[:SHOWN],
    }


def duplicates(record: RunRecord, history: History) -> list[str]:
    """Jobs that succeeded more than once.

    Counted by the run's own handlers; a job run by remote workers (rows whose
    handler is no local handler of the run) by its success rows.
    """
    twice = {job for job, count in record.executions.items() if count > 1}
    successes: Counter[str] = Counter(
        row.job_id
        for row in history.rows
        if row.outcome == "success" and row.job_id not in record.executions
    )
    twice.update(job for job, count in successes.items() if count > 1)
    return sorted(twice)


def no_duplicate_jobs(record: RunRecord, history: History) -> dict[str, Any]:
    """No job succeeded twice."""
    found = duplicates(record, history)
    retried = sum(
        1 for rows in history.finals.values() for row in rows if row.attempt > 1
    )
    return {
        "passed": not found,
        "duplicates": len(found),
        "executions": sum(record.executions.values()),
        "retried_jobs": retried,
        "duplicate_ids": found[:SHOWN],
    }


def schedule_fidelity(
    record: RunRecord,
    history: History,
    due: list[tuple[str, datetime, list[Attempt]]],
    unchecked: list[str],
) -> dict[str, Any]:
    """No due fire missed or late beyond its grace; the lateness of the others."""
    missed: list[str] = []
    late: list[str] = []
    lateness: list[float] = []
    own: list[float] = []
    excused = 0
    for schedule_id, moment, rows in due:
        entry = record.schedules[schedule_id]
        name = f"{schedule_id}@{moment.isoformat()}"
        if not rows or rows[0].outcome in _NEVER_RAN:
            missed.append(name)
            continue
        first = history.first_attempts.get(rows[0].job_id, rows[0])
        if first.started_at is None:
            missed.append(name)
            continue
        delay = (first.started_at - first.scheduled_at).total_seconds()
        lateness.append(delay)
        # The machine's stalls of the loop are not the scheduler's lateness
        # (module stalls): what is left of the delay is judged.
        net = delay - record.machine_stall(first.scheduled_at, first.started_at)
        own.append(net)
        grace = entry.grace if entry.grace is not None else DEFAULT_GRACE
        if net > grace:
            late.append(name)
        elif delay > grace:
            excused += 1
    waits = record.cpu_waits
    return {
        "passed": not (missed or late),
        "fires_due": len(due),
        "missed": len(missed),
        "late": len(late),
        "drift": _summary(lateness),
        "own_drift": _summary(own),
        "machine_stall": (
            round(waits[-1][2] - waits[0][2], 3) if len(waits) > 1 else None
        ),
        "excused": excused,
        "missed_fires": missed[:SHOWN],
        "late_fires": late[:SHOWN],
        "unchecked_schedules": unchecked,
    }


def recovery_time(record: RunRecord) -> dict[str, Any]:
    """After each fault episode, throughput came back within 10 % (or drained)."""
    finished = record.samples.get("finished", [])
    pending = record.samples.get("jobs_pending", [])
    episodes: list[list[float]] = []
    for mark in record.faults:
        if episodes and mark.offset - episodes[-1][-1] < EPISODE_GAP:
            episodes[-1].append(mark.offset)
        else:
            episodes.append([mark.offset])
    results: list[dict[str, Any]] = []
    for faults in episodes:
        begin, last = faults[0], faults[-1]
        before = _throughput(finished, begin - WINDOW, begin)
        entry: dict[str, Any] = {
            "at": round(begin, 3),
            "faults": len(faults),
            "throughput_before": None if before is None else round(before, 1),
        }
        if before is None or before <= 0:
            entry.update(recovered=True, seconds=0.0, note="no load before the fault")
            results.append(entry)
            continue
        backlog = _value_at(pending, begin)
        back = None
        for at, _ in finished:
            if at < last + WINDOW:
                continue
            rate = _throughput(finished, at - WINDOW, at)
            if rate is not None and rate >= 0.9 * before:
                back = at
                break
            now_pending = _value_at(pending, at)
            if now_pending is not None and now_pending <= (backlog or 0):
                back = at  # the backlog drained: nothing left to be slow about
                break
        entry.update(
            recovered=back is not None,
            seconds=None if back is None else round(back - last, 3),
        )
        results.append(entry)
    times = [entry["seconds"] for entry in results if entry["seconds"] is not None]
    return {
        "passed": all(entry["recovered"] for entry in results),
        "episodes": len(results),
        "recovery_time": max(times) if times else 0.0,
        "details": results[:SHOWN],
    }


def _value_at(series: list[tuple[float, float]], at: float) -> float | None:
    found = None
    for when, value in series:
        if when > at:
            break
        found = value
    return found


def _throughput(
    finished: list[tuple[float, float]], since: float, until: float
) -> float | None:
    start, end = _value_at(finished, since), _value_at(finished, until)
    if start is None or end is None or until <= since:
        return None
    return (end - start) / (until - since)


def restart_budget(record: RunRecord) -> dict[str, Any]:
    """No supervisor gave up."""
    restarts = record.samples.get("restarts", [])
    return {
        "passed": not record.escalations,
        "gave_up": [
            {"supervisor": path, "child": child, "error": error}
            for path, child, error in record.escalations[:SHOWN]
        ],
        "restarts": int(restarts[-1][1]) if restarts else 0,
    }


def run_checks(
    names: Sequence[str], record: RunRecord, history: History, end: datetime
) -> tuple[dict[str, dict[str, Any]], int, int]:
    """Every check named, by name; and the lost and duplicate job counts.

    Blocking (computes fire times): call it in a thread.
    """
    extra, due = _fires(record, history, end)
    lost = no_lost_jobs(record, history, due)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if name == "no_lost_jobs":
            results[name] = lost
        elif name == "no_duplicate_jobs":
            results[name] = no_duplicate_jobs(record, history)
        elif name == "schedule_fidelity":
            results[name] = schedule_fidelity(
                record, history, due, extra["unchecked_schedules"]
            )
        elif name == "recovery_time":
            results[name] = recovery_time(record)
        elif name == "restart_budget":
            results[name] = restart_budget(record)
    return results, lost["lost"], len(duplicates(record, history))


def now_utc() -> datetime:
    """Now, UTC."""
    return datetime.now(UTC)
