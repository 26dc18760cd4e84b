"""Loading a scenario: YAML in, a checked :class:`Scenario` out, or one clear error.

The file's shape is the roadmap's ``test:`` mapping (see
``docs/guide/scenarios.md``). Everything that can be checked without running is
checked here, and the first problem raises :class:`ScenarioError` naming the
file, the line and what was expected; nothing of a refused scenario runs.
"""

from __future__ import annotations

import math
import os
import re
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from .. import builtin
from ..config import Config, parse_config
from ..errors import ConfigError, ExpressionError, ScenarioError
from .actions import ACTIONS, ArgumentProblem, check_arguments
from .catalog import CHECKS, METRICS
from .evaluation import check_expression, display_unit_problem
from .expressions import parse_expression
from .hints import expected_one_of, show
from .model import (
    PICKS,
    STORES,
    ActionStep,
    BlockLoop,
    ChaosStep,
    CheckEntry,
    Condition,
    Delay,
    Drop,
    Fault,
    FloodMailbox,
    HandlerSpec,
    KillActor,
    KillWorker,
    Location,
    LoopStep,
    MetricEntry,
    ParallelStep,
    Partition,
    PauseWorker,
    Scalar,
    Scenario,
    Setup,
    SleepStep,
    Step,
    StopActor,
    WaitUntilStep,
    WorkerSpec,
)
from .source import Node, compose, read_text, substitute
from .units import parse_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

__all__ = ["BUILTIN_TASKS", "FAULTS", "STEP_TYPES", "load_scenario", "parse_scenario"]

#: The built-in handlers a setup may name (``sz.builtin``'s functions).
BUILTIN_TASKS: tuple[str, ...] = tuple(builtin.__all__)

#: The step types, each with the keys it takes besides ``type`` and ``name``.
STEP_TYPES: Mapping[str, tuple[str, ...]] = {
    "action": ("action",),
    "loop": ("iterations", "duration", "steps", "action"),
    "parallel": ("steps",),
    "sleep": ("duration",),
    "wait_until": ("condition", "timeout"),
    "chaos": ("fault",),
}

_SELECT = ("target", "count", "pick")
_FaultClass = type[Fault]

