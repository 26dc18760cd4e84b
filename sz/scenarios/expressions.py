"""The condition language of scenarios: its syntax tree, parser and printer.

Assertions, ``wait_until`` conditions and the steady-state hypothesis are
written in it::

    lost_jobs == 0 and p99(job_latency) < 2s
    not (memory_usage >= 500MB or rate(fds) > 0.1/s)

A hand-written tokenizer and recursive-descent parser read it; nothing is ever
``eval``'d. The grammar, loosest first::

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand [("<" | "<=" | ">" | ">=" | "==" | "!=") operand]
    operand    := NUMBER [UNIT] | FUNCTION "(" METRIC ")" | METRIC | "(" or ")"

A comparison is between two values; ``and``, ``or`` and ``not`` join
comparisons; comparisons do not chain (``0 < x < 1`` is refused: write
``0 < x and x < 1``). Numbers are decimal, with an optional fraction, exponent
and sign (``-1.5e3``); a unit follows with no space (``2s``, ``500MB``,
``100/s``, ``1%``: see :mod:`sz.scenarios.units`). Metric names are identifiers, dotted
if need be. Which names exist and whether units agree is
:func:`sz.scenarios.check_expression`'s business, not the parser's.
"""

from __future__ import annotations

import math
import re
from typing import Literal, NoReturn

import attrs

from ..errors import ExpressionError
from .hints import expected_one_of
from .units import BYTE_UNITS, RATIO_UNITS, TIME_UNITS, unit_of

__all__ = [
    "COMPARISONS",
    "FUNCTIONS",
    "MAX_EXPRESSION_DEPTH",
    "And",
    "Call",
    "Compare",
    "Expression",
    "Metric",
    "Not",
    "Number",
    "Or",
    "Predicate",
    "Quantity",
    "Value",
    "parse_expression",
    "render",
]

Comparison = Literal["<", "<=", ">", ">=", "==", "!="]

#: The comparison operators.
COMPARISONS: tuple[Comparison, ...] = ("<", "<=", ">", ">=", "==", "!=")

#: The functions over a metric's samples, and what each gives.
FUNCTIONS: dict[str, str] = {
    "p50": "the median of the samples",
    "p90": "the 90th percentile of the samples",
    "p95": "the 95th percentile of the samples",
    "p99": "the 99th percentile of the samples",
    "p999": "the 99.9th percentile of the samples",
    "max": "the largest sample",
    "min": "the smallest sample",
    "mean": "the mean of the samples",
    "rate": "the trend per second: the least-squares slope of the samples over time",
    "count": "how many samples there are",
}

#: How deep parentheses and ``not`` may nest: a parser that recurses must stop
#: somewhere, and no condition a person writes comes near this.
MAX_EXPRESSION_DEPTH = 64

_KEYWORDS = frozenset({"and", "or", "not"})

