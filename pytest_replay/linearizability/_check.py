"""``check_linearizable`` and ``assert_linearizable``: the public entry points."""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Literal, cast

from ..history import Event
from ._counterexample import build_counterexample
from ._model import CONVENTIONS, Conventions, ModelError, ResolvedModel, resolve_model
from ._ops import Operation, OpList, events_to_ops
from ._partition import WHOLE, Outcome, interleave, split
from ._result import (
    CheckResult,
    Explored,
    LinearizabilityWarning,
    NotLinearizableError,
    PartitionStatus,
)
from ._search import PartitionSearch

__all__ = ["DEFAULT_MAX_MEMORY", "assert_linearizable", "check_linearizable"]

#: The default cap on the memory the search may hold (bytes, estimated).
DEFAULT_MAX_MEMORY = 1 << 30

OnUnknown = Literal["fail", "skip", "warn"]


def _events_of(history: Any) -> tuple[Sequence[Event], str]:
    name = getattr(history, "name", None)
    events = getattr(history, "events", history)
    if callable(events):
        events = events()
    if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
        raise TypeError(
            f"history must be a list of Event or an object with .events, got "
            f"{type(history).__name__} (load a file with pytest_replay.history.load(path))"
        )
    evs = events if isinstance(events, Sequence) else list(events)
    return evs, str(name) if name else "<history>"


def _conventions(history: Any, conventions: str | None) -> Conventions:
    if conventions is None:
        conventions = getattr(history, "conventions", None) or "knossos"
    if conventions not in CONVENTIONS:
        raise ValueError(
            f"conventions must be 'knossos' or 'porcupine', got {conventions!r} "
            "(see docs/linearizability.md, Conventions)"
        )
    return cast(Conventions, conventions)


def check_linearizable(
    history: Any,
    model: Any,
    *,
    conventions: str | None = None,
    timeout: float | None = None,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
) -> CheckResult:
    """Check whether ``history`` is linearizable with respect to ``model``.

    ``history``: a list of ``Event`` (or an object with ``.events``, such as the
    recorder). ``model``: a registered name (``"cas-register"``, see
    ``pytest_replay.models.names()``), a model object with ``init()`` and
    ``step(state, op)``, or a pair ``(init, step)`` of functions.
    ``conventions``: ``"knossos"`` (``fail`` ops did not happen; the default)
    or ``"porcupine"`` (a ``fail`` op is an observation; see the docs);
    ``None`` uses ``history.conventions`` when the history has one.
    ``timeout`` (seconds) and ``max_memory`` (bytes, estimated; ``None`` for no
    cap) bound the search: past either the verdict is ``"unknown"``, never a guess.

    Returns a ``CheckResult`` whose ``verdict`` is ``"ok"``, ``"illegal"`` or
    ``"unknown"``. Raises ``ModelError`` for an unusable model or an op the
    model cannot read, ``HistoryFormatError`` for a malformed history.
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if max_memory is not None and (type(max_memory) is not int or max_memory <= 0):
        raise ValueError(
            f"max_memory must be a positive number of bytes or None, got {max_memory!r}"
        )
    events, name = _events_of(history)
    conv = _conventions(history, conventions)
    started = time.perf_counter()
    deadline = None if timeout is None else started + timeout
    resolved = resolve_model(model, conv)
    oplist = events_to_ops(events, conv, resolved, name=name)
    parts = split(oplist.ops, resolved)
    if resolved.prune is not None:
        parts = {key: _prune(ops, resolved, oplist) for key, ops in parts.items()}
    # The search allocates millions of small tuples that are never part of a
    # reference cycle; the cyclic collector would rescan the growing cache on
    # every collection (quadratic time, 10x slower here), so it is paused.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        searches = [PartitionSearch(key, ops, resolved) for key, ops in parts.items()]
        for sr in searches:
            sr.try_witness()
        outcome: Outcome
        failed: PartitionSearch | None
        if resolved.refute is None:
            outcome, failed = interleave(searches, deadline=deadline, max_memory=max_memory)
        else:
            # The search's own counterexample shows more context, so it gets a
            # short head start; past it, a refutation by a few ops is tried.
            outcome, failed = interleave(
                searches, deadline=deadline, max_memory=max_memory, max_steps=_HEAD_START
            )
            if outcome == "steps":
                failed = next(
                    (r for sr in searches if sr.verdict is None and (r := _refute(sr, resolved))),
                    None,
                )
                if failed is not None:
                    outcome = "illegal"
                else:
                    outcome, failed = interleave(searches, deadline=deadline, max_memory=max_memory)
    finally:
        if gc_was_enabled:
            gc.enable()
    seconds = time.perf_counter() - started
    statuses = [
        PartitionStatus(
            key=sr.key,
            ops=len(sr.bit_ops),
            verdict=sr.verdict or "undecided",
            configurations=sr.configurations if sr.verdict is None else None,
            steps=sr.steps,
            furthest=sr.best_key[0] if sr.verdict is None else None,
            known_ops=sr.n_known,
        )
        for sr in searches
    ]
    explored = Explored(
        steps=sum(sr.steps for sr in searches),
        partitions=statuses,
        memory_estimate=sum(sr.memory_estimate() for sr in searches if sr.verdict is None),
    )
    common: dict[str, Any] = {
        "model": resolved.name,
        "conventions": conv,
        "ops": len(oplist.ops) + len(oplist.ignored),
        "seconds": seconds,
        "explored": explored,
        "oplist": oplist,
        "resolved_model": resolved,
        "partitioned": not (len(parts) == 1 and WHOLE in parts),
    }
    if outcome == "ok":
        per_part = {sr.key: [op for op, _ in sr.linearization] for sr in searches}
        return CheckResult(
            verdict="ok",
            linearizations=per_part,
            linearization=_merge(per_part),
            states={op.id: state for sr in searches for op, state in sr.linearization},
            **common,
        )
    if outcome == "illegal":
        assert failed is not None
        cex = build_counterexample(failed, oplist, resolved, whole=parts.get(failed.key))
        return CheckResult(verdict="illegal", counterexample=cex, **common)
    if outcome == "timeout":
        reason = f"timed out after {timeout:g} s"
    else:
        reason = f"the search outgrew the memory cap of {_mib(max_memory or 0)}"
    return CheckResult(verdict="unknown", reason=reason, **common)


# A refutation is a handful of ops; a search this long means the model's
# proposal was not one, and the full search is the better use of the time.
_REFUTE_BUDGET = 100_000
# Steps of the full search before a model's refutation is tried (a few ms).
_HEAD_START = 20_000


def _refute(search: PartitionSearch, model: ResolvedModel) -> PartitionSearch | None:
    """The search of the model's small non-linearizable sub-history, if it is one."""
    assert model.refute is not None
    subset = model.refute(search.ops)
    if not subset:
        return None
    ids = {op.id for op in search.ops}
    if any(op.id not in ids for op in subset):
        raise ModelError(f"model {model.name}: refute() returned ops that are not in the history")
    sub = PartitionSearch(search.key, subset, model)
    return sub if sub.run(_REFUTE_BUDGET) == "illegal" else None