#: Each fault: its class, the fields it requires and those it may take.
FAULTS: Mapping[str, tuple[_FaultClass, tuple[str, ...], tuple[str, ...]]] = {
    "kill_actor": (KillActor, ("target",), ("count", "pick")),
    "stop_actor": (StopActor, ("target",), ("count", "pick")),
    "kill_worker": (KillWorker, (), (*_SELECT, "signal", "restart_after")),
    "pause_worker": (PauseWorker, ("duration",), _SELECT),
    "partition": (Partition, ("duration",), _SELECT),
    "delay": (Delay, ("delay", "duration"), (*_SELECT, "jitter")),
    "drop": (Drop, ("probability", "duration"), _SELECT),
    "block_loop": (BlockLoop, ("duration",), ()),
    "flood_mailbox": (FloodMailbox, ("target", "count"), ()),
}
_ACTOR_FAULTS = frozenset({"kill_actor", "stop_actor", "flood_mailbox"})
_SIGNALS = ("SIGKILL", "SIGTERM")
_SCENARIO_KEYS = (
    "name",
    "description",
    "parameters",
    "setup",
    "steps",
    "checks",
    "metrics",
    "assertions",
    "steady_state",
    "warmup",
)
#: The sections of ``config.yaml`` a setup may give: the others are the
#: setup's own (handlers, store) or have no part in a run (web, schedules).
_CONFIG_SECTIONS = ("scheduler", "governors", "reporting")
_KEY_PATH = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[('.*?'|\".*?\")\]")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_T = TypeVar("_T")


def load_scenario(
    path: str | os.PathLike[str], *, parameters: Mapping[str, object] | None = None
) -> Scenario:
    """Read a scenario file (UTF-8 YAML) and check it.

    Args:
        path: The file.
        parameters: Values for some of its parameters, overriding the file's
            defaults: text (as ``--param k=v`` gives it) is read as the
            default's type (``"500"`` is 500 if the default is a whole number);
            other values must be of that type. None (the default) keeps the
            defaults.

    Returns:
        The scenario, parameters substituted.

    Raises:
        ScenarioError: The file cannot be read, is not YAML, or is not a valid
            scenario; the message names the file, the line and what was
            expected.
    """
    source = os.fspath(path)
    return parse_scenario(read_text(path), source=source, parameters=parameters)


def parse_scenario(
    text: str,
    *,
    source: str = "<scenario>",
    parameters: Mapping[str, object] | None = None,
) -> Scenario:
    """Check a scenario given as YAML text.

    Args:
        text: The YAML.
        source: The name error messages and locations give it,
            ``"<scenario>"`` by default.
        parameters: Overrides of its parameters, as :func:`load_scenario`
            takes them.

    Returns:
        The scenario, parameters substituted.

    Raises:
        ScenarioError: Not YAML, or not a valid scenario (see
            :func:`load_scenario`).
    """
    root = compose(text, source)
    reader = _Reader(source)
    if root is None:
        reader.fail("empty: expected a mapping with the key test", 1)
    return reader.document(root, parameters or {})


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.display_units: dict[str, str] = {}
        self.setup = Setup()

    # Shapes.

    def fail(self, problem: str, line: int, column: int | None = None) -> NoReturn:
        raise ScenarioError(self.source, problem, line=line, column=column)

    def at(self, node: Node) -> Location:
        return Location(file=self.source, line=node.line, column=node.column)

    def mapping(self, node: Node, what: str) -> dict[str, Node]:
        if not isinstance(node.value, dict):
            self.fail(f"{what}: expected a mapping, got {show(plain(node))}", node.line)
        values: dict[str, Node] = node.value
        return values

    def fields(
        self,
        node: Node,
        what: str,
        required: Collection[str] = (),
        optional: Collection[str] = (),
    ) -> dict[str, Node]:
        values = self.mapping(node, what)
        allowed = (*required, *optional)
        for key in values:
            if key not in allowed:
                line, column = node.keys[key]
                self.fail(
                    f"{what}: unknown key {key!r} {expected_one_of(key, allowed)}",
                    line,
                    column,
                )
        for key in required:
            if key not in values:
                self.fail(f"{what}: missing field {key!r}", node.line)
        return values

    def items(self, node: Node, what: str, *, empty: bool = True) -> list[Node]:
        if node.value is None and empty:
            return []
        if not isinstance(node.value, list) or not (empty or node.value):
            shape = "a list" if empty else "a non-empty list"
            self.fail(f"{what}: expected {shape}, got {show(plain(node))}", node.line)
        items: list[Node] = node.value
        return items

    def value(
        self, node: Node, what: str, expected: str, convert: Callable[[Any], _T | None]
    ) -> _T:
        converted = convert(node.value)
        if converted is None:
            self.fail(f"{what}: expected {expected}, got {show(node.value)}", node.line)
        return converted

    def text(self, node: Node, what: str) -> str:
        return self.value(node, what, "a non-empty string", _text)

    def whole(self, node: Node, what: str, least: int) -> int:
        return self.value(
            node, what, f"a whole number >= {least}", lambda v: _whole(v, least)
        )

    def duration(self, node: Node, what: str, *, zero: bool = False) -> float:
        seconds = self.value(
            node,
            what,
            "a duration (seconds, or a number with a unit such as 50ms)",
            parse_duration,
        )
        if seconds == 0 and not zero:
            self.fail(
                f"{what}: expected a duration > 0, got {show(node.value)}", node.line
            )
        return seconds

    def choice(self, node: Node, what: str, choices: Collection[str]) -> str:
        value = node.value
        if not isinstance(value, str) or value not in choices:
            hint = expected_one_of(value if isinstance(value, str) else "", choices)
            self.fail(f"unknown {what} {show(value)} {hint}", node.line, node.column)
        return value

    def names(self, node: Node, what: str) -> tuple[str, ...]:
        found = []
        for item in self.items(node, what, empty=False):
            name = self.text(item, what)
            if not name.isidentifier():
                self.fail(
                    f"{what}: expected a function's name, got {name!r}", item.line
                )
            found.append(name)
        return tuple(found)

    def module(self, node: Node, what: str) -> str:
        name = self.text(node, what)
        if not _MODULE.fullmatch(name):
            self.fail(f"{what}: expected a dotted module name, got {name!r}", node.line)
        return name

    # The document.

    def document(self, root: Node, overrides: Mapping[str, object]) -> Scenario:
        top = self.mapping(root, "a scenario")
        if set(top) != {"test"}:
            self.fail(
                "expected a mapping with the one key test, got the keys "
                f"{', '.join(map(repr, top)) or 'none'}",
                root.line,
            )
        test = top["test"]
        raw = self.fields(test, "test", ("name", "steps"), _SCENARIO_KEYS)
        parameters = self.parameters(raw.get("parameters"), overrides, test)
        fields = {
            key: substitute(node, parameters, self.source)
            for key, node in raw.items()
            if key != "parameters"
        }
        if "setup" in fields:
            self.setup = self.read_setup(fields["setup"])
        else:
            self.setup = Setup(handlers=self.builtins(self.at(test)))
        metrics: tuple[MetricEntry, ...] = ()
        if "metrics" in fields:
            metrics = self.metrics(fields["metrics"])
        description = ""
        if "description" in fields and fields["description"].value is not None:
            description = self.value(
                fields["description"], "description", "a string", _string
            )
        steps = self.steps(fields["steps"], "steps")
        warmup = self.warmup(fields["warmup"], steps) if "warmup" in fields else None
        return Scenario(
            name=self.text(fields["name"], "name"),
            description=description,
            parameters=parameters,
            setup=self.setup,
            steps=steps,
            warmup=warmup,
            checks=self.checks(fields["checks"]) if "checks" in fields else (),
            metrics=metrics,
            assertions=self.conditions(fields.get("assertions"), "assertion"),
            steady_state=self.conditions(fields.get("steady_state"), "steady_state"),
            location=self.at(test),
        )

    def warmup(self, node: Node, steps: tuple[Step, ...]) -> float | str:
        """Seconds after the first step starts, or a top-level step's name."""
        names = [step.name for step in steps if step.name]
        if isinstance(node.value, str) and node.value in names:
            return node.value
        seconds = parse_duration(node.value)
        if seconds is None:
            shown = ", ".join(names) or "none has a name"
            self.fail(
                "warmup: expected a duration (such as 10s) or the name of a "
                f"top-level step ({shown}), got {show(node.value)}",
                node.line,
            )
        return seconds

    def parameters(
        self, node: Node | None, overrides: Mapping[str, object], test: Node
    ) -> dict[str, Scalar]:
        values: dict[str, Scalar] = {}
        lines: dict[str, int] = {}
        if node is not None and node.value is not None:
            for name, value in self.mapping(node, "parameters").items():
                line = node.key_line(name)
                if not name.isidentifier():
                    self.fail(f"parameters: expected a name, got {name!r}", line)
                if isinstance(value.value, bool | int | float | str):
                    values[name] = value.value
                    lines[name] = value.line
                else:
                    self.fail(
                        f"parameters: {name}: expected a number, a string or true/"
                        f"false, got {show(plain(value))}",
                        value.line,
                    )
        for name, given in overrides.items():
            if name not in values:
                hint = expected_one_of(name, values) if values else "(it has none)"
                line = test.key_line("parameters") if node is not None else test.line
                self.fail(f"unknown parameter {name!r} given {hint}", line)
            converted = _override(values[name], given)
            if converted is None:
                self.fail(
                    f"parameter {name}: expected {_kind(values[name])} like its "
                    f"default {show(values[name])}, got {show(given)}",
                    lines[name],
                )
            values[name] = converted
        return values

    # Setup.

    def builtins(self, where: Location) -> tuple[HandlerSpec, ...]:
        return tuple(
            HandlerSpec(module=builtin.__name__, methods=(task,), location=where)
            for task in BUILTIN_TASKS
        )

    def read_setup(self, node: Node) -> Setup:
        if node.value is None:
            return Setup(handlers=self.builtins(self.at(node)))
        fields = self.fields(
            node, "setup", (), ("handlers", "workers", "store", "config")
        )
        handlers = self.builtins(self.at(node))
        if "handlers" in fields:
            handlers = tuple(
                self.handler(item)
                for item in self.items(fields["handlers"], "setup.handlers")
            )
        workers: tuple[WorkerSpec, ...] = ()
        if "workers" in fields:
            workers = tuple(
                self.worker(item)
                for item in self.items(fields["workers"], "setup.workers")
            )
        store = "memory"
        if "store" in fields:
            store = self.choice(fields["store"], "store", STORES)
        config = Config()
        if "config" in fields and fields["config"].value is not None:
            config = self.config(fields["config"])
        return Setup(
            handlers=handlers,
            workers=workers,
            store=store,  # type: ignore[arg-type]
            config=config,
        )

    def config(self, node: Node) -> Config:
        self.fields(node, "setup.config", (), _CONFIG_SECTIONS)
        try:
            return parse_config(plain(node), source=self.source)
        except ConfigError as error:
            path, problem = error.problems[0]
            where = f"{path}: " if path else ""
            self.fail(f"setup.config: {where}{problem}", _line_of(node, path))

    def handler(self, node: Node) -> HandlerSpec:
        what = "setup.handlers"
        if isinstance(node.value, str):
            task = self.choice(node, "built-in handler", BUILTIN_TASKS)
            return HandlerSpec(
                module=builtin.__name__, methods=(task,), location=self.at(node)
            )
        fields = self.fields(
            node, what, (), ("task", "module", "methods", "concurrency")
        )
        concurrency = None
        if "concurrency" in fields:
            concurrency = self.whole(fields["concurrency"], f"{what}: concurrency", 1)
        if "task" in fields:
            for key in ("module", "methods"):
                if key in fields:
                    self.fail(
                        f"{what}: task names a built-in handler and takes no {key} "
                        "(give module and methods instead)",
                        node.key_line(key),
                    )
            task = self.choice(fields["task"], "built-in handler", BUILTIN_TASKS)
            return HandlerSpec(
                module=builtin.__name__,
                methods=(task,),
                concurrency=concurrency,
                location=self.at(node),
            )
        for key in ("module", "methods"):
            if key not in fields:
                self.fail(
                    f"{what}: missing field {key!r} (or give task: a built-in name)",
                    node.line,
                )
        return HandlerSpec(
            module=self.module(fields["module"], f"{what}: module"),
            methods=self.names(fields["methods"], f"{what}: methods"),
            concurrency=concurrency,
            location=self.at(node),
        )

    def worker(self, node: Node) -> WorkerSpec:
        what = "setup.workers"
        fields = self.fields(node, what, ("module", "methods"), ("count",))
        count = 1
        if "count" in fields:
            count = self.whole(fields["count"], f"{what}: count", 1)
        return WorkerSpec(
            module=self.module(fields["module"], f"{what}: module"),
            methods=self.names(fields["methods"], f"{what}: methods"),
            count=count,
            location=self.at(node),
        )

    # Steps.

    def steps(self, node: Node, what: str) -> tuple[Step, ...]:
        return tuple(self.step(item) for item in self.items(node, what, empty=False))

    def step(self, node: Node) -> Step:
        values = self.mapping(node, "a step")
        if "type" not in values:
            self.fail(
                f"step: missing field 'type' (expected one of: "
                f"{', '.join(sorted(STEP_TYPES))})",
                node.line,
            )
        kind = self.choice(values["type"], "step type", STEP_TYPES)
        name = self.text(values["name"], "name") if "name" in values else None
        where = self.at(node)
        if kind == "chaos":
            return self.chaos(node, name, where)
        fields = self.fields(
            node, f"{kind} step", ("type",), ("name", *STEP_TYPES[kind])
        )
        if kind == "action":
            if "action" not in fields:
                self.fail("action step: missing field 'action'", node.line)
            return self.action(fields["action"], name, where)
        if kind == "loop":
            return self.loop(node, fields, name, where)
        if kind == "parallel":
            if "steps" not in fields:
                self.fail("parallel step: missing field 'steps'", node.line)
            steps = self.steps(fields["steps"], "parallel step: steps")
            return ParallelStep(steps=steps, name=name, location=where)
        if kind == "sleep":
            if "duration" not in fields:
                self.fail("sleep step: missing field 'duration'", node.line)
            duration = self.duration(fields["duration"], "sleep: duration", zero=True)
            return SleepStep(duration=duration, name=name, location=where)
        if kind == "wait_until":
            for key in ("condition", "timeout"):
                if key not in fields:
                    self.fail(f"wait_until step: missing field {key!r}", node.line)
            return WaitUntilStep(
                condition=self.condition(fields["condition"], "wait_until condition"),
                timeout=self.duration(fields["timeout"], "wait_until: timeout"),
                name=name,
                location=where,
            )
        raise AssertionError(kind)  # every step type is read above

    def loop(
        self, node: Node, fields: dict[str, Node], name: str | None, where: Location
    ) -> LoopStep:
        given = [key for key in ("iterations", "duration") if key in fields]
        if len(given) != 1:
            got = "both" if given else "neither"
            self.fail(
                "loop step: expected exactly one of iterations and duration, got "
                f"{got}",
                node.line,
            )
        iterations = duration = None
        if "iterations" in fields:
            iterations = self.whole(fields["iterations"], "loop: iterations", 0)
        else:
            duration = self.duration(fields["duration"], "loop: duration")
        if ("steps" in fields) == ("action" in fields):
            got = "both" if "steps" in fields else "neither"
            self.fail(
                "loop step: expected exactly one of steps and action (one action "
                f"each iteration), got {got}",
                node.line,
            )
        if "steps" in fields:
            steps = self.steps(fields["steps"], "loop step: steps")
        else:
            steps = (self.action(fields["action"], None, self.at(fields["action"])),)
        return LoopStep(
            steps=steps,
            iterations=iterations,
            duration=duration,
            name=name,
            location=where,
        )

    def action(self, node: Node, name: str | None, where: Location) -> ActionStep:
        fields = self.fields(node, "action", ("method",), ("args",))
        method = self.choice(fields["method"], "action", ACTIONS)
        spec = ACTIONS[method]
        args: dict[str, Any] = {}
        args_node = fields.get("args")
        if args_node is not None and args_node.value is not None:
            self.mapping(args_node, f"{method}: args")
            args = plain(args_node)
        try:
            converted = check_arguments(spec, args)
        except ArgumentProblem as problem:
            line = node.line
            if problem.argument is not None and args_node is not None:
                line = args_node.value[problem.argument].line
            self.fail(problem.problem, line)
        task = converted.get(spec.task_argument) if spec.task_argument else None
        if task is not None and args_node is not None:
            line = args_node.value[spec.task_argument].line
            self.served(task, spec.task_scope, method, line)
        return ActionStep(method=method, args=converted, name=name, location=where)

    def served(self, task: str, scope: str, method: str, line: int) -> None:
        if scope == "served":
            tasks = self.setup.tasks
            if task not in tasks:
                hint = expected_one_of(task, tasks) if tasks else "(it serves none)"
                self.fail(
                    f"{method}: no handler or worker of the setup serves task "
                    f"{task!r} {hint}",
                    line,
                )
            return
        local = {m for spec in self.setup.handlers for m in spec.methods}
        if task not in local | set(BUILTIN_TASKS):
            hint = expected_one_of(task, local | set(BUILTIN_TASKS))
            self.fail(
                f"{method}: task {task!r} is neither a local handler of the setup "
                f"nor a built-in {hint}",
                line,
            )

    def chaos(self, node: Node, name: str | None, where: Location) -> ChaosStep:
        values = self.mapping(node, "chaos step")
        if "fault" not in values:
            self.fail(
                f"chaos step: missing field 'fault' (expected one of: "
                f"{', '.join(sorted(FAULTS))})",
                node.line,
            )
        kind = self.choice(values["fault"], "fault", FAULTS)
        cls, required, optional = FAULTS[kind]
        fields = self.fields(
            node, kind, ("type", "fault", *required), ("name", *optional)
        )
        read: dict[str, Any] = {}
        for key, child in fields.items():
            if key in ("type", "fault", "name"):
                continue
            read[key] = self.fault_field(kind, key, child)
        if read.get("pick") == "all" and "count" in read:
            self.fail(
                f"{kind}: count does not go with pick: all (which takes every one "
                "the target matches)",
                node.key_line("count"),
            )
        return ChaosStep(fault=cls(**read), name=name, location=where)

    def fault_field(self, kind: str, key: str, node: Node) -> object:
        what = f"{kind}: {key}"
        if key == "target":
            target = self.text(node, what)
            if kind in _ACTOR_FAULTS and not target.startswith("/"):
                self.fail(
                    f"{what}: expected an actor path glob such as /user/handlers/*, "
                    f"got {target!r}",
                    node.line,
                )
            return target
        if key == "count":
            return self.whole(node, what, 1)
        if key == "pick":
            return self.choice(node, "pick", PICKS)
        if key == "signal":
            return self.choice(node, "signal", _SIGNALS)
        if key == "probability":
            return self.value(node, what, "a number from 0 to 1", _probability)
        if key in ("restart_after", "jitter"):
            return self.duration(node, what, zero=True)
        return self.duration(node, what)  # duration, delay

    # Measures.

    def metrics(self, node: Node) -> tuple[MetricEntry, ...]:
        entries = []
        for item in self.items(node, "metrics"):
            if isinstance(item.value, dict) and len(item.value) == 1:
                ((name, unit_node),) = item.value.items()
                unit = self.text(unit_node, f"metrics: {name}: unit")
            else:
                name = self.value(
                    item, "metrics", "a metric's name, or {name: unit}", _string
                )
                unit = None
            if name not in METRICS:
                self.fail(
                    f"unknown metric {name!r} {expected_one_of(name, METRICS)}",
                    item.line,
                    item.column,
                )
            if unit is not None:
                problem = display_unit_problem(METRICS[name], unit)
                if problem is not None:
                    self.fail(f"metrics: {problem}", item.line)
                self.display_units[name] = unit
            entries.append(MetricEntry(name=name, unit=unit, location=self.at(item)))
        return tuple(entries)

    def checks(self, node: Node) -> tuple[CheckEntry, ...]:
        return tuple(
            CheckEntry(name=self.choice(item, "check", CHECKS), location=self.at(item))
            for item in self.items(node, "checks")
        )

    def conditions(self, node: Node | None, what: str) -> tuple[Condition, ...]:
        if node is None:
            return ()
        return tuple(self.condition(item, what) for item in self.items(node, what))

    def condition(self, node: Node, what: str) -> Condition:
        text = self.value(node, what, "a condition such as lost_jobs == 0", _text)
        try:
            expression = check_expression(
                parse_expression(text), display_units=self.display_units
            )
        except ExpressionError as error:
            if node.text_column is not None:
                self.fail(
                    f"{what}: {error.problem}",
                    node.line,
                    node.text_column + error.column - 1,
                )
            self.fail(
                f"{what}: {error.problem} (column {error.column} of {text!r})",
                node.line,
            )
        return Condition(text=text, expression=expression, location=self.at(node))


def _line_of(node: Node, path: str) -> int:
    """The line of the deepest node a config key path (``a.b[0].c``) reaches."""
    line = node.line
    for match in _KEY_PATH.finditer(path):
        name, index, quoted = match.groups()
        if index is not None and isinstance(node.value, list):
            if int(index) >= len(node.value):
                break
            node = node.value[int(index)]
            line = node.line
            continue
        key = name if name is not None else quoted[1:-1] if quoted else None
        if key is None or not isinstance(node.value, dict) or key not in node.value:
            break
        line = node.key_line(key)
        node = node.value[key]
    return line


def plain(node: Node) -> Any:
    """A node tree's values without their places."""
    if isinstance(node.value, dict):
        return {key: plain(child) for key, child in node.value.items()}
    if isinstance(node.value, list):
        return [plain(child) for child in node.value]
    return node.value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _string(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _whole(value: object, least: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= least:
        return value
    return None


def _probability(value: object) -> float | None:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value <= 1
    ):
        return float(value)
    return None


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _kind(default: Scalar) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    return "a string"


def _override(default: Scalar, given: object) -> Scalar | None:
    """``given`` as the default's type; None if it is not of it."""
    if isinstance(given, str) and not isinstance(default, str):
        return _from_text(default, given.strip())
    if isinstance(default, bool):
        return given if isinstance(given, bool) else None
    if isinstance(given, bool):
        return None
    if isinstance(default, int):
        return given if isinstance(given, int) else None
    if isinstance(default, float):
        if isinstance(given, int | float) and math.isfinite(given):
            return float(given)
        return None
    return given if isinstance(given, str) else None


def _from_text(default: Scalar, text: str) -> Scalar | None:
    if isinstance(default, bool):
        if text.lower() in _TRUE:
            return True
        return False if text.lower() in _FALSE else None
    try:
        if isinstance(default, int):
            return int(text)
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
