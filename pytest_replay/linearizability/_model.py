"""What a model is: ``init()`` and ``step(state, op)``, plus optional hints.

A model is a small object (or a pair of functions) describing the sequential
object a history is checked against. ``step`` returns the next state, an
``Inconsistent(reason)`` when the op cannot happen in that state, or
``OneOf(s1, s2, ...)`` when the op may lead to several states (a
nondeterministic object). States must be hashable: the search remembers every
``(linearized ops, state)`` pair it has explored.

Optional methods, used when present:

- ``partition(op) -> key``: ops of different keys never interact, so each key
  is checked on its own (P-compositionality). Return ``ALL`` for an op that
  touches every key (the history is then checked whole).
- ``read_only(op) -> bool``: the op never changes the state, whatever it is.
  Such ops are linearized as soon as they are legal (never a loss), and one
  with an unknown result is dropped.
- ``describe_state(state) -> str`` / ``describe_op(op) -> str``: for messages.
- ``validate(op) -> str | None``: a reason when the op is malformed for the
  model (checked before the search, so the error names the event).
- ``for_conventions(name) -> model``: the variant of the model under the
  ``knossos`` or ``porcupine`` conventions.
- ``witness(ops) -> list[op] | None``: a proposed linearization of one
  partition's ops, built quickly from what the history reveals; the checker
  verifies it exactly and searches only when it is wrong (``_fastpath``).
- ``prune(ops) -> ops``: one partition's ops without the ops with unknown
  results that cannot matter to any linearization (a crashed append whose
  token no get ever shows); it may drop nothing else.
- ``refute(ops) -> ops | None``: a few of one partition's ops that are not
  linearizable even alone, and whose failure implies the partition's (for a
  register with distinct values: whole write-and-its-reads clusters). The
  checker searches that small sub-history; only if it is indeed illegal is
  the partition reported illegal, with that sub-history's counterexample.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from ._ops import Operation

__all__ = [
    "ALL",
    "Conventions",
    "Inconsistent",
    "ModelError",
    "OneOf",
    "ResolvedModel",
    "resolve_model",
]

Conventions = Literal["knossos", "porcupine"]
CONVENTIONS: Final = ("knossos", "porcupine")


class ModelError(ValueError):
    """A model that cannot be used: unknown name, missing method, malformed op, bad state."""


class Inconsistent:
    """What ``step`` returns when an op cannot take effect in a state.

    ``reason`` is shown in counterexamples ("read 3, but the register holds 4").
    With extra arguments, ``reason`` is a ``str.format`` template filled in
    only when the reason is read: the search calls ``step`` millions of times
    and reads almost none of the reasons, so formatting them eagerly would be
    most of its cost. It is falsy, so ``if not result:`` reads naturally.
    """

    __slots__ = ("_args", "_reason")

    def __init__(self, reason: str = "", *args: Any) -> None:
        self._reason = reason
        self._args = args

    @property
    def reason(self) -> str:
        if self._args:
            self._reason = self._reason.format(*self._args)
            self._args = ()
        return self._reason

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Inconsistent) and other.reason == self.reason

    def __hash__(self) -> int:
        return hash(("Inconsistent", self.reason))

    def __repr__(self) -> str:
        return f"Inconsistent({self.reason!r})"


class OneOf:
    """What ``step`` returns when an op may lead to any of several states.

    Use it for nondeterministic objects, e.g. a dequeue with an unknown result
    on an unordered queue may have removed any element.
    """

    __slots__ = ("states",)

    def __init__(self, *states: Hashable) -> None:
        if not states:
            raise ValueError("OneOf needs at least one state (return Inconsistent for none)")
        self.states: tuple[Hashable, ...] = tuple(dict.fromkeys(states))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OneOf) and other.states == self.states

    def __hash__(self) -> int:
        return hash(("OneOf", self.states))

    def __repr__(self) -> str:
        return "OneOf(" + ", ".join(map(repr, self.states)) + ")"


class _All:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ALL"


#: What ``partition(op)`` returns for an op that touches every partition.
ALL: Final = _All()


def _default_describe_state(state: Any) -> str:
    return repr(state)


def _default_describe_op(op: Operation) -> str:
    return op.describe()


class ResolvedModel:
    """A model with every optional hook filled in (internal adapter)."""

    __slots__ = (
        "describe_op",
        "describe_state",
        "init",
        "name",
        "partition",
        "prune",
        "read_only",
        "refute",
        "step",
        "target",
        "validate",
        "witness",
    )

    def __init__(self, target: Any, name: str) -> None:
        self.target = target
        self.name = name
        init = getattr(target, "init", None)
        step = getattr(target, "step", None)
        if not callable(init) or not callable(step):
            raise ModelError(
                f"{name} is not a model: it needs init() and step(state, op) methods "
                "(or pass a registered name such as 'cas-register', or a pair "
                "(init, step) of functions)"
            )
        self.init: Callable[[], Any] = init
        self.step: Callable[[Any, Operation], Any] = step
        self.partition: Callable[[Operation], Any] | None = _optional(target, "partition")
        self.read_only: Callable[[Operation], bool] | None = _optional(target, "read_only")
        self.validate: Callable[[Operation], str | None] | None = _optional(target, "validate")
        self.witness: Callable[[Sequence[Operation]], Sequence[Operation] | None] | None = (
            _optional(target, "witness")
        )
        self.prune: Callable[[Sequence[Operation]], Sequence[Operation]] | None = _optional(
            target, "prune"
        )
        self.refute: Callable[[Sequence[Operation]], Sequence[Operation] | None] | None = _optional(
            target, "refute"
        )
        self.describe_state: Callable[[Any], str] = (
            _optional(target, "describe_state") or _default_describe_state
        )
        self.describe_op: Callable[[Operation], str] = (
            _optional(target, "describe_op") or _default_describe_op
        )


def _optional(target: Any, attr: str) -> Any:
    value = getattr(target, attr, None)
    return value if callable(value) else None


class _FunctionModel:
    """A model made of a pair of functions ``(init, step)``."""

    def __init__(self, init: Callable[[], Any], step: Callable[[Any, Any], Any]) -> None:
        self.init = init
        self.step = step


def resolve_model(model: Any, conventions: Conventions) -> ResolvedModel:
    """Turn what the user passed (a name, an object, a class, a pair) into a model."""
    if isinstance(model, str):
        models = importlib.import_module("pytest_replay.models")
        target = models.get(model)
        name = model
    elif isinstance(model, tuple):
        if len(model) != 2 or not all(callable(part) for part in model):
            raise ModelError(
                f"a model given as a tuple must be a pair (init, step) of functions, got {model!r}"
            )
        target = _FunctionModel(model[0], model[1])
        name = getattr(model[1], "__qualname__", "custom model")
    elif isinstance(model, type):
        try:
            target = model()
        except TypeError as exc:
            raise ModelError(
                f"model class {model.__qualname__} cannot be created without arguments ({exc}); "
                "pass an instance instead"
            ) from exc
        name = getattr(target, "name", model.__qualname__)
    else:
        target = model
        name = getattr(model, "name", type(model).__qualname__)
    adapt = getattr(target, "for_conventions", None)
    if callable(adapt):
        target = adapt(conventions)
    return ResolvedModel(target, str(name))
