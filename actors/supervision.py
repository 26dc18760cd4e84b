"""How a parent treats its children: strategy, restart types, intensity and backoff.

The vocabulary is OTP's ``supervisor`` module; the restart itself is Akka's (in place,
same ref and mailbox, fresh instance).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

import attrs

if TYPE_CHECKING:
    import random

    # Annotation only: cattrs never structures a Child, and actor.py imports us.
    from .actor import Actor  # noqa: TC004

__all__ = [
    "Backoff",
    "Child",
    "Overflow",
    "RestartType",
    "Strategy",
    "Supervision",
]

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]
Overflow = Literal["block", "fail", "drop_newest", "drop_oldest"]

T = TypeVar("T")

STRATEGIES: tuple[str, ...] = get_args(Strategy)
RESTART_TYPES: tuple[str, ...] = get_args(RestartType)
OVERFLOWS: tuple[str, ...] = get_args(Overflow)


def _one_of(
    choices: tuple[str, ...],
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise ValueError(
                f"{attribute.name} must be one of {', '.join(map(repr, choices))}, "
                f"got {value!r}"
            )

    return check


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _not_negative(
    _instance: Any, attribute: attrs.Attribute[Any], value: float
) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Backoff:
    """The delay before a crashed child is restarted.

    The first delay is ``min``; each further consecutive restart multiplies it by
    ``factor``, never beyond ``max``, and spreads it by up to ``±jitter`` of itself.
    Once the child has stayed up ``reset_after`` seconds the next delay is ``min``
    again. Without a ``Backoff`` (the default) a child restarts at once.
    """

    min: float = attrs.field(default=0.1, validator=_not_negative)
    max: float = attrs.field(default=30.0, validator=_not_negative)
    factor: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_not_negative)
    reset_after: float = attrs.field(default=10.0, validator=_not_negative)

    def __attrs_post_init__(self) -> None:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        if self.jitter > 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Return the delay before consecutive restart number ``attempt`` (from 0)."""
        if attempt <= 0:
            return self.min
        # Past the exponent that reaches max, factor**attempt only risks overflow.
        if self.factor > 1 and self.min > 0:
            attempt = min(
                attempt, math.ceil(math.log(self.max / self.min, self.factor))
            )
        base = min(self.max, self.min * self.factor**attempt)
        if self.jitter:
            base *= 1 + rng.uniform(-self.jitter, self.jitter)
        return max(0.0, min(self.max, base))


@attrs.frozen(kw_only=True)
class Supervision:
    """How an actor treats its children when one of them exits.

    Attributes:
        strategy: Which children restart when one fails, ``"one_for_one"`` by default:
            ``"one_for_one"`` restarts the failed child only, ``"one_for_all"`` all
            children, ``"rest_for_one"`` the failed child and those started after it.
        max_restarts: Restarts tolerated within ``within`` seconds, 3 by default,
            counted over all children of this parent together (as OTP does; a group
            restart counts once). One more and (unless ``past_intensity`` says
            otherwise) the parent gives up: the child is
            stopped for good, the parent fails with the child's error, and the failure
            escalates to the parent's own parent.
        within: The sliding window for ``max_restarts``, in seconds, 5.0 by default.
        past_intensity: What a restart beyond the intensity does, None by default:
            None gives up and escalates (OTP's rule). A ``Backoff`` never gives up:
            each restart beyond the intensity waits the ``Backoff``'s delay (or the
            child's own, if longer), growing with every such restart of that child
            until it stays up ``reset_after`` seconds; the first restart of each
            burst beyond the intensity is logged at WARNING (logger ``actors``). A
            crash loop is thus paced and seen, never spinning hot, and never ends
            the parent.
        count_kills: Whether a child killed by another actor (``ActorRef.kill``)
            counts against the intensity, True by default (OTP's rule: every
            restart counts). False restarts such a child at once (after its own
            ``backoff``, if it has one), neither counted in the window nor backed
            off by ``past_intensity``: a kill from outside is not the child
            failing by itself, and whoever kills sets their pace. A child that
            crashes, or kills itself, is counted and paced as ever.
    """

    strategy: Strategy = attrs.field(
        default="one_for_one", validator=_one_of(STRATEGIES)
    )
    max_restarts: int = attrs.field(default=3, validator=_not_negative)
    within: float = attrs.field(default=5.0, validator=_positive)
    past_intensity: Backoff | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(Backoff)),
    )
    count_kills: bool = attrs.field(
        default=True, validator=attrs.validators.instance_of(bool)
    )


def validate_spawn_options(
    *, capacity: object, overflow: object, restart: object, backoff: object
) -> None:
    """Raise ``ValueError`` naming the first bad spawn option."""
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
    if overflow not in OVERFLOWS:
        raise ValueError(
            f"overflow must be one of {', '.join(map(repr, OVERFLOWS))}, "
            f"got {overflow!r}"
        )
    if restart not in RESTART_TYPES:
        raise ValueError(
            f"restart must be one of {', '.join(map(repr, RESTART_TYPES))}, "
            f"got {restart!r}"
        )
    if backoff is not None and not isinstance(backoff, Backoff):
        raise ValueError(f"backoff must be a Backoff or None, got {backoff!r}")


@attrs.frozen(init=False)
class Child:
    """One child in a ``Supervisor``'s declared list: ``spawn``'s arguments, kept.

    ``Child(factory, *args, name=..., restart="transient", backoff=None,
    capacity=1000, overflow="block")`` means what ``spawn`` with the same arguments
    means.
    """

    factory: Callable[..., Actor]
    args: tuple[Any, ...]
    name: str
    restart: RestartType
    backoff: Backoff | None
    capacity: int
    overflow: Overflow

    def __init__(
        self,
        factory: Callable[..., Actor],
        *args: Any,
        name: str,
        restart: RestartType = "transient",
        backoff: Backoff | None = None,
        capacity: int = 1000,
        overflow: Overflow = "block",
    ) -> None:
        validate_spawn_options(
            capacity=capacity, overflow=overflow, restart=restart, backoff=backoff
        )
        self.__attrs_init__(factory, args, name, restart, backoff, capacity, overflow)


class RestartWindow:
    """The restarts a parent made recently, to enforce ``max_restarts``/``within``."""

    __slots__ = ("_times",)

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def allow(self, now: float, supervision: Supervision) -> bool:
        """Record a restart at ``now``; return False when it exceeds the intensity."""
        times = self._times
        while times and now - times[0] > supervision.within:
            times.popleft()
        if len(times) >= supervision.max_restarts:
            if supervision.past_intensity is not None and times:
                # A parent that never gives up keeps its latest restarts: the
                # burst lasts while restarts keep coming this fast.
                times.append(now)
                times.popleft()
            return False
        times.append(now)
        return True

    def count(self, now: float, supervision: Supervision) -> int:
        """Return the restarts at ``now`` still within ``supervision.within``."""
        return sum(now - at <= supervision.within for at in self._times)

    def clear(self) -> None:
        """Forget every recorded restart (the parent itself was restarted)."""
        self._times.clear()


def restart_group(strategy: Strategy, children: Sequence[T], failed: T) -> list[T]:
    """Return the children, in start order, that restart when ``failed`` fails."""
    if strategy == "one_for_one":
        return [failed]
    if strategy == "one_for_all":
        return list(children)
    index = children.index(failed)
    return list(children[index:])