def _prune(ops: list[Operation], model: ResolvedModel, oplist: OpList) -> list[Operation]:
    """The model's pruning of one partition, checked: only unknown results may go."""
    assert model.prune is not None
    kept = list(model.prune(ops))
    ids = {op.id for op in kept}
    for op in ops:
        if op.id not in ids:
            if op.known:
                raise ModelError(
                    f"model {model.name}: prune() dropped {op.describe()} (event "
                    f"{op.invoke_index}), whose result is known; only ops with unknown results "
                    "may be dropped"
                )
            oplist.ignored.append((op, "result unknown, and nothing observed it: it cannot matter"))
    return kept


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


def _merge(per_part: dict[Hashable, list[Operation]]) -> list[Operation]:
    """One global linearization from per-partition ones.

    Each op gets the earliest linearization point that follows its
    predecessor in its partition and its own invoke; points of different
    partitions then order the ops consistently with real time.
    """
    if len(per_part) == 1:
        return next(iter(per_part.values()))
    points: list[tuple[int, int, int, Operation]] = []
    for part, ops in enumerate(per_part.values()):
        t, seq = -1, 0
        for op in ops:
            if op.call > t:
                t, seq = op.call, 0
            else:
                seq += 1
            points.append((t, seq, part, op))
    points.sort(key=lambda p: (p[0], p[1], p[2]))
    return [p[3] for p in points]


def assert_linearizable(
    history: Any,
    model: Any,
    *,
    on_unknown: OnUnknown = "fail",
    conventions: str | None = None,
    timeout: float | None = None,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
) -> CheckResult:
    """Like ``check_linearizable``, but raise ``AssertionError`` unless the verdict is ok.

    The error (a ``NotLinearizableError``, with the result as ``.result``) has
    the counterexample as its text. An ``unknown`` verdict fails too,
    unless ``on_unknown`` is ``"skip"`` (skip the test: pytest's skip when
    pytest is installed, else ``unittest.SkipTest``) or ``"warn"`` (issue a
    ``LinearizabilityWarning`` and return). Returns the result.
    """
    if on_unknown not in ("fail", "skip", "warn"):
        raise ValueError(f"on_unknown must be 'fail', 'skip' or 'warn', got {on_unknown!r}")
    result = check_linearizable(
        history, model, conventions=conventions, timeout=timeout, max_memory=max_memory
    )
    if result.verdict == "ok":
        return result
    if result.verdict == "illegal" or on_unknown == "fail":
        raise NotLinearizableError(result)
    text = result.explain()
    if on_unknown == "warn":
        warnings.warn(LinearizabilityWarning(text), stacklevel=2)
        return result
    try:
        import pytest
    except ImportError:
        import unittest

        raise unittest.SkipTest(text) from None
    pytest.skip(text)
    raise AssertionError("unreachable")  # pragma: no cover  (pytest.skip raises)
