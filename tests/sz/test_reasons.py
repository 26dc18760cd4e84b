"""Every reason a history row can carry is a documented member of ``sz.Reason``.

mypy checks the reasons written out where a ``Reason`` is expected; these tests
read the source for the rest: literals handed to a ``reason=`` that is not typed,
and the reasons built at run time (behind a ``cast``), whose every input they
enumerate. A reason added without its line in ``Reason`` fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import attrs

import sz
from sz import Reason
from sz.dispatcher import Unregister
from sz.retry import retry_reason
from sz.store import COALESCE_POLICIES

if TYPE_CHECKING:
    from collections.abc import Iterator

REASONS = set(get_args(Reason))
SOURCES = sorted(Path(sz.__file__).parent.rglob("*.py"))

#: Calls whose ``reason`` is not a history row's: a frame's (DISCONNECT), why
#: a handler was lost (the retry's reason is built from it, checked below), or
#: why an actor is killed (``ActorRef.kill``: its failure's text).
NOT_HISTORY = {"Disconnect", "Unregister", "lost", "_drop", "_lose_jobs_of", "kill"}


def _calls() -> Iterator[ast.Call]:
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                yield node


def _name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _strings(node: ast.expr) -> Iterator[str]:
    """The string literals ``node`` may evaluate to (not the pieces of f-strings)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _strings(node.body)
        yield from _strings(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _strings(value)


def _written_reasons() -> set[str]:
    found: set[str] = set()
    for call in _calls():
        name = _name(call)
        if name in NOT_HISTORY:
            continue
        for keyword in call.keywords:
            if keyword.arg == "reason":
                found.update(_strings(keyword.value))
        # The reasons given positionally: a withdrawn schedule's, a governor's.
        if name == "_withdraw" and len(call.args) > 1:
            found.update(_strings(call.args[1]))
        if name == "_Limited" and len(call.args) > 2:
            found.update(_strings(call.args[2]))
    return found


def _loss_causes() -> set[str]:
    """Every cause a handler's jobs can be lost for, as the code writes them."""
    causes = {"crash"}  # a local handler's loss carries no cause
    default = attrs.fields(Unregister).reason.default
    assert isinstance(default, str)
    causes.add(default)
    for call in _calls():
        name = _name(call)
        if name == "Unregister":
            for keyword in call.keywords:
                if keyword.arg == "reason":
                    causes.update(_strings(keyword.value))
        elif name == "_drop" and len(call.args) > 1:
            causes.update(_strings(call.args[1]))
        elif name == "lost" and len(call.args) > 3:
            causes.update(_strings(call.args[3]))
        elif name == "next_attempt":
            for keyword in call.keywords:
                if keyword.arg == "why":
                    causes.update(_strings(keyword.value))
    return causes


def test_every_reason_written_in_the_code_is_a_reason() -> None:
    written = _written_reasons()
    assert "dispatcher_full" in written  # the scan does see the code
    assert written - REASONS == set()


def test_every_reason_built_at_run_time_is_a_reason() -> None:
    built = [
        call
        for call in _calls()
        if _name(call) == "cast"
        and isinstance(call.args[0], ast.Constant)
        and call.args[0].value == "Reason"
    ]
    # Two places build a reason: a coalesced fire's and a lost job's retry. A
    # third needs its inputs enumerated here.
    assert len(built) == 2
    coalesced = {f"coalesce_{policy}" for policy in COALESCE_POLICIES}
    # "all" coalesces nothing, so it never gives a reason.
    coalesced.discard("coalesce_all")
    assert coalesced - REASONS == set()
    causes = _loss_causes()
    assert {"worker_lost", "worker_left", "restart"} <= causes
    retries = {retry_reason(None if cause == "crash" else cause) for cause in causes}
    assert retries - REASONS == set()


def test_every_reason_is_one_the_code_can_record() -> None:
    # Written out somewhere past its definition, or built from a cause.
    literals = {
        node.value
        for path in SOURCES
        if path.name != "jobs.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    built = {f"coalesce_{policy}" for policy in COALESCE_POLICIES} | {
        f"retry_after_{cause}" for cause in _loss_causes()
    }
    assert REASONS - literals - built == set()
