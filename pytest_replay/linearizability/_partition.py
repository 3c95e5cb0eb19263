"""P-compositionality: split a history into independent parts, and interleave their checks.

A history is linearizable iff each of its partitions is (Herlihy & Wing's
locality; Porcupine's P-compositionality), so each key of a ``kv`` history is
checked alone: many small searches instead of one exponentially larger one.

The partitions' searches are interleaved in slices, smallest first, and the
first illegal partition ends the check at once: a slow or undecidable
partition must not hide a fast illegal one.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from typing import Any, Literal

from ._model import ALL, ModelError, ResolvedModel
from ._ops import Operation
from ._search import PartitionSearch

__all__ = ["WHOLE", "interleave", "split"]

#: The key of the single partition of a history that is not partitioned.
WHOLE: Any = None

# Slices start small and grow slowly: when every partition is slow but one is
# illegal, the check costs about (partitions x growth x that one's steps), and
# a call to run() costs only a few microseconds.
_FIRST_SLICE = 200
_GROWTH = 1.25
_MAX_SLICE = 50_000


def split(ops: Sequence[Operation], model: ResolvedModel) -> dict[Hashable, list[Operation]]:
    """Ops grouped by ``model.partition(op)``; one group ``WHOLE`` when not partitioned."""
    partition = model.partition
    if partition is None:
        return {WHOLE: list(ops)}
    parts: dict[Hashable, list[Operation]] = {}
    for op in ops:
        try:
            key = partition(op)
            group = parts.get(key)
        except TypeError as exc:
            raise ModelError(
                f"model {model.name}: partition() returned an unhashable key for "
                f"{op.describe()} (event {op.invoke_index}): {exc}"
            ) from exc
        if key is ALL:
            return {WHOLE: list(ops)}
        if group is None:
            parts[key] = [op]
        else:
            group.append(op)
    return parts


Outcome = Literal["ok", "illegal", "timeout", "memory", "steps"]


def interleave(
    searches: Sequence[PartitionSearch],
    *,
    deadline: float | None,
    max_memory: int | None,
    max_steps: int | None = None,
) -> tuple[Outcome, PartitionSearch | None]:
    """Run the searches in slices until one is illegal, all are ok, or a limit is hit.

    Returns the outcome and, when illegal, the partition that failed. The
    searches keep their place: after ``"steps"`` (``max_steps`` more steps were
    taken) calling again resumes them.
    """
    stop_at = None if max_steps is None else sum(sr.steps for sr in searches) + max_steps
    active = sorted(searches, key=lambda sr: len(sr.bit_ops))
    memory = dict.fromkeys(map(id, active), 0)
    used = 0
    budget = _FIRST_SLICE
    while active:
        still: list[PartitionSearch] = []
        last = len(active) - 1
        for position, sr in enumerate(active):
            verdict = sr.run(budget)
            if verdict == "illegal":
                return "illegal", sr
            if verdict is None:
                still.append(sr)
            undecided = bool(still) or position < last
            if deadline is not None and undecided and time.perf_counter() > deadline:
                return "timeout", None
            if stop_at is not None and (still or position < last):
                if sum(x.steps for x in searches) >= stop_at:
                    return "steps", None
            if max_memory is not None:
                # a running total: summing every partition after each slice is quadratic
                size = sr.memory_estimate() if verdict is None else 0
                used += size - memory[id(sr)]
                memory[id(sr)] = size
                if used > max_memory:
                    return "memory", None
        active = still
        budget = min(int(budget * _GROWTH), _MAX_SLICE)
    return "ok", None
