"""Built-in models for ``check_linearizable``, and the registry of model names.

Each model is a small class: ``init()`` gives the initial state, ``step(state,
op)`` the next one (or ``Inconsistent(reason)``). States are hashable values
(``None``, ints, strings, tuples, frozensets). See ``docs/linearizability.md``.

| name | ops (``op.f``) | state |
|---|---|---|
| ``register`` | ``read`` / ``write`` | the value (``None`` = never written) |
| ``cas-register`` | ``read`` / ``write`` / ``cas`` ``(from, to)`` | the value |
| ``kv`` | ``get`` / ``put`` / ``append`` per ``op.key``, partitioned per key | the key's string |
| ``kv-whole`` | the same, checked as one object (no partitioning) | all keys |
| ``multi-register`` | ``txn`` of ``(f, k, v)`` micro-ops, ``f`` read/r or write/w | all keys |
| ``set`` | ``add`` / ``remove`` / ``contains`` (``x``) and whole-set ``read`` | a frozenset |
| ``counter`` | ``add`` (delta) / ``increment`` / ``read`` | an int |
| ``fifo-queue`` | ``enqueue`` / ``dequeue`` (``None`` = empty) | a tuple |
| ``unordered-queue`` | ``enqueue`` / ``dequeue`` (``None`` = empty) | a multiset |
| ``mutex`` | ``acquire`` / ``release`` | locked or not |
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from .history import Keyword
from .linearizability._model import ALL, Conventions, Inconsistent, ModelError, OneOf
from .linearizability._ops import UNKNOWN, Operation

__all__ = [
    "ALL",
    "KV",
    "CasRegister",
    "Counter",
    "FifoQueue",
    "KVWhole",
    "Model",
    "MultiRegister",
    "Mutex",
    "Register",
    "Set",
    "UnorderedQueue",
    "get",
    "names",
    "register",
]


class Model:
    """A convenient base class for models: defaults for the optional hooks.

    Subclasses define ``init`` and ``step``; ``name`` shows in messages.
    """

    name = "model"

    def init(self) -> Hashable:
        raise NotImplementedError

    def step(self, state: Any, op: Operation) -> Any:
        raise NotImplementedError

    def read_only(self, op: Operation) -> bool:
        """Whether ``op`` never changes the state (default: it may)."""
        return False

    def describe_state(self, state: Any) -> str:
        return repr(state)

    def describe_op(self, op: Operation) -> str:
        return op.describe()

    def __repr__(self) -> str:
        return f"<model {self.name}>"


def _fmt(value: Any) -> str:
    return "nil" if value is None else repr(value)


class _Why(Inconsistent):
    """An ``Inconsistent`` whose template is filled with ``_fmt`` of its arguments,
    and only when the reason is read (the search reads almost none)."""

    __slots__ = ()

    @property
    def reason(self) -> str:
        if self._args:
            self._reason = self._reason.format(*map(_fmt, self._args))
            self._args = ()
        return self._reason


def _expect_f(op: Operation, allowed: tuple[str, ...], model: str) -> str | None:
    if op.f in allowed:
        return None
    return f"{model} ops are " + ", ".join(allowed) + f"; got {op.f!r}"


# ----------------------------------------------------------------------------- registers


class Register(Model):
    """A read/write register holding one value, ``initial`` (``None``) at first.

    ``nil_reads``: ``"any"`` accepts a read of ``None`` in any state (Knossos),
    ``"initial"`` only while the register holds ``None`` (Porcupine); by
    default it follows the check's conventions.
    """

    name = "register"
    _ops: tuple[str, ...] = ("read", "write")

    def __init__(self, initial: Hashable = None, *, nil_reads: str | None = None) -> None:
        if nil_reads not in (None, "any", "initial"):
            raise ModelError(f"nil_reads must be 'any' or 'initial', got {nil_reads!r}")
        self.initial = initial
        self.nil_reads = nil_reads
        self._nil_any = nil_reads == "any"

    def for_conventions(self, conventions: Conventions) -> Register:
        if self.nil_reads is not None:
            return self
        return type(self)(self.initial, nil_reads="any" if conventions == "knossos" else "initial")

    def init(self) -> Hashable:
        return self.initial

    def validate(self, op: Operation) -> str | None:
        return _expect_f(op, self._ops, self.name)

    def read_only(self, op: Operation) -> bool:
        return op.f == "read" or op.status == "fail"

    def describe_state(self, state: Any) -> str:
        return _fmt(state)

    def prune(self, ops: Sequence[Operation]) -> list[Operation]:
        """Drop crashed writes (and CASes) of values nobody read or compared against.

        Had one taken effect, every read until the next write would return its
        value, and every CAS would compare against it; none does, so it never
        needs to have happened. A failed CAS (porcupine conventions) is satisfied
        by any other value, so with one in the history nothing is dropped.
        """
        if all(op.known for op in ops):
            return list(ops)
        seen: set[Any] = set()
        try:
            for op in ops:
                if op.f == "read" and op.known:
                    seen.add(op.result)
                elif op.f == "cas":
                    if op.status == "fail":
                        return list(ops)
                    seen.add(op.value[0])
            return [
                op
                for op in ops
                if op.known
                or op.f == "read"
                or (op.value if op.f == "write" else op.value[1]) in seen
            ]
        except TypeError:  # unhashable values: keep everything
            return list(ops)

    def witness(self, ops: Sequence[Operation]) -> list[Operation] | None:
        """Propose a linearization when every written value is distinct (Gibbons & Korach).

        Each write and the reads of its value form a cluster that must be
        linearized together, write first; clusters are disjoint stretches of
        time, ordered by their earliest completion. Near-linear; verified
        exactly by the checker, which searches when it is wrong.
        """
        return _register_witness(ops, self.initial, self._nil_any)

    def refute(self, ops: Sequence[Operation]) -> list[Operation] | None:
        """A few ops that are not linearizable even alone (Gibbons & Korach), or None."""
        return _register_refute(ops, self.initial, self._nil_any)

    def describe_op(self, op: Operation) -> str:
        # Knossos histories repeat the value read on the invoke: show it as a result
        if op.f == "read":
            return "read -> " + (_fmt(op.result) if op.known else "?")
        if op.f == "write":
            tail = " -> ?" if not op.known else (" failed" if op.status == "fail" else "")
            return f"write({_fmt(op.value)}){tail}"
        return op.describe()

    def step(self, state: Any, op: Operation) -> Any:
        f = op.f
        if f == "read":
            r = op.result
            if r == state or r is UNKNOWN or op.status == "fail" or (r is None and self._nil_any):
                return state
            return _Why("read {}, but the register holds {}", r, state)
        if f == "write":
            return state if op.status == "fail" else op.value
        raise ModelError(f"{self.name}: unknown op {f!r}")


def _register_clusters(
    ops: Sequence[Operation], initial: Any, nil_any: bool
) -> tuple[list[list[Operation]], list[Operation], list[Operation]] | None:
    """Gibbons & Korach's clusters: each write with the reads of its value.

    Returns (clusters, reads of values nobody wrote, ops legal in any state),
    the first cluster of reads of the initial value having no write; None when
    a written value repeats (then clusters are ambiguous) or ops are not
    plain reads and writes.
    """
    writes: dict[Any, Operation] = {}
    reads: dict[Any, list[Operation]] = {}
    free: list[Operation] = []
    try:
        for op in ops:
            if op.f not in ("read", "write"):
                return None
            if op.status == "fail" or (op.f == "read" and op.result is None and nil_any):
                free.append(op)
            elif op.f == "write":
                if op.value in writes:
                    return None
                writes[op.value] = op
            else:
                reads.setdefault(op.result, []).append(op)
    except TypeError:
        return None
    clusters: list[list[Operation]] = []
    orphans: list[Operation] = []
    for value, seen in reads.items():
        ordered = sorted(seen, key=lambda op: op.call)
        if value in writes:
            clusters.append([writes.pop(value), *ordered])
        elif value == initial:
            clusters.insert(0, ordered)
        else:
            orphans.extend(ordered)
    clusters.extend([w] for w in writes.values() if w.ret is not None)  # written, never read
    return clusters, orphans, free


def _register_witness(
    ops: Sequence[Operation], initial: Any, nil_any: bool
) -> list[Operation] | None:
    found = _register_clusters(ops, initial, nil_any)
    if found is None or found[1]:
        return None  # a read of a value nobody wrote is for the search to explain
    clusters, _, free = found
    keyed = sorted(
        ((-1.0 if c[0].f == "read" else _zone_key(c), c) for c in clusters), key=lambda kc: kc[0]
    )
    seq = [op for _, members in keyed for op in members]
    if not free:
        return seq
    free.sort(key=lambda op: op.call)
    out: list[Operation] = []
    j = 0
    for op in seq:
        while j < len(free) and free[j].call < op.call:
            out.append(free[j])
            j += 1
        out.append(op)
    out.extend(free[j:])
    return out


def _register_refute(
    ops: Sequence[Operation], initial: Any, nil_any: bool
) -> list[Operation] | None:
    """A few whole clusters that cannot be linearized even alone, or None.

    Gibbons & Korach: with distinct written values, a history is linearizable
    iff no read precedes its write, no two forward zones overlap, and no
    backward zone lies inside a forward zone. Removing whole clusters keeps a
    linearizable history linearizable, so clusters that break a condition are
    a counterexample for the whole history.
    """
    found = _register_clusters(ops, initial, nil_any)
    if found is None:
        return None
    clusters, orphans, _ = found
    if orphans:
        return [orphans[0]]  # read a value nobody wrote
    forward: list[tuple[float, float, list[Operation]]] = []
    backward: list[tuple[float, float, list[Operation]]] = []
    for c in clusters:
        if c[0].f == "write":
            w = c[0]
            late = [r for r in c[1:] if r.ret is not None and r.ret < w.call]
            if late:
                return [w, late[0]]  # a read completed before its write began
            f = min(_ret_key(op) for op in c)
        else:
            f = -1.0  # the initial value: written before everything
        s = max(op.call for op in c)
        (forward if f < s else backward).append((f, float(s), c))
    forward.sort(key=lambda z: z[0])
    for (_, s1, c1), (f2, _, c2) in itertools.pairwise(forward):
        if f2 < s1:
            return [*c1, *c2]  # two clusters that must each span the other's time
    starts = [z[0] for z in forward]
    for s_b, f_b, c_b in ((s, f, c) for f, s, c in backward):
        at = bisect.bisect_left(starts, s_b) - 1
        if at >= 0:
            f_a, s_a, c_a = forward[at]
            if f_a < s_b and f_b < s_a:
                return [*c_a, *c_b]  # a cluster that must happen inside another
    return None


def _zone_key(members: Sequence[Operation]) -> float:
    """Where a cluster goes in time (Gibbons & Korach's zones).

    ``f`` is its earliest completion and ``s`` its latest invoke. When f < s
    (a forward zone) the cluster spans [f, s] and must begin by f; otherwise it
    fits at any single point of [s, f], from s on. A point-like cluster can go
    before a spanning one exactly when its s precedes the other's f.
    """
    f = min(_ret_key(op) for op in members)
    s = max(op.call for op in members)
    return f if f < s else float(s)


class CasRegister(Register):
    """A register with compare-and-set: ``cas`` with value ``(from, to)``.

    A successful CAS requires the register to hold ``from``. Under the
    porcupine conventions a failed CAS (``status == "fail"``) is an
    observation: it is legal only where the register does not hold ``from``.
    """

    name = "cas-register"
    _ops = ("read", "write", "cas")

    def validate(self, op: Operation) -> str | None:
        problem = _expect_f(op, self._ops, self.name)
        if problem is None and op.f == "cas":
            v = op.value
            if not isinstance(v, (tuple, list)) or len(v) != 2:
                return f"cas needs a [from to] pair, got {_fmt(v)}"
        return problem

    def describe_op(self, op: Operation) -> str:
        if op.f == "cas":
            tail = " -> ?" if not op.known else (" failed" if op.status == "fail" else "")
            return f"cas({_fmt(op.value[0])} -> {_fmt(op.value[1])}){tail}"
        return Register.describe_op(self, op)

    def step(self, state: Any, op: Operation) -> Any:
        if op.f != "cas":
            return Register.step(self, state, op)
        old, new = op.value
        if op.result is UNKNOWN:
            return new if state == old else state
        if op.status == "fail":
            if state == old:
                return _Why(
                    "cas {}->{} failed, but the register holds {}, so it would have succeeded",
                    old,
                    new,
                    state,
                )
            return state
        if state == old:
            return new
        return _Why("cas {}->{} succeeded, but the register holds {}", old, new, state)


# ----------------------------------------------------------------------------- key-value


_KV_OPS = ("get", "put", "append")


class KV(Model):
    """A key-value store of strings: ``get`` (result: the key's string, ``""`` when
    absent; ``None`` counts as ``""``), ``put`` and ``append`` (value: a string).
    The key is ``op.key``. Keys are independent, so each is checked on its own.
    """

    name = "kv"

    def init(self) -> Hashable:
        return ""

    def partition(self, op: Operation) -> Hashable:
        key: Hashable = op.key
        return key

    def validate(self, op: Operation) -> str | None:
        problem = _expect_f(op, _KV_OPS, self.name)
        if problem is not None:
            return problem
        if op.f != "get" and not isinstance(op.value, str):
            return f"{op.f} needs a string value, got {_fmt(op.value)}"
        if op.f == "get" and op.known and not isinstance(op.result, (str, type(None))):
            return f"get must return a string, got {_fmt(op.result)}"
        return None

    def read_only(self, op: Operation) -> bool:
        return op.f == "get" or op.status == "fail"

    def describe_state(self, state: Any) -> str:
        return repr(state)

    def step(self, state: Any, op: Operation) -> Any:
        f = op.f
        if op.status == "fail":
            return state
        if f == "get":
            r = op.result
            if r == state or r is UNKNOWN or (r is None and state == ""):
                return state
            return _Why("get returned {}, but the key holds {}", r, state)
        if f == "append":
            return state + op.value
        return op.value

    def prune(self, ops: Sequence[Operation]) -> list[Operation]:
        """Drop crashed puts and appends whose value no get of their key ever shows.

        Had one taken effect, every get until the next put would show its
        value; none does, so it never needs to have happened. Without this,
        each such op could be placed at any point, and the search tries them.
        """
        if all(op.known for op in ops):
            return list(ops)
        shown: dict[Any, list[str]] = {}
        for op in ops:
            if op.f == "get" and op.known and op.result:
                shown.setdefault(op.key, []).append(op.result)
        seen = {key: "\0".join(values) for key, values in shown.items()}
        return [
            op
            for op in ops
            if op.known or op.f == "get" or (op.value and op.value in seen.get(op.key, ""))
        ]

    def witness(self, ops: Sequence[Operation]) -> list[Operation] | None:
        """Propose a linearization of one key's ops from what the gets reveal.

        A get's string shows the put and the appends before it, in order, so
        the order of the appends can be read off the gets instead of searched
        for (the search tries orders one by one, and concurrent appends have
        many). The proposal is a guess that the checker verifies exactly; when
        it is wrong or ambiguous the checker searches as usual.
        """
        return _KVWitness(ops).build()


class KVWhole(KV):
    """``kv`` checked as one object: the state maps every key to its string.

    The same semantics as ``kv`` without partitioning; useful as a benchmark of
    the search itself, and for stores whose keys are not independent.
    """

    name = "kv-whole"
    # Neither partitioning nor the per-key fast path: this model measures the search itself.
    partition = None  # type: ignore[assignment]
    witness = None  # type: ignore[assignment]

    def init(self) -> Hashable:
        return frozenset()

    def describe_state(self, state: Any) -> str:
        items = sorted(state, key=lambda kv: repr(kv[0]))
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in items) + "}"

    def step(self, state: Any, op: Operation) -> Any:
        if op.status == "fail":
            return state
        key = op.key
        current = ""
        for k, v in state:
            if k == key:
                current = v
                break
        f = op.f
        if f == "get":
            r = op.result
            if r == current or r is UNKNOWN or (r is None and current == ""):
                return state
            return _Why("get returned {}, but key {} holds {}", r, key, current)
        new = current + op.value if f == "append" else op.value
        return frozenset([*(kv for kv in state if kv[0] != key), (key, new)])


class _KVWitness:
    """A linearization of one key's history read off the gets' values.

    Every get shows the whole string: the put that began it (its *epoch*)
    and the appends since, in order. So within an epoch the longest get
    gives the order of the appends, and each get goes right after the
    appends it shows. Epochs are ordered by their put's completion; appends
    no get shows go at the end of the epoch their completion falls in.
    Anything ambiguous (a put value that is also an append value, gets of one
    epoch that are not prefixes of one another, a string that does not split
    into append values one way) gives up: the checker then searches.
    """

    def __init__(self, ops: Sequence[Operation]) -> None:
        self.ops = ops

    def build(self) -> list[Operation] | None:
        gets: list[Operation] = []
        puts: dict[str, Operation] = {}
        appends: dict[str, list[Operation]] = {}
        for op in self.ops:
            if op.status == "fail":
                return None
            if op.f == "get":
                gets.append(op)
            elif op.f == "put":
                if op.value in puts or not op.value:
                    return None
                puts[op.value] = op
            else:
                if not op.value:
                    return None
                appends.setdefault(op.value, []).append(op)
        lengths = sorted({len(v) for v in appends})
        # epoch (a put's value, or None before any put) -> [(tokens shown, get)]
        shown: dict[str | None, list[tuple[str, Operation]]] = {}
        for g in gets:
            value = g.result or ""
            starts = [p for p in puts if value.startswith(p)]
            if len(starts) > 1:
                return None
            epoch = starts[0] if starts else None
            shown.setdefault(epoch, []).append((value[len(epoch or "") :], g))
        tokens: dict[str | None, list[str]] = {}
        slots: dict[str | None, list[list[Operation]]] = {}
        for epoch, seen in shown.items():
            longest = max((rest for rest, _ in seen), key=len)
            split = _split(longest, appends, lengths)
            if split is None:
                return None
            ends = {0: 0}
            total = 0
            for n, tok in enumerate(split, 1):
                total += len(tok)
                ends[total] = n
            epoch_slots: list[list[Operation]] = [[] for _ in range(len(split) + 1)]
            for rest, g in seen:
                if not longest.startswith(rest) or len(rest) not in ends:
                    return None
                epoch_slots[ends[len(rest)]].append(g)
            tokens[epoch] = split
            slots[epoch] = epoch_slots

        # An epoch lasts at least until its last get is invoked, and must begin
        # before its first get (or its put) completes: order epochs by the
        # first, then the second (epochs are disjoint stretches of time).
        def lasts_until(epoch: str) -> tuple[float, float]:
            gets = [g for _, g in shown.get(epoch, [])]
            last_call = max([puts[epoch].call, *(g.call for g in gets)])
            first_ret = min([_ret_key(puts[epoch]), *(_ret_key(g) for g in gets)])
            return (last_call, first_ret)

        # puts no get shows are placed like appends no get shows, below
        order_of_epochs: list[str | None] = [
            None,
            *sorted((p for p in puts if p in shown), key=lasts_until),
        ]
        # which append op each shown token is: the earliest-completing one left
        free = {v: sorted(ops, key=_ret_key) for v, ops in appends.items()}
        out: list[Operation] = []
        put_at: list[int] = []  # positions of the puts in out
        point = -1  # the earliest linearization point of the last op in out

        def place(op: Operation) -> None:
            nonlocal point
            point = max(point, op.call)
            out.append(op)

        for epoch in order_of_epochs:
            if epoch is not None:
                put_at.append(len(out))
                place(puts[epoch])
            tokens_e = tokens.get(epoch, [])
            for n, group in enumerate(slots.get(epoch, [[]])):
                if n:
                    left = free[tokens_e[n - 1]]
                    if not left:
                        return None
                    # of equal appends, the first to complete that can still come here
                    pick = next((i for i, op in enumerate(left) if _ret_key(op) > point), 0)
                    place(left.pop(pick))
                for g in sorted(group, key=lambda op: op.call):
                    place(g)
        # Writes no get shows go where no get can see them: just before a put,
        # or at the very end; the first such place they fit in time.
        unseen = sorted(
            [
                *(op for left in free.values() for op in left if op.ret is not None),
                *(op for p, op in puts.items() if p not in shown and op.ret is not None),
            ],
            key=lambda op: op.call,
        )
        if unseen:
            points = []
            point = -1
            for op in out:
                point = max(point, op.call)
                points.append(point)
            # everything after a place must still fit after the append's invoke
            deadline = [_INF] * (len(out) + 1)
            for n in range(len(out) - 1, -1, -1):
                deadline[n] = min(deadline[n + 1], _ret_key(out[n]))
            places: dict[int, list[Operation]] = {}
            for op in unseen:
                assert op.ret is not None
                where = len(out)
                for at in put_at:
                    before = points[at - 1] if at else -1
                    if before < op.ret and op.call < deadline[at]:
                        where = at
                        break
                places.setdefault(where, []).append(op)
            merged: list[Operation] = []
            for n, op in enumerate(out):
                merged.extend(places.get(n, ()))
                merged.append(op)
            merged.extend(places.get(len(out), ()))
            out = merged
        return out


def _split(text: str, values: Mapping[str, Any], lengths: Sequence[int]) -> list[str] | None:
    """``text`` as a sequence of append values, if it splits exactly one way greedily."""
    out = []
    i = 0
    while i < len(text):
        end = len(text) - i
        fits = [text[i : i + n] for n in lengths if n <= end and text[i : i + n] in values]
        if len(fits) != 1:
            return None
        out.append(fits[0])
        i += len(fits[0])
    return out


_INF = float("inf")


def _ret_key(op: Operation) -> float:
    return _INF if op.ret is None else op.ret


# ----------------------------------------------------------------------------- multi-register


_READS = ("read", "r")
_WRITES = ("write", "w")


def _name(f: Any) -> Any:
    return f.name if type(f) is Keyword else f


class MultiRegister(Model):
    """Registers named by keys, read and written by transactions.

    One op ``txn`` whose value is a sequence of ``(f, k, v)`` micro-ops with
    ``f`` ``read``/``r`` or ``write``/``w`` (keywords or strings). On the
    completion, reads carry the values read. A read of ``None`` is accepted in
    any state under the knossos conventions, and means "holds nil" under
    porcupine's.

    ``initial`` maps registers to their first values (others start at
    ``None``). Without it, each register's first value is unknown: the first
    read of a register before any write to it says what it was (Knossos's
    multi-register histories start from values they do not record).
    """

    name = "multi-register"

    def __init__(
        self, initial: Mapping[Hashable, Hashable] | None = None, *, nil_reads: str | None = None
    ) -> None:
        self.initial = None if initial is None else dict(initial)
        self.nil_reads = nil_reads
        self._nil_any = nil_reads == "any"

    def for_conventions(self, conventions: Conventions) -> MultiRegister:
        if self.nil_reads is not None:
            return self
        return MultiRegister(
            self.initial, nil_reads="any" if conventions == "knossos" else "initial"
        )

    def init(self) -> Hashable:
        return frozenset((self.initial or {}).items())

    def validate(self, op: Operation) -> str | None:
        if op.f != "txn":
            return f"multi-register ops are txn; got {op.f!r}"
        for label, mops in (("invoke", op.value), ("completion", op.result)):
            if mops is UNKNOWN or (label == "completion" and op.status == "fail"):
                continue
            if not isinstance(mops, (tuple, list)):
                return f"the {label} value must be a list of [f k v] micro-ops, got {_fmt(mops)}"
            for m in mops:
                if not isinstance(m, (tuple, list)) or len(m) != 3:
                    return f"micro-op {_fmt(m)} is not [f k v]"
                if _name(m[0]) not in _READS + _WRITES:
                    return f"micro-op {_fmt(m)}: f must be read/r or write/w"
        if op.known and op.status == "ok" and len(op.result) != len(op.value):
            return "the completion's micro-ops do not match the invoke's"
        return None

    def read_only(self, op: Operation) -> bool:
        if op.status == "fail":
            return True
        # with unknown first values, a read may pin one down: that is a change of state
        return self.initial is not None and all(_name(m[0]) in _READS for m in op.value)

    def partition(self, op: Operation) -> Hashable:
        keys = {m[1] for m in op.value}
        return next(iter(keys)) if len(keys) == 1 else ALL

    def describe_state(self, state: Any) -> str:
        items = sorted(state, key=lambda kv: repr(kv[0]))
        return "{" + ", ".join(f"{_fmt(k)} {_fmt(v)}" for k, v in items) + "}"

    def describe_op(self, op: Operation) -> str:
        mops = op.result if op.known and op.status == "ok" else op.value
        body = " ".join(
            f"[{_name(f)} {_fmt(k)} {'?' if not op.known and _name(f) in _READS else _fmt(v)}]"
            for f, k, v in mops
        )
        return f"txn {body}" + (" failed" if op.status == "fail" else "")

    def step(self, state: Any, op: Operation) -> Any:
        if op.status == "fail":
            return state
        values = dict(state)
        known = op.known
        pin = self.initial is None
        for f, k, v in op.result if known else op.value:
            if _name(f) in _WRITES:
                values[k] = v
            elif known:
                if v is None and self._nil_any:
                    continue
                if k not in values and pin:
                    values[k] = v  # the register's unknown first value, now known
                    continue
                held = values.get(k)
                if v != held:
                    return _Why("read {} = {}, but it holds {}", k, v, held)
        return frozenset(values.items())


# ----------------------------------------------------------------------------- set, counter


class Set(Model):
    """A set: ``add``/``remove`` (value: the element), ``contains`` (result: a
    bool) and ``read`` (result: every element). Elements are independent except
    for whole-set reads, so without ``read`` ops each element is checked alone.
    """

    name = "set"

    def init(self) -> Hashable:
        return frozenset()

    def validate(self, op: Operation) -> str | None:
        problem = _expect_f(op, ("add", "remove", "contains", "read"), self.name)
        if problem is not None:
            return problem
        if op.f == "contains" and op.known and op.status == "ok" and type(op.result) is not bool:
            return f"contains must return true or false, got {_fmt(op.result)}"
        if op.f == "read" and op.known and op.status == "ok":
            if isinstance(op.result, (str, bytes)) or not isinstance(op.result, Iterable):
                return f"read must return a collection of elements, got {_fmt(op.result)}"
        return None

    def partition(self, op: Operation) -> Hashable:
        return ALL if op.f == "read" else op.value

    def read_only(self, op: Operation) -> bool:
        return op.f in ("contains", "read") or op.status == "fail"

    def describe_state(self, state: Any) -> str:
        return "{" + ", ".join(sorted(map(repr, state))) + "}"

    def step(self, state: Any, op: Operation) -> Any:
        f = op.f
        if op.status == "fail":
            return state
        if f == "add":
            return state | {op.value}
        if f == "remove":
            return state - {op.value}
        r = op.result
        if r is UNKNOWN:
            return state
        if f == "contains":
            if (op.value in state) == r:
                return state
            return Inconsistent(
                f"contains({op.value!r}) returned {r}, but the set "
                + ("holds it" if op.value in state else "does not hold it")
            )
        if frozenset(r) == state:
            return state
        return Inconsistent(
            f"read {self.describe_state(frozenset(r))}, but the set holds "
            f"{self.describe_state(state)}"
        )


class Counter(Model):
    """A counter starting at ``initial`` (0): ``add`` (value: the delta),
    ``increment`` (value: the delta, 1 when ``None``) and ``read``."""

    name = "counter"

    def __init__(self, initial: int = 0) -> None:
        self.initial = initial

    def init(self) -> Hashable:
        return self.initial

    def validate(self, op: Operation) -> str | None:
        problem = _expect_f(op, ("add", "increment", "read"), self.name)
        if problem is None and op.f == "add" and type(op.value) is not int:
            return f"add needs an integer delta, got {_fmt(op.value)}"
        if problem is None and op.f == "increment" and type(op.value) not in (int, type(None)):
            return f"increment needs an integer delta (or nil for 1), got {_fmt(op.value)}"
        return problem

    def read_only(self, op: Operation) -> bool:
        return op.f == "read" or op.status == "fail"

    def step(self, state: Any, op: Operation) -> Any:
        if op.status == "fail":
            return state
        f = op.f
        if f == "read":
            r = op.result
            if r == state or r is UNKNOWN:
                return state
            return Inconsistent(f"read {_fmt(r)}, but the counter is {state}")
        delta = 1 if op.value is None else op.value
        return state + delta


# ----------------------------------------------------------------------------- queues, mutex


class FifoQueue(Model):
    """A FIFO queue: ``enqueue`` (value: the element) and ``dequeue`` (result:
    the element, ``None`` when the queue was empty)."""

    name = "fifo-queue"

    def init(self) -> Hashable:
        return ()

    def validate(self, op: Operation) -> str | None:
        return _expect_f(op, ("enqueue", "dequeue"), self.name)

    def read_only(self, op: Operation) -> bool:
        # a dequeue that found the queue empty only observes it
        return op.status == "fail" or (op.f == "dequeue" and op.known and op.result is None)

    def describe_state(self, state: Any) -> str:
        return "[" + " ".join(map(_fmt, state)) + "]"

    def prune(self, ops: Sequence[Operation]) -> list[Operation]:
        return _prune_enqueues(ops)

    def witness(self, ops: Sequence[Operation]) -> list[Operation] | None:
        """Propose a linearization from the dequeues: they show the enqueue order.

        The search would try the orders of concurrent enqueues one by one; with
        distinct values the dequeued values give it. The proposal is verified
        exactly by the checker, which searches when it is wrong.
        """
        return _fifo_witness(ops)

    def step(self, state: Any, op: Operation) -> Any:
        if op.status == "fail":
            return state
        if op.f == "enqueue":
            return (*state, op.value)
        r = op.result
        if r is UNKNOWN:
            return state[1:]
        if r is None:
            if not state:
                return state
            return Inconsistent(
                f"dequeue found the queue empty, but it holds {len(state)} items "
                f"(head {_fmt(state[0])})"
            )
        if not state:
            return Inconsistent(f"dequeued {_fmt(r)}, but the queue is empty")
        if state[0] == r:
            return state[1:]
        return Inconsistent(f"dequeued {_fmt(r)}, but the head is {_fmt(state[0])}")


def _prune_enqueues(ops: Sequence[Operation]) -> list[Operation]:
    """Drop crashed enqueues of values no dequeue returned: had one taken effect,
    its value would sit in the queue forever, which never helps a linearization."""
    if all(op.known for op in ops):
        return list(ops)
    taken = set()
    for op in ops:
        if op.f == "dequeue" and op.known and op.result is not None:
            try:
                taken.add(op.result)
            except TypeError:
                return list(ops)
    out = []
    for op in ops:
        try:
            keep = op.known or op.f != "enqueue" or op.value in taken
        except TypeError:
            keep = True
        if keep:
            out.append(op)
    return out


def _fifo_witness(ops: Sequence[Operation]) -> list[Operation] | None:
    """A proposed linearization of a FIFO queue history with distinct values.

    Dequeued values leave in the order they arrived, so one order of the values
    must fit both the enqueues' and the dequeues' real-time order: it is built
    one value at a time, taking among the values that nothing must precede the
    one whose dequeue completes first. A value nobody dequeued goes last,
    unless its enqueue completed before a dequeued value's was invoked: then a
    crashed dequeue must have taken it. The enqueues, dequeues and empty
    dequeues are then merged earliest deadline first. None when values repeat
    or the history is too long for this quadratic guess.
    """
    enqueues: dict[Any, Operation] = {}
    by_value: dict[Any, Operation] = {}
    empties: list[Operation] = []
    crashed: list[Operation] = []
    for op in ops:
        if op.status == "fail":
            return None
        if op.f == "enqueue":
            try:
                if op.value in enqueues:
                    return None
            except TypeError:
                return None
            enqueues[op.value] = op
        elif not op.known:
            crashed.append(op)
        elif op.result is None:
            empties.append(op)
        elif op.result in by_value:
            return None
        else:
            by_value[op.result] = op
    if len(by_value) > _FIFO_WITNESS_MAX or any(v not in enqueues for v in by_value):
        return None
    empties.sort(key=lambda op: (_ret_key(op), op.call))
    crashed.sort(key=lambda op: op.call)
    order: list[Any] = []
    left = set(by_value)
    while left:
        first_enq = min(_ret_key(enqueues[v]) for v in left)
        first_deq = min(_ret_key(by_value[v]) for v in left)
        free = [v for v in left if enqueues[v].call < first_enq and by_value[v].call < first_deq]
        if not free:
            return None
        pick = min(free, key=lambda v: (_ret_key(by_value[v]), _ret_key(enqueues[v])))
        order.append(pick)
        left.remove(pick)
    enq_seq = [enqueues[v] for v in order]
    orphans: set[Any] = set()
    for e in sorted((e for v, e in enqueues.items() if v not in by_value), key=lambda e: e.call):
        if e.ret is None:
            continue  # a crashed enqueue nobody saw: it need not have happened
        at = next((n for n, x in enumerate(enq_seq) if x.call > e.ret), None)
        if at is None:
            enq_seq.append(e)
        else:
            enq_seq.insert(at, e)
            orphans.add(e.value)
    deq_seq = [by_value[v] for v in order]
    # A deadline is the earliest completion of the op or of anything that must come
    # after it: an enqueue comes before its dequeue and before the later enqueues.
    enq_due = [
        min(_ret_key(e), _ret_key(by_value[e.value]) if e.value in by_value else _INF)
        for e in enq_seq
    ]
    deq_due = [_ret_key(d) for d in deq_seq]
    for due in (enq_due, deq_due):
        for n in range(len(due) - 2, -1, -1):
            due[n] = min(due[n], due[n + 1])
    out: list[Operation] = []
    queue: list[Any] = []
    head = i = j = k = z = 0
    while i < len(enq_seq) or j < len(deq_seq) or z < len(empties):
        front = queue[head] if head < len(queue) else _EMPTY
        d = deq_seq[j] if j < len(deq_seq) else None
        if front in orphans and (d is None or d.result != front) and k < len(crashed):
            out.append(crashed[k])  # a crashed dequeue took the value nobody dequeued
            k += 1
            head += 1
            continue
        ready: list[tuple[float, int]] = []
        if i < len(enq_seq):
            ready.append((enq_due[i], 0))
        if d is not None and d.result == front:
            ready.append((deq_due[j], 1))
        if z < len(empties) and front is _EMPTY:
            ready.append((_ret_key(empties[z]), 2))
        if not ready:
            return None
        which = min(ready)[1]
        if which == 0:
            out.append(enq_seq[i])
            queue.append(enq_seq[i].value)
            i += 1
        elif which == 1:
            assert d is not None
            out.append(d)
            head += 1
            j += 1
        else:
            out.append(empties[z])
            z += 1
    return out


_FIFO_WITNESS_MAX = 3_000  # dequeued values; the guess is quadratic in them
_EMPTY: Any = object()


class UnorderedQueue(Model):
    """A queue that may hand out its elements in any order (a multiset).

    A dequeue with an unknown result may have removed any element: the step
    returns ``OneOf`` the possible states.
    """

    name = "unordered-queue"

    def init(self) -> Hashable:
        return frozenset()

    def validate(self, op: Operation) -> str | None:
        return _expect_f(op, ("enqueue", "dequeue"), self.name)

    def read_only(self, op: Operation) -> bool:
        return op.status == "fail" or (op.f == "dequeue" and op.known and op.result is None)

    def describe_state(self, state: Any) -> str:
        items = sorted(state, key=lambda kv: repr(kv[0]))
        return "{" + " ".join(_fmt(v) + (f"x{n}" if n > 1 else "") for v, n in items) + "}"

    def prune(self, ops: Sequence[Operation]) -> list[Operation]:
        """Drop crashed enqueues nobody dequeued (as for FIFO queues), and crashed
        dequeues that no empty dequeue can follow: taking an element out only
        matters to a dequeue that later finds the queue empty."""
        kept = _prune_enqueues(ops)
        last_empty = max(
            (op.ret or 0 for op in kept if op.f == "dequeue" and op.known and op.result is None),
            default=-1,
        )
        return [op for op in kept if op.known or op.f != "dequeue" or op.call < last_empty]

    @staticmethod
    def _remove(state: frozenset[tuple[Any, int]], value: Any, count: int) -> Any:
        rest = [kv for kv in state if kv[0] != value]
        if count > 1:
            rest.append((value, count - 1))
        return frozenset(rest)

    def step(self, state: Any, op: Operation) -> Any:
        if op.status == "fail":
            return state
        if op.f == "enqueue":
            v = op.value
            count = next((n for k, n in state if k == v), 0)
            return frozenset([*(kv for kv in state if kv[0] != v), (v, count + 1)])
        r = op.result
        if r is UNKNOWN:
            if not state:
                return state
            return OneOf(*(self._remove(state, v, n) for v, n in state))
        if r is None:
            if not state:
                return state
            return Inconsistent(
                f"dequeue found the queue empty, but it holds {self.describe_state(state)}"
            )
        for v, n in state:
            if v == r:
                return self._remove(state, v, n)
        return Inconsistent(
            f"dequeued {_fmt(r)}, which is not in the queue {self.describe_state(state)}"
        )


class Mutex(Model):
    """A lock: ``acquire`` and ``release`` (the state is whether it is held).

    Under the porcupine conventions a failed ``acquire`` (a try-lock that
    returned false) is an observation: legal only while the lock is held.
    """

    name = "mutex"

    def init(self) -> Hashable:
        return False

    def validate(self, op: Operation) -> str | None:
        return _expect_f(op, ("acquire", "release"), self.name)

    def read_only(self, op: Operation) -> bool:
        return op.status == "fail"

    def describe_state(self, state: Any) -> str:
        return "held" if state else "free"

    def step(self, state: Any, op: Operation) -> Any:
        if op.f == "acquire":
            if op.status == "fail":
                return state if state else Inconsistent("acquire failed, but the lock was free")
            return Inconsistent("acquire, but the lock is already held") if state else True
        if op.status == "fail":
            return state
        return False if state else Inconsistent("release, but the lock is not held")


# ----------------------------------------------------------------------------- registry


_REGISTRY: dict[str, Callable[[], Any]] = {
    "register": Register,
    "cas-register": CasRegister,
    "kv": KV,
    "kv-whole": KVWhole,
    "multi-register": MultiRegister,
    "set": Set,
    "counter": Counter,
    "fifo-queue": FifoQueue,
    "unordered-queue": UnorderedQueue,
    "mutex": Mutex,
}


def register(name: str, factory: Callable[[], Any], *, replace: bool = False) -> None:
    """Make ``factory()`` available as the model ``name`` (e.g. for the CLI's ``--model``)."""
    if not isinstance(name, str) or not name:
        raise ModelError(f"a model name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise ModelError(f"the factory for model {name!r} must be callable, got {factory!r}")
    if name in _REGISTRY and not replace:
        raise ModelError(f"model {name!r} is already registered (pass replace=True to replace it)")
    _REGISTRY[name] = factory


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Any:
    """A fresh instance of the model registered as ``name``."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ModelError(
            f"unknown model {name!r}; registered models: {', '.join(names())} "
            "(or pass a model object with init() and step())"
        )
    return factory()
