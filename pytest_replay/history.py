"""Jepsen-style operation histories: the recorder and history file formats.

Usable without pytest. The checker lives in ``pytest_replay.linearizability``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Event", "EventType", "Keyword"]

EventType = Literal["invoke", "ok", "fail", "info"]


@dataclass(frozen=True, slots=True)
class Keyword:
    """An EDN keyword value such as ``:timed-out`` (``Keyword("timed-out")``)."""

    name: str

    def __repr__(self) -> str:
        return ":" + self.name


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a history: an invocation or a completion of an operation.

    ``index`` is the position in the history (index order is real-time order).
    ``process`` is the client id (an int), or a string such as ``"nemesis"`` for
    ops that are not client operations. ``f`` is the operation name without a
    leading colon (``"read"``, ``"write"``, ``"cas"``, ``"append"``, ``"txn"`` ...).
    ``value`` is the argument on an invoke and the result on a completion;
    vectors are tuples, ``nil`` is ``None`` and EDN keywords are ``Keyword``.
    ``key`` is the ``:key`` of key-value histories (``None`` when absent).
    """

    index: int
    process: int | str
    type: EventType
    f: str
    value: Any = None
    time: int | None = None
    key: Any = None
    error: Any = None