# Positions are kept for error messages but are no part of what a node means:
# a condition parsed from "a<1" equals one parsed from "a < 1".
_column = attrs.field(default=0, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class Number:
    """A number without a unit: a count, or in the unit its metric is shown in.

    Attributes:
        value: The number.
        column: Where it starts in the text (from 1); 0 if built by hand.
    """

    value: float
    column: int = _column

    def __str__(self) -> str:
        return render(self)


@attrs.frozen(kw_only=True)
class Quantity:
    """A number with a unit: ``2s``, ``50ms``, ``500MB``, ``10MB/s``, ``100/s``, ``1%``.

    Attributes:
        value: The number, in ``unit``.
        unit: The unit as written.
        column: Where it starts in the text (from 1); 0 if built by hand.
    """

    value: float
    unit: str
    column: int = _column

    @property
    def base_value(self) -> float:
        """The value in base units: seconds, bytes, a count (each per second)."""
        found = unit_of(self.unit)
        if found is None:
            raise ExpressionError(f"unknown unit {self.unit!r}", column=self.column)
        return self.value * found[1]

    def __str__(self) -> str:
        return render(self)


@attrs.frozen(kw_only=True)
class Metric:
    """A metric's value: a number, or the latest of its samples.

    Attributes:
        name: The metric's name.
        column: Where it starts in the text (from 1); 0 if built by hand.
    """

    name: str
    column: int = _column

    def __str__(self) -> str:
        return render(self)


@attrs.frozen(kw_only=True)
class Call:
    """A function of a metric's samples: ``p99(job_latency)``.

    Attributes:
        function: One of :data:`FUNCTIONS`.
        metric: The metric whose samples it reads.
        column: Where it starts in the text (from 1); 0 if built by hand.
    """

    function: str
    metric: Metric
    column: int = _column

    def __str__(self) -> str:
        return render(self)


#: What a comparison compares.
Value = Number | Quantity | Metric | Call


@attrs.frozen(kw_only=True)
class Compare:
    """Two values compared: true or false.

    Attributes:
        op: One of :data:`COMPARISONS`.
        left: The value on the left.
        right: The value on the right.
        column: Where the operator is in the text (from 1); 0 if built by hand.
    """

    op: Comparison
    left: Value
    right: Value
    column: int = _column

    def __str__(self) -> str:
        return render(self)


@attrs.frozen(kw_only=True)
class And:
    """True if every operand is (two or more, evaluated left to right).

    Attributes:
        operands: The conditions joined.
        column: Where the first operand starts (from 1); 0 if built by hand.
    """

    operands: tuple[Predicate, ...]
    column: int = _column

    def __str__(self) -> str:
        return render(self)


@attrs.frozen(kw_only=True)
class Or:
    """True if any operand is (two or more, evaluated left to right).

    Attributes:
        operands: The conditions joined.
        column: Where the first operand starts (from 1); 0 if built by hand.
    """

    operands: tuple[Predicate, ...]
    column: int = _column

    def __str__(self) -> str:
        return render(self)


@attrs.frozen(kw_only=True)
class Not:
    """True if its operand is false.

    Attributes:
        operand: The condition negated.
        column: Where ``not`` is in the text (from 1); 0 if built by hand.
    """

    operand: Predicate
    column: int = _column

    def __str__(self) -> str:
        return render(self)


#: A condition: true or false.
Predicate = Compare | And | Or | Not
#: Any node of the syntax tree.
Expression = Value | Predicate


def render(expression: Expression) -> str:
    """The text of a syntax tree, which :func:`parse_expression` reads back equal.

    Nested ``and``/``or`` are parenthesized whatever their precedence, so that
    the text reads as the tree is built.
    """
    match expression:
        case Number(value=value):
            return _number(value)
        case Quantity(value=value, unit=unit):
            return f"{_number(value)}{unit}"
        case Metric(name=name):
            return name
        case Call(function=function, metric=metric):
            return f"{function}({metric.name})"
        case Compare(op=op, left=left, right=right):
            return f"{render(left)} {op} {render(right)}"
        case And(operands=operands):
            return " and ".join(_operand(operand) for operand in operands)
        case Or(operands=operands):
            return " or ".join(_operand(operand) for operand in operands)
        case Not(operand=operand):
            return f"not {_operand(operand)}"


def _number(value: float) -> str:
    # Whole numbers as people write them (0, 2000); others as Python reads
    # them back exactly (0.05, 1e-07).
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _operand(expression: Predicate) -> str:
    if isinstance(expression, And | Or):
        return f"({render(expression)})"
    return render(expression)


# Tokens.

TokenKind = Literal["number", "name", "keyword", "op", "(", ")", "end"]


@attrs.frozen
class _Token:
    kind: TokenKind
    text: str
    column: int
    value: float = 0.0
    unit: str | None = None


_SPACE = re.compile(r"[ \t\r\n]+")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_UNIT = re.compile(r"(?:%|[A-Za-z]+)(?:/[A-Za-z]+)?|/[A-Za-z]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPERATOR = re.compile(r"<=|>=|==|!=|<|>")
_UNITS = sorted(TIME_UNITS) + sorted(BYTE_UNITS) + sorted(RATIO_UNITS)


def _tokens(text: str) -> list[_Token]:
    tokens = []
    at = 0
    while at < len(text):
        if space := _SPACE.match(text, at):
            at = space.end()
            continue
        column = at + 1
        char = text[at]
        if number := _NUMBER.match(text, at):
            at = number.end()
            value = float(number.group())
            if not math.isfinite(value):
                _fail(f"{number.group()!r} is too large a number", column)
            unit = None
            if found := _UNIT.match(text, at):
                unit = found.group()
                if unit_of(unit) is None:
                    _fail(
                        f"unknown unit {unit!r} (expected one of: "
                        f"{', '.join(_UNITS)}; a rate adds /s, /m or /h, as in "
                        "10MB/s or 100/s)",
                        at + 1,
                    )
                at = found.end()
            tokens.append(_Token("number", text[column - 1 : at], column, value, unit))
        elif name := _NAME.match(text, at):
            at = name.end()
            word = name.group()
            kind: TokenKind = "keyword" if word in _KEYWORDS else "name"
            tokens.append(_Token(kind, word, column))
        elif operator := _OPERATOR.match(text, at):
            at = operator.end()
            tokens.append(_Token("op", operator.group(), column))
        elif char in "()":
            at += 1
            tokens.append(_Token("(" if char == "(" else ")", char, column))
        else:
            _fail(_stray(text, at), column)
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _stray(text: str, at: int) -> str:
    pair = text[at : at + 2]
    hint = {
        "=": " (compare with ==)",
        "&&": " (join with and)",
        "&": " (join with and)",
        "||": " (join with or)",
        "|": " (join with or)",
        "!": " (negate with not)",
    }
    return f"unexpected {text[at]!r}" + hint.get(pair, hint.get(text[at], ""))


def _fail(problem: str, column: int) -> NoReturn:
    raise ExpressionError(problem, column=column)


# The parser.

_OPS: dict[str, Comparison] = {op: op for op in COMPARISONS}
_VALUES = (Number, Quantity, Metric, Call)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def at_keyword(self, word: str) -> bool:
        return self.token.kind == "keyword" and self.token.text == word

    def nest(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            _fail(f"nested deeper than {MAX_EXPRESSION_DEPTH} levels", column)

    def condition(self) -> Predicate:
        start = self.token.column
        expression = self.or_()
        if self.token.kind != "end":
            self.unexpected_after(expression, "the end")
        return self.predicate(expression, start)

    def predicate(self, expression: Expression, column: int) -> Predicate:
        if isinstance(expression, _VALUES):
            _fail(
                "expected a condition (a comparison such as lost_jobs == 0), got "
                f"the value {render(expression)}",
                column,
            )
        return expression

    def or_(self) -> Expression:
        start = self.token.column
        first = self.and_()
        if not self.at_keyword("or"):
            return first
        operands = [self.predicate(first, start)]
        while self.at_keyword("or"):
            self.take()
            column = self.token.column
            operands.append(self.predicate(self.and_(), column))
        return Or(operands=tuple(operands), column=start)

    def and_(self) -> Expression:
        start = self.token.column
        first = self.not_()
        if not self.at_keyword("and"):
            return first
        operands = [self.predicate(first, start)]
        while self.at_keyword("and"):
            self.take()
            column = self.token.column
            operands.append(self.predicate(self.not_(), column))
        return And(operands=tuple(operands), column=start)

    def not_(self) -> Expression:
        if not self.at_keyword("not"):
            return self.comparison()
        column = self.take().column
        self.nest(column)
        operand_start = self.token.column
        operand = self.predicate(self.not_(), operand_start)
        self.depth -= 1
        return Not(operand=operand, column=column)

    def comparison(self) -> Expression:
        left = self.operand()
        op = self.token
        if op.kind != "op":
            return left
        self.take()
        right = self.operand()
        following = self.token
        if following.kind == "op":
            _fail(
                "comparisons do not chain: join them with and (0 < x and x < 1)",
                following.column,
            )
        if not isinstance(left, _VALUES):
            _fail(self.not_a_value(op.text), left.column)
        if not isinstance(right, _VALUES):
            _fail(self.not_a_value(op.text), right.column)
        return Compare(op=_OPS[op.text], left=left, right=right, column=op.column)

    @staticmethod
    def not_a_value(op: str) -> str:
        return (
            f"expected a value on each side of {op}, got a condition in "
            "parentheses: comparisons do not nest"
        )

    def operand(self) -> Expression:
        token = self.token
        if token.kind == "number":
            self.take()
            if token.unit is None:
                return Number(value=token.value, column=token.column)
            return Quantity(value=token.value, unit=token.unit, column=token.column)
        if token.kind == "name":
            self.take()
            if self.token.kind != "(":
                return Metric(name=token.text, column=token.column)
            return self.call(token)
        if token.kind == "(":
            self.take()
            self.nest(token.column)
            inner = self.or_()
            self.depth -= 1
            if self.token.kind != ")":
                self.unexpected_after(
                    inner, f"')' to close the '(' at column {token.column}"
                )
            self.take()
            return inner
        self.unexpected("a number, a metric, a function such as p99(...), or '('")

    def call(self, function: _Token) -> Call:
        if function.text not in FUNCTIONS:
            _fail(
                f"unknown function {function.text!r} "
                f"{expected_one_of(function.text, FUNCTIONS)}",
                function.column,
            )
        self.take()
        argument = self.token
        if argument.kind != "name":
            self.unexpected(f"a metric name inside {function.text}(...)")
        self.take()
        if self.token.kind != ")":
            self.unexpected(f"')' to close {function.text}(")
        self.take()
        return Call(
            function=function.text,
            metric=Metric(name=argument.text, column=argument.column),
            column=function.column,
        )

    def unexpected_after(self, expression: Expression, expected: str) -> NoReturn:
        token, before = self.token, self.tokens[self.at - 1]
        if token.kind == "name" and token.text in _UNITS and before.kind == "number":
            _fail(
                f"a unit follows its number with no space: {before.text}{token.text}",
                token.column,
            )
        if isinstance(expression, _VALUES):
            self.unexpected(f"a comparison ({', '.join(COMPARISONS)})")
        self.unexpected(f"and, or, or {expected}")

    def unexpected(self, expected: str) -> NoReturn:
        token = self.token
        got = "the end" if token.kind == "end" else repr(token.text)
        _fail(f"expected {expected}, got {got}", token.column)


def parse_expression(text: str) -> Predicate:
    """Parse a condition: comparisons joined by ``and``, ``or`` and ``not``.

    Args:
        text: The condition as written.

    Returns:
        Its syntax tree; every node knows its column.

    Raises:
        ExpressionError: ``text`` is not a condition: the message says what was
            expected and ``column`` where (a stray character, an unknown unit or
            function, a missing operand or parenthesis, a value where a
            condition belongs, a chained comparison, nesting deeper than
            :data:`MAX_EXPRESSION_DEPTH`).
    """
    return _Parser(text).condition()
