"""From events to operations, under the ``knossos`` or ``porcupine`` conventions.

An operation pairs an invoke with its completion. Its ``result`` is the
completion's value when the outcome is known, else ``UNKNOWN`` (never ``None``:
``None`` is a real result, "nil"). What each completion type means:

- ``ok``: the op took effect once inside [invoke, completion]; result known.
- ``info``, or no completion: the op may take effect once at any time after
  its invoke, or never; its result is unknown.
- ``fail`` under ``knossos``: the op did not happen; it is dropped.
- ``fail`` under ``porcupine``: the op completed and reported failure; it is an
  observation handed to the model (``status == "fail"``, result known), e.g. a
  failed CAS is legal only where the register differs from ``from``. A ``fail``
  whose value is a keyword such as ``:timed-out`` (and not the op's argument)
  has an unknown result instead: ``:fail :read :timed-out`` is a read whose
  result is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from ..history import Event, HistoryFormatError, Keyword
from ._model import Conventions, ModelError, ResolvedModel

__all__ = ["UNKNOWN", "OpList", "Operation", "Status", "events_to_ops"]

Status = Literal["ok", "fail", "info"]


class _Unknown:
    """The result of an op whose outcome is unknown (distinct from ``None``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


#: The result of an op whose outcome is unknown (``:info``, pending, timed out).
UNKNOWN: Final = _Unknown()


@dataclass(frozen=True, slots=True, eq=False)
class Operation:
    """One operation of a history, as the model's ``step`` sees it.

    ``value`` is the invoke's argument; ``result`` the completion's value, or
    ``UNKNOWN`` when the outcome is unknown (then ``known`` is false).
    ``status`` is ``"ok"``, ``"fail"`` (porcupine conventions only: the op
    completed and reported failure) or ``"info"`` (unknown outcome).
    ``invoke_index``/``complete_index`` are the events' original indices
    (``complete_index`` is ``None`` for an op still pending at the end).
    ``call``/``ret`` are positions in the event list (``ret`` is ``None`` when
    the op may take effect at any time after its call).
    """

    id: int
    process: int
    f: str
    value: Any
    result: Any
    status: Status
    key: Any
    invoke_index: int
    complete_index: int | None
    call: int
    ret: int | None

    @property
    def known(self) -> bool:
        """Whether the result is known (the op must be linearized)."""
        return self.result is not UNKNOWN

    def describe(self) -> str:
        """A short default rendering such as ``p3 cas(1, 2) fail`` or ``p1 read -> 4``."""
        key = "" if self.key is None else f"[{self.key!r}]"
        arg = "" if self.value is None else f"({_fmt(self.value)})"
        if self.result is UNKNOWN:
            tail = " -> ?"
        elif self.status == "fail":
            tail = " failed"
        elif self.value is None or (self.result is not None and self.result != self.value):
            tail = f" -> {_fmt(self.result)}"
        else:
            tail = ""
        return f"{self.f}{key}{arg}{tail}"


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(_fmt(v) for v in value) if value else "[]"
    if value is None:
        return "nil"
    return repr(value)


@dataclass(slots=True)
class OpList:
    """The operations to check and those set aside, with why."""

    ops: list[Operation]
    ignored: list[tuple[Operation, str]]
    events: Sequence[Event]


def _where(ev: Event) -> str:
    return f"event {ev.index}" + ("" if ev.line is None else f" (line {ev.line})")


def events_to_ops(
    events: Iterable[Event],
    conventions: Conventions,
    model: ResolvedModel,
    *,
    name: str = "<history>",
) -> OpList:
    """Pair invokes with completions and apply the conventions.

    Raises ``HistoryFormatError`` for a completion without an invoke, an
    invoke while the process already has one pending, or a completion whose
    ``f`` differs from its invoke's; ``ModelError`` for an op the model
    rejects as malformed.
    """
    evs = events if isinstance(events, Sequence) else list(events)
    ops: list[Operation] = []
    ignored: list[tuple[Operation, str]] = []
    open_ops: dict[int, tuple[int, Event]] = {}
    completions: dict[int, tuple[int, Event]] = {}
    invokes: list[tuple[int, Event]] = []
    for pos, ev in enumerate(evs):
        if not isinstance(ev, Event):
            raise TypeError(
                f"{name}: item {pos} of the history is a {type(ev).__name__}, not an Event "
                "(build events with pytest_replay.history.Event, or load a file with "
                "pytest_replay.history.load)"
            )
        process = ev.process
        if type(process) is not int:
            continue  # the nemesis and other non-client processes are not operations
        if ev.type == "invoke":
            if process in open_ops:
                _, first = open_ops[process]
                raise HistoryFormatError(
                    name,
                    ev.line,
                    f"{_where(ev)}: process {process} invokes {ev.f} while its {first.f} "
                    f"invoked at {_where(first)} is still pending (a process runs one op at "
                    "a time: complete it first)",
                )
            open_ops[process] = (pos, ev)
            invokes.append((pos, ev))
        elif ev.type in ("ok", "fail", "info"):
            opened = open_ops.pop(process, None)
            if opened is None:
                raise HistoryFormatError(
                    name,
                    ev.line,
                    f"{_where(ev)}: process {process} completes {ev.f} with {ev.type} but has "
                    "no pending invoke (every completion follows an invoke by the same process)",
                )
            if opened[1].f != ev.f:
                raise HistoryFormatError(
                    name,
                    ev.line,
                    f"{_where(ev)}: process {process} completes {ev.f} but its pending op, "
                    f"invoked at {_where(opened[1])}, is {opened[1].f}",
                )
            completions[opened[0]] = (pos, ev)
        else:
            raise HistoryFormatError(
                name,
                ev.line,
                f"{_where(ev)}: type {ev.type!r} must be one of invoke, ok, fail, info",
            )
    porcupine = conventions == "porcupine"
    validate = model.validate
    read_only = model.read_only
    for pos, inv in invokes:
        done = completions.get(pos)
        status: Status
        ret: int | None
        if done is None:
            status, result, ret, complete_index = "info", UNKNOWN, None, None
            why_unknown = "pending at the end"
        else:
            cpos, comp = done
            complete_index = comp.index
            if comp.type == "ok":
                status, result, ret = "ok", comp.value, cpos
            elif comp.type == "info":
                status, result, ret = "info", UNKNOWN, None
                why_unknown = "info (crashed)"
            elif not porcupine:
                op = Operation(
                    len(ops) + len(ignored),
                    cast(int, inv.process),
                    inv.f,
                    inv.value,
                    comp.value,
                    "fail",
                    inv.key,
                    inv.index,
                    complete_index,
                    pos,
                    cpos,
                )
                ignored.append((op, "failed: did not happen (knossos conventions)"))
                continue
            elif type(comp.value) is Keyword and comp.value != inv.value:
                status, result, ret = "info", UNKNOWN, None
                why_unknown = f"failed with {comp.value!r}: result unknown"
            else:
                status, result, ret = "fail", comp.value, cpos
        op = Operation(
            len(ops) + len(ignored),
            cast(int, inv.process),
            inv.f,
            inv.value,
            result,
            status,
            inv.key,
            inv.index,
            complete_index,
            pos,
            ret,
        )
        if validate is not None:
            problem = validate(op)
            if problem:
                raise ModelError(
                    f"{name}: {_where(inv)}: process {inv.process} {inv.f} {inv.value!r}: "
                    f"{problem} (model {model.name})"
                )
        if result is UNKNOWN and read_only is not None and read_only(op):
            ignored.append((op, f"{why_unknown}; has no effect, so it cannot matter"))
            continue
        ops.append(op)
    return OpList(ops, ignored, evs)
