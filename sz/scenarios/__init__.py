"""Scenarios: YAML runs that load, break and check ScheduleZero.

This package holds the format: the model a scenario file loads into
(:class:`Scenario`, its steps and faults), the loader that checks a file and
names the line of anything wrong, the condition language of assertions and
``wait_until`` steps, and the catalogs of actions, metrics and checks; and the
runner, :func:`run_scenario`, which runs one in a fresh embedded scheduler and
returns a :class:`ScenarioResult`; and :class:`ScenarioService`
(``ScheduleZero.scenarios``), which runs them inside a running server.
``docs/guide/scenarios.md`` describes the format.
"""

from __future__ import annotations

from ..errors import ExpressionError as ExpressionError, ScenarioError as ScenarioError
from .actions import (
    ACTIONS as ACTIONS,
    TRIGGER_FIELDS as TRIGGER_FIELDS,
    ActionSpec as ActionSpec,
    ArgKind as ArgKind,
    ArgSpec as ArgSpec,
    ArgumentProblem as ArgumentProblem,
    check_arguments as check_arguments,
)
from .catalog import (
    CHECKS as CHECKS,
    METRICS as METRICS,
    CheckInfo as CheckInfo,
    MetricInfo as MetricInfo,
)
from .context import Progress as Progress
from .evaluation import (
    MetricValue as MetricValue,
    Sample as Sample,
    check_expression as check_expression,
    display_unit_problem as display_unit_problem,
    evaluate as evaluate,
    metrics_named as metrics_named,
)
from .expressions import (
    COMPARISONS as COMPARISONS,
    FUNCTIONS as FUNCTIONS,
    MAX_EXPRESSION_DEPTH as MAX_EXPRESSION_DEPTH,
    And as And,
    Call as Call,
    Compare as Compare,
    Expression as Expression,
    Metric as Metric,
    Not as Not,
    Number as Number,
    Or as Or,
    Predicate as Predicate,
    Quantity as Quantity,
    Value as Value,
    parse_expression as parse_expression,
    render as render,
)
from .fleet import (
    FleetEvent as FleetEvent,
    UnknownWorker as UnknownWorker,
    WorkerFleet as WorkerFleet,
)
from .globs import glob_matches as glob_matches
from .loader import (
    BUILTIN_TASKS as BUILTIN_TASKS,
    FAULTS as FAULTS,
    STEP_TYPES as STEP_TYPES,
    load_scenario as load_scenario,
    parse_scenario as parse_scenario,
)
from .model import (
    PICKS as PICKS,
    STORES as STORES,
    ActionStep as ActionStep,
    BlockLoop as BlockLoop,
    ChaosStep as ChaosStep,
    CheckEntry as CheckEntry,
    Condition as Condition,
    Delay as Delay,
    Drop as Drop,
    Fault as Fault,
    FloodMailbox as FloodMailbox,
    HandlerSpec as HandlerSpec,
    KillActor as KillActor,
    KillWorker as KillWorker,
    Location as Location,
    LoopStep as LoopStep,
    MetricEntry as MetricEntry,
    ParallelStep as ParallelStep,
    Partition as Partition,
    PauseWorker as PauseWorker,
    Pick as Pick,
    Scalar as Scalar,
    Scenario as Scenario,
    Setup as Setup,
    SleepStep as SleepStep,
    Step as Step,
    StopActor as StopActor,
    WaitUntilStep as WaitUntilStep,
    WorkerSpec as WorkerSpec,
)
from .pacing import Pacer as Pacer
from .report import ProgressLine as ProgressLine, format_result as format_result
from .result import (
    OUTCOMES as OUTCOMES,
    AssertionResult as AssertionResult,
    MetricSample as MetricSample,
    ScenarioResult as ScenarioResult,
    TimelineEvent as TimelineEvent,
)
from .runner import run_scenario as run_scenario
from .service import (
    KEPT_RESULTS as KEPT_RESULTS,
    MAX_LISTED as MAX_LISTED,
    MAX_RUNNING as MAX_RUNNING,
    RUN_STATES as RUN_STATES,
    SCENARIO_TASK as SCENARIO_TASK,
    LibraryEntry as LibraryEntry,
    RunState as RunState,
    RunView as RunView,
    ScenarioService as ScenarioService,
    trend_metrics as trend_metrics,
)
from .shipped import library_scenarios as library_scenarios, resolve as resolve
from .source import MAX_SCENARIO_BYTES as MAX_SCENARIO_BYTES
from .units import Dimension as Dimension, parse_duration as parse_duration
from .workers import NoFleet as NoFleet

__all__ = [
    "ACTIONS",
    "BUILTIN_TASKS",
    "CHECKS",
    "COMPARISONS",
    "FAULTS",
    "FUNCTIONS",
    "KEPT_RESULTS",
    "MAX_EXPRESSION_DEPTH",
    "MAX_LISTED",
    "MAX_RUNNING",
    "MAX_SCENARIO_BYTES",
    "METRICS",
    "OUTCOMES",
    "PICKS",
    "RUN_STATES",
    "SCENARIO_TASK",
    "STEP_TYPES",
    "STORES",
    "TRIGGER_FIELDS",
    "ActionSpec",
    "ActionStep",
    "And",
    "ArgKind",
    "ArgSpec",
    "ArgumentProblem",
    "AssertionResult",
    "BlockLoop",
    "Call",
    "ChaosStep",
    "CheckEntry",
    "CheckInfo",
    "Compare",
    "Condition",
    "Delay",
    "Dimension",
    "Drop",
    "Expression",
    "ExpressionError",
    "Fault",
    "FleetEvent",
    "FloodMailbox",
    "HandlerSpec",
    "KillActor",
    "KillWorker",
    "LibraryEntry",
    "Location",
    "LoopStep",
    "Metric",
    "MetricEntry",
    "MetricInfo",
    "MetricSample",
    "MetricValue",
    "NoFleet",
    "Not",
    "Number",
    "Or",
    "Pacer",
    "ParallelStep",
    "Partition",
    "PauseWorker",
    "Pick",
    "Predicate",
    "Progress",
    "ProgressLine",
    "Quantity",
    "RunState",
    "RunView",
    "Sample",
    "Scalar",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "ScenarioService",
    "Setup",
    "SleepStep",
    "Step",
    "StopActor",
    "TimelineEvent",
    "UnknownWorker",
    "Value",
    "WaitUntilStep",
    "WorkerFleet",
    "WorkerSpec",
    "check_arguments",
    "check_expression",
    "display_unit_problem",
    "evaluate",
    "format_result",
    "glob_matches",
    "library_scenarios",
    "load_scenario",
    "metrics_named",
    "parse_duration",
    "parse_expression",
    "parse_scenario",
    "render",
    "resolve",
    "run_scenario",
    "trend_metrics",
]
