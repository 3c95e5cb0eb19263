"""The search for a linearization of one partition (Wing & Gong, with Lowe's cache).

A configuration is ``(L, s)``: the set ``L`` of ops linearized so far (a
Python int used as a bitset) and the model state ``s`` after them. From a
configuration, the candidates are the ops not in ``L`` invoked before the
earliest completion of an op not in ``L`` (that op, the *forced* op, must be
linearized before anything invoked after its completion). The search is a
depth-first walk over configurations that remembers every configuration it
has entered, so none is explored twice (Lowe's cache); a history is
linearizable when a configuration holds every op whose result is known.

Two numberings of the ops make the loop do little work per step:

- ``M`` holds the ops with a known result numbered by completion, so the
  forced op is the lowest zero bit of ``M`` and success is "``M`` full";
- ``L`` numbers every op by *rank*, the order candidates are tried in
  (lowest bit first). By default the rank is the completion order, so the
  forced op is tried first, then the others by completion: Lowe's
  just-in-time order, which linearizes an op only when its completion
  requires it and keeps the other options open. A model's proposed
  linearization (``witness``, see ``_fastpath``) that fails verification
  still makes a good rank: the search then follows it and only backtracks
  where it was wrong.

And the search skips what cannot matter:

- ops with an unknown result never have to be linearized (success needs
  only ``M`` full), and only the earliest (by invoke) not yet linearized op of
  a group with the same input is a candidate: ops with the same input and
  unknown results are interchangeable (symmetry: the bitset then says how
  many of each group were used, not which ones);
- an op with an unknown result is never placed where it leaves the state
  unchanged (linearizing it later, or never, is at least as good);
- a read-only op with a known result that is legal in the current state is
  linearized at once without trying alternatives: moving it earlier changes
  no state and breaks no real-time order, so nothing is lost.

``run(budget)`` advances the walk by at most ``budget`` steps and can be
called again: partitions are interleaved that way so that a slow partition
cannot hide a fast illegal one.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable, Sequence
from typing import Any, Final, Literal

from ._fastpath import verify
from ._model import Inconsistent, ModelError, OneOf, ResolvedModel
from ._ops import Operation

__all__ = ["PartitionSearch"]

_MISS: Final = object()
_INC: Final = object()  # memo marker: the op is illegal in that state


class _Multi:
    """Memo marker: the op leads to any of several states (``OneOf``)."""

    __slots__ = ("states",)

    def __init__(self, states: tuple[Hashable, ...]) -> None:
        self.states = states


# Frames on the stack: (L, M, s, remaining candidates, remaining OneOf alternatives).
_Frame = tuple[int, int, Any, int, "tuple[int, list[Any]] | None"]
Verdict = Literal["ok", "illegal"]


def _input_class(op: Operation) -> Hashable:
    try:
        cls = (op.f, op.key, op.value)
        hash(cls)
    except TypeError:  # an unhashable argument: the op is its own class
        return ("op", op.id)
    return cls


class PartitionSearch:
    """The search over one partition's operations (see the module doc)."""

    def __init__(self, key: Hashable, ops: Sequence[Operation], model: ResolvedModel) -> None:
        self.key = key
        self.model = model
        self.ops = list(ops)
        self.init_state = model.init()
        _check_hashable(self.init_state, model, "init()")
        self.steps = 0
        self._failing: tuple[int, Any] = (0, None)
        #: when ok: the ops in linearization order, with the state after each
        self.linearization: list[tuple[Operation, Any]] = []
        #: how the verdict was reached: "search", "witness" (a verified fast
        #: path) or "guided search" (a search ranked by an unverified proposal)
        self.method = "search"
        self._build(None)
        self.verdict: Verdict | None = "ok" if self.n_known == 0 else None

    def _build(self, hint: Sequence[Operation] | None) -> None:
        """Number the ops (ranked by ``hint`` when given) and reset the walk."""
        ops = self.ops
        known = sorted((op for op in ops if op.ret is not None), key=lambda op: op.ret or 0)
        self._by_ret = known
        self.n_known = k = len(known)
        ret_index = {op.id: n for n, op in enumerate(known)}
        # unknown-result ops grouped by input; within a group, by invoke order
        groups: dict[Hashable, list[Operation]] = {}
        for op in sorted((op for op in ops if op.ret is None), key=lambda op: op.call):
            groups.setdefault(_input_class(op), []).append(op)
        if hint is None:
            ranked = known + [op for group in groups.values() for op in group]
        else:
            place = {op.id: n for n, op in enumerate(hint)}
            far = len(place)
            ranked = sorted(
                ops,
                key=lambda op: (
                    place.get(op.id, far),
                    op.ret if op.ret is not None else len(ops) * 4,
                    op.call,
                ),
            )
        self.bit_ops: list[Operation] = ranked
        n = len(ranked)
        bit_of = {op.id: b for b, op in enumerate(ranked)}
        self._mbit = [1 << ret_index[op.id] if op.id in ret_index else 0 for op in ranked]
        self._unknown = bytearray(0 if op.id in ret_index else 1 for op in ranked)
        self._guard = [0] * n
        for group in groups.values():
            for j in range(1, len(group)):
                self._guard[bit_of[group[j].id]] = 1 << bit_of[group[j - 1].id]
        # before[o]: every op invoked before the completion of the o-th known op
        by_call = sorted(range(n), key=lambda b: ranked[b].call)
        self._before = [0] * k
        running = 0
        pos = 0
        for o in range(k):
            ret = known[o].ret
            assert ret is not None
            while pos < n and ranked[by_call[pos]].call < ret:
                running |= 1 << by_call[pos]
                pos += 1
            self._before[o] = running
        read_only = self.model.read_only
        self._ro = 0
        self._ro_flags = bytearray(n)
        if read_only is not None:
            for b, op in enumerate(ranked):
                if op.ret is not None and read_only(op):
                    self._ro |= 1 << b
                    self._ro_flags[b] = 1
        self._full = (1 << k) - 1
        self._trans: list[dict[Any, Any]] = [{} for _ in range(n)]
        # the walk's position
        self._L = 0
        self._M = 0
        self._s: Any = self.init_state
        self._cands = self._before[0] if k else 0
        self._alt: tuple[int, list[Any]] | None = None
        self._stack: list[_Frame] = []
        self._seen: set[tuple[int, Any]] = set()
        # the furthest configuration reached: (forced op index, depth) and its path
        self.best_key = (0, 0)
        self.best: list[tuple[int, Any]] = [(0, self.init_state)]

    # ------------------------------------------------------------------ sizes

    @property
    def configurations(self) -> int:
        """Configurations entered so far (the size of the cache)."""
        return len(self._seen)

    def memory_estimate(self) -> int:
        """Rough bytes held by the cache, the memo and the stack."""
        int_bytes = 28 + 4 * ((len(self.bit_ops) + 29) // 30)
        # a set slot, a 2-tuple and its int; states are mostly shared with the memo
        seen = len(self._seen) * (40 + 56 + int_bytes)
        memo = sum(map(len, self._trans)) * (100 + self._state_bytes())
        stack = len(self._stack) * (72 + int_bytes)
        return seen + memo + stack

    def _state_bytes(self) -> int:
        s = self._s
        size = sys.getsizeof(s)
        if isinstance(s, (tuple, frozenset)):
            size += sum(sys.getsizeof(x) for x in s)
        return size

    def try_witness(self) -> bool:
        """Decide the partition with the model's proposed linearization, if it verifies."""
        witness = self.model.witness
        if self.verdict is not None or witness is None:
            return False
        order = witness(self.ops)
        if order is None:
            return False
        lin = verify(order, self.ops, self.model, self.init_state)
        if lin is None:
            # wrong somewhere, but likely right almost everywhere: search in its order
            self._build(order)
            self.method = "guided search"
            return False
        self.verdict = "ok"
        self.linearization = lin
        self.method = "witness"
        self._seen = set()
        self._trans = []
        return True

    # ------------------------------------------------------------------ model calls

    def _apply(self, i: int, s: Any) -> Any:
        """The memo miss path: ask the model, check what it says, remember it."""
        op = self.bit_ops[i]
        model = self.model
        try:
            result = model.step(s, op)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(
                f"model {model.name} raised {type(exc).__name__}: {exc} in step(state="
                f"{s!r}, op={op.describe()}) for the op invoked at event {op.invoke_index} "
                f"by process {op.process}"
            ) from exc
        t: Any
        if isinstance(result, Inconsistent):
            t = _INC
        elif isinstance(result, OneOf):
            for state in result.states:
                _check_hashable(state, model, "step()")
            t = result.states[0] if len(result.states) == 1 else _Multi(result.states)
            if type(t) is _Multi and self._ro_flags[i]:
                raise ModelError(
                    f"model {model.name} says {op.describe()} is read-only but its step "
                    "returned OneOf several states"
                )
        else:
            _check_hashable(result, model, "step()")
            t = result
            if self._ro_flags[i] and t != s:
                raise ModelError(
                    f"model {model.name} says {op.describe()} is read-only but its step "
                    f"changed the state from {s!r} to {t!r}"
                )
        self._trans[i][s] = t
        return t

    # ------------------------------------------------------------------ the walk

    def run(self, budget: int) -> Verdict | None:
        """Advance by at most ``budget`` steps; the verdict once decided, else None."""
        if self.verdict is not None:
            return self.verdict
        try:
            return self._run(budget)
        except ModelError:
            raise
        except Exception:
            # The loop calls the model without a guard (a guard per step costs):
            # redo the last model call through the guarded path, which names the
            # op and the state if the model is the culprit; else re-raise as is.
            i, s = self._failing
            self._apply(i, s)
            raise

    def _run(self, budget: int) -> Verdict | None:
        # The loop below is the hot path: everything it touches is a local,
        # bitsets are plain ints, and the model is called only on a memo miss
        # (inline: a helper call per step would cost as much as the step). It
        # is one flat loop, no recursion, because in CPython a function call
        # costs more than the rest of a step.
        L = self._L
        M = self._M
        s = self._s
        cands = self._cands
        alt = self._alt
        stack = self._stack
        push = stack.append
        pop = stack.pop
        seen = self._seen
        add = seen.add
        trans = self._trans
        before = self._before
        guard = self._guard
        unknown = self._unknown
        mbit = self._mbit
        ops = self.bit_ops
        ro_flags = self._ro_flags
        step = self.model.step
        full = self._full
        ro = self._ro
        miss = _MISS
        inc = _INC
        multi = _Multi
        inconsistent = Inconsistent
        one_of = OneOf
        apply = self._apply
        best_key = self.best_key
        n = budget
        verdict: Verdict | None = None
        i = 0
        while n:
            n -= 1
            if alt is not None:
                # the remaining outcomes of a nondeterministic step
                b, rest = alt
                t = rest.pop()
                if not rest:
                    alt = None
                i = b.bit_length() - 1
            else:
                if not cands:
                    # dead end: remember the furthest point reached, then backtrack
                    depth = len(stack)
                    prog = (~M & (M + 1)).bit_length()
                    if prog > best_key[0] or (prog == best_key[0] and depth < best_key[1]):
                        best_key = (prog, depth)
                        self.best = [(f[0], f[2]) for f in stack]
                        self.best.append((L, s))
                    if not stack:
                        verdict = "illegal"
                        break
                    L, M, s, cands, alt = pop()
                    continue
                b = cands & -cands
                cands ^= b
                i = b.bit_length() - 1
                if unknown[i] and guard[i] & ~L:
                    continue  # an interchangeable op invoked earlier is not used yet
                memo = trans[i]
                t = memo.get(s, miss)
                if t is miss:
                    self._failing = (i, s)
                    t = step(s, ops[i])
                    if isinstance(t, inconsistent):
                        t = inc
                    elif t.__class__ is one_of or ro_flags[i]:
                        t = apply(i, s)  # the rare cases, checked in full
                    memo[s] = t
                if t is inc:
                    continue
                if t.__class__ is multi:
                    rest = list(t.states)
                    t = rest.pop()
                    alt = (b, rest)
            if unknown[i] and t == s:
                continue  # an unknown-result op that changes nothing here
            L2 = L | b
            key = (L2, t)
            if key in seen:
                continue
            add(key)
            push((L, M, s, cands, alt))
            alt = None
            L = L2
            M |= mbit[i]
            s = t
            # Entering a configuration: take every legal read-only op at once.
            while True:
                if M == full:
                    verdict = "ok"
                    break
                o = ~M & (M + 1)
                cands = before[o.bit_length() - 1] & ~L
                r = cands & ro
                while r:
                    b = r & -r
                    r ^= b
                    i = b.bit_length() - 1
                    memo = trans[i]
                    t = memo.get(s, miss)
                    if t is miss:
                        self._failing = (i, s)
                        t = step(s, ops[i])
                        if isinstance(t, inconsistent):
                            t = inc
                        elif t is not s:
                            t = apply(i, s)  # checks that the op really left the state alone
                        memo[s] = t
                    if t is not inc:
                        break
                else:
                    cands &= ~ro  # every read-only candidate is illegal in this state
                    break
                L2 = L | b
                key = (L2, s)
                if key in seen:
                    cands = 0  # explored before, and it failed
                    break
                add(key)
                push((L, M, s, 0, None))
                L = L2
                M |= mbit[i]
            if verdict is not None:
                break
        self.steps += budget - n
        self._L = L
        self._M = M
        self._s = s
        self._cands = cands
        self._alt = alt
        self.best_key = best_key
        if verdict == "ok":
            path = [(f[0], f[2]) for f in stack]
            path.append((L, s))
            self.linearization = self.ops_of_path(path)
        if verdict is not None:
            self.verdict = verdict
            self._seen = set()  # the cache is no longer needed: free it now
            self._trans = []
            stack.clear()
        return verdict

    # ------------------------------------------------------------------ reading paths

    def ops_of_path(self, path: Sequence[tuple[int, Any]]) -> list[tuple[Operation, Any]]:
        """The ops linearized along ``path`` with the state after each."""
        out: list[tuple[Operation, Any]] = []
        prev = 0
        for L, s in path[1:]:
            diff = L ^ prev
            out.append((self.bit_ops[diff.bit_length() - 1], s))
            prev = L
        return out

    def _known_set(self, L: int) -> int:
        """``M`` (known ops by completion order) for a configuration's ``L``."""
        M = 0
        while L:
            b = L & -L
            L ^= b
            M |= self._mbit[b.bit_length() - 1]
        return M

    def candidates_at(self, L: int) -> list[Operation]:
        """The ops that could be linearized next from a configuration with set ``L``."""
        M = self._known_set(L)
        if M == self._full:
            return []
        c = self._before[(~M & (M + 1)).bit_length() - 1] & ~L
        out = []
        while c:
            b = c & -c
            c ^= b
            out.append(self.bit_ops[b.bit_length() - 1])
        return out

    def forced_op(self, L: int) -> Operation | None:
        """The op with a known result whose completion is the earliest not in ``L``."""
        M = self._known_set(L)
        if M == self._full:
            return None
        return self._by_ret[(~M & (M + 1)).bit_length() - 1]


def _check_hashable(state: Any, model: ResolvedModel, where: str) -> None:
    try:
        hash(state)
    except TypeError as exc:
        raise ModelError(
            f"model {model.name}: {where} returned an unhashable state "
            f"{type(state).__name__} ({exc}); states must be hashable: use tuples, frozensets, "
            "strings, numbers or frozen dataclasses instead of lists, sets and dicts"
        ) from exc
