"""Fast paths: check a model's proposed linearization instead of searching.

A model may offer ``witness(ops) -> list[Operation] | None``: an order it
believes is a linearization, built in near-linear time from what the history
reveals (e.g. every ``get`` of an append-only string shows the order of the
appends before it). The proposal is never trusted: ``verify`` replays it
through ``step`` and checks real-time order exactly, in linear time. A
verified witness proves the partition linearizable; anything else (no
proposal, or a wrong one) falls back to the full search, so a fast path can
only save time, never change a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._model import Inconsistent, OneOf, ResolvedModel
from ._ops import Operation

__all__ = ["verify"]


def verify(
    order: Sequence[Operation],
    ops: Sequence[Operation],
    model: ResolvedModel,
    init: Any,
) -> list[tuple[Operation, Any]] | None:
    """``order`` with the state after each op if it is a linearization of ``ops``, else None.

    A linearization holds every op with a known result once, and may hold ops
    with unknown results. Each op is legal in the state before it, and each op
    can be given a point inside its interval with points increasing along the
    order: the earliest such points are ``max(previous point, invoke)``, so
    the order is feasible iff each of those points precedes the op's completion.
    """
    members = {op.id for op in ops}
    used: set[int] = set()
    point = -1
    state = init
    out: list[tuple[Operation, Any]] = []
    step = model.step
    for op in order:
        if op.id not in members or op.id in used:
            return None
        used.add(op.id)
        if op.call > point:
            point = op.call
        if op.ret is not None and point >= op.ret:
            return None
        try:
            state = step(state, op)
        except Exception:  # a witness that makes the model raise is just a wrong witness
            return None
        if isinstance(state, (Inconsistent, OneOf)):
            return None
        out.append((op, state))
    if any(op.ret is not None and op.id not in used for op in ops):
        return None
    return out
