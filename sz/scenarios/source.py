"""A scenario file's YAML, every value with the line and column it was written on.

PyYAML composes the document into nodes (which keep their marks) and this
module turns them into :class:`Node` trees of plain values, so that the loader
can name the line of anything it refuses. ``${name}`` substitution of
parameters happens here too: on a whole value (``"${jobs}"``) the parameter's
value is put in as it is, keeping its type; inside longer text
(``"job-${n}"``) its text is; ``$$`` stands for one ``$``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import attrs
import yaml  # stubs: types-PyYAML

from ..config import _ConfigLoader
from ..errors import ScenarioError
from .hints import expected_one_of, show

if TYPE_CHECKING:
    from .model import Scalar

__all__ = ["MAX_SCENARIO_BYTES", "Node", "compose", "read_text", "substitute"]

#: The largest scenario file read, in bytes: a scenario is a page or two.
MAX_SCENARIO_BYTES = 2**20


@attrs.frozen(kw_only=True)
class Node:
    """A YAML value and where it was written.

    Attributes:
        value: A scalar (str, int, float, bool, None, or another YAML scalar
            type), a ``dict[str, Node]`` or a ``list[Node]``.
        line: The line it starts on, from 1.
        column: The column it starts at, from 1.
        text_column: For a string written on one line whose characters are its
            value's (plain, or quoted without escapes), the column of its first
            character; None otherwise.
        keys: For a mapping, each key's line and column.
    """

    value: Any
    line: int
    column: int
    text_column: int | None = None
    keys: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)

    def key_line(self, key: str) -> int:
        """The line of one of this mapping's keys (its own line if none such)."""
        return self.keys.get(key, (self.line, self.column))[0]


class _Loader(_ConfigLoader):
    """The config's loader (nesting and alias limits), composing only."""


def _fail(source: str, problem: str, line: int, column: int | None = None) -> NoReturn:
    raise ScenarioError(source, problem, line=line, column=column)


def read_text(path: str | os.PathLike[str]) -> str:
    """A scenario file's text, refused unread past :data:`MAX_SCENARIO_BYTES`.

    Raises:
        ScenarioError: The file is missing, unreadable, too large or not UTF-8.
    """
    source = os.fspath(path)
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_SCENARIO_BYTES + 1)
    except FileNotFoundError:
        raise ScenarioError(source, "no such file") from None
    except OSError as error:
        problem = f"cannot read the file ({error.strerror or error})"
        raise ScenarioError(source, problem) from None
    if len(data) > MAX_SCENARIO_BYTES:
        problem = f"larger than {MAX_SCENARIO_BYTES} bytes: not a scenario file"
        raise ScenarioError(source, problem)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ScenarioError(source, f"not UTF-8 text (byte {error.start})") from None


def compose(text: str, source: str) -> Node | None:
    """Parse YAML text into a :class:`Node` tree; None for an empty document.

    Raises:
        ScenarioError: Not YAML (or more than one document), a key written twice
            in a mapping, a key that is not a string, nesting or aliases past
            the config loader's limits; the message names the line.
    """
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as error:
        # A control character: refused as the reader meets the text, before
        # any mark exists.
        before = text[: error.position]
        _fail(
            source,
            f"invalid YAML: character {error.character:#x} is not allowed",
            before.count("\n") + 1,
            len(before) - (before.rfind("\n") + 1) + 1,
        )
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        return _Builder(loader, text, source).build(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(f"invalid YAML: {error.problem or error.context}".split())
        if mark is None:
            raise ScenarioError(source, problem) from None
        _fail(source, problem, mark.line + 1, mark.column + 1)
    except yaml.YAMLError as error:
        raise ScenarioError(
            source, " ".join(f"invalid YAML: {error}".split())
        ) from None
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, loader: _Loader, text: str, source: str) -> None:
        self.loader = loader
        self.text = text
        self.source = source

    def build(self, node: yaml.Node) -> Node:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, line, column)
        if isinstance(node, yaml.SequenceNode):
            items = [self.build(item) for item in node.value]
            return Node(value=items, line=line, column=column)
        value = self.loader.construct_object(node, deep=True)
        text_column = None
        if isinstance(value, str) and isinstance(node, yaml.ScalarNode):
            text_column = self.text_column(node, value)
        return Node(value=value, line=line, column=column, text_column=text_column)

    def text_column(self, node: yaml.ScalarNode, value: str) -> int | None:
        start, end = node.start_mark, node.end_mark
        if start.line != end.line:
            return None
        raw = self.text[start.index : end.index]
        if node.style is None and raw == value:
            return start.column + 1
        if node.style in {"'", '"'} and raw[1:-1] == value:
            return start.column + 2
        return None

    def mapping(self, node: yaml.MappingNode, line: int, column: int) -> Node:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *defaults`` is meant to be overridden
            key = self.loader.construct_object(key_node)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                _fail(
                    self.source,
                    f"expected a name as a key, got {show(key)}",
                    key_line,
                    key_node.start_mark.column + 1,
                )
            if key in seen:
                _fail(
                    self.source,
                    f"duplicate key {key!r} (first on line {seen[key]})",
                    key_line,
                    key_node.start_mark.column + 1,
                )
            seen[key] = key_line
        self.loader.flatten_mapping(node)
        values: dict[str, Node] = {}
        keys: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node)
            if not isinstance(key, str):
                _fail(
                    self.source,
                    f"expected a name as a key, got {show(key)}",
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
            values[key] = self.build(value_node)
            keys[key] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return Node(value=values, line=line, column=column, keys=keys)


_WHOLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PART = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def substitute(node: Node, parameters: Mapping[str, Scalar], source: str) -> Node:
    """Put the parameters' values in for each ``${name}`` in a tree's strings.

    Returns:
        The tree with every string substituted; a string that changed loses
        its ``text_column``.

    Raises:
        ScenarioError: A ``${name}`` names no parameter, or a ``${`` is not
            closed or holds no name; the message names the line and column.
    """
    value = node.value
    if isinstance(value, dict):
        children = {
            key: substitute(child, parameters, source) for key, child in value.items()
        }
        return attrs.evolve(node, value=children)
    if isinstance(value, list):
        items = [substitute(child, parameters, source) for child in value]
        return attrs.evolve(node, value=items)
    if not (isinstance(value, str) and "$" in value):
        return node
    if whole := _WHOLE.fullmatch(value):
        found = _lookup(whole[1], node, 0, parameters, source)
        return attrs.evolve(node, value=found, text_column=None)

    def put(match: re.Match[str]) -> str:
        if match.group() == "$$":
            return "$"
        name = match[1]
        if name is None or not _NAME.fullmatch(name):
            shown = "an unclosed ${" if name is None else f"${{{name}}}"
            _fail(
                source,
                f"{shown}: expected ${{name}} with a parameter's name",
                node.line,
                _column(node, match.start()),
            )
        return _text(_lookup(name, node, match.start(), parameters, source))

    text = _PART.sub(put, value)
    if text == value:
        return node
    return attrs.evolve(node, value=text, text_column=None)


def _column(node: Node, offset: int) -> int | None:
    return None if node.text_column is None else node.text_column + offset


def _lookup(
    name: str, node: Node, offset: int, parameters: Mapping[str, Scalar], source: str
) -> Scalar:
    try:
        return parameters[name]
    except KeyError:
        hint = expected_one_of(name, parameters) if parameters else "(there are none)"
        _fail(
            source,
            f"unknown parameter ${{{name}}} {hint}",
            node.line,
            _column(node, offset),
        )


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
